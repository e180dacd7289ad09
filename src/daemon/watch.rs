//! Watching and healing: the engine's event stream (reconnected with backoff, full resync after
//! each reconnect), the healer's restart decisions (exponential backoff, crash-loop limit), each
//! stack's combined health with its alert, the alert lifecycle (raised once, reminded, escalated,
//! resolved; persisted in the store, delivered through the notification outbox), the host checks
//! as named workers (`EngineWatch`, `host_checks`). The healer's rules are the core's
//! (`hafen_core::heal`); what `hafen worker list` shows is `worker_status`.

use hafen_core::alerts::{backup_age_level, reminders_due, Level};
use crate::notify::{args, step};
use crate::app::App;
use crate::worker::{Line, Round, Status, Worker};
use crate::probe::StackHealth;
use crate::notify::{Notice, NoticeKind, Severity, Step};
use hafen_store::AlertRecord;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "hafen".into())
}

impl App {

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
            host: hostname(),
        }
    }

    fn send(&self, n: &Notice) {
        if let Err(e) = crate::notify::enqueue(&self.store, &self.cfg.notify, n) {
            tracing::error!(error = %e, key = %n.key, "could not queue a notification");
        }
        self.notify_wake.notify_one();
    }

    /// Opens an alert (notified once), escalates it (notified again) or refreshes its details
    /// (not notified). The row in the store makes this hold across restarts.
    pub fn raise(&self, key: &str, code: &str, severity: Severity, stack: Option<&str>, pairs: &[(&str, String)], tried: Vec<Step>) {
        let existing = match self.store.alert(key) {
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
        if let Err(e) = self.store.put_alert(&a) {
            tracing::error!(error = %e, key, "could not store the alert");
            return;
        }
        if let Some(kind) = kind {
            let n = self.notice(kind, &a);
            let text = crate::notify::render(&n, "en");
            self.send(&n);
            self.emit("hafen", hafen_core::events::Event::AlertRaised { key: key.into(), severity: a.severity.clone(), message: text.subject });
        }
    }

    /// Closes an open alert and says so; nothing when none is open.
    pub fn resolve(&self, key: &str) {
        let Ok(Some(a)) = self.store.alert(key) else { return };
        if let Err(e) = self.store.delete_alert(key) {
            tracing::error!(error = %e, key, "could not close the alert");
            return;
        }
        let n = self.notice(NoticeKind::Resolved, &a);
        let text = crate::notify::render(&n, "en");
        self.send(&n);
        self.emit("hafen", hafen_core::events::Event::AlertResolved { key: key.into(), message: text.subject });
    }

    /// Repeats open alerts every `remind_every`.
    pub fn remind_tick(&self) {
        let Ok(open) = self.store.alerts() else { return };
        let every = chrono::Duration::from_std(self.cfg.notify.remind_every).unwrap_or(chrono::Duration::hours(4));
        for key in reminders_due(&open, chrono::Utc::now(), every) {
            let Some(mut a) = open.iter().find(|a| a.key == key).cloned() else { continue };
            a.last_notified = hafen_store::now();
            if self.store.put_alert(&a).is_ok() {
                self.send(&self.notice(NoticeKind::Reminder, &a));
            }
        }
    }

    /// Folds one engine event into the healer; wakes the reconciler to act on it.
    pub fn on_engine_event(&self, ev: &hafen_engine::EngineEvent) {
        let key = format!("{}/{}", ev.stack, ev.service);
        match ev.action.as_str() {
            "die" => {
                let reason = match ev.exit_code {
                    Some(137) => "killed (exit code 137)".to_string(),
                    Some(c) => format!("exited with code {c}"),
                    None => "exited".to_string(),
                };
                crate::app::lock(&self.healer).exited(&key, &reason, Instant::now());
                self.kick_reconcile.notify_one();
            }
            "oom" => {
                self.raise(
                    &format!("service_oom:{key}"),
                    "service_oom",
                    Severity::Warning,
                    Some(&ev.stack),
                    &[("stack", ev.stack.clone()), ("service", ev.service.clone())],
                    vec![],
                );
            }
            _ => {}
        }
        self.kick_prober();
    }

    /// Recomputes every deployed stack's combined health; records changes, raises and resolves
    /// the stack's alert and sets the metrics.
    pub async fn update_stack_health(&self) {
        let Ok(records) = self.store.stacks() else { return };
        let Ok(services) = self.engine.list_services(None).await else { return };
        let catalogue = self.catalogue();
        for rec in records.into_iter().filter(|r| r.enabled) {
            let Some(def) = catalogue.stacks.get(&rec.id) else { continue };
            // During an update the stack is down on purpose; the update reports its own outcome.
            if self.updating.contains(&rec.id) || self.store.update_open_for(&rec.id).unwrap_or(false) {
                continue;
            }
            let (states, unhealthy): (Vec<crate::probe::ServiceHealth>, Vec<String>) = {
                let h = crate::app::lock(&self.health);
                let healer = crate::app::lock(&self.healer);
                let mut bad = Vec::new();
                let states = def
                    .order
                    .iter()
                    .map(|svc| {
                        let st = services.iter().find(|s| s.stack == rec.id && &s.service == svc);
                        let key = format!("{}/{svc}", rec.id);
                        let probe = match (st, def.services.get(svc).and_then(|d| d.probe.as_ref())) {
                            (Some(st), Some(_)) => Some(h.get(&st.name).filter(|p| p.container_id == st.id).map(|p| p.health).unwrap_or(crate::probe::Health::Starting)),
                            _ => None,
                        };
                        if probe == Some(crate::probe::Health::Unhealthy) {
                            let err = st.and_then(|st| h.get(&st.name)).and_then(|p| p.last_error.clone()).unwrap_or_default();
                            bad.push(format!("{svc}: {err}"));
                        }
                        let failed = healer.failed(&key);
                        crate::probe::ServiceHealth { running: st.is_some_and(|s| s.running), probe, restart_pending: !failed, crash_looped: failed }
                    })
                    .collect();
                (states, bad)
            };
            let now_state = crate::probe::stack_health(&states);
            let before = crate::app::lock(&self.stack_states).insert(rec.id.clone(), now_state);
            self.metrics.set_stack_health(&rec.id, now_state.word());
            if before == Some(now_state) {
                continue;
            }
            let from = before.map(|b| b.word()).unwrap_or("unknown").to_string();
            self.emit("hafen", hafen_core::events::Event::StackHealthChanged { stack: rec.id.clone(), from, to: now_state.word().into() });
            let key = format!("stack_unhealthy:{}", rec.id);
            match now_state {
                StackHealth::Unhealthy => {
                    let tried = self.tried_for(&rec.id);
                    self.raise(&key, "stack_unhealthy", Severity::Critical, Some(&rec.id), &[("stack", rec.id.clone()), ("services", unhealthy.iter().map(|u| u.split(':').next().unwrap_or("").to_string()).collect::<Vec<_>>().join(", ")), ("detail", unhealthy.join("; "))], tried);
                }
                StackHealth::Healthy => self.resolve(&key),
                _ => {}
            }
        }
    }

    fn tried_for(&self, stack: &str) -> Vec<Step> {
        let healer = crate::app::lock(&self.healer);
        let mut out = Vec::new();
        if let Some(def) = self.catalogue().stacks.get(stack) {
            for svc in &def.order {
                let n = healer.restarts(&format!("{stack}/{svc}"));
                if n > 0 {
                    out.push(step("restarted", &[("service", svc.clone()), ("count", n.to_string())]));
                }
            }
        }
        out
    }
}

