//! hafen's API contract: every request and response type of the daemon's API, shared by its
//! front ends (the CLI, the console to come); the neutral service spec and the plan they show
//! (`spec`, `plan`); errors as a stable code with arguments (`error`); who asks (`actor`).
//! Depends on serde, serde_json and chrono only: no runtime, no engine, no store, no prose in a
//! language (front ends choose the language of every message).

pub mod actor;
pub mod error;
pub mod plan;
pub mod spec;

pub use actor::Actor;
pub use error::{ApiError, Message};
pub use plan::{Action, Applied, Plan};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const API_PREFIX: &str = "/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthResponse {
    pub ok: bool,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineView {
    pub reachable: bool,
    pub detail: String,
    pub since: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusResponse {
    pub version: String,
    pub config_source: String,
    pub state_dir: String,
    pub stacks_dir: String,
    pub engine: EngineView,
    pub stacks: Vec<StackSummary>,
    /// Stacks the engine runs with hafen's labels that the state store does not know.
    pub unmanaged: Vec<String>,
    pub last_reconcile: Option<String>,
    pub last_reconcile_error: Option<String>,
    pub catalogue_issues: Vec<Issue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: String,
    pub container: Option<String>,
    pub status: String,
    pub running: bool,
    pub health: String,
    pub health_detail: Option<String>,
    pub image: String,
    pub ports: Vec<String>,
    pub restarts: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackSummary {
    pub id: String,
    pub name: String,
    pub sphere: Option<String>,
    /// In the state store and enabled.
    pub enabled: bool,
    /// healthy, starting, unhealthy, stopped, not deployed
    pub state: String,
    /// The health state machine's word (starting, healthy, degraded, unhealthy, failed), once
    /// the daemon has judged the deployed stack.
    #[serde(default)]
    pub health: Option<String>,
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackDetail {
    pub summary: StackSummary,
    pub description: String,
    pub definition: String,
    pub settings: BTreeMap<String, String>,
    pub volumes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployRequest {
    /// Settings to change; others keep their stored value or default.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployResponse {
    pub stack: String,
    pub dry_run: bool,
    /// Images that were (or, in a dry run, would be) built or pulled.
    pub images: Vec<String>,
    pub plan: Plan,
    pub applied: Vec<Applied>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoveRequest {
    #[serde(default)]
    pub purge: bool,
    /// Must equal the stack id when `purge` is set.
    #[serde(default)]
    pub confirm: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveResponse {
    pub stack: String,
    pub dry_run: bool,
    pub purge: bool,
    pub plan: Plan,
    pub applied: Vec<Applied>,
    pub kept_volumes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsResponse {
    pub stack: String,
    pub logs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupRunRequest {
    /// The stack; empty with `host`.
    #[serde(default)]
    pub stack: String,
    #[serde(default)]
    pub target: Option<String>,
    /// Back up hafen's own state (config, state store, keys, secrets, definitions).
    #[serde(default)]
    pub host: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupCheckRequest {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub read_data: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupCheckResponse {
    pub target: String,
    pub read_data: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupExportRequest {
    pub stack: String,
    /// Snapshot id (or prefix); default: the newest of the stack.
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// Absolute path of the file to write; must not exist.
    pub out: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupPruneRequest {
    #[serde(default)]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupPruneResponse {
    pub target: String,
    pub kept: Vec<String>,
    pub forgotten: Vec<String>,
    /// Why nothing was removed (e.g. the clock looks wrong), if so.
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreRequest {
    pub stack: String,
    /// Snapshot id (or prefix); default: the newest of the stack.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Or the newest snapshot taken at or before this time (RFC 3339, or `YYYY-MM-DD[ HH:MM]`
    /// in UTC).
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
}

/// `hafen update apply` (`to`: a version, default the newest allowed) and `hafen update pin`
/// (`to`: the version; none unpins).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateRequest {
    #[serde(default)]
    pub to: Option<String>,
}

/// `hafen audit verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditVerifyResponse {
    pub ok: bool,
    pub records: usize,
    /// The first record that does not check out.
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
}

/// One channel's answer to `hafen notify test`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyTestResult {
    pub channel: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// One validation problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub file: String,
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file, l, self.path, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.path, self.message),
        }
    }
}


/// An open alert: a problem that was notified and is not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub key: String,
    pub code: String,
    pub severity: String,
    pub stack: Option<String>,
    pub args: BTreeMap<String, String>,
    pub since: String,
    pub last_notified: String,
    pub tried: Vec<Message>,
}


/// What `hafen worker list` shows of one named worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    /// How often it runs, in words (`every 5s`, `on engine events`, `cron 0 0 2 * * *`).
    pub every: String,
    /// `ok`, `warning`, `critical`, `error` or `starting`.
    pub state: String,
    pub last_run: Option<String>,
    pub detail: String,
}


#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: i64,
    pub ts: String,
    pub kind: String,
    pub stack: Option<String>,
    pub actor: String,
    pub message: String,
    pub detail: serde_json::Value,
}
