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
    /// The image the service is pinned to, by name and tag (its version), and its digest where
    /// a registry gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
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
    /// The stack's file differs from the definition it was deployed with: the change waits
    /// for `hafen stack deploy` (or an update), and drift repair keeps the recorded one.
    #[serde(default)]
    pub pending_change: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackDetail {
    pub summary: StackSummary,
    /// The stack's description in English (or the only one it has).
    pub description: String,
    /// The description by language, when the stack file gives it per language.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub descriptions: BTreeMap<String, String>,
    pub definition: String,
    pub settings: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    /// What `hafen stack deploy` would do to apply the changed file (`summary.pending_change`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_plan: Option<plan::Plan>,
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
    /// The findings in English, one line each.
    pub problems: Vec<String>,
    /// The same findings as catalogue keys (`check.…`), for the reader's language.
    #[serde(default)]
    pub findings: Vec<Message>,
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
    /// Why, in the daemon's words.
    pub reason: Option<String>,
    /// Why, as a catalogue key (`audit.…`) with arguments, for the reader's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<Message>,
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
    /// `every` as a code with arguments, when the daemon has one: front ends render it in their
    /// reader's language (`every` is its English line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_text: Option<Message>,
    /// `detail` as a code with arguments, when the daemon has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_text: Option<Message>,
    /// `detail` as several lines with codes (one per disk, stack, …), joined with `; ` by front
    /// ends; empty when `detail_text` or `detail` says it all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detail_lines: Vec<Message>,
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

// Reports and records the daemon returns (backups, restores, updates, the audit log, keys).

/// A snapshot as hafen shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapInfo {
    pub id: String,
    pub time: String,
    /// Seconds since the epoch.
    pub unix_time: i64,
    /// The nanoseconds within that second: two snapshots of one second still have an order.
    #[serde(default)]
    pub nanos: u32,
    pub label: String,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
    pub description: String,
    pub files: u64,
    pub bytes: u64,
    pub added: u64,
}

/// What a repository repair found and did (`hafen backup repair`, `hafen restore --repair`).
/// Planned first: with `applied` false nothing was changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepairReport {
    pub location: String,
    pub applied: bool,
    /// Pack files read and checked, and their bytes.
    pub packs_read: u64,
    pub bytes_read: u64,
    /// Index files that cannot be read: removed; their intact packs are indexed again.
    pub damaged_index_files: Vec<String>,
    /// Packs whose content fails its check, or that the index names but the target lacks.
    pub damaged_packs: Vec<PackDamage>,
    /// Intact packs no readable index file names (their headers are read): indexed again.
    pub unindexed_packs: Vec<String>,
    /// Snapshot files that cannot be read: removed.
    pub damaged_snapshot_files: Vec<String>,
    /// Snapshots whose top directory is lost: forgotten.
    pub snapshots_lost: Vec<SnapInfo>,
    /// Snapshots with files or directories whose data is lost: kept; they become whole again
    /// when a new backup stores the same data (or stay incomplete, named by the check).
    pub snapshots_incomplete: Vec<IncompleteSnapshot>,
}

impl RepairReport {
    /// Nothing damaged, nothing to do.
    pub fn is_clean(&self) -> bool {
        self.damaged_index_files.is_empty()
            && self.damaged_packs.is_empty()
            && self.unindexed_packs.is_empty()
            && self.damaged_snapshot_files.is_empty()
            && self.snapshots_lost.is_empty()
            && self.snapshots_incomplete.is_empty()
    }
}

/// One damaged or missing pack: how many of its blobs were saved into a new pack.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PackDamage {
    pub id: String,
    /// The target has no such file.
    pub missing: bool,
    pub blobs: u64,
    pub salvaged: u64,
    /// Blobs neither saved nor stored elsewhere in the repository.
    pub lost: u64,
}