/// Worker `engine-watch`: follows the engine's container events; when the stream breaks, marks
/// the engine unreachable, reconnects with backoff (1 s … 30 s) and resyncs everything.
/// Worker `engine-watch`: follows the engine's container events (one long round per connection;
/// after a reconnect a full resync), reconnecting with backoff (1 s doubling to 30 s).
pub struct EngineWatch {
    connected_before: bool,
    /// The wait after the next failed connection attempt.
    delay: Duration,
}

impl Default for EngineWatch {
    fn default() -> Self {
        EngineWatch { connected_before: false, delay: Duration::from_secs(1) }
    }
}

const ENGINE_WATCH: &str = "engine-watch";

#[async_trait::async_trait]
impl Worker for EngineWatch {
    fn name(&self) -> &'static str {
        ENGINE_WATCH
    }
    fn every(&self, _app: &App) -> Line {
        Line::code("on_engine_events", &[])
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        match app.engine.events().await {
            Ok(mut stream) => {
                self.delay = Duration::from_secs(1);
                app.check_engine().await;
                if self.connected_before {
                    // Full resync: every service is looked at again; stopped ones go to the healer.
                    app.kick_reconcile.notify_one();
                    app.kick_prober();
                }
                self.connected_before = true;
                app.workers.set(ENGINE_WATCH, Line::code("on_engine_events", &[]), "ok", Line::code("following_events", &[]));
                let why = loop {
                    match stream.next().await {
                        Some(Ok(ev)) => app.on_engine_event(&ev),
                        Some(Err(e)) => break format!("event stream broke: {e}; reconnecting"),
                        None => break "the engine closed the event stream; reconnecting".to_string(),
                    }
                };
                app.check_engine().await;
                Round { status: Some(Status { state: "error", detail: why.into() }), wait: Duration::from_secs(1) }
            }
            Err(e) => {
                app.check_engine().await;
                let wait = self.delay;
                self.delay = (wait * 2).min(Duration::from_secs(30));
                Round { status: Some(Status { state: "error", detail: format!("{e}; next attempt in {}s", wait.as_secs()).into() }), wait }
            }
        }
    }
}

