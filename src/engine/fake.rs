//! An in-memory engine for unit tests of the reconciler: records calls, holds services, volumes
//! and networks, and applies the same policy check as the Docker backend.

use super::*;
use std::sync::Mutex;

#[derive(Default)]
pub struct FakeEngine {
    pub state: Mutex<FakeState>,
}

#[derive(Default)]
pub struct FakeState {
    pub services: BTreeMap<String, (ServiceSpec, ServiceState)>,
    pub networks: Vec<String>,
    pub volumes: Vec<VolumeState>,
    pub images: BTreeMap<String, String>,
    pub calls: Vec<String>,
    /// When set, every call fails as if the engine were gone.
    pub down: bool,
}

impl FakeEngine {
    fn guard(&self, call: String) -> Result<std::sync::MutexGuard<'_, FakeState>, EngineError> {
        let mut s = self.state.lock().unwrap();
        if s.down {
            return Err(EngineError::Unreachable { endpoint: "fake".into(), detail: "down".into() });
        }
        s.calls.push(call);
        Ok(s)
    }
    pub fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn ping(&self) -> Result<String, EngineError> {
        self.guard("ping".into()).map(|_| "fake".into())
    }
    async fn events(&self) -> Result<EventStream, EngineError> {
        let _g = self.guard("events".into())?;
        Ok(Box::pin(futures_util::stream::pending()))
    }
    async fn data_root(&self) -> Result<Option<std::path::PathBuf>, EngineError> {
        Ok(None)
    }
    async fn list_services(&self, stack: Option<&str>) -> Result<Vec<ServiceState>, EngineError> {
        let s = self.guard("list".into())?;
        Ok(s.services.values().filter(|(_, st)| stack.is_none_or(|x| st.stack == x)).map(|(_, st)| st.clone()).collect())
    }
    async fn network_exists(&self, stack: &str) -> Result<bool, EngineError> {
        Ok(self.guard("network?".into())?.networks.contains(&network_name(stack)))
    }
    async fn create_network(&self, stack: &str) -> Result<(), EngineError> {
        self.guard(format!("create-network {stack}"))?.networks.push(network_name(stack));
        Ok(())
    }
    async fn remove_network(&self, stack: &str) -> Result<(), EngineError> {
        self.guard(format!("remove-network {stack}"))?.networks.retain(|n| *n != network_name(stack));
        Ok(())
    }
    async fn list_volumes(&self, stack: Option<&str>) -> Result<Vec<VolumeState>, EngineError> {
        let s = self.guard("volumes".into())?;
        Ok(s.volumes.iter().filter(|v| stack.is_none_or(|x| v.stack == x)).cloned().collect())
    }
    async fn create_volume(&self, stack: &str, volume: &str) -> Result<(), EngineError> {
        let mut s = self.guard(format!("create-volume {stack}/{volume}"))?;
        let name = volume_name(stack, volume);
        if !s.volumes.iter().any(|v| v.name == name) {
            s.volumes.push(VolumeState { name, stack: stack.into(), volume: volume.into() });
        }
        Ok(())
    }
    async fn remove_volume(&self, stack: &str, volume: &str) -> Result<(), EngineError> {
        let name = volume_name(stack, volume);
        self.guard(format!("remove-volume {stack}/{volume}"))?.volumes.retain(|v| v.name != name);
        Ok(())
    }
    async fn volume_path(&self, stack: &str, volume: &str) -> Result<Option<std::path::PathBuf>, EngineError> {
        let s = self.guard(format!("volume-path {stack}/{volume}"))?;
        let name = volume_name(stack, volume);
        Ok(s.volumes.iter().any(|v| v.name == name).then(|| std::path::PathBuf::from(format!("/fake/{name}"))))
    }
    async fn create_service(&self, spec: &ServiceSpec) -> Result<(), EngineError> {
        policy::check(spec, "/secrets").map_err(|r| EngineError::Policy { name: spec.name(), reasons: r.join("; ") })?;
        let mut s = self.guard(format!("create {}", spec.name()))?;
        let st = ServiceState {
            stack: spec.stack.clone(),
            service: spec.service.clone(),
            name: spec.name(),
            id: format!("id-{}", spec.name()),
            spec_hash: Some(spec_hash(spec)),
            running: true,
            status: "running".into(),
            restart_count: 0,
            exit_code: None,
            ip: Some("10.0.0.2".into()),
            observed: Observed {
                image: spec.image.clone(),
                memory_bytes: spec.memory_bytes,
                pids_limit: spec.pids_limit,
                privileged: false,
                restart_policy: RESTART_POLICY.into(),
            },
        };
        s.services.insert(spec.name(), (spec.clone(), st));
        Ok(())
    }
    async fn start_service(&self, name: &str) -> Result<(), EngineError> {
        let mut s = self.guard(format!("start {name}"))?;
        if let Some((_, st)) = s.services.get_mut(name) {
            st.running = true;
            st.status = "running".into();
        }
        Ok(())
    }
    async fn stop_service(&self, name: &str, _grace: Duration) -> Result<(), EngineError> {
        let mut s = self.guard(format!("stop {name}"))?;
        if let Some((_, st)) = s.services.get_mut(name) {
            st.running = false;
            st.status = "exited".into();
        }
        Ok(())
    }
    async fn remove_service(&self, name: &str) -> Result<(), EngineError> {
        self.guard(format!("remove {name}"))?.services.remove(name);
        Ok(())
    }
    async fn exec(&self, name: &str, cmd: &[String], _t: Duration) -> Result<ExecOutput, EngineError> {
        drop(self.guard(format!("exec {name} {}", cmd.join(" ")))?);
        Ok(ExecOutput { exit_code: 0, stdout: String::new(), stderr: String::new() })
    }
    async fn exec_stream(
        &self,
        name: &str,
        cmd: &[String],
        out: tokio::sync::mpsc::Sender<bytes::Bytes>,
        _t: Duration,
    ) -> Result<ExecOutput, EngineError> {
        drop(self.guard(format!("exec-stream {name} {}", cmd.join(" ")))?);
        let _ = out.send(bytes::Bytes::from_static(b"fake output\n")).await;
        Ok(ExecOutput { exit_code: 0, stdout: String::new(), stderr: String::new() })
    }
    async fn exec_stdin(
        &self,
        name: &str,
        cmd: &[String],
        mut input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
        _t: Duration,
    ) -> Result<ExecOutput, EngineError> {
        drop(self.guard(format!("exec-stdin {name} {}", cmd.join(" ")))?);
        let mut n = 0;
        while let Some(c) = input.recv().await {
            n += c.len();
        }
        Ok(ExecOutput { exit_code: 0, stdout: format!("{n} bytes"), stderr: String::new() })
    }
    async fn run_once(&self, spec: &ServiceSpec, _t: Duration) -> Result<ExecOutput, EngineError> {
        drop(self.guard(format!("run {} {}", spec.name(), spec.command.clone().unwrap_or_default().join(" ")))?);
        Ok(ExecOutput { exit_code: 0, stdout: String::new(), stderr: String::new() })
    }
    async fn logs(&self, name: &str, _tail: usize) -> Result<String, EngineError> {
        drop(self.guard(format!("logs {name}"))?);
        Ok(String::new())
    }
    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        Ok(self.guard(format!("image? {reference}"))?.images.get(reference).cloned())
    }
    async fn image_digest(&self, reference: &str) -> Result<Option<String>, EngineError> {
        Ok(self.guard(format!("digest? {reference}"))?.images.get(reference).map(|_| format!("{reference}@sha256:{}", "0".repeat(64))))
    }
    async fn pull_image(&self, reference: &str, _login: Option<(String, String)>) -> Result<(), EngineError> {
        let mut s = self.guard(format!("pull {reference}"))?;
        s.images.insert(reference.into(), format!("sha256:{}", "1".repeat(64)));
        Ok(())
    }
    async fn build_image(
        &self,
        tag: &str,
        _ctx: Vec<u8>,
        _labels: BTreeMap<String, String>,
        _p: &(dyn for<'x> Fn(&'x str) + Send + Sync),
    ) -> Result<String, EngineError> {
        let mut s = self.guard(format!("build {tag}"))?;
        s.images.insert(tag.into(), format!("sha256:{}", "2".repeat(64)));
        Ok(s.images[tag].clone())
    }
    async fn tag_image(&self, source: &str, tag: &str) -> Result<(), EngineError> {
        let mut s = self.guard(format!("tag {source} {tag}"))?;
        let id = s.images.get(source).cloned().unwrap_or_else(|| source.to_string());
        s.images.insert(tag.into(), id);
        Ok(())
    }
    async fn untag_image(&self, tag: &str) -> Result<(), EngineError> {
        self.guard(format!("untag {tag}"))?.images.remove(tag);
        Ok(())
    }
    async fn import_image(&self, tag: &str, _p: &std::path::Path, _c: Vec<String>) -> Result<String, EngineError> {
        let mut s = self.guard(format!("import {tag}"))?;
        s.images.insert(tag.into(), format!("sha256:{}", "3".repeat(64)));
        Ok(s.images[tag].clone())
    }
}
