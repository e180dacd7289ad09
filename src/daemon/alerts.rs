//! Alerts and notifications: every event is recorded here (`emit`: the store, the event bus
//! for `hafen events --follow`, the log) and the alert rules applied to it; an alert is raised
//! once, reminded, escalated and resolved, persisted in the store and delivered through the
//! notification outbox (`notify`). Owns the event bus and the outbox's wake-up.

use crate::notify::{args, Notice, NoticeKind, Severity, Step};
use crate::error::AppError;
use crate::shared::Shared;
use hafen_core::alerts::reminders_due;
use hafen_core::events::Event;
use hafen_store::AlertRecord;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct Alerts {
    shared: Arc<Shared>,
    /// The event bus: the sequence number of each recorded event (`hafen events --follow`).
    pub bus: tokio::sync::broadcast::Sender<i64>,
    /// Wakes the notification sender (something was queued).
    pub notify_wake: tokio::sync::Notify,
}

impl Alerts {
    pub fn new(shared: Arc<Shared>) -> Alerts {
        Alerts { shared, bus: tokio::sync::broadcast::channel(256).0, notify_wake: tokio::sync::Notify::new() }
    }

    pub fn emit(&self, actor: &str, ev: Event) {
        let detail = serde_json::to_value(&ev).unwrap_or_default();
        tracing::info!(kind = %ev.kind(), stack = ev.stack().unwrap_or("-"), actor, "{}", ev.message());
        match self.shared.store.record_event(&ev.kind(), ev.stack(), actor, &ev.message(), &detail, &ev.target(), ev.outcome()) {
            Ok(seq) => {
                let _ = self.bus.send(seq);
            }
            Err(e) => tracing::error!(error = %e, "could not record event"),
        }
        self.alert_rules(&ev);
    }

    /// The events that open or close an alert, and the metrics they move.
    fn alert_rules(&self, ev: &Event) {
        use crate::notify::Severity;
        let s = |v: &str| v.to_string();
        match ev {
            Event::BackupFailed { stack, target, error } => self.raise(
                &format!("backup_failed:{stack}"),
                "backup_failed",
                Severity::Critical,
                Some(stack),
                &[("stack", s(stack)), ("target", s(target)), ("error", s(error))],
                vec![crate::notify::step("retry_scheduled", &[("when", s(&self.shared.cfg.backup_schedule))])],
            ),
            Event::BackupFinished { stack, .. } => {
                self.resolve(&format!("backup_failed:{stack}"));
                self.resolve(&format!("backup_stale:{stack}"));
            }
            Event::BackupCheckFailed { target, problems, findings, .. } => self.raise(
                &format!("backup_check_failed:{target}"),
                "backup_check_failed",
                Severity::Critical,
                None,
                &[
                    ("target", s(target)),
                    // The findings in the notifications' language; the English lines where the
                    // check could not run.
                    ("problems", if findings.is_empty() { problems.join("; ") } else { findings.iter().map(|f| hafen_core::i18n::render(&self.shared.cfg.notify.language, f)).collect::<Vec<_>>().join("; ") }),
                ],
                vec![],
            ),
            Event::BackupChecked { target, .. } => self.resolve(&format!("backup_check_failed:{target}")),
            Event::EngineUnreachable { detail } => self.raise(
                "engine_unreachable",
                "engine_unreachable",
                Severity::Critical,
                None,
                &[("endpoint", self.shared.cfg.docker_socket.display().to_string()), ("detail", s(detail))],
                vec![crate::notify::step("reconnecting", &[])],
            ),
            Event::EngineReachable { .. } => self.resolve("engine_unreachable"),
            Event::ServiceCrashLooped { stack, service, restarts, window_secs } => self.raise(
                &format!("crash_loop:{stack}/{service}"),
                "crash_loop",
                Severity::Critical,
                Some(stack),
                &[("stack", s(stack)), ("service", s(service)), ("restarts", restarts.to_string()), ("window", hafen_core::events::human_secs(*window_secs))],
                vec![
                    crate::notify::step("restarted", &[("service", s(service)), ("count", restarts.to_string())]),
                    crate::notify::step("restarts_stopped", &[("service", s(service))]),
                ],
            ),
            Event::ServiceRestarted { stack, service, .. } => self.shared.metrics.inc_restarts(stack, service),
            Event::ClockJumped { from, to, .. } => self.raise(
                "clock_jumped",
                "clock_jumped",
                Severity::Warning,
                None,
                &[("from", hafen_core::events::utc_minute(from)), ("to", hafen_core::events::utc_minute(to)), ("hold", hafen_core::events::human_secs(hafen_core::clock::HOLD_AFTER_JUMP.as_secs()))],
                vec![],
            ),
            Event::RetentionSkipped { target, group, why } if why == "clock_behind" => self.raise(
                &format!("clock_behind:{target}"),
                "clock_behind",
                Severity::Warning,
                None,
                &[("target", s(target)), ("group", s(group))],
                vec![],
            ),
            _ => {}
        }
    }