/// Formats bytes for people (`12.3 GB`).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[i]) }
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Ok => "ok",
        Level::Warning => "warning",
        Level::Critical => "critical",
    }
}

impl App {
    /// Raises (warning or critical) or resolves `key` by a check's level, and records level
    /// changes of the named check as an event.
    fn by_level(&self, check: &str, key: &str, code: &str, level: Level, stack: Option<&str>, pairs: &[(&str, String)], detail: &str) {
        match level {
            Level::Ok => self.resolve(key),
            Level::Warning => self.raise(key, code, Severity::Warning, stack, pairs, vec![]),
            Level::Critical => self.raise(key, code, Severity::Critical, stack, pairs, vec![]),
        }
        let before = crate::app::lock(&self.check_levels).insert(key.to_string(), level);
        let changed = match before {
            Some(b) => b != level,
            None => level != Level::Ok,
        };
        if changed {
            self.emit("hafen", hafen_core::events::Event::HostCheckChanged { check: check.into(), level: level_word(level).into(), detail: detail.into() });
        }
    }

    /// Disk space of Docker's data root and of every local backup target: level, trend and
    /// forecast of days until full.
    pub async fn check_disks(&self) {
        use crate::config::TargetKind;
        let mut disks: Vec<(String, std::path::PathBuf)> = Vec::new();
        if let Ok(Some(root)) = self.engine.data_root().await {
            disks.push(("docker".into(), root));
        }
        for t in &self.cfg.backup_targets {
            if let TargetKind::Local { path, require_mount } = &t.kind {
                if !*require_mount || crate::backup::is_mount_point(path) {
                    disks.push((format!("target:{}", t.name), path.clone()));
                }
            }
        }
        let (warn, crit) = (self.cfg.health.disk_warning, self.cfg.health.disk_critical);
        let mut worst = Level::Ok;
        let mut lines = Vec::new();
        for (what, path) in disks {
            let u = match crate::host::disk_usage(&path) {
                Ok(u) => u,
                Err(e) => {
                    lines.push(format!("{what} ({}): {e}", path.display()));
                    continue;
                }
            };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            let forecast = {
                let mut trends = crate::app::lock(&self.trends);
                let tr = trends.entry(what.clone()).or_insert_with(|| crate::host::Trend::new(24 * 60, 24.0 * 3600.0));
                tr.push(now, u.used);
                tr.forecast_days(u.capacity())
            };
            let level = crate::host::disk_level(&u, warn, crit);
            worst = worst.max(level);
            let pct = if u.total > 0 { u.free as f64 * 100.0 / u.total as f64 } else { 0.0 };
            let fc = forecast.map(|d| format!("{d:.1}")).unwrap_or_else(|| "-".into());
            let line = format!(
                "{what} ({}): {} free of {} ({pct:.1} %){}",
                path.display(),
                human_bytes(u.free),
                human_bytes(u.total),
                forecast.map(|d| format!(", full in about {d:.1} days")).unwrap_or_default()
            );
            self.metrics.set_disk(&what, &path.display().to_string(), u.total, u.free, forecast);
            self.by_level(
                "disk-space",
                &format!("disk_low:{what}"),
                "disk_low",
                level,
                None,
                &[("what", what.clone()), ("path", path.display().to_string()), ("free", human_bytes(u.free)), ("total", human_bytes(u.total)), ("percent", format!("{pct:.1}")), ("forecast", fc)],
                &line,
            );
            lines.push(line);
        }
        self.workers.set("disk-space", every_secs(self), level_word(worst), lines.join("; "));
    }

