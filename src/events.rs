//! Domain events: past-tense facts about what happened, recorded in the state store's event log
//! (and, with a later issue, fanned out to the audit log, notifications and the console).

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
            | Event::BackupExported { stack, .. } => Some(stack),
            Event::EngineUnreachable { .. }
            | Event::EngineReachable { .. }
            | Event::BackupPruned { .. }
            | Event::BackupChecked { .. }
            | Event::BackupCheckFailed { .. } => None,
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
            Event::BackupCheckFailed { target, subset, problems } => {
                format!("repository check of {target}{} FOUND PROBLEMS: {}", subset.as_ref().map(|s| format!(" (packs {s})")).unwrap_or_default(), problems.join("; "))
            }
        }
    }
}