    fn notice(&self, kind: NoticeKind, a: &AlertRecord) -> Notice {
        Notice {
            kind,
            severity: Severity::parse(&a.severity),
            key: a.key.clone(),
            code: a.code.clone(),
            stack: a.stack.clone(),
            args: a.args.clone(),
            since: a.since.clone(),
            tried: a.tried.clone(),
            host: crate::notify::host_name(),
        }
    }

    fn send(&self, n: &Notice) {
        if let Err(e) = crate::notify::enqueue(&self.shared.store, &self.shared.cfg.notify, n) {
            tracing::error!(error = %e, key = %n.key, "could not queue a notification");
        }
        self.notify_wake.notify_one();
    }

    /// Opens an alert (notified once), escalates it (notified again) or refreshes its details
    /// (not notified). The row in the store makes this hold across restarts.
    pub fn raise(&self, key: &str, code: &str, severity: Severity, stack: Option<&str>, pairs: &[(&str, String)], tried: Vec<Step>) {
        let existing = match self.shared.store.alert(key) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, key, "could not read open alerts");
                return;
            }
        };
        let now = hafen_store::now();
        let mut a = existing.clone().unwrap_or(AlertRecord {
            key: key.into(),
            code: code.into(),
            severity: severity.word().into(),
            stack: stack.map(str::to_string),
            args: BTreeMap::new(),
            since: now.clone(),
            last_notified: now.clone(),
            tried: Vec::new(),
        });
        a.args = args(pairs);
        for t in tried {
            if !a.tried.contains(&t) {
                a.tried.push(t);
            }
        }
        let kind = match &existing {
            None => Some(NoticeKind::Problem),
            Some(old) if severity > Severity::parse(&old.severity) => Some(NoticeKind::Escalated),
            Some(_) => None,
        };
        if kind.is_some() {
            a.severity = severity.word().into();
            a.last_notified = now;
        }
        if let Err(e) = self.shared.store.put_alert(&a) {
            tracing::error!(error = %e, key, "could not store the alert");
            return;
        }
        if let Some(kind) = kind {
            let n = self.notice(kind, &a);
            let text = crate::notify::render(&n, "en");
            self.send(&n);
            self.emit("hafen", hafen_core::events::Event::AlertRaised { key: key.into(), severity: a.severity.clone(), message: text.subject, title: Some(title(&a)) });
        }
    }

    /// Closes an open alert and says so; nothing when none is open.
    pub fn resolve(&self, key: &str) {
        let Ok(Some(a)) = self.shared.store.alert(key) else { return };
        if let Err(e) = self.shared.store.delete_alert(key) {
            tracing::error!(error = %e, key, "could not close the alert");
            return;
        }
        let n = self.notice(NoticeKind::Resolved, &a);
        let text = crate::notify::render(&n, "en");
        self.send(&n);
        self.emit("hafen", hafen_core::events::Event::AlertResolved { key: key.into(), message: text.subject, title: Some(title(&a)) });
    }

    /// Walks the audit log's hash chain (at start, daily, and on `hafen audit verify`): a break
    /// is a critical alert naming the first bad record, in the notifications' language; an
    /// intact chain closes that alert. Returns the number of records and the verdict.
    pub fn check_audit(&self) -> Result<(usize, Result<usize, hafen_store::audit::Broken>), AppError> {
        let records = self.shared.store.audit(0, usize::MAX >> 1)?;
        let head = hafen_store::audit::read_head(&self.shared.store.path);
        let verdict = hafen_store::audit::verify(&records, head);
        match &verdict {
            Ok(_) => self.resolve("audit_broken"),
            Err(b) => {
                tracing::error!(seq = b.seq, reason = %hafen_core::i18n::render("en", &b.reason), "the audit log does not verify");
                let reason = hafen_core::i18n::render(&self.shared.cfg.notify.language, &b.reason);
                self.raise("audit_broken", "audit_broken", Severity::Critical, None, &[("seq", b.seq.to_string()), ("reason", reason)], vec![]);
            }
        }
        Ok((records.len(), verdict))
    }

    /// Looks at the wall clock against the boot clock (`hafen_core::clock`): a jump is an event
    /// and an alert, which closes when the hold after it has run out. Returns whether removing
    /// backups is allowed now.
    pub fn look_at_clock(&self) -> bool {
        let boot = crate::host::boot_clock();
        let now = chrono::Utc::now();
        let (look, allowed, ended) = {
            let mut g = crate::shared::lock(&self.shared.clock);
            let look = g.look(now, boot);
            (look, g.removals_allowed(boot), g.hold_ended(boot))
        };
        if let hafen_core::clock::Look::Jumped { by } = look {
            // Where the clock would be without the jump.
            let from = (now - by).to_rfc3339();
            tracing::warn!(by_secs = by.num_seconds(), "the wall clock jumped; removing backups waits");
            self.emit("hafen", hafen_core::events::Event::ClockJumped { from, to: now.to_rfc3339(), by_secs: by.num_seconds() });
        }
        if ended {
            self.resolve("clock_jumped");
        }
        allowed
    }

    /// Repeats open alerts every `remind_every`.
    pub fn remind_tick(&self) {
        let Ok(open) = self.shared.store.alerts() else { return };
        let every = chrono::Duration::from_std(self.shared.cfg.notify.remind_every).unwrap_or(chrono::Duration::hours(4));
        for key in reminders_due(&open, chrono::Utc::now(), every) {
            let Some(mut a) = open.iter().find(|a| a.key == key).cloned() else { continue };
            a.last_notified = hafen_store::now();
            if self.shared.store.put_alert(&a).is_ok() {
                self.send(&self.notice(NoticeKind::Reminder, &a));
            }
        }
    }
}

