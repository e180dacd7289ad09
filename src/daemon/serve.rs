//! `hafen serve`: opens the state store, connects to the engine, binds the API socket (0660) and
//! runs the named workers under one cancellation token. Shutdown order on SIGTERM/SIGINT: stop
//! taking requests, stop the workers (waiting up to the drain deadline, then naming what still
//! runs), checkpoint the state store, remove the socket.

use crate::app::App;
use crate::config::Config;
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
    let api = {
        let c = cancel.clone();
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::server::serve(listener, app, async move { c.cancelled().await }).await {
                tracing::error!(error = %e, "API server stopped");
            }
        })
    };
    tracker.spawn(reconcile_worker(app.clone(), cancel.clone()));
    tracker.spawn(probe_worker(app.clone(), cancel.clone()));
    tracker.spawn(backup_worker(app.clone(), cancel.clone()));
    tracker.spawn(update_worker(app.clone(), cancel.clone()));
    tracker.spawn(crate::watch::engine_watch(app.clone(), cancel.clone()));
    tracker.spawn(notify_worker(app.clone(), cancel.clone()));
    crate::watch::spawn_host_checks(&app, &tracker, &cancel);
    if let Some(addr) = app.cfg.metrics_listen {
        let (app, cancel) = (app.clone(), cancel.clone());
        tracker.spawn(async move {
            match crate::metrics::bind(addr).await {
                Ok(l) => {
                    app.worker("metrics", "on request", "ok", format!("serving http://{addr}/metrics"));
                    if let Err(e) = crate::metrics::serve_on(l, app.metrics.clone(), cancel).await {
                        app.worker("metrics", "on request", "error", format!("stopped: {e}"));
                    }
                }
                Err(e) => {
                    tracing::error!(%addr, error = %e, "metrics endpoint not available; set metrics_listen to a free address or `off`");
                    app.worker("metrics", "on request", "error", format!("cannot listen on {addr}: {e}; set metrics_listen to a free address or `off`"));
                }
            }
        });
    }
    tracker.close();
    tracing::info!(socket = %app.cfg.socket.display(), "hafen ready");
    cancel.cancelled().await;
    let _ = api.await;
    if tokio::time::timeout(app.cfg.shutdown_deadline, tracker.wait()).await.is_err() {
        tracing::warn!(still_running = tracker.len(), "drain deadline passed; stopping anyway");
    }
    if let Err(e) = app.store.checkpoint() {
        tracing::error!(error = %e, "state store checkpoint failed");
    }
    let _ = std::fs::remove_file(&app.cfg.socket);
    tracing::info!("hafen stopped");
}

/// Worker `reconciler`: brings every enabled stack to its desired state, every interval, and
/// at once when woken (an engine event, a restart the healer wants).
async fn reconcile_worker(app: Arc<App>, cancel: CancellationToken) {
    let every = format!("every {}s and on engine events", app.cfg.reconcile_interval.as_secs());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = app.reconcile_all() => {}
        }
        let (state, detail) = match app.last_reconcile_error() {
            Some(e) => ("error", e),
            None => ("ok", "every enabled stack as desired".to_string()),
        };
        app.worker("reconciler", &every, state, detail);
        let mut wait = app.cfg.reconcile_interval;
        if let Some(due) = crate::app::lock(&app.healer).next_due() {
            wait = wait.min(due.saturating_duration_since(std::time::Instant::now()) + Duration::from_millis(20));
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = app.kick_reconcile.notified() => {}
        }
    }
}

/// Worker `notifier`: delivers the notification outbox and repeats open alerts.
async fn notify_worker(app: Arc<App>, cancel: CancellationToken) {
    let sender = {
        let (app, cancel) = (app.clone(), cancel.clone());
        async move { crate::notify::run_outbox(&app.store, &app.cfg.notify, cancel, &app.notify_wake).await }
    };
    let reminder = {
        let (app, cancel) = (app.clone(), cancel.clone());
        async move {
            loop {
                app.remind_tick();
                let pending = app.store.outbox_pending().unwrap_or(0);
                app.metrics.set_notifications_pending(pending as u64);
                let alerts = app.store.alerts().unwrap_or_default();
                for sev in ["warning", "critical"] {
                    app.metrics.set_alerts_open(sev, alerts.iter().filter(|a| a.severity == sev).count() as u64);
                }
                let open = alerts.len();
                app.worker("notifier", "when something is queued; reminders every minute", if pending > 0 { "warning" } else { "ok" }, format!("{open} open alerts, {pending} notifications waiting"));
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
        }
    };
    tokio::join!(sender, reminder);
}

/// Worker `prober`: runs the stacks' health probes when they are due.
async fn probe_worker(app: Arc<App>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = async {
                app.probe_all().await;
                if app.health_dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    app.update_stack_health().await;
                }
            } => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Worker `backup-scheduler`: runs the nightly backups when due (and once after a missed run),
/// then the rotating read check when it is due.
async fn backup_worker(app: Arc<App>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = async { app.backup_schedule_tick().await; app.backup_check_tick().await } => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Worker `updater`: first finishes what a killed daemon left (an interrupted update is rolled
/// back), then asks the registries on `updates.check_schedule` and acts on each stack's policy.
async fn update_worker(app: Arc<App>, cancel: CancellationToken) {
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = app.update_resume() => {}
    }
    app.worker("updater", &app.cfg.updates.check_schedule, "ok", "waiting for the next check");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = app.update_tick() => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
