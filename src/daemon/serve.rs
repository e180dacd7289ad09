//! `hafen serve`: opens the state store, connects to the engine, binds the API socket (0660) and
//! runs the named workers under one cancellation token. Shutdown order on SIGTERM/SIGINT: stop
//! taking requests, stop the workers (waiting up to the drain deadline, then naming what still
//! runs), checkpoint the state store, remove the socket.

use crate::app::App;
use crate::config::Config;
use crate::worker::Line;
use crate::worker::{Round, Status, Worker};
use async_trait::async_trait;
use hafen_engine::docker::DockerEngine;
use hafen_engine::Engine;
use hafen_store::Store;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] hafen_store::StoreError),
    #[error("{}", rust_i18n::t!("err.serve_prepare", path = .path, detail = .detail))]
    Prepare { path: String, detail: String },
    #[error("{}", rust_i18n::t!("err.serve_running", _0 = .0))]
    AlreadyRunning(String),
    #[error("{}", rust_i18n::t!("err.serve_bind", path = .path, detail = .detail))]
    Bind { path: String, detail: String },
    #[error("{}", rust_i18n::t!("err.serve_noengine", _0 = .0))]
    NoEngine(String),
    #[error("{}", rust_i18n::t!("err.serve_locked", path = .0))]
    StateLocked(String),
}

/// One daemon per state directory: an exclusive lock on `<state_dir>/hafen.lock`, held for the
/// process's life (the kernel lets it go when the process ends, also on `kill -9`). A second
/// `hafen serve` on the same state — another socket, another config file — stops here, before
/// it opens the store.
fn lock_state(state_dir: &Path) -> Result<std::fs::File, ServeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join("hafen.lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path).map_err(|e| ServeError::Prepare { path: path.display().to_string(), detail: e.to_string() })?;
    // (A lock file an older hafen made readable is tightened too.)
    let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::StateLocked(state_dir.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(ServeError::Prepare { path: path.display().to_string(), detail: e.to_string() }),
    }
}

fn prepare_dir(p: &Path, mode: u32) -> Result<(), ServeError> {
    let err = |e: std::io::Error| ServeError::Prepare { path: p.display().to_string(), detail: e.to_string() };
    std::fs::create_dir_all(p).map_err(err)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(err)
}

/// Binds the socket; a stale socket file is replaced, a live daemon is not.
pub async fn bind_socket(path: &Path, group: Option<&str>) -> Result<tokio::net::UnixListener, ServeError> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            prepare_dir(dir, 0o755)?;
        }
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::AlreadyRunning(path.display().to_string()));
        }
        let _ = std::fs::remove_file(path);
    }
    let bind_err = |e: std::io::Error| ServeError::Bind { path: path.display().to_string(), detail: e.to_string() };
    let l = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    if let Some(g) = group {
        let gid = group_id(g).ok_or_else(|| ServeError::Bind { path: path.display().to_string(), detail: format!("no group `{g}` on this system") })?;
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(bind_err)?;
    }
    Ok(l)
}

fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name)).then(|| f.get(2)?.parse().ok()).flatten()
    })
}

async fn connect_engine(cfg: &Config, cancel: &CancellationToken) -> Result<DockerEngine, ServeError> {
    let sock = cfg.docker_socket.display().to_string();
    let secret_root = cfg.run_dir().display().to_string();
    let mut delay = Duration::from_secs(1);
    loop {
        match DockerEngine::connect(&sock, &secret_root).await {
            Ok(e) => return Ok(e),
            Err(e) => tracing::error!(error = %e, "container engine not reachable yet; retrying in {}s", delay.as_secs()),
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(ServeError::NoEngine(sock)),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn serve(cfg: Config) -> Result<(), ServeError> {
    let cancel = CancellationToken::new();
    {
        let c = cancel.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
            }
            c.cancel();
        });
    }
    prepare_dir(&cfg.state_dir, 0o700)?;
    let _lock = lock_state(&cfg.state_dir)?;
    // The store is opened before anything else: a damaged store stops hafen before it acts.
    let store = Store::open(&cfg.store_path())?;
    tracing::info!(config = %cfg.source, state = %cfg.state_dir.display(), stacks = %cfg.stacks_dir.display(), "hafen {} starting", env!("CARGO_PKG_VERSION"));
    let listener = bind_socket(&cfg.socket, cfg.socket_group.as_deref()).await?;
    let engine: Arc<dyn Engine> = Arc::new(connect_engine(&cfg, &cancel).await?);
    let app = Arc::new(App::new(cfg.clone(), store, engine));
    run(app, listener, cancel).await;
    Ok(())
}