/// The alert's title as a catalogue key with its arguments, for the event line in the reader's
/// language (`alert.<code>.title`).
fn title(a: &AlertRecord) -> hafen_api::Message {
    hafen_api::Message { code: format!("alert.{}.title", a.code), args: a.args.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alerts service on its own: the shared ports and nothing else.
    fn alerts() -> (tempfile::TempDir, Alerts) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::Config { state_dir: dir.path().to_path_buf(), ..crate::config::Config::default() };
        let store = hafen_store::Store::open(&cfg.store_path()).unwrap();
        let shared = Arc::new(Shared::new(cfg, store, Arc::new(hafen_engine::fake::FakeEngine::default())));
        (dir, Alerts::new(shared))
    }

    fn raised(a: &Alerts) -> usize {
        a.shared.store.events(0, None, 1000).unwrap().iter().filter(|e| e.kind == "alert_raised").count()
    }

    #[test]
    fn an_alert_is_raised_once_escalated_and_resolved() {
        let (_dir, a) = alerts();
        let pairs = [("what", "docker".to_string()), ("free", "1 GB".to_string())];
        a.raise("disk_low:docker", "disk_low", Severity::Warning, None, &pairs, vec![]);
        a.raise("disk_low:docker", "disk_low", Severity::Warning, None, &pairs, vec![]);
        assert_eq!((a.shared.store.alerts().unwrap().len(), raised(&a)), (1, 1), "raised once, not twice");
        a.raise("disk_low:docker", "disk_low", Severity::Critical, None, &pairs, vec![]);
        assert_eq!(a.shared.store.alert("disk_low:docker").unwrap().unwrap().severity, "critical");
        assert_eq!(raised(&a), 2, "an escalation is told");
        a.resolve("disk_low:docker");
        assert!(a.shared.store.alert("disk_low:docker").unwrap().is_none());
        // The audit chain of all that is intact, and an intact chain opens no alert.
        let (n, verdict) = a.check_audit().unwrap();
        assert!(verdict.is_ok() && n >= 3, "{n} {verdict:?}");
        assert!(a.shared.store.alert("audit_broken").unwrap().is_none());
    }
}
