//! The Docker backend of the engine port: the only module that imports bollard. Builds every
//! container's HostConfig from hafen's policy (never from a stack file), and only ever lists,
//! changes or removes objects that carry hafen's labels.

use super::*;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountTypeEnum, NetworkCreateRequest,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateOptions,
};
use bollard::query_parameters as qp;
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;

pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
    secret_root: String,
}

fn managed_filter(stack: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![format!("{LABEL_MANAGED}=true")];
    if let Some(s) = stack {
        labels.push(format!("{LABEL_STACK}={s}"));
    }
    HashMap::from([("label".to_string(), labels)])
}

impl DockerEngine {
    /// Connects to the engine socket (e.g. `/var/run/docker.sock`) and negotiates the API version.
    pub async fn connect(socket: &str, secret_root: &str) -> Result<DockerEngine, EngineError> {
        let unreachable = |e: bollard::errors::Error| EngineError::Unreachable { endpoint: socket.to_string(), detail: e.to_string() };
        let docker = Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION).map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        Ok(DockerEngine { docker, endpoint: socket.to_string(), secret_root: secret_root.to_string() })
    }

    fn err(&self, op: &'static str, name: &str, e: bollard::errors::Error) -> EngineError {
        use bollard::errors::Error as E;
        match e {
            E::HyperResponseError { .. } | E::IOError { .. } | E::RequestTimeoutError | E::SocketNotFoundError(_) => {
                EngineError::Unreachable { endpoint: self.endpoint.clone(), detail: e.to_string() }
            }
            other => EngineError::Call { op, name: name.to_string(), detail: other.to_string() },
        }
    }

    async fn container_labels(&self, name: &str) -> Result<Option<HashMap<String, String>>, EngineError> {
        match self.docker.inspect_container(name, None::<qp::InspectContainerOptions>).await {
            Ok(c) => Ok(Some(c.config.and_then(|c| c.labels).unwrap_or_default())),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.err("inspect", name, e)),
        }
    }

    /// Creates and starts an exec in one of our containers, attached to its output (and stdin).
    async fn start_attached(
        &self,
        name: &str,
        cmd: &[String],
        stdin: bool,
    ) -> Result<(String, bollard::exec::StartExecResults), EngineError> {
        use bollard::exec::CreateExecOptions;
        if !self.ensure_ours(name).await? {
            return Err(EngineError::Call { op: "exec", name: name.into(), detail: "no such container".into() });
        }
        let ex = self
            .docker
            .create_exec(
                name,
                CreateExecOptions {
                    cmd: Some(cmd.to_vec()),
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.err("exec", name, e))?;
        let started = self.docker.start_exec(&ex.id, None).await.map_err(|e| self.err("exec", name, e))?;
        Ok((ex.id, started))
    }

    /// The exit code of a finished exec.
    async fn exec_exit(&self, name: &str, id: &str) -> Result<i64, EngineError> {
        let info = self.docker.inspect_exec(id).await.map_err(|e| self.err("exec", name, e))?;
        Ok(info.exit_code.unwrap_or(-1))
    }

    /// Refuses to act on a container that exists but is not ours.
    async fn ensure_ours(&self, name: &str) -> Result<bool, EngineError> {
        match self.container_labels(name).await? {
            None => Ok(false),
            // Image labels are inherited by containers, so "managed" alone is not proof:
            // a container is ours only with the stack and service labels hafen sets on it.
            Some(l) if is_ours(&l) => Ok(true),
            Some(_) => Err(EngineError::Foreign { what: "container", name: name.to_string() }),
        }
    }
}

/// Build output may carry terminal colour codes; errors and logs get plain text.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c2 in chars.by_ref() {
                if c2.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_ours(labels: &HashMap<String, String>) -> bool {
    labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
        && labels.get(LABEL_STACK).is_some_and(|s| !s.is_empty())
        && labels.get(LABEL_SERVICE).is_some_and(|s| !s.is_empty())
}