/// The daemon body, separated so tests can run it with their own listener and token.
pub async fn run(app: Arc<App>, listener: tokio::net::UnixListener, cancel: CancellationToken) {
    let tracker = TaskTracker::new();
    // Before the API answers and before any worker: an in-place restore that a kill left
    // half-done is rolled back first.
    app.backups.recover_interrupted_restores().await;
    app.backups.end_interrupted_quiesces().await;
    let api = {
        let c = cancel.clone();
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::server::serve(listener, app, async move { c.cancelled().await }).await {
                tracing::error!(error = %e, "API server stopped");
            }
        })
    };
    // The outbox sender runs beside the notifier worker: its own loop, woken when a notice is
    // queued (notify::run_outbox), so delivery never waits for the notifier's round.
    {
        let (app, cancel) = (app.clone(), cancel.clone());
        tracker.spawn(async move { crate::notify::run_outbox(&app.shared.store, &app.shared.cfg.notify, cancel, &app.alerts.notify_wake).await });
    }
    for w in workers(&app) {
        crate::worker::spawn(&tracker, &app, &cancel, w);
    }
    tracker.close();
    tracing::info!(socket = %app.shared.cfg.socket.display(), "hafen ready");
    cancel.cancelled().await;
    let _ = api.await;
    if tokio::time::timeout(app.shared.cfg.shutdown_deadline, tracker.wait()).await.is_err() {
        tracing::warn!(still_running = tracker.len(), "drain deadline passed; stopping anyway");
    }
    if let Err(e) = app.shared.store.checkpoint() {
        tracing::error!(error = %e, "state store checkpoint failed");
    }
    let _ = std::fs::remove_file(&app.shared.cfg.socket);
    tracing::info!("hafen stopped");
}

/// Every named worker of the daemon, in the order `hafen worker list` shows them first.
pub fn workers(app: &App) -> Vec<Box<dyn Worker>> {
    let mut w: Vec<Box<dyn Worker>> = vec![
        Box::new(Reconciler),
        Box::new(Prober),
        Box::new(BackupScheduler),
        Box::new(Updater { resumed: false }),
        Box::new(crate::watch::EngineWatch::default()),
        Box::new(Notifier),
        Box::new(AuditCheck),
    ];
    w.extend(crate::watch::host_checks(app));
    if app.shared.cfg.metrics_listen.is_some() {
        w.push(Box::new(Metrics));
    }
    w
}

/// Worker `reconciler`: brings every enabled stack to its desired state, every interval, and
/// at once when woken (an engine event, a restart the healer wants).
struct Reconciler;

#[async_trait]
impl Worker for Reconciler {
    fn name(&self) -> &'static str {
        "reconciler"
    }
    fn every(&self, app: &App) -> Line {
        Line::code("every_secs_and_events", &[("secs", app.shared.cfg.reconcile_interval.as_secs().to_string())])
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        app.stacks.reconcile_all().await;
        let status = match app.stacks.last_reconcile_error() {
            Some(e) => Status { state: "error", detail: e.into() },
            None => Status { state: "ok", detail: Line::code("all_as_desired", &[]) },
        };
        let mut wait = app.shared.cfg.reconcile_interval;
        if let Some(due) = app.stacks.next_restart_due() {
            wait = wait.min(due.saturating_duration_since(std::time::Instant::now()) + Duration::from_millis(20));
        }
        Round { status: Some(status), wait }
    }
    fn wakes_on<'a>(&self, app: &'a App) -> Option<&'a tokio::sync::Notify> {
        Some(&app.shared.wake_reconciler)
    }
}

/// Worker `notifier`: repeats open alerts when they are due and keeps the outbox's numbers.
struct Notifier;

#[async_trait]
impl Worker for Notifier {
    fn name(&self) -> &'static str {
        "notifier"
    }
    fn every(&self, _app: &App) -> Line {
        Line::code("notifier_every", &[])
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        app.alerts.remind_tick();
        let pending = app.shared.store.outbox_pending().unwrap_or(0);
        app.shared.metrics.set_notifications_pending(pending as u64);
        let alerts = app.shared.store.alerts().unwrap_or_default();
        for sev in ["warning", "critical"] {
            app.shared.metrics.set_alerts_open(sev, alerts.iter().filter(|a| a.severity == sev).count() as u64);
        }
        let open = alerts.len();
        let status = Status { state: if pending > 0 { "warning" } else { "ok" }, detail: Line::code("notifier_detail", &[("open", open.to_string()), ("pending", pending.to_string())]) };
        Round { status: Some(status), wait: Duration::from_secs(30) }
    }
}

