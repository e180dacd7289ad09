//! The engine port: what hafen needs from a container engine, at the level of *services*
//! (one service = one container on the Docker backend; a Swarm backend could map it to a Swarm
//! service without touching the reconciler). This crate is the only one in hafen that depends on
//! bollard (`docker`); the core's `policy` is checked on every spec before it reaches the engine;
//! `fake` (feature `fake`, test builds of other crates only) serves unit tests.

rust_i18n::i18n!("../../locales", fallback = "en");

pub mod docker;
#[cfg(any(test, feature = "fake"))]
pub mod fake;

pub use hafen_core::policy;
pub use hafen_core::spec::*;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the engine reports about one hafen-managed service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    pub stack: String,
    pub service: String,
    pub name: String,
    pub id: String,
    pub spec_hash: Option<String>,
    pub running: bool,
    /// Engine's words: running, exited, created, restarting, …
    pub status: String,
    pub restart_count: i64,
    /// The exit code of its last run, when it is not running.
    #[serde(default)]
    pub exit_code: Option<i64>,
    pub ip: Option<String>,
    /// Facts that `docker update` and similar can change behind hafen's back.
    pub observed: Observed,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Observed {
    pub image: String,
    pub memory_bytes: u64,
    pub pids_limit: i64,
    pub privileged: bool,
    pub restart_policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeState {
    pub name: String,
    pub stack: String,
    pub volume: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// Docker's restart policy for hafen's containers: none. hafen restarts crashed services itself,
/// with backoff and a crash-loop limit, in dependency order (see `watch`).
pub const RESTART_POLICY: &str = "no";

/// Something that happened to a managed container, from the engine's event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineEvent {
    /// The engine's word: die, oom, start, stop, kill, destroy, health_status: healthy, …
    pub action: String,
    pub stack: String,
    pub service: String,
    pub name: String,
    /// For `die`: the exit code.
    pub exit_code: Option<i64>,
}

/// The engine's event stream; ends (or yields an error) when the engine goes away.
pub type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<EngineEvent, EngineError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{}", rust_i18n::t!("err.engine_unreachable", endpoint = .endpoint, detail = .detail))]
    Unreachable { endpoint: String, detail: String },
    #[error("{}", rust_i18n::t!("err.engine_foreign", what = .what, name = .name))]
    Foreign { what: &'static str, name: String },
    #[error("{}", rust_i18n::t!("err.engine_policy", name = .name, reasons = .reasons))]
    Policy { name: String, reasons: String },
    #[error("{}", rust_i18n::t!("err.engine_image", image = .image, detail = .detail))]
    ImageUnavailable { image: String, detail: String },
    #[error("{}", rust_i18n::t!("err.engine_build", tag = .tag, detail = .detail))]
    Build { tag: String, detail: String },
    #[error("{}", rust_i18n::t!("err.engine_call", op = .op, name = .name, detail = .detail))]
    Call { op: &'static str, name: String, detail: String },
}

impl EngineError {
    /// The error as code + arguments (`hafen_api::Message`), rendered by each reader's front end.
    pub fn message(&self) -> hafen_api::Message {
        use hafen_api::Message as M;
        match self {
            EngineError::Unreachable { endpoint, detail } => M::new("engine_unreachable").arg("endpoint", endpoint).arg("detail", detail),
            EngineError::Foreign { what, name } => M::new("engine_foreign").arg("what", what).arg("name", name),
            EngineError::Policy { name, reasons } => M::new("engine_policy").arg("name", name).arg("reasons", reasons),
            EngineError::ImageUnavailable { image, detail } => M::new("engine_image").arg("image", image).arg("detail", detail),
            EngineError::Build { tag, detail } => M::new("engine_build").arg("tag", tag).arg("detail", detail),
            EngineError::Call { op, name, detail } => M::new("engine_call").arg("op", op).arg("name", name).arg("detail", detail),
        }
    }
}

/// The port. Implementations must only ever list or change objects carrying `LABEL_MANAGED`.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    async fn ping(&self) -> Result<String, EngineError>;
    /// Events of managed containers from now on.
    async fn events(&self) -> Result<EventStream, EngineError>;
    /// Where the engine keeps images, containers and volumes on the host (Docker's data root).
    async fn data_root(&self) -> Result<Option<std::path::PathBuf>, EngineError>;
    /// Managed services, of one stack or of all.
    async fn list_services(&self, stack: Option<&str>) -> Result<Vec<ServiceState>, EngineError>;
    async fn network_exists(&self, stack: &str) -> Result<bool, EngineError>;
    async fn create_network(&self, stack: &str) -> Result<(), EngineError>;
    async fn remove_network(&self, stack: &str) -> Result<(), EngineError>;
    async fn list_volumes(&self, stack: Option<&str>) -> Result<Vec<VolumeState>, EngineError>;
    async fn create_volume(&self, stack: &str, volume: &str) -> Result<(), EngineError>;
    async fn remove_volume(&self, stack: &str, volume: &str) -> Result<(), EngineError>;
    /// Where a managed volume's files are on the host (for backups), when the engine is local.
    async fn volume_path(&self, stack: &str, volume: &str) -> Result<Option<std::path::PathBuf>, EngineError>;
    /// Creates and starts a service (policy checked first).
    async fn create_service(&self, spec: &ServiceSpec) -> Result<(), EngineError>;
    async fn start_service(&self, name: &str) -> Result<(), EngineError>;
    async fn stop_service(&self, name: &str, grace: Duration) -> Result<(), EngineError>;
    async fn remove_service(&self, name: &str) -> Result<(), EngineError>;
    async fn exec(&self, name: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput, EngineError>;
    /// Runs `cmd` in the service and sends its stdout, chunk by chunk, to `out` (for dumps that
    /// are streamed into a backup without touching the disk). Returns the exit code and stderr.
    async fn exec_stream(
        &self,
        name: &str,
        cmd: &[String],
        out: tokio::sync::mpsc::Sender<bytes::Bytes>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError>;
    /// Runs `cmd` in the service with `input` as its stdin (for restoring dumps).
    async fn exec_stdin(
        &self,
        name: &str,
        cmd: &[String],
        input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError>;
    async fn logs(&self, name: &str, tail: usize) -> Result<String, EngineError>;
    /// Runs `spec` once to its end (a migration: the service's image, mounts and hardening,
    /// no ports, no probe) and removes the container; the exit code and the output.
    async fn run_once(&self, spec: &ServiceSpec, timeout: Duration) -> Result<ExecOutput, EngineError>;
    /// Image id when present locally.
    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError>;
    /// Repo digest (`name@sha256:…`) of a local image, when it came from a registry.
    async fn image_digest(&self, reference: &str) -> Result<Option<String>, EngineError>;
    /// Pulls from a registry; `login` (user, password) for registries that want one (the
    /// engine does the token dance itself).
    async fn pull_image(&self, reference: &str, login: Option<(String, String)>) -> Result<(), EngineError>;
    /// Builds from a tar of the build context; returns the image id. `progress` gets each line.
    async fn build_image(
        &self,
        tag: &str,
        context_tar: Vec<u8>,
        labels: BTreeMap<String, String>,
        progress: &(dyn for<'x> Fn(&'x str) + Send + Sync),
    ) -> Result<String, EngineError>;
    /// `docker import` of a root filesystem tar file; returns the image id.
    async fn import_image(&self, tag: &str, rootfs_tar: &std::path::Path, changes: Vec<String>) -> Result<String, EngineError>;
    /// Gives the image `source` (a reference or id) the tag `tag` too.
    async fn tag_image(&self, source: &str, tag: &str) -> Result<(), EngineError>;
    /// Removes a tag (the image goes when no tag and no container is left); absent is fine.
    async fn untag_image(&self, tag: &str) -> Result<(), EngineError>;
}
