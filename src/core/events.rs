//! Domain events: past-tense facts about what happened. Each one is recorded in the state
//! store's event log and, in the same transaction, as a hash-chained audit record (`audit`),
//! then sent on the daemon's event bus (`hafen events --follow`, alerts, metrics).

use hafen_api::Message;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// An export failed; its partial file was removed.
    ExportFailed { stack: String, file: String, error: String },
    BackupPruned { target: String, forgotten: usize },
    /// A repository repair was carried out: index files and packs replaced, blobs saved and
    /// lost, snapshots forgotten and left incomplete.
    BackupRepaired { target: String, index_files: usize, packs: usize, salvaged: u64, lost: u64, forgotten: usize, incomplete: usize },
    /// A repository repair could not run or stopped; what it changed before keeps every blob.
    BackupRepairFailed { target: String, error: String },
    /// A scheduled or manual repository check passed (`subset` e.g. `3/30` for a rotating read).
    BackupChecked { target: String, subset: Option<String> },
    /// A repository check found problems: an alert.
    /// `problems` in English, as the event log keeps them; `findings` the same as catalogue keys
    /// (`check.…`) for readers of other languages (absent in older records and where the check
    /// could not run).
    BackupCheckFailed {
        target: String,
        subset: Option<String>,
        problems: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        findings: Vec<Message>,
    },
    /// hafen started a crashed, stopped or unhealthy service again.
    ServiceRestarted { stack: String, service: String, reason: String, attempt: u32 },
    /// Too many restarts in the window: hafen stopped restarting the service.
    ServiceCrashLooped { stack: String, service: String, restarts: u32, window_secs: u64 },
    /// The stack's combined health changed (starting, healthy, degraded, unhealthy, failed).
    StackHealthChanged { stack: String, from: String, to: String },
    /// `message` is the English subject as the event log has kept it since the first release;
    /// `title` the alert's title as a catalogue key (`alert.<code>.title`) with its arguments,
    /// which front ends render in their reader's language (absent in older records).
    AlertRaised {
        key: String,
        severity: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<Message>,
    },
    AlertResolved {
        key: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<Message>,
    },
    /// A host check changed level (ok, warning, critical). `detail` is the English line;
    /// `text` the same line as a catalogue key with arguments (absent in older records).
    HostCheckChanged {
        check: String,
        level: String,
        detail: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<Message>,
    },
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
    /// A committed hop was taken back as an admin asked (`hafen update rollback`): its old
    /// version and the data of its pre-update backup are back. Not a failure.
    UpdateTakenBack { stack: String, from: String, to: String, id: i64, downtime: f64 },
    /// The rollback failed too: the admin must act.
    UpdateFailed { stack: String, to: String, id: i64, error: String },
    /// An image a stack needs was built from its recipe (Debian's packages) or pulled, in
    /// `seconds` (`how`: `built` or `pulled`).
    ImageReady { stack: String, image: String, how: String, seconds: f64 },
    /// `hafen update pin|unpin`.
    UpdatePinned { stack: String, version: Option<String> },
    /// The wall clock moved `by_secs` (negative: back) more than the time since boot did:
    /// removing backups waits for a while (`hafen_core::clock`).
    ClockJumped { from: String, to: String, by_secs: i64 },
    /// Retention forgot nothing in `target` for `group` (a stack, or hafen's own state).
    /// `why`: `clock_jumped` (the clock was set a short while ago), `clock_behind` (a snapshot is
    /// newer than the clock), `keeps_nothing` (the policy would keep no snapshot).
    RetentionSkipped { target: String, group: String, why: String },
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
            | Event::ExportFailed { stack, .. }
            | Event::ServiceRestarted { stack, .. }
            | Event::ServiceCrashLooped { stack, .. }
            | Event::StackHealthChanged { stack, .. }
            | Event::UpdateAvailable { stack, .. }
            | Event::UpdateStarted { stack, .. }
            | Event::UpdateStep { stack, .. }
            | Event::UpdateCommitted { stack, .. }
            | Event::UpdateAborted { stack, .. }
            | Event::UpdateRolledBack { stack, .. }
            | Event::UpdateTakenBack { stack, .. }
            | Event::ImageReady { stack, .. }
            | Event::UpdateFailed { stack, .. }
            | Event::UpdatePinned { stack, .. } => Some(stack),
            Event::EngineUnreachable { .. }
            | Event::EngineReachable { .. }
            | Event::BackupPruned { .. }
            | Event::BackupRepaired { .. }
            | Event::BackupRepairFailed { .. }
            | Event::BackupChecked { .. }
            | Event::BackupCheckFailed { .. }
            | Event::ClockJumped { .. }
            | Event::RetentionSkipped { .. }
            | Event::AlertRaised { .. }
            | Event::AlertResolved { .. }
            | Event::HostCheckChanged { .. } => None,
        }
    }

    /// What the event is about, for the audit log: a stack, a backup target, a channel or `host`.
    pub fn target(&self) -> String {
        match self {
            Event::BackupPruned { target, .. }
            | Event::BackupRepaired { target, .. }
            | Event::BackupRepairFailed { target, .. }
            | Event::BackupChecked { target, .. }
            | Event::BackupCheckFailed { target, .. }
            | Event::RetentionSkipped { target, .. } => format!("target:{target}"),
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
            | Event::ExportFailed { .. }
            | Event::BackupCheckFailed { .. }
            | Event::BackupRepairFailed { .. }
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

    /// One line for people, as a catalogue key (`event.…`) and its arguments; texts that came
    /// from elsewhere (an engine's error, an action's description) are arguments as they are.
    pub fn text(&self) -> Message {
        let m = |code: &str| Message::new(&format!("event.{code}"));
        match self {
            Event::StackDeployRequested { stack, settings_changed } if settings_changed.is_empty() => m("deploy_requested").arg("stack", stack),
            Event::StackDeployRequested { stack, settings_changed } => m("deploy_requested_settings").arg("stack", stack).arg("settings", settings_changed.join(", ")),
            Event::ActionApplied { description, .. } => m("action_applied").arg("description", description),
            Event::ActionFailed { description, error, .. } => m("action_failed").arg("description", description).arg("error", error),
            Event::DriftRepaired { description, .. } => m("drift_repaired").arg("description", description),
            Event::StackRemoved { stack, purge: true } => m("removed_purged").arg("stack", stack),
            Event::StackRemoved { stack, purge: false } => m("removed_kept").arg("stack", stack),
            Event::HealthChanged { stack, service, from, to, .. } => m("health_changed").arg("stack", stack).arg("service", service).arg("from", from).arg("to", to),
            Event::EngineUnreachable { detail } => m("engine_unreachable").arg("detail", detail),
            Event::EngineReachable { detail } => m("engine_reachable").arg("detail", detail),
            Event::ReconcileFailed { stack, error } => m("reconcile_failed").arg("stack", stack).arg("error", error),
            Event::BackupFinished { stack, target, snapshot, seconds } => {
                m("backup_finished").arg("stack", stack).arg("target", target).arg("snapshot", snapshot).arg("seconds", format!("{seconds:.1}"))
            }
            Event::BackupFailed { stack, target, error } => m("backup_failed").arg("stack", stack).arg("target", target).arg("error", error),
            Event::RestoreFinished { stack, snapshot } => m("restore_finished").arg("stack", stack).arg("snapshot", snapshot),
            Event::RestoreFailed { stack, error } => m("restore_failed").arg("stack", stack).arg("error", error),
            Event::BackupExported { stack, snapshot, file, sha256 } => {
                m("backup_exported").arg("stack", stack).arg("snapshot", snapshot).arg("file", file).arg("sha256", sha256)
            }
            Event::ExportFailed { stack, file, error } => m("export_failed").arg("stack", stack).arg("file", file).arg("error", error),
            Event::BackupPruned { target, forgotten } => m("backup_pruned").arg("target", target).arg("forgotten", forgotten),
            Event::BackupRepaired { target, index_files, packs, salvaged, lost, forgotten, incomplete } => m("backup_repaired")
                .arg("target", target)
                .arg("index_files", index_files)
                .arg("packs", packs)
                .arg("salvaged", salvaged)
                .arg("lost", lost)
                .arg("forgotten", forgotten)
                .arg("incomplete", incomplete),
            Event::BackupRepairFailed { target, error } => m("backup_repair_failed").arg("target", target).arg("error", error),
            Event::BackupChecked { target, subset: None } => m("backup_checked").arg("target", target),
            Event::BackupChecked { target, subset: Some(s) } => m("backup_checked_subset").arg("target", target).arg("subset", s),
            Event::ServiceRestarted { stack, service, reason, attempt } => {
                m("service_restarted").arg("stack", stack).arg("service", service).arg("reason", reason).arg("attempt", attempt)
            }
            Event::ServiceCrashLooped { stack, service, restarts, window_secs } => {
                m("crash_looped").arg("stack", stack).arg("service", service).arg("restarts", restarts).arg("window", human_secs(*window_secs))
            }
            Event::StackHealthChanged { stack, from, to } => m("stack_health_changed").arg("stack", stack).arg("from", from).arg("to", to),
            Event::AlertRaised { key, severity, message, .. } => m("alert_raised").arg("key", key).arg("severity", severity).arg("message", message),
            Event::AlertResolved { key, message, .. } => m("alert_resolved").arg("key", key).arg("message", message),
            Event::HostCheckChanged { check, level, detail, .. } => m("host_check_changed").arg("check", check).arg("level", level).arg("detail", detail),
            Event::UpdateAvailable { stack, current, path } => m("update_available").arg("stack", stack).arg("current", current).arg("path", path.join(" → ")),
            Event::UpdateStarted { stack, from, to, id } => m("update_started").arg("stack", stack).arg("from", from).arg("to", to).arg("id", id),
            Event::UpdateStep { stack, id, step, detail } => m("update_step").arg("stack", stack).arg("id", id).arg("step", step).arg("detail", detail),
            Event::UpdateCommitted { stack, from, to, id, downtime } => {
                m("update_committed").arg("stack", stack).arg("from", from).arg("to", to).arg("id", id).arg("downtime", format!("{downtime:.0}"))
            }
            Event::UpdateAborted { stack, to, id, step, error } => {
                m("update_aborted").arg("stack", stack).arg("to", to).arg("id", id).arg("step", step).arg("error", error)
            }
            Event::UpdateRolledBack { stack, from, to, id, step, error, downtime } => m("update_rolled_back")
                .arg("stack", stack)
                .arg("from", from)
                .arg("to", to)
                .arg("id", id)
                .arg("step", step)
                .arg("error", error)
                .arg("downtime", format!("{downtime:.0}")),
            Event::ImageReady { stack, image, how, seconds } => {
                m(if how == "pulled" { "image_pulled" } else { "image_built" }).arg("stack", stack).arg("image", image).arg("seconds", format!("{seconds:.0}"))
            }
            Event::UpdateTakenBack { stack, from, to, id, downtime } => {
                m("update_taken_back").arg("stack", stack).arg("from", from).arg("to", to).arg("id", id).arg("downtime", format!("{downtime:.0}"))
            }
            Event::UpdateFailed { stack, to, id, error } => m("update_failed").arg("stack", stack).arg("to", to).arg("id", id).arg("error", error),
            Event::UpdatePinned { stack, version: Some(v) } => m("update_pinned").arg("stack", stack).arg("version", v),
            Event::UpdatePinned { stack, version: None } => m("update_unpinned").arg("stack", stack),
            Event::BackupCheckFailed { target, subset: None, problems, .. } => m("backup_check_failed").arg("target", target).arg("problems", problems.join("; ")),
            Event::BackupCheckFailed { target, subset: Some(s), problems, .. } => {
                m("backup_check_failed_subset").arg("target", target).arg("subset", s).arg("problems", problems.join("; "))
            }
            Event::ClockJumped { from, to, by_secs } => m(if *by_secs >= 0 { "clock_jumped_forward" } else { "clock_jumped_back" })
                .arg("from", utc_minute(from))
                .arg("to", utc_minute(to))
                .arg("hold", human_secs(crate::clock::HOLD_AFTER_JUMP.as_secs())),
            Event::RetentionSkipped { target, group, why } => m(&format!("retention_skipped_{why}")).arg("target", target).arg("group", group),
        }
    }

    /// The line in `lang` (`de`, `en`). An action's description is the English plan line the
    /// event keeps; other languages read the action from its key.
    pub fn message_in(&self, lang: &str) -> String {
        let mut t = self.text();
        if lang != "en" {
            if let Event::ActionApplied { action, .. } | Event::ActionFailed { action, .. } | Event::DriftRepaired { action, .. } = self {
                if let Some(a) = crate::describe::action_key(action) {
                    t.args.insert("description".into(), crate::i18n::render(lang, &a));
                }
            }
            // Texts that travel as a code of their own: the alert's title, the host check's line.
            let nested = match self {
                Event::AlertRaised { title: Some(t), .. } | Event::AlertResolved { title: Some(t), .. } => Some(("message", t)),
                Event::HostCheckChanged { text: Some(t), .. } => Some(("detail", t)),
                _ => None,
            };
            if let Event::BackupCheckFailed { findings, .. } = self {
                if !findings.is_empty() {
                    t.args.insert("problems".into(), findings.iter().map(|f| crate::i18n::render(lang, f)).collect::<Vec<_>>().join("; "));
                }
            }
            if let Some((arg, m)) = nested.filter(|(_, m)| crate::i18n::lookup(lang, &m.code).is_some()) {
                t.args.insert(arg.into(), crate::i18n::render(lang, m));
            }
            // State words (healthy, degraded, warning, …) in the reader's language too.
            for arg in ["from", "to", "severity", "level"] {
                if let Some(w) = t.args.get(arg).and_then(|w| crate::i18n::word(lang, w)) {
                    t.args.insert(arg.into(), w);
                }
            }
        }
        crate::i18n::render(lang, &t)
    }

    /// The line as the event log and the daemon's log keep it (English, as since the first
    /// release); front ends show `message_in` in their reader's language.
    pub fn message(&self) -> String {
        self.message_in("en")
    }
}

/// A recorded event's line in `lang`, from its stored detail (the event as JSON); `None` for a
/// detail this build cannot read (an older or newer daemon): show the stored line then.
pub fn render_detail(lang: &str, detail: &serde_json::Value) -> Option<String> {
    serde_json::from_value::<Event>(detail.clone()).ok().map(|e| e.message_in(lang))
}

/// `600` → `10m`, `5400` → `1h30m`.
/// An RFC 3339 time as `2026-12-07 01:00 UTC` (as it came when it does not parse).
pub fn utc_minute(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

pub fn human_secs(s: u64) -> String {
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_string()
    }

    /// Every kind of event, with the English line the event log has recorded since the first
    /// release (the catalogue must reproduce it exactly) — and a German line of its own.
    #[test]
    fn english_lines_are_unchanged_and_german_ones_exist() {
        let cases: Vec<(Event, &str)> = vec![
            (Event::StackDeployRequested { stack: s("t"), settings_changed: vec![] }, "deploy of t requested"),
            (Event::StackDeployRequested { stack: s("t"), settings_changed: vec![s("a"), s("b")] }, "deploy of t requested; settings changed: a, b"),
            (Event::ActionApplied { stack: s("t"), action: s("k"), description: s("create network hafen-t") }, "create network hafen-t"),
            (Event::ActionFailed { stack: s("t"), action: s("k"), description: s("start service x"), error: s("boom") }, "start service x failed: boom"),
            (Event::DriftRepaired { stack: s("t"), action: s("k"), description: s("d") }, "drift repaired: d"),
            (Event::StackRemoved { stack: s("t"), purge: true }, "t removed with its data volumes"),
            (Event::StackRemoved { stack: s("t"), purge: false }, "t removed; data volumes kept"),
            (Event::HealthChanged { stack: s("t"), service: s("db"), from: s("starting"), to: s("healthy"), detail: None }, "t/db: starting → healthy"),
            (Event::EngineUnreachable { detail: s("x") }, "container engine unreachable: x"),
            (Event::EngineReachable { detail: s("x") }, "container engine reachable: x"),
            (Event::ReconcileFailed { stack: s("t"), error: s("e") }, "reconciling t failed: e"),
            (Event::BackupFinished { stack: s("t"), target: s("usb"), snapshot: s("ab12"), seconds: 3.25 }, "backup of t to usb finished: snapshot ab12 (3.2s)"),
            (Event::BackupFailed { stack: s("t"), target: s("usb"), error: s("e") }, "backup of t to usb FAILED: e"),
            (Event::RestoreFinished { stack: s("t"), snapshot: s("ab") }, "t restored from snapshot ab"),
            (Event::RestoreFailed { stack: s("t"), error: s("e") }, "restore of t FAILED, previous state put back: e"),
            (Event::BackupExported { stack: s("t"), snapshot: s("ab"), file: s("/f"), sha256: s("00") }, "snapshot ab of t exported to /f (sha256 00)"),
            (Event::ExportFailed { stack: s("t"), file: s("/f"), error: s("e") }, "export of t to /f FAILED: e"),
            (Event::BackupPruned { target: s("usb"), forgotten: 3 }, "target usb pruned: 3 snapshots forgotten, unused data removed"),
            (
                Event::BackupRepaired { target: s("usb"), index_files: 1, packs: 2, salvaged: 7, lost: 3, forgotten: 1, incomplete: 2 },
                "repository of usb repaired: 1 index file(s) and 2 pack(s) replaced, 7 blob(s) saved, 3 lost; 1 snapshot(s) forgotten, 2 incomplete until the next backup",
            ),
            (Event::BackupRepairFailed { target: s("usb"), error: s("e") }, "repair of the repository of usb FAILED (every blob kept): e"),
            (Event::BackupChecked { target: s("usb"), subset: None }, "repository of usb checked: no problems"),
            (Event::BackupChecked { target: s("usb"), subset: Some(s("3/30")) }, "repository of usb checked, packs 3/30 read: no problems"),
            (Event::BackupCheckFailed { target: s("usb"), subset: None, problems: vec![s("a"), s("b")], findings: vec![] }, "repository check of usb FOUND PROBLEMS: a; b"),
            (Event::BackupCheckFailed { target: s("usb"), subset: Some(s("3/30")), problems: vec![s("a")], findings: vec![] }, "repository check of usb (packs 3/30) FOUND PROBLEMS: a"),
            (Event::ServiceRestarted { stack: s("t"), service: s("db"), reason: s("exited"), attempt: 2 }, "t/db restarted (exited; restart 2 in the window)"),
            (
                Event::ServiceCrashLooped { stack: s("t"), service: s("db"), restarts: 5, window_secs: 600 },
                "t/db CRASH LOOP: 5 restarts within 10m; hafen stopped restarting it",
            ),
            (Event::StackHealthChanged { stack: s("t"), from: s("healthy"), to: s("degraded") }, "t: healthy → degraded"),
            (Event::AlertRaised { key: s("k"), severity: s("critical"), message: s("m"), title: None }, "alert k (critical): m"),
            (Event::AlertResolved { key: s("k"), message: s("m"), title: None }, "alert k resolved: m"),
            (Event::HostCheckChanged { check: s("disk"), level: s("warning"), detail: s("d"), text: None }, "host check disk: warning: d"),
            (Event::UpdateAvailable { stack: s("t"), current: s("6.0"), path: vec![s("6.2"), s("7.0")] }, "t: updates available from 6.0: 6.2 → 7.0"),
            (Event::UpdateStarted { stack: s("t"), from: s("6.0"), to: s("7.0"), id: 4 }, "update 4 of t from 6.0 to 7.0 started"),
            (Event::UpdateStep { stack: s("t"), id: 4, step: s("pull"), detail: s("d") }, "update 4 of t: pull: d"),
            (Event::UpdateCommitted { stack: s("t"), from: s("6.0"), to: s("7.0"), id: 4, downtime: 19.4 }, "update 4 of t from 6.0 to 7.0 committed (19s down)"),
            (Event::UpdateAborted { stack: s("t"), to: s("7.0"), id: 4, step: s("backup"), error: s("e") }, "update 4 of t to 7.0 ABORTED at backup, nothing changed: e"),
            (
                Event::UpdateRolledBack { stack: s("t"), from: s("6.0"), to: s("7.0"), id: 4, step: s("migrate"), error: s("e"), downtime: 8.0 },
                "update 4 of t to 7.0 FAILED at migrate and was rolled back to 6.0 with its data (8s down): e",
            ),
            (Event::ImageReady { stack: s("t"), image: s("hafen/tryton60:ab12"), how: s("built"), seconds: 94.2 }, "t: image hafen/tryton60:ab12 built from its recipe (94s)"),
            (Event::ImageReady { stack: s("t"), image: s("reg/app:2.0"), how: s("pulled"), seconds: 3.0 }, "t: image reg/app:2.0 pulled (3s)"),
            (
                Event::UpdateTakenBack { stack: s("t"), from: s("6.0"), to: s("7.0"), id: 4, downtime: 8.0 },
                "update 4 of t from 6.0 to 7.0 taken back as asked: 6.0 with the data of its pre-update backup (8s down)",
            ),
            (Event::UpdateFailed { stack: s("t"), to: s("7.0"), id: 4, error: s("e") }, "update 4 of t to 7.0 FAILED and the rollback failed too: e"),
            (Event::UpdatePinned { stack: s("t"), version: Some(s("7.0")) }, "t pinned: no updates beyond 7.0"),
            (Event::UpdatePinned { stack: s("t"), version: None }, "t unpinned"),
            (
                Event::ClockJumped { from: s("2026-12-07T01:00:00Z"), to: s("2027-12-07T01:00:10Z"), by_secs: 86_400 * 365 },
                "the clock jumped forward from 2026-12-07 01:00 UTC to 2027-12-07 01:00 UTC; hafen removes no backup for 6h",
            ),
            (
                Event::ClockJumped { from: s("2026-12-07T01:00:00Z"), to: s("2026-12-07T00:00:00Z"), by_secs: -3600 },
                "the clock jumped back from 2026-12-07 01:00 UTC to 2026-12-07 00:00 UTC; hafen removes no backup for 6h",
            ),
            (
                Event::RetentionSkipped { target: s("usb"), group: s("stack:t"), why: s("clock_jumped") },
                "retention on usb for stack:t skipped: the clock was set a short while ago",
            ),
            (
                Event::RetentionSkipped { target: s("usb"), group: s("stack:t"), why: s("clock_behind") },
                "retention on usb for stack:t skipped: a snapshot is newer than the clock",
            ),
            (
                Event::RetentionSkipped { target: s("usb"), group: s("stack:t"), why: s("keeps_nothing") },
                "retention on usb for stack:t skipped: the policy would keep no snapshot",
            ),
        ];
        for (e, en) in &cases {
            assert_eq!(e.message(), *en);
            let de = e.message_in("de");
            assert!(de != *en && !de.contains("event.") && !de.contains('?'), "{de}");
            // What the store keeps renders again, in either language.
            let detail = serde_json::to_value(e).unwrap();
            assert_eq!(render_detail("de", &detail).as_deref(), Some(de.as_str()));
        }
    }

    /// An alert's title and a host check's line travel as codes: the English line stays as the
    /// log kept it, the German one has no English in it.
    #[test]
    fn alert_titles_and_host_check_lines_render_in_the_readers_language() {
        let title = Message::new("alert.memory_pressure.title");
        let raised = Event::AlertRaised { key: s("memory_pressure"), severity: s("warning"), message: s("[hafen box] WARNING: Memory is short"), title: Some(title.clone()) };
        assert_eq!(raised.message(), "alert memory_pressure (warning): [hafen box] WARNING: Memory is short");
        assert_eq!(raised.message_in("de"), "Alarm memory_pressure (Warnung): Arbeitsspeicher knapp");
        let resolved = Event::AlertResolved { key: s("memory_pressure"), message: s("[hafen box] RESOLVED: Memory is short"), title: Some(title) };
        assert_eq!(resolved.message_in("de"), "Alarm memory_pressure behoben: Arbeitsspeicher knapp");
        let line = Message::new("host.memory").arg("available", "1.0 GB").arg("total", "8.0 GB");
        let e = Event::HostCheckChanged { check: s("memory"), level: s("warning"), detail: crate::i18n::render("en", &line), text: Some(line) };
        assert_eq!(e.message(), "host check memory: warning: 1.0 GB available of 8.0 GB");
        assert_eq!(e.message_in("de"), "Host-Prüfung memory: Warnung: 1.0 GB von 8.0 GB verfügbar");
        // A record from before the codes renders as it was kept.
        let old: Event = serde_json::from_value(serde_json::json!({"kind": "alert_resolved", "key": "k", "message": "m"})).unwrap();
        assert_eq!(old.message_in("de"), "Alarm k behoben: m");
    }
}
