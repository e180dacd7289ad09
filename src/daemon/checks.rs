//! Host checks: disk space with a trend and a days-until-full forecast (Docker's data root,
//! hafen's state directory when it is on another disk, and every local backup target), mounted backup disks, memory pressure and out-of-memory kills,
//! clock synchronisation, SMART, and the age of each stack's last good backup. Each raises or
//! resolves its alert by level and reports its own line for `hafen worker list`; the
//! measurements themselves are `host`'s. Owns the disks' trends and each check's last level.

use crate::alerts::Alerts;
use crate::notify::Severity;
use crate::shared::{lock, Shared};
use crate::worker_status::Line;
use hafen_api::Message;
use hafen_core::alerts::{backup_age_level, Level};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub struct HostChecks {
    shared: Arc<Shared>,
    alerts: Arc<Alerts>,
    /// Used-space samples per disk, for the days-until-full forecast.
    trends: Mutex<BTreeMap<String, crate::host::Trend>>,
    /// The last level of each host check item (alert key), to record changes once.
    check_levels: Mutex<BTreeMap<String, Level>>,
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

impl HostChecks {
    pub fn new(shared: Arc<Shared>, alerts: Arc<Alerts>) -> HostChecks {
        HostChecks { shared, alerts, trends: Mutex::new(BTreeMap::new()), check_levels: Mutex::new(BTreeMap::new()) }
    }

    /// `every Ns` of the host checks.
    pub fn every(&self) -> Line {
        Line::code("every_secs", &[("secs", self.shared.cfg.health.host_check_interval.as_secs().to_string())])
    }

    /// Raises (warning or critical) or resolves `key` by a check's level, and records level
    /// changes of the named check as an event.
    /// Raises or resolves the check's alert by level; a change of level is an event whose line
    /// (`line`, a `host.…` text) front ends render in their reader's language.
    fn by_level(&self, check: &str, key: &str, code: &str, level: Level, stack: Option<&str>, pairs: &[(&str, String)], line: &Message) {
        match level {
            Level::Ok => self.alerts.resolve(key),
            Level::Warning => self.alerts.raise(key, code, Severity::Warning, stack, pairs, vec![]),
            Level::Critical => self.alerts.raise(key, code, Severity::Critical, stack, pairs, vec![]),
        }
        let before = lock(&self.check_levels).insert(key.to_string(), level);
        let changed = match before {
            Some(b) => b != level,
            None => level != Level::Ok,
        };
        if changed {
            let detail = hafen_core::i18n::render("en", line);
            self.alerts.emit("hafen", hafen_core::events::Event::HostCheckChanged { check: check.into(), level: level_word(level).into(), detail, text: Some(line.clone()) });
        }
    }

    /// Disk space of Docker's data root and of every local backup target: level, trend and
    /// forecast of days until full.
    pub async fn check_disks(&self) {
        use crate::config::TargetKind;
        let mut disks: Vec<(String, std::path::PathBuf)> = Vec::new();
        if let Ok(Some(root)) = self.shared.engine.data_root().await {
            disks.push(("docker".into(), root));
        }
        // hafen's own state (the store, keys, secrets): its disk filling up must be told while
        // there is still room to record the alert. Once, when it shares Docker's disk.
        let state = self.shared.cfg.state_dir.clone();
        if !disks.iter().any(|(_, p)| same_filesystem(p, &state)) {
            disks.push(("state".into(), state));
        }
        for t in &self.shared.cfg.backup_targets {
            if let TargetKind::Local { path, require_mount } = &t.kind {
                if !*require_mount || crate::backup::is_mount_point(path) {
                    disks.push((format!("target:{}", t.name), path.clone()));
                }
            }
        }
        let (warn, crit) = (self.shared.cfg.health.disk_warning, self.shared.cfg.health.disk_critical);
        let mut worst = Level::Ok;
        let mut lines = Vec::new();
        for (what, path) in disks {
            let u = match crate::host::disk_usage(&path) {
                Ok(u) => u,
                Err(e) => {
                    lines.push(Message::new("host.disk_error").arg("what", &what).arg("path", path.display()).arg("error", e));
                    continue;
                }
            };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            let forecast = {
                let mut trends = lock(&self.trends);
                let tr = trends.entry(what.clone()).or_insert_with(|| crate::host::Trend::new(24 * 60, 24.0 * 3600.0));
                tr.push(now, u.used);
                tr.forecast_days(u.capacity())
            };
            let level = crate::host::disk_level(&u, warn, crit);
            worst = worst.max(level);
            let pct = if u.total > 0 { u.free as f64 * 100.0 / u.total as f64 } else { 0.0 };
            let fc = forecast.map(|d| format!("{d:.1}")).unwrap_or_else(|| "-".into());
            let line = Message::new(if forecast.is_some() { "host.disk_forecast" } else { "host.disk" })
                .arg("what", &what)
                .arg("path", path.display())
                .arg("free", human_bytes(u.free))
                .arg("total", human_bytes(u.total))
                .arg("percent", format!("{pct:.1}"))
                .arg("days", &fc);
            self.shared.metrics.set_disk(&what, &path.display().to_string(), u.total, u.free, forecast);
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
        self.shared.workers.set("disk-space", self.every(), level_word(worst), Line::Msgs(lines));
    }

    /// USB/NAS backup disks that must be mounted.
    pub async fn check_backup_disks(&self) {
        use crate::config::TargetKind;
        let mut lines = Vec::new();
        let mut worst = Level::Ok;
        for t in &self.shared.cfg.backup_targets {
            let TargetKind::Local { path, require_mount: true } = &t.kind else { continue };
            let present = crate::backup::is_mount_point(path);
            let level = if present { Level::Ok } else { Level::Warning };
            worst = worst.max(level);
            let line = Message::new(if present { "host.backup_disk_mounted" } else { "host.backup_disk_absent" }).arg("target", &t.name).arg("path", path.display());
            self.by_level("backup-disk", &format!("target_absent:{}", t.name), "target_absent", level, None, &[("target", t.name.clone()), ("path", path.display().to_string())], &line);
            lines.push(line);
        }
        if lines.is_empty() {
            lines.push(Message::new("host.backup_disk_none"));
        }
        self.shared.workers.set("backup-disk", self.every(), level_word(worst), Line::Msgs(lines));
    }

    /// Memory pressure and OOM kills since the last check.
    pub async fn check_memory(&self, last_ooms: &std::sync::Mutex<Option<u64>>) {
        let every = self.every();
        let m = match crate::host::memory() {
            Ok(m) => m,
            Err(e) => return self.shared.workers.set("memory", every, "error", format!("/proc/meminfo: {e}")),
        };
        let level = crate::host::memory_level(&m);
        let line = match m.psi_some_avg60 {
            Some(p) => Message::new("host.memory_psi").arg("pressure", format!("{p:.1}")),
            None => Message::new("host.memory"),
        }
        .arg("available", human_bytes(m.available))
        .arg("total", human_bytes(m.total));
        self.by_level("memory", "memory_pressure", "memory_pressure", level, None, &[("available", human_bytes(m.available)), ("total", human_bytes(m.total))], &line);
        let mut detail = vec![line];
        if let Some(now) = crate::host::oom_kills() {
            let before = lock(last_ooms).replace(now);
            match before {
                Some(b) if now > b => {
                    self.alerts.raise("oom_kill", "oom_kill", Severity::Warning, None, &[("count", (now - b).to_string())], vec![]);
                    detail.push(Message::new("host.oom_kills").arg("count", now - b));
                }
                Some(_) => self.alerts.resolve("oom_kill"),
                None => {}
            }
        }
        self.shared.workers.set("memory", every, level_word(level), Line::Msgs(detail));
    }

    pub async fn check_clock(&self) {
        let every = self.every();
        // A jump of the wall clock against the boot clock (an alert of its own).
        self.alerts.look_at_clock();
        match crate::host::clock_sync() {
            Ok(c) => {
                let level = if c.synchronised { Level::Ok } else { Level::Warning };
                // The alert names the kernel's flags and its error bound, words in no language.
                let flags = format!("{}{}max. {} µs", c.why, if c.why.is_empty() { "" } else { ", " }, c.max_error_us);
                self.by_level("clock", "clock_unsynced", "clock_unsynced", level, None, &[("detail", flags)], &c.detail);
                self.shared.workers.set("clock", every, level_word(level), Line::Msg(c.detail));
            }
            Err(e) => self.shared.workers.set("clock", every, "error", e),
        }
    }

    pub async fn check_smart(&self) {
        let every = self.every();
        if !crate::host::smart_available() {
            return self.shared.workers.set("smart", every, "ok", Line::code("smart_missing", &[]));
        }
        let results = tokio::task::spawn_blocking(crate::host::smart).await.unwrap_or_default();
        let mut worst = Level::Ok;
        let mut lines = Vec::new();
        for r in results {
            let level = if r.passed { Level::Ok } else { Level::Critical };
            worst = worst.max(level);
            let line = Message::new("host.smart").arg("device", &r.device).arg("detail", &r.detail);
            self.by_level("smart", &format!("smart_failed:{}", r.device), "smart_failed", level, None, &[("device", r.device.clone()), ("detail", r.detail.clone())], &line);
            lines.push(line);
        }
        if lines.is_empty() {
            lines.push(Message::new("host.smart_none"));
        }
        self.shared.workers.set("smart", every, level_word(worst), Line::Msgs(lines));
    }

    /// Age of each deployed stack's last good backup.
    pub async fn check_backup_age(&self) {
        let every = self.every();
        if self.shared.cfg.backup_targets.is_empty() {
            return self.shared.workers.set("backup-age", every, "warning", Line::code("backup_age_no_target", &[]));
        }
        let max = chrono::Duration::from_std(self.shared.cfg.health.backup_max_age).unwrap_or(chrono::Duration::hours(36));
        let now = chrono::Utc::now();
        let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc));
        let mut worst = Level::Ok;
        let mut lines = Vec::new();
        for rec in self.shared.store.stacks().unwrap_or_default().into_iter().filter(|r| r.enabled) {
            let last = self.shared.store.last_event_of("backup_finished", &rec.id).ok().flatten();
            let (age, level) = backup_age_level(last.as_deref().and_then(parse), parse(&rec.updated_at), now, max);
            worst = worst.max(level);
            self.shared.metrics.set_backup_age(&rec.id, age.num_seconds() as f64);
            let hours = format!("{:.1}", age.num_minutes() as f64 / 60.0);
            let line = match &last {
                Some(l) => Message::new("host.backup_age_last").arg("last", l),
                None => Message::new("host.backup_age_never"),
            }
            .arg("stack", &rec.id)
            .arg("hours", &hours);
            self.by_level("backup-age", &format!("backup_stale:{}", rec.id), "backup_stale", level, Some(&rec.id), &[("stack", rec.id.clone()), ("age", hours), ("last", last.clone().unwrap_or_else(|| "-".into()))], &line);
            lines.push(line);
        }
        self.shared.workers.set("backup-age", every, level_word(worst), Line::Msgs(lines));
    }
}