fn nanos(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// The create request for a spec. Hardening here is unconditional: the spec cannot turn it off.
pub fn container_body(spec: &ServiceSpec) -> ContainerCreateBody {
    let mounts = spec
        .mounts
        .iter()
        .map(|m| match m {
            MountSpec::Volume { name, target, read_only } => Mount {
                target: Some(target.clone()),
                source: Some(name.clone()),
                typ: Some(MountTypeEnum::VOLUME),
                read_only: Some(*read_only),
                ..Default::default()
            },
            MountSpec::File { source, target } => Mount {
                target: Some(target.clone()),
                source: Some(source.clone()),
                typ: Some(MountTypeEnum::BIND),
                read_only: Some(true),
                ..Default::default()
            },
            MountSpec::Tmpfs { target } => Mount {
                target: Some(target.clone()),
                typ: Some(MountTypeEnum::TMPFS),
                tmpfs_options: Some(bollard::models::MountTmpfsOptions { size_bytes: Some(256 << 20), mode: Some(0o1777), ..Default::default() }),
                ..Default::default()
            },
        })
        .collect();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed: HashMap<String, HashMap<(), ()>> = HashMap::new();
    for p in &spec.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        exposed.insert(key.clone(), HashMap::new());
        bindings.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(PortBinding {
            host_ip: Some(p.host_ip.clone()),
            host_port: Some(p.host_port.to_string()),
        });
    }
    let host_config = HostConfig {
        privileged: Some(false),
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: Some(spec.cap_add.clone()),
        security_opt: Some(vec!["no-new-privileges:true".to_string()]),
        readonly_rootfs: Some(spec.read_only),
        memory: Some(spec.memory_bytes as i64),
        memory_swap: Some(spec.memory_bytes as i64),
        pids_limit: Some(spec.pids_limit),
        network_mode: Some(spec.network()),
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        mounts: Some(mounts),
        port_bindings: Some(bindings),
        devices: Some(Vec::new()),
        init: Some(true),
        log_config: Some(bollard::models::HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([("max-size".to_string(), "10m".to_string()), ("max-file".to_string(), "3".to_string())])),
        }),
        ..Default::default()
    };
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let labels: HashMap<String, String> = spec_labels(spec).into_iter().collect();
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(env),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        labels: Some(labels),
        exposed_ports: Some(exposed),
        hostname: Some(spec.service.clone()),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(nanos(h.interval)),
            timeout: Some(nanos(h.timeout)),
            start_period: Some(nanos(h.start_period)),
            retries: Some(h.retries as i64),
            ..Default::default()
        }),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                spec.network(),
                EndpointSettings { aliases: Some(vec![spec.service.clone()]), ..Default::default() },
            )])),
        }),
        ..Default::default()
    }
}

#[async_trait]
impl Engine for DockerEngine {
    async fn ping(&self) -> Result<String, EngineError> {
        let v = self.docker.version().await.map_err(|e| self.err("version", "engine", e))?;
        Ok(format!("Docker {} (API {})", v.version.unwrap_or_default(), v.api_version.unwrap_or_default()))
    }

