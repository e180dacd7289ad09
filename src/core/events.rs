//! Domain events: past-tense facts about what happened. Each one is recorded in the state
//! store's event log and, in the same transaction, as a hash-chained audit record (`audit`),
//! then sent on the daemon's event bus (`hafen events --follow`, alerts, metrics).

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    StackDeployRequested { stack: String, settings_changed: Vec<String> },
    ActionApplied { stack: String, action: String, description: String },
    ActionFailed { stack: String, action: String, description: String, error: String },
    DriftRepaired { stack: String, action: String, description: String },
    StackRemoved { stack: String, purge: bool },
    HealthChanged { stack: String, service: String, from: String, to: String, detail: Option<String> },
    EngineUnreachable { detail: String },
    EngineReachable { detail: String },
    ReconcileFailed { stack: String, error: String },
    BackupFinished { stack: String, target: String, snapshot: String, seconds: f64 },
    BackupFailed { stack: String, target: String, error: String },
    RestoreFinished { stack: String, snapshot: String },
    RestoreFailed { stack: String, error: String },
    BackupExported { stack: String, snapshot: String, file: String, sha256: String },
    BackupPruned { target: String, forgotten: usize },
    /// A scheduled or manual repository check passed (`subset` e.g. `3/30` for a rotating read).
    BackupChecked { target: String, subset: Option<String> },
    /// A repository check found problems: an alert.
    BackupCheckFailed { target: String, subset: Option<String>, problems: Vec<String> },
    /// hafen started a crashed, stopped or unhealthy service again.
    ServiceRestarted { stack: String, service: String, reason: String, attempt: u32 },
    /// Too many restarts in the window: hafen stopped restarting the service.
    ServiceCrashLooped { stack: String, service: String, restarts: u32, window_secs: u64 },
    /// The stack's combined health changed (starting, healthy, degraded, unhealthy, failed).
    StackHealthChanged { stack: String, from: String, to: String },
    AlertRaised { key: String, severity: String, message: String },
    AlertResolved { key: String, message: String },
    /// A host check changed level (ok, warning, critical).
    HostCheckChanged { check: String, level: String, detail: String },
    /// Newer versions are available (policy notify, or automatic outside its window).
    UpdateAvailable { stack: String, current: String, path: Vec<String> },
    /// An update hop began (its backup first).
    UpdateStarted { stack: String, from: String, to: String, id: i64 },
    /// One step of an update hop was taken.
    UpdateStep { stack: String, id: i64, step: String, detail: String },
    /// The hop is done: the new version passes its probes.
    UpdateCommitted { stack: String, from: String, to: String, id: i64, downtime: f64 },
    /// The hop stopped before anything changed (backup or pull failed).
    UpdateAborted { stack: String, to: String, id: i64, step: String, error: String },
    /// The hop failed at `step`; the old version and its data are back.
    UpdateRolledBack { stack: String, from: String, to: String, id: i64, step: String, error: String, downtime: f64 },
    /// The rollback failed too: the admin must act.
    UpdateFailed { stack: String, to: String, id: i64, error: String },
    /// `hafen update pin|unpin`.
    UpdatePinned { stack: String, version: Option<String> },
}