/// Whether two paths live on one filesystem (the same device); false when either is unreadable.
fn same_filesystem(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    matches!((std::fs::metadata(a), std::fs::metadata(b)), (Ok(x), Ok(y)) if x.dev() == y.dev())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host checks on their own: the shared ports and the alerts service.
    fn checks() -> (tempfile::TempDir, HostChecks) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::Config { state_dir: dir.path().to_path_buf(), ..crate::config::Config::default() };
        let store = hafen_store::Store::open(&cfg.store_path()).unwrap();
        let shared = Arc::new(Shared::new(cfg, store, Arc::new(hafen_engine::fake::FakeEngine::default())));
        let alerts = Arc::new(Alerts::new(shared.clone()));
        (dir, HostChecks::new(shared, alerts))
    }

    fn worker(c: &HostChecks, name: &str) -> hafen_api::WorkerInfo {
        c.shared.workers.list().into_iter().find(|w| w.name == name).unwrap()
    }

    /// Each check reports its lines as codes with arguments (so each reader sees them in their
    /// language) and its English line beside them.
    #[tokio::test]
    async fn checks_report_their_lines_as_codes() {
        let (_dir, c) = checks();
        c.check_memory(&std::sync::Mutex::new(None)).await;
        let m = worker(&c, "memory");
        assert!(m.detail_lines.first().is_some_and(|l| l.code.starts_with("host.memory")) && m.detail.contains("available of"), "{m:?}");
        c.check_backup_disks().await;
        let b = worker(&c, "backup-disk");
        assert_eq!(b.detail_lines.iter().map(|l| l.code.as_str()).collect::<Vec<_>>(), vec!["host.backup_disk_none"]);
        assert_eq!(b.state, "ok");
        c.check_backup_age().await;
        let a = worker(&c, "backup-age");
        assert_eq!((a.state.as_str(), a.detail_text.as_ref().map(|m| m.code.as_str())), ("warning", Some("worker.backup_age_no_target")));
    }
}