    /// USB/NAS backup disks that must be mounted.
    pub async fn check_backup_disks(&self) {
        use crate::config::TargetKind;
        let mut lines = Vec::new();
        let mut worst = Level::Ok;
        for t in &self.cfg.backup_targets {
            let TargetKind::Local { path, require_mount: true } = &t.kind else { continue };
            let present = crate::backup::is_mount_point(path);
            let level = if present { Level::Ok } else { Level::Warning };
            worst = worst.max(level);
            let line = format!("{} ({}): {}", t.name, path.display(), if present { "mounted" } else { "NOT MOUNTED" });
            self.by_level("backup-disk", &format!("target_absent:{}", t.name), "target_absent", level, None, &[("target", t.name.clone()), ("path", path.display().to_string())], &line);
            lines.push(line);
        }
        if lines.is_empty() {
            lines.push("no backup target needs a mounted disk".into());
        }
        self.workers.set("backup-disk", every_secs(self), level_word(worst), lines.join("; "));
    }

    /// Memory pressure and OOM kills since the last check.
    pub async fn check_memory(&self, last_ooms: &std::sync::Mutex<Option<u64>>) {
        let every = every_secs(self);
        let m = match crate::host::memory() {
            Ok(m) => m,
            Err(e) => return self.workers.set("memory", every, "error", format!("/proc/meminfo: {e}")),
        };
        let level = crate::host::memory_level(&m);
        let psi = m.psi_some_avg60.map(|p| format!(", pressure {p:.1} %")).unwrap_or_default();
        let line = format!("{} available of {}{psi}", human_bytes(m.available), human_bytes(m.total));
        self.by_level("memory", "memory_pressure", "memory_pressure", level, None, &[("available", human_bytes(m.available)), ("total", human_bytes(m.total)), ("detail", line.clone())], &line);
        let mut detail = line;
        if let Some(now) = crate::host::oom_kills() {
            let before = crate::app::lock(last_ooms).replace(now);
            match before {
                Some(b) if now > b => {
                    self.raise("oom_kill", "oom_kill", Severity::Warning, None, &[("count", (now - b).to_string())], vec![]);
                    detail.push_str(&format!("; {} processes killed for lack of memory since the last check", now - b));
                }
                Some(_) => self.resolve("oom_kill"),
                None => {}
            }
        }
        self.workers.set("memory", every, level_word(level), detail);
    }

    pub async fn check_clock(&self) {
        let every = every_secs(self);
        match crate::host::clock_sync() {
            Ok(c) => {
                let level = if c.synchronised { Level::Ok } else { Level::Warning };
                self.by_level("clock", "clock_unsynced", "clock_unsynced", level, None, &[("detail", c.detail.clone())], &c.detail);
                self.workers.set("clock", every, level_word(level), c.detail);
            }
            Err(e) => self.workers.set("clock", every, "error", e),
        }
    }

    pub async fn check_smart(&self) {
        let every = every_secs(self);
        if !crate::host::smart_available() {
            return self.workers.set("smart", every, "ok", Line::code("smart_missing", &[]));
        }
        let results = tokio::task::spawn_blocking(crate::host::smart).await.unwrap_or_default();
        let mut worst = Level::Ok;
        let mut lines = Vec::new();
        for r in results {
            let level = if r.passed { Level::Ok } else { Level::Critical };
            worst = worst.max(level);
            let line = format!("{}: {}", r.device, r.detail);
            self.by_level("smart", &format!("smart_failed:{}", r.device), "smart_failed", level, None, &[("device", r.device.clone()), ("detail", r.detail.clone())], &line);
            lines.push(line);
        }
        if lines.is_empty() {
            lines.push("smartctl found no disks".into());
        }
        self.workers.set("smart", every, level_word(worst), lines.join("; "));
    }