    async fn events(&self) -> Result<EventStream, EngineError> {
        // Ask once first, so an absent engine is an error here and not an empty stream.
        self.docker.ping().await.map_err(|e| self.err("events", "engine", e))?;
        let mut filters = managed_filter(None);
        filters.insert("type".into(), vec!["container".into()]);
        let opts = qp::EventsOptions { filters: Some(filters), ..Default::default() };
        let endpoint = self.endpoint.clone();
        let stream = self.docker.events(Some(opts)).filter_map(move |r| {
            let endpoint = endpoint.clone();
            async move {
                match r {
                    Err(e) => Some(Err(EngineError::Unreachable { endpoint, detail: e.to_string() })),
                    Ok(m) => {
                        let action = m.action?;
                        let attrs = m.actor.and_then(|a| a.attributes).unwrap_or_default();
                        Some(Ok(EngineEvent {
                            action,
                            stack: attrs.get(LABEL_STACK)?.clone(),
                            service: attrs.get(LABEL_SERVICE)?.clone(),
                            name: attrs.get("name").cloned().unwrap_or_default(),
                            exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                        }))
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn data_root(&self) -> Result<Option<std::path::PathBuf>, EngineError> {
        let info = self.docker.info().await.map_err(|e| self.err("info", "engine", e))?;
        Ok(info.docker_root_dir.map(std::path::PathBuf::from))
    }

    async fn list_services(&self, stack: Option<&str>) -> Result<Vec<ServiceState>, EngineError> {
        let opts = qp::ListContainersOptions { all: true, filters: Some(managed_filter(stack)), ..Default::default() };
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| self.err("list", "containers", e))?;
        let mut out = Vec::new();
        for c in list {
            let Some(id) = c.id.clone() else { continue };
            let info = match self.docker.inspect_container(&id, None::<qp::InspectContainerOptions>).await {
                Ok(i) => i,
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => continue,
                Err(e) => return Err(self.err("inspect", &id, e)),
            };
            let labels = info.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
            if !is_ours(&labels) {
                continue;
            }
            let state = info.state.clone().unwrap_or_default();
            let hc = info.host_config.clone().unwrap_or_default();
            let stack_l = labels.get(LABEL_STACK).cloned().unwrap_or_default();
            let ip = info
                .network_settings
                .as_ref()
                .and_then(|n| n.networks.as_ref())
                .and_then(|n| n.get(&network_name(&stack_l)))
                .and_then(|e| e.ip_address.clone())
                .filter(|s| !s.is_empty());
            out.push(ServiceState {
                service: labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                stack: stack_l,
                name: info.name.clone().unwrap_or_default().trim_start_matches('/').to_string(),
                id,
                spec_hash: labels.get(LABEL_SPEC_HASH).cloned(),
                running: state.running.unwrap_or(false),
                status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                restart_count: info.restart_count.unwrap_or(0),
                // The last run's code while it is not running (also while it restarts).
                exit_code: state.exit_code.filter(|_| state.status.is_some_and(|s| s.to_string() != "running")),
                ip,
                observed: Observed {
                    image: info.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default(),
                    memory_bytes: hc.memory.unwrap_or(0).max(0) as u64,
                    pids_limit: hc.pids_limit.unwrap_or(0),
                    privileged: hc.privileged.unwrap_or(false),
                    restart_policy: hc.restart_policy.and_then(|r| r.name).map(|n| n.to_string()).unwrap_or_default(),
                },
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn network_exists(&self, stack: &str) -> Result<bool, EngineError> {
        let name = network_name(stack);
        match self.docker.inspect_network(&name, None::<qp::InspectNetworkOptions>).await {
            Ok(n) => {
                if n.labels.unwrap_or_default().get(LABEL_MANAGED).map(String::as_str) != Some("true") {
                    return Err(EngineError::Foreign { what: "network", name });
                }
                Ok(true)
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(self.err("inspect", &name, e)),
        }
    }

    async fn create_network(&self, stack: &str) -> Result<(), EngineError> {
        let name = network_name(stack);
        let req = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([
                (LABEL_MANAGED.to_string(), "true".to_string()),
                (LABEL_STACK.to_string(), stack.to_string()),
            ])),
            ..Default::default()
        };
        self.docker.create_network(req).await.map_err(|e| self.err("create network", &name, e))?;
        Ok(())
    }

    async fn remove_network(&self, stack: &str) -> Result<(), EngineError> {
        if !self.network_exists(stack).await? {
            return Ok(());
        }
        let name = network_name(stack);
        self.docker.remove_network(&name).await.map_err(|e| self.err("remove network", &name, e))
    }

    async fn list_volumes(&self, stack: Option<&str>) -> Result<Vec<VolumeState>, EngineError> {
        let opts = qp::ListVolumesOptions { filters: Some(managed_filter(stack)) };
        let r = self.docker.list_volumes(Some(opts)).await.map_err(|e| self.err("list", "volumes", e))?;
        let mut out: Vec<VolumeState> = r
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeState {
                stack: v.labels.get(LABEL_STACK).cloned().unwrap_or_default(),
                volume: v.labels.get(LABEL_VOLUME).cloned().unwrap_or_default(),
                name: v.name,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn create_volume(&self, stack: &str, volume: &str) -> Result<(), EngineError> {
        let name = volume_name(stack, volume);
        if let Ok(v) = self.docker.inspect_volume(&name).await {
            if v.labels.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
                return Err(EngineError::Foreign { what: "volume", name });
            }
            return Ok(());
        }
        let req = VolumeCreateOptions {
            name: Some(name.clone()),
            labels: Some(HashMap::from([
                (LABEL_MANAGED.to_string(), "true".to_string()),
                (LABEL_STACK.to_string(), stack.to_string()),
                (LABEL_VOLUME.to_string(), volume.to_string()),
            ])),
            ..Default::default()
        };
        self.docker.create_volume(req).await.map_err(|e| self.err("create volume", &name, e))?;
        Ok(())
    }

    async fn remove_volume(&self, stack: &str, volume: &str) -> Result<(), EngineError> {
        let name = volume_name(stack, volume);
        match self.docker.inspect_volume(&name).await {
            Ok(v) if v.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true") => {}
            Ok(_) => return Err(EngineError::Foreign { what: "volume", name }),
            Err(_) => return Ok(()),
        }
        self.docker.remove_volume(&name, None::<qp::RemoveVolumeOptions>).await.map_err(|e| self.err("remove volume", &name, e))
    }

    async fn volume_path(&self, stack: &str, volume: &str) -> Result<Option<std::path::PathBuf>, EngineError> {
        let name = volume_name(stack, volume);
        match self.docker.inspect_volume(&name).await {
            Ok(v) if v.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true") => Ok(Some(v.mountpoint.into())),
            Ok(_) => Err(EngineError::Foreign { what: "volume", name }),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.err("inspect volume", &name, e)),
        }
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<(), EngineError> {
        let name = spec.name();
        policy::check(spec, &self.secret_root).map_err(|r| EngineError::Policy { name: name.clone(), reasons: r.join("; ") })?;
        if self.ensure_ours(&name).await? {
            return Err(EngineError::Call { op: "create", name, detail: "a container of that name already exists; remove it first".into() });
        }
        let opts = qp::CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        self.docker.create_container(Some(opts), container_body(spec)).await.map_err(|e| self.err("create", &name, e))?;
        self.docker.start_container(&name, None::<qp::StartContainerOptions>).await.map_err(|e| self.err("start", &name, e))
    }

    async fn start_service(&self, name: &str) -> Result<(), EngineError> {
        if !self.ensure_ours(name).await? {
            return Err(EngineError::Call { op: "start", name: name.into(), detail: "no such container".into() });
        }
        match self.docker.start_container(name, None::<qp::StartContainerOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(self.err("start", name, e)),
        }
    }

    async fn stop_service(&self, name: &str, grace: Duration) -> Result<(), EngineError> {
        if !self.ensure_ours(name).await? {
            return Ok(());
        }
        let opts = qp::StopContainerOptions { t: Some(grace.as_secs() as i32), signal: None };
        match self.docker.stop_container(name, Some(opts)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(self.err("stop", name, e)),
        }
    }

    async fn remove_service(&self, name: &str) -> Result<(), EngineError> {
        if !self.ensure_ours(name).await? {
            return Ok(());
        }
        let opts = qp::RemoveContainerOptions { force: true, v: false, link: false };
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.err("remove", name, e)),
        }
    }

    async fn exec(&self, name: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput, EngineError> {
        use bollard::exec::StartExecResults;
        let run = async {
            let (id, started) = self.start_attached(name, cmd, false).await?;
            let mut stdout = String::new();
            let mut stderr = String::new();
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(|e| self.err("exec", name, e))? {
                        bollard::container::LogOutput::StdErr { message } => stderr.push_str(&String::from_utf8_lossy(&message)),
                        other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                    }
                }
            }
            Ok(ExecOutput { exit_code: self.exec_exit(name, &id).await?, stdout, stderr })
        };
        tokio::time::timeout(timeout, run).await.map_err(|_| EngineError::Call {
            op: "exec",
            name: name.into(),
            detail: format!("`{}` did not finish within {}s", cmd.join(" "), timeout.as_secs()),
        })?
    }

    async fn exec_stream(
        &self,
        name: &str,
        cmd: &[String],
        out: tokio::sync::mpsc::Sender<bytes::Bytes>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        use bollard::exec::StartExecResults;
        let run = async {
            let (id, started) = self.start_attached(name, cmd, false).await?;
            let mut stderr = String::new();
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(|e| self.err("exec", name, e))? {
                        bollard::container::LogOutput::StdOut { message } => {
                            if out.send(message).await.is_err() {
                                return Err(EngineError::Call { op: "exec", name: name.into(), detail: "the receiver of the output went away".into() });
                            }
                        }
                        bollard::container::LogOutput::StdErr { message } => {
                            if stderr.len() < 64 * 1024 {
                                stderr.push_str(&String::from_utf8_lossy(&message));
                            }
                        }
                        _ => {}
                    }
                }
            }
            Ok(ExecOutput { exit_code: self.exec_exit(name, &id).await?, stdout: String::new(), stderr })
        };
        tokio::time::timeout(timeout, run).await.map_err(|_| EngineError::Call {
            op: "exec",
            name: name.into(),
            detail: format!("`{}` did not finish within {}s", cmd.join(" "), timeout.as_secs()),
        })?
    }

    async fn exec_stdin(
        &self,
        name: &str,
        cmd: &[String],
        mut input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        use bollard::exec::StartExecResults;
        use tokio::io::AsyncWriteExt;
        let run = async {
            let (id, started) = self.start_attached(name, cmd, true).await?;
            let mut stdout = String::new();
            let mut stderr = String::new();
            if let StartExecResults::Attached { mut output, input: mut stdin } = started {
                let write = async {
                    while let Some(chunk) = input.recv().await {
                        if stdin.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                    let _ = stdin.shutdown().await;
                };
                let read = async {
                    while let Some(chunk) = output.next().await {
                        match chunk {
                            Ok(bollard::container::LogOutput::StdErr { message }) if stderr.len() < 64 * 1024 => stderr.push_str(&String::from_utf8_lossy(&message)),
                            Ok(bollard::container::LogOutput::StdOut { message }) if stdout.len() < 64 * 1024 => stdout.push_str(&String::from_utf8_lossy(&message)),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                };
                tokio::join!(write, read);
            }
            Ok(ExecOutput { exit_code: self.exec_exit(name, &id).await?, stdout, stderr })
        };
        tokio::time::timeout(timeout, run).await.map_err(|_| EngineError::Call {
            op: "exec",
            name: name.into(),
            detail: format!("`{}` did not finish within {}s", cmd.join(" "), timeout.as_secs()),
        })?
    }

    async fn run_once(&self, spec: &ServiceSpec, timeout: Duration) -> Result<ExecOutput, EngineError> {
        let mut spec = spec.clone();
        spec.ports.clear();
        spec.healthcheck = None;
        let name = spec.name();
        policy::check(&spec, &self.secret_root).map_err(|r| EngineError::Policy { name: name.clone(), reasons: r.join("; ") })?;
        // A run left over from a killed daemon goes first.
        self.remove_service(&name).await?;
        let opts = qp::CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        self.docker.create_container(Some(opts), container_body(&spec)).await.map_err(|e| self.err("create", &name, e))?;
        let run = async {
            self.docker.start_container(&name, None::<qp::StartContainerOptions>).await.map_err(|e| self.err("start", &name, e))?;
            let mut w = self.docker.wait_container(&name, None::<qp::WaitContainerOptions>);
            let mut code = -1;
            while let Some(r) = w.next().await {
                match r {
                    Ok(x) => code = x.status_code,
                    // bollard reports a non-zero exit as an error carrying the code.
                    Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                    Err(e) => return Err(self.err("wait", &name, e)),
                }
            }
            Ok(code)
        };
        let code = tokio::time::timeout(timeout, run).await;
        let mut stdout = String::new();
        let mut stderr = String::new();
        let opts = qp::LogsOptions { stdout: true, stderr: true, tail: "400".into(), ..Default::default() };
        let mut s = self.docker.logs(&name, Some(opts));
        while let Some(Ok(chunk)) = s.next().await {
            match chunk {
                bollard::container::LogOutput::StdErr { message } => stderr.push_str(&String::from_utf8_lossy(&message)),
                other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
            }
        }
        self.remove_service(&name).await?;
        let exit_code = match code {
            Ok(c) => c?,
            Err(_) => {
                return Err(EngineError::Call { op: "run", name, detail: format!("did not finish within {}s; stopped and removed", timeout.as_secs()) });
            }
        };
        Ok(ExecOutput { exit_code, stdout, stderr })
    }

    async fn logs(&self, name: &str, tail: usize) -> Result<String, EngineError> {
        if !self.ensure_ours(name).await? {
            return Err(EngineError::Call { op: "logs", name: name.into(), detail: "no such container".into() });
        }
        let opts = qp::LogsOptions { stdout: true, stderr: true, tail: tail.to_string(), ..Default::default() };
        let mut s = self.docker.logs(name, Some(opts));
        let mut out = String::new();
        while let Some(chunk) = s.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.map_err(|e| self.err("logs", name, e))?.into_bytes()));
        }
        Ok(out)
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => Ok(i.id),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.err("inspect image", reference, e)),
        }
    }

    async fn image_digest(&self, reference: &str) -> Result<Option<String>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => {
                // One image can be in several repositories: the digest of the one asked for.
                let repo = reference.split('@').next().unwrap_or(reference);
                let repo = match repo.rsplit_once(':') {
                    Some((r, tag)) if !tag.contains('/') => r,
                    _ => repo,
                };
                let all = i.repo_digests.unwrap_or_default();
                Ok(all.iter().find(|d| d.split('@').next() == Some(repo)).or(all.first()).cloned())
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.err("inspect image", reference, e)),
        }
    }