impl Event {
    pub fn kind(&self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string)).unwrap_or_default()
    }

    pub fn stack(&self) -> Option<&str> {
        match self {
            Event::StackDeployRequested { stack, .. }
            | Event::ActionApplied { stack, .. }
            | Event::ActionFailed { stack, .. }
            | Event::DriftRepaired { stack, .. }
            | Event::StackRemoved { stack, .. }
            | Event::HealthChanged { stack, .. }
            | Event::ReconcileFailed { stack, .. }
            | Event::BackupFinished { stack, .. }
            | Event::BackupFailed { stack, .. }
            | Event::RestoreFinished { stack, .. }
            | Event::RestoreFailed { stack, .. }
            | Event::BackupExported { stack, .. }
            | Event::ServiceRestarted { stack, .. }
            | Event::ServiceCrashLooped { stack, .. }
            | Event::StackHealthChanged { stack, .. }
            | Event::UpdateAvailable { stack, .. }
            | Event::UpdateStarted { stack, .. }
            | Event::UpdateStep { stack, .. }
            | Event::UpdateCommitted { stack, .. }
            | Event::UpdateAborted { stack, .. }
            | Event::UpdateRolledBack { stack, .. }
            | Event::UpdateFailed { stack, .. }
            | Event::UpdatePinned { stack, .. } => Some(stack),
            Event::EngineUnreachable { .. }
            | Event::EngineReachable { .. }
            | Event::BackupPruned { .. }
            | Event::BackupChecked { .. }
            | Event::BackupCheckFailed { .. }
            | Event::AlertRaised { .. }
            | Event::AlertResolved { .. }
            | Event::HostCheckChanged { .. } => None,
        }
    }

    /// What the event is about, for the audit log: a stack, a backup target, a channel or `host`.
    pub fn target(&self) -> String {
        match self {
            Event::BackupPruned { target, .. } | Event::BackupChecked { target, .. } | Event::BackupCheckFailed { target, .. } => format!("target:{target}"),
            Event::AlertRaised { key, .. } | Event::AlertResolved { key, .. } => format!("alert:{key}"),
            Event::HostCheckChanged { check, .. } => format!("host:{check}"),
            Event::EngineUnreachable { .. } | Event::EngineReachable { .. } => "engine".into(),
            other => other.stack().map(|s| format!("stack:{s}")).unwrap_or_else(|| "host".into()),
        }
    }

    /// `failed` for events that report a failure or a problem, else `ok`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Event::ActionFailed { .. }
            | Event::EngineUnreachable { .. }
            | Event::ReconcileFailed { .. }
            | Event::BackupFailed { .. }
            | Event::RestoreFailed { .. }
            | Event::BackupCheckFailed { .. }
            | Event::ServiceCrashLooped { .. }
            | Event::UpdateAborted { .. }
            | Event::UpdateRolledBack { .. }
            | Event::UpdateFailed { .. }
            | Event::AlertRaised { .. } => "failed",
            Event::StackHealthChanged { to, .. } if to == "unhealthy" || to == "failed" => "failed",
            Event::HostCheckChanged { level, .. } if level != "ok" => "failed",
            _ => "ok",
        }
    }

    /// One line for people.
    pub fn message(&self) -> String {
        match self {
            Event::StackDeployRequested { stack, settings_changed } if settings_changed.is_empty() => format!("deploy of {stack} requested"),
            Event::StackDeployRequested { stack, settings_changed } => format!("deploy of {stack} requested; settings changed: {}", settings_changed.join(", ")),
            Event::ActionApplied { description, .. } => description.clone(),
            Event::ActionFailed { description, error, .. } => format!("{description} failed: {error}"),
            Event::DriftRepaired { description, .. } => format!("drift repaired: {description}"),
            Event::StackRemoved { stack, purge: true } => format!("{stack} removed with its data volumes"),
            Event::StackRemoved { stack, purge: false } => format!("{stack} removed; data volumes kept"),
            Event::HealthChanged { stack, service, from, to, .. } => format!("{stack}/{service}: {from} → {to}"),
            Event::EngineUnreachable { detail } => format!("container engine unreachable: {detail}"),
            Event::EngineReachable { detail } => format!("container engine reachable: {detail}"),
            Event::ReconcileFailed { stack, error } => format!("reconciling {stack} failed: {error}"),
            Event::BackupFinished { stack, target, snapshot, seconds } => format!("backup of {stack} to {target} finished: snapshot {snapshot} ({seconds:.1}s)"),
            Event::BackupFailed { stack, target, error } => format!("backup of {stack} to {target} FAILED: {error}"),
            Event::RestoreFinished { stack, snapshot } => format!("{stack} restored from snapshot {snapshot}"),
            Event::RestoreFailed { stack, error } => format!("restore of {stack} FAILED, previous state put back: {error}"),
            Event::BackupExported { stack, snapshot, file, sha256 } => format!("snapshot {snapshot} of {stack} exported to {file} (sha256 {sha256})"),
            Event::BackupPruned { target, forgotten } => format!("target {target} pruned: {forgotten} snapshots forgotten, unused data removed"),
            Event::BackupChecked { target, subset: None } => format!("repository of {target} checked: no problems"),
            Event::BackupChecked { target, subset: Some(s) } => format!("repository of {target} checked, packs {s} read: no problems"),
            Event::ServiceRestarted { stack, service, reason, attempt } => format!("{stack}/{service} restarted ({reason}; restart {attempt} in the window)"),
            Event::ServiceCrashLooped { stack, service, restarts, window_secs } => {
                format!("{stack}/{service} CRASH LOOP: {restarts} restarts within {}; hafen stopped restarting it", human_secs(*window_secs))
            }
            Event::StackHealthChanged { stack, from, to } => format!("{stack}: {from} → {to}"),
            Event::AlertRaised { key, severity, message } => format!("alert {key} ({severity}): {message}"),
            Event::AlertResolved { key, message } => format!("alert {key} resolved: {message}"),
            Event::HostCheckChanged { check, level, detail } => format!("host check {check}: {level}: {detail}"),
            Event::UpdateAvailable { stack, current, path } => format!("{stack}: updates available from {current}: {}", path.join(" → ")),
            Event::UpdateStarted { stack, from, to, id } => format!("update {id} of {stack} from {from} to {to} started"),
            Event::UpdateStep { stack, id, step, detail } => format!("update {id} of {stack}: {step}: {detail}"),
            Event::UpdateCommitted { stack, from, to, id, downtime } => format!("update {id} of {stack} from {from} to {to} committed ({downtime:.0}s down)"),
            Event::UpdateAborted { stack, to, id, step, error } => format!("update {id} of {stack} to {to} ABORTED at {step}, nothing changed: {error}"),
            Event::UpdateRolledBack { stack, from, to, id, step, error, downtime } => {
                format!("update {id} of {stack} to {to} FAILED at {step} and was rolled back to {from} with its data ({downtime:.0}s down): {error}")
            }
            Event::UpdateFailed { stack, to, id, error } => format!("update {id} of {stack} to {to} FAILED and the rollback failed too: {error}"),
            Event::UpdatePinned { stack, version: Some(v) } => format!("{stack} pinned: no updates beyond {v}"),
            Event::UpdatePinned { stack, version: None } => format!("{stack} unpinned"),
            Event::BackupCheckFailed { target, subset, problems } => {
                format!("repository check of {target}{} FOUND PROBLEMS: {}", subset.as_ref().map(|s| format!(" (packs {s})")).unwrap_or_default(), problems.join("; "))
            }
        }
    }
}

/// `600` → `10m`, `5400` → `1h30m`.
pub fn human_secs(s: u64) -> String {
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}