/// A snapshot that needs lost data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncompleteSnapshot {
    pub snapshot: SnapInfo,
    /// How many files and directories are incomplete, and the first few of their paths.
    pub count: u64,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupRepairRequest {
    #[serde(default)]
    pub target: Option<String>,
    /// Change the repository; without it, only the plan.
    #[serde(default)]
    pub apply: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportReport {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub snapshot: SnapInfo,
    /// Recipients the file is encrypted to.
    pub recipients: Vec<String>,
    /// Entries left out (devices, FIFOs, sockets).
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePin {
    pub stack: String,
    pub service: String,
    pub reference: String,
    pub image_id: String,
    pub digest: Option<String>,
    pub pinned_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRecord {
    pub id: i64,
    pub stack: String,
    pub from_version: String,
    pub to_version: String,
    pub step: String,
    /// `running` (steps forward), `rolling_back`, or ended: `committed`, `rolled_back`,
    /// `aborted` (stopped before anything changed), `failed` (the rollback failed too: the
    /// admin must act).
    pub state: String,
    /// The pre-update snapshot (set once the backup succeeded).
    pub snapshot: Option<String>,
    /// The backup target the snapshot is in.
    pub target: String,
    /// The image pins before the update (service → pin).
    pub old_pins: BTreeMap<String, ImagePin>,
    /// The images the update moves to (service → reference by tag).
    pub new_refs: BTreeMap<String, String>,
    pub error: Option<String>,
    pub actor: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Seconds from stopping the old version to the probes passing (new or, after a
    /// rollback, old).
    pub downtime: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    /// UTC, RFC 3339 with milliseconds.
    pub ts: String,
    /// `api:uid=0` (a person at the CLI or console), `scheduler`, `reconciler`, `hafen`, …
    pub actor: String,
    /// The event kind, e.g. `service_restarted`.
    pub action: String,
    /// The stack, backup target or `host`.
    pub target: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The event with all its fields (JSON text).
    pub detail: String,
    pub prev: String,
    pub hash: String,
}

/// What happened in a run, step by step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    pub stack: String,
    pub target: String,
    pub snapshot: Option<SnapInfo>,
    pub steps: Vec<RunStep>,
    pub quiesced_seconds: f64,
    pub check_problems: Vec<String>,
    /// The failure in the daemon's words (English).
    pub error: Option<String>,
    /// The failure as an error code with arguments (`err.<code>`), which front ends render in
    /// their reader's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_text: Option<Message>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStep {
    pub step: String,
    pub ok: bool,
    /// What happened, in English (or as it came from elsewhere: a command's error output).
    pub detail: String,
    pub seconds: f64,
    /// `detail` as a catalogue key (`run.…`) with arguments, for the reader's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Message>,
}

/// What `hafen update check` shows for one stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackCheck {
    pub stack: String,
    pub current: String,
    /// Newer versions the channel allows (oldest first), up to the pin.
    pub available: Vec<String>,
    /// The hops hafen would take to the newest of them.
    pub path: Vec<String>,
    /// The running tag points to a new digest (a rebuild, usually security fixes).
    pub rebuild: bool,
    pub pinned: Option<String>,
    /// What the policy says to do now.
    pub decision: serde_json::Value,
    pub error: Option<String>,
    /// For images built from Debian's packages: what a fresh rebuild would change.
    #[serde(default)]
    pub changes: Vec<String>,
    /// What an update of this stack needs and the box lacks (refusals with what to do), when
    /// there is something to apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Message>,
}

/// One hop of a plan, as shown before anything is done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HopView {
    pub from: String,
    pub to: String,
    /// service → [from, to]
    pub images: BTreeMap<String, (String, String)>,
    pub database_moves: Vec<String>,
    pub migrations: Vec<String>,
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanView {
    pub stack: String,
    pub current: String,
    pub target: String,
    pub hops: Vec<HopView>,
    /// What the update needs and this box lacks (error codes with what to do): `update apply`
    /// refuses until each is there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Message>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyReport {
    pub stack: String,
    pub hops: Vec<UpdateRecord>,
    /// The version the stack runs now.
    pub version: String,
    pub error: Option<String>,
}

/// What a whole-box recovery did, stack by stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoverReport {
    pub host_snapshot: String,
    pub config: Option<String>,
    pub state_dir: String,
    pub stacks: Vec<StackOutcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackOutcome {
    pub stack: String,
    pub snapshot: Option<String>,
    pub error: Option<String>,
}

/// One recipient: the public key and what it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientEntry {
    pub label: String,
    pub recipient: String,
    /// `box` (this machine, for unattended runs) or `recovery` (offline).
    pub role: String,
}