/// Worker `audit-check`: walks the audit log's hash chain at start and then daily; a break is a
/// critical alert naming the first bad record (`Alerts::check_audit`).
struct AuditCheck;

#[async_trait]
impl Worker for AuditCheck {
    fn name(&self) -> &'static str {
        "audit-check"
    }
    fn every(&self, _app: &App) -> Line {
        Line::code("audit_every", &[])
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        let status = match app.alerts.check_audit() {
            Ok((_, Ok(n))) => Status { state: "ok", detail: Line::code("audit_intact", &[("count", n.to_string())]) },
            Ok((_, Err(b))) => Status { state: "critical", detail: Line::code("audit_broken", &[("seq", b.seq.to_string())]) },
            Err(e) => Status { state: "error", detail: Line::Msg(e.message()) },
        };
        Round { status: Some(status), wait: Duration::from_secs(24 * 3600) }
    }
}

/// Worker `prober`: runs the stacks' health probes when they are due.
struct Prober;

#[async_trait]
impl Worker for Prober {
    fn name(&self) -> &'static str {
        "prober"
    }
    fn every(&self, _app: &App) -> Line {
        Line::code("each_probe", &[])
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        app.health.probe_all().await;
        if app.health.dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
            app.stacks.update_stack_health().await;
        }
        Round { status: Some(Status { state: "ok", detail: Line::code("probes_when_due", &[]) }), wait: Duration::from_secs(1) }
    }
}

/// Worker `backup-scheduler`: runs the nightly backups when due (and once after a missed run),
/// then the rotating read check when it is due.
struct BackupScheduler;

#[async_trait]
impl Worker for BackupScheduler {
    fn name(&self) -> &'static str {
        "backup-scheduler"
    }
    fn every(&self, app: &App) -> Line {
        app.shared.cfg.backup_schedule.clone().into()
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        app.backups.backup_schedule_tick().await;
        app.backups.backup_check_tick().await;
        let detail = if app.shared.cfg.backup_targets.is_empty() { "no_target" } else { "next_run" };
        Round { status: Some(Status { state: "ok", detail: Line::code(detail, &[]) }), wait: Duration::from_secs(2) }
    }
}

/// Worker `updater`: first finishes what a killed daemon left (an interrupted update is rolled
/// back), then asks the registries on `updates.check_schedule` and acts on each stack's policy.
struct Updater {
    resumed: bool,
}

#[async_trait]
impl Worker for Updater {
    fn name(&self) -> &'static str {
        "updater"
    }
    fn every(&self, app: &App) -> Line {
        app.shared.cfg.updates.check_schedule.clone().into()
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        if !self.resumed {
            app.updates.update_resume().await;
            self.resumed = true;
            return Round { status: Some(Status { state: "ok", detail: Line::code("next_check", &[]) }), wait: Duration::ZERO };
        }
        // The tick reports its own outcome (`Updates::update_tick`).
        app.updates.update_tick().await;
        Round::wait(Duration::from_secs(5))
    }
}

/// Worker `metrics`: the Prometheus endpoint on loopback (one long round: it serves until the
/// daemon stops; a port in use is reported and tried again a minute later).
struct Metrics;

#[async_trait]
impl Worker for Metrics {
    fn name(&self) -> &'static str {
        "metrics"
    }
    fn every(&self, _app: &App) -> Line {
        Line::code("on_request", &[])
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        let Some(addr) = app.shared.cfg.metrics_listen else { return Round::wait(Duration::from_secs(3600)) };
        let detail = match crate::metrics::bind(addr).await {
            Ok(l) => {
                app.shared.workers.set("metrics", Line::code("on_request", &[]), "ok", Line::code("serving", &[("url", format!("http://{addr}/metrics"))]));
                match crate::metrics::serve_on(l, app.shared.metrics.clone(), CancellationToken::new()).await {
                    Ok(()) => "stopped".to_string(),
                    Err(e) => format!("stopped: {e}"),
                }
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "metrics endpoint not available; set metrics_listen to a free address or `off`");
                format!("cannot listen on {addr}: {e}; set metrics_listen to a free address or `off`")
            }
        };
        Round { status: Some(Status { state: "error", detail: detail.into() }), wait: Duration::from_secs(60) }
    }
}