    /// Age of each deployed stack's last good backup.
    pub async fn check_backup_age(&self) {
        let every = every_secs(self);
        if self.cfg.backup_targets.is_empty() {
            return self.workers.set("backup-age", every, "warning", Line::code("backup_age_no_target", &[]));
        }
        let max = chrono::Duration::from_std(self.cfg.health.backup_max_age).unwrap_or(chrono::Duration::hours(36));
        let now = chrono::Utc::now();
        let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc));
        let mut worst = Level::Ok;
        let mut lines = Vec::new();
        for rec in self.store.stacks().unwrap_or_default().into_iter().filter(|r| r.enabled) {
            let last = self.store.last_event_of("backup_finished", &rec.id).ok().flatten();
            let (age, level) = backup_age_level(last.as_deref().and_then(parse), parse(&rec.updated_at), now, max);
            worst = worst.max(level);
            self.metrics.set_backup_age(&rec.id, age.num_seconds() as f64);
            let hours = format!("{:.1}", age.num_minutes() as f64 / 60.0);
            let line = match &last {
                Some(l) => format!("{}: last good backup {l} ({hours} h ago)", rec.id),
                None => format!("{}: never backed up (deployed {hours} h ago)", rec.id),
            };
            self.by_level("backup-age", &format!("backup_stale:{}", rec.id), "backup_stale", level, Some(&rec.id), &[("stack", rec.id.clone()), ("age", hours), ("last", last.clone().unwrap_or_else(|| "-".into()))], &line);
            lines.push(line);
        }
        self.workers.set("backup-age", every, level_word(worst), lines.join("; "));
    }
}

/// Starts the host checks, each a named worker on `health.host_check_interval`.
/// The host checks, each a named worker on `health.host_check_interval` (SMART hourly at most:
/// it reads the disks themselves). Each check reports its own status.
pub fn host_checks(app: &App) -> Vec<Box<dyn Worker>> {
    let every = app.cfg.health.host_check_interval;
    let ooms = Arc::new(std::sync::Mutex::new(None));
    [
        (HostCheck::DiskSpace, every),
        (HostCheck::BackupDisk, every),
        (HostCheck::Memory(ooms), every),
        (HostCheck::Clock, every),
        (HostCheck::Smart, every.max(Duration::from_secs(3600))),
        (HostCheck::BackupAge, every),
    ]
    .into_iter()
    .map(|(check, every)| Box::new(HostCheckWorker { check, every }) as Box<dyn Worker>)
    .collect()
}

enum HostCheck {
    DiskSpace,
    BackupDisk,
    /// The out-of-memory kill count seen last.
    Memory(Arc<std::sync::Mutex<Option<u64>>>),
    Clock,
    Smart,
    BackupAge,
}

struct HostCheckWorker {
    check: HostCheck,
    every: Duration,
}

#[async_trait::async_trait]
impl Worker for HostCheckWorker {
    fn name(&self) -> &'static str {
        match self.check {
            HostCheck::DiskSpace => "disk-space",
            HostCheck::BackupDisk => "backup-disk",
            HostCheck::Memory(_) => "memory",
            HostCheck::Clock => "clock",
            HostCheck::Smart => "smart",
            HostCheck::BackupAge => "backup-age",
        }
    }
    fn every(&self, app: &App) -> Line {
        // As the checks report it themselves.
        every_secs(app)
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        match &self.check {
            HostCheck::DiskSpace => app.check_disks().await,
            HostCheck::BackupDisk => app.check_backup_disks().await,
            HostCheck::Memory(ooms) => app.check_memory(ooms).await,
            HostCheck::Clock => app.check_clock().await,
            HostCheck::Smart => app.check_smart().await,
            HostCheck::BackupAge => app.check_backup_age().await,
        }
        Round::wait(self.every)
    }
}

/// `every Ns` of the host checks.
fn every_secs(app: &App) -> Line {
    Line::code("every_secs", &[("secs", app.cfg.health.host_check_interval.as_secs().to_string())])
}