    async fn pull_image(&self, reference: &str, login: Option<(String, String)>) -> Result<(), EngineError> {
        let opts = qp::CreateImageOptions { from_image: Some(reference.to_string()), ..Default::default() };
        let creds = login.map(|(u, p)| bollard::auth::DockerCredentials {
            username: Some(u),
            password: Some(p),
            serveraddress: hafen_core::image_ref::ImageRef::parse(reference).map(|r| r.host),
            ..Default::default()
        });
        let mut s = self.docker.create_image(Some(opts), None, creds);
        while let Some(r) = s.next().await {
            if let Err(e) = r {
                return Err(EngineError::ImageUnavailable {
                    image: reference.into(),
                    detail: format!("{e}. Is the registry reachable? On an offline box, load the image with `docker load` first"),
                });
            }
        }
        Ok(())
    }

    async fn build_image(
        &self,
        tag: &str,
        context_tar: Vec<u8>,
        labels: BTreeMap<String, String>,
        progress: &(dyn for<'x> Fn(&'x str) + Send + Sync),
    ) -> Result<String, EngineError> {
        let opts = qp::BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            labels: Some(labels.into_iter().collect()),
            ..Default::default()
        };
        let mut s = self.docker.build_image(opts, None, Some(bollard::body_full(context_tar.into())));
        let mut tail: Vec<String> = Vec::new();
        while let Some(r) = s.next().await {
            match r {
                Ok(info) => {
                    let line = strip_ansi(&info.stream.clone().unwrap_or_default());
                    let line = line.trim_end();
                    if !line.is_empty() {
                        progress(line);
                        tail.push(line.to_string());
                        if tail.len() > 15 {
                            tail.remove(0);
                        }
                    }
                    if let Some(err) = info.error_detail.and_then(|d| d.message).or(info.error).map(|e| strip_ansi(&e)) {
                        return Err(EngineError::Build { tag: tag.into(), detail: format!("{err}\n{}", tail.join("\n")) });
                    }
                }
                Err(e) => return Err(EngineError::Build { tag: tag.into(), detail: format!("{e}\n{}", tail.join("\n")) }),
            }
        }
        self.image_id(tag).await?.ok_or_else(|| EngineError::Build { tag: tag.into(), detail: "the engine reported success but the image is missing".into() })
    }

    async fn import_image(&self, tag: &str, rootfs_tar: &std::path::Path, changes: Vec<String>) -> Result<String, EngineError> {
        let (repo, t) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let file = tokio::fs::File::open(rootfs_tar)
            .await
            .map_err(|e| EngineError::Build { tag: tag.into(), detail: format!("cannot open {}: {e}", rootfs_tar.display()) })?;
        let stream = tokio_util::io::ReaderStream::new(file);
        let opts = qp::CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(t.into()),
            changes,
            ..Default::default()
        };
        let body = bollard::body_try_stream(stream);
        let mut s = self.docker.create_image(Some(opts), Some(body), None);
        while let Some(r) = s.next().await {
            r.map_err(|e| EngineError::Build { tag: tag.into(), detail: format!("import failed: {e}") })?;
        }
        self.image_id(tag).await?.ok_or_else(|| EngineError::Build { tag: tag.into(), detail: "import reported success but the image is missing".into() })
    }

    async fn tag_image(&self, source: &str, tag: &str) -> Result<(), EngineError> {
        let (repo, t) = tag.rsplit_once(':').filter(|(_, t)| !t.contains('/')).unwrap_or((tag, "latest"));
        let opts = qp::TagImageOptions { repo: Some(repo.into()), tag: Some(t.into()) };
        self.docker.tag_image(source, Some(opts)).await.map_err(|e| self.err("tag image", source, e))
    }

    async fn untag_image(&self, tag: &str) -> Result<(), EngineError> {
        let opts = qp::RemoveImageOptions { force: false, noprune: false };
        match self.docker.remove_image(tag, Some(opts), None).await {
            Ok(_) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            // Still used by a container: the tag is gone, the image stays (409 means nothing was done).
            Err(e) => Err(self.err("remove image", tag, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafen_core::catalogue::load::parse_stack;
    use hafen_core::catalogue::model::CAP_ALLOW_LIST;
    use hafen_core::catalogue::render::{render, resolve_settings};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const RUN: &str = "/var/lib/hafen/run";

    /// Values a hostile or careless stack author might write for each field.
    fn field() -> impl Strategy<Value = (String, Value)> {
        prop_oneof![
            Just(("privileged".to_string(), json!(true))),
            Just(("network_mode".to_string(), json!("host"))),
            Just(("pid".to_string(), json!("host"))),
            Just(("ipc".to_string(), json!("host"))),
            Just(("userns_mode".to_string(), json!("host"))),
            Just(("devices".to_string(), json!(["/dev/kvm:/dev/kvm"]))),
            Just(("security_opt".to_string(), json!(["seccomp=unconfined", "apparmor=unconfined"]))),
            Just(("sysctls".to_string(), json!({"net.ipv4.ip_forward": 1}))),
            prop::sample::select(vec!["SYS_ADMIN", "NET_ADMIN", "CHOWN", "SETUID", "ALL", "CAP_SYS_PTRACE", "NET_BIND_SERVICE"])
                .prop_map(|c| ("cap_add".to_string(), json!([c]))),
            prop::sample::select(vec!["/var/run/docker.sock:/var/run/docker.sock", "/:/host", "data:/data", "./x:/x", "data:/data:ro", "~/.ssh:/root/.ssh"])
                .prop_map(|v| ("volumes".to_string(), json!([v]))),
            prop::sample::select(vec!["0", "root", "1000:1000", "0:0", "999"]).prop_map(|u| ("user".to_string(), json!(u))),
            prop::sample::select(vec!["8080:80", "0.0.0.0:8080:80", "127.0.0.1:${port}:80", "80", "::1:8080:80"])
                .prop_map(|p| ("ports".to_string(), json!([p]))),
            prop::sample::select(vec!["16m", "1g", "0", "-5", "512m"]).prop_map(|m| ("mem_limit".to_string(), json!(m))),
            (0i64..100_000).prop_map(|n| ("pids_limit".to_string(), json!(n))),
            Just(("secrets".to_string(), json!(["pw"]))),
            Just(("secrets".to_string(), json!([{"source": "pw", "target": "/var/run/docker.sock"}]))),
            Just(("tmpfs".to_string(), json!(["/tmp"]))),
            Just(("read_only".to_string(), json!(true))),
            Just(("environment".to_string(), json!({"A": "${port}", "B_PASSWORD_FILE": "/run/secrets/pw"}))),
        ]
    }

    fn stack_text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::collection::vec(field(), 0..8), 1..4).prop_map(|services| {
            let mut svcs = serde_json::Map::new();
            for (i, fields) in services.into_iter().enumerate() {
                let mut m = serde_json::Map::new();
                m.insert("image".into(), json!("registry.example/app:1"));
                for (k, v) in fields {
                    m.insert(k, v);
                }
                svcs.insert(format!("s{i}"), Value::Object(m));
            }
            let doc = json!({
                "version": 1,
                "id": "prop",
                "settings": {"port": {"type": "port", "default": 8080}},
                "secrets": {"pw": {"length": 20}},
                "volumes": {"data": {"kind": "data"}},
                "services": svcs,
            });
            serde_norway::to_string(&doc).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// No accepted definition yields a forbidden container setting.
        #[test]
        fn no_accepted_definition_yields_a_forbidden_setting(src in stack_text()) {
            let Ok(stack) = parse_stack("prop/stack.yaml", &src, Some("prop")) else { return Ok(()) };
            let settings = resolve_settings(&stack, &Default::default()).unwrap();
            let images = stack.services.keys().map(|k| (k.clone(), "registry.example/app:1".to_string())).collect();
            let specs = render(&stack, &settings, &images, std::path::Path::new(RUN)).unwrap();
            for spec in &specs {
                prop_assert!(hafen_core::policy::check(spec, RUN).is_ok(), "{:?}", hafen_core::policy::check(spec, RUN));
                let body = container_body(spec);
                let hc = body.host_config.unwrap();
                prop_assert_eq!(hc.privileged, Some(false));
                prop_assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
                for c in hc.cap_add.unwrap_or_default() {
                    prop_assert!(CAP_ALLOW_LIST.contains(&c.as_str()), "cap {}", c);
                }
                prop_assert_eq!(hc.security_opt, Some(vec!["no-new-privileges:true".to_string()]));
                prop_assert_eq!(hc.network_mode.as_deref(), Some("hafen-prop"));
                prop_assert!(hc.pid_mode.is_none() && hc.ipc_mode.is_none() && hc.userns_mode.is_none() && hc.uts_mode.is_none());
                prop_assert!(hc.devices.unwrap_or_default().is_empty());
                prop_assert!(hc.binds.is_none());
                prop_assert!(hc.memory.unwrap_or(0) >= 16 << 20);
                prop_assert!(hc.pids_limit.unwrap_or(0) > 0);
                for m in hc.mounts.unwrap_or_default() {
                    if m.typ == Some(MountTypeEnum::BIND) {
                        let src = m.source.unwrap_or_default();
                        prop_assert!(src.starts_with(&format!("{RUN}/")), "bind {}", src);
                        prop_assert_eq!(m.read_only, Some(true));
                        prop_assert!(!m.target.unwrap_or_default().contains("docker.sock"));
                    }
                }
                for (_, b) in hc.port_bindings.unwrap_or_default() {
                    for pb in b.unwrap_or_default() {
                        prop_assert!(!pb.host_ip.unwrap_or_default().is_empty());
                    }
                }
                let user = body.user.unwrap_or_default();
                prop_assert!(user != "0" && user != "root" && !user.starts_with("0:"));
            }
        }
    }

    #[test]
    fn build_output_loses_colour_codes() {
        assert_eq!(strip_ansi("\u{1b}[91m/bin/sh: denied\u{1b}[0m\n"), "/bin/sh: denied\n");
    }

    #[test]
    fn policy_rejects_a_hand_made_spec_at_the_boundary() {
        let src = "version: 1\nid: p\nsecrets: {pw: {}}\nservices:\n  a:\n    image: 'a:1'\n    secrets: [pw]\n";
        let stack = parse_stack("p/stack.yaml", src, Some("p")).unwrap();
        let images = BTreeMap::from([("a".to_string(), "a:1".to_string())]);
        let mut spec = render(&stack, &BTreeMap::new(), &images, std::path::Path::new(RUN)).unwrap().remove(0);
        spec.mounts.push(MountSpec::File { source: "/var/run/docker.sock".into(), target: "/var/run/docker.sock".into() });
        spec.cap_add.push("SYS_ADMIN".into());
        let why = hafen_core::policy::check(&spec, RUN).unwrap_err();
        assert_eq!(why.len(), 3, "{why:?}");
    }
}
