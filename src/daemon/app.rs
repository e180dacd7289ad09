//! The service layer the daemon runs: deploy, remove, reconcile and probe, on top of the ports
//! (engine, state store, catalogue on disk, image builder); the backup service is `backup`, the
//! update service `update`, watching and alerts `watch` (each an `impl App` of its own). One operation at a time changes a
//! stack (`op_lock`); the desired state is written to the store *before* anything is applied, so
//! a daemon killed mid-apply converges on restart. Nothing here removes a stack unless asked.

use hafen_api::*;
use crate::catalogue::model::ImageSource;
use crate::catalogue::render::{render, resolve_settings};
use crate::catalogue::{Catalogue, StackDef};
use crate::config::Config;
use hafen_engine::{Engine, EngineError, ServiceState};
use hafen_core::events::Event;
use crate::probe::{Health, ProbeState};
use crate::images::{self, ImageError};
use crate::reconcile::{self, Action, Actual, Applied, Plan};
use hafen_store::{ImagePin, Store, StoreError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{}", rust_i18n::t!("err.app_not_found", id = .id, dir = .dir, available = .available))]
    NotFound { id: String, dir: String, available: String },
    #[error("{}", rust_i18n::t!("err.app_not_deployed", id = .id, deployed = .deployed))]
    NotDeployed { id: String, deployed: String },
    #[error("{}", rust_i18n::t!("err.app_definition", id = .id))]
    Definition { id: String, issues: Vec<String> },
    #[error("{}", rust_i18n::t!("err.app_settings", id = .id))]
    Settings { id: String, errors: Vec<String> },
    /// What the daemon will not do (`err.refused_<code>`), or a refusal that arrives as text
    /// from elsewhere (`err.app_refused` with it as `detail`).
    #[error("{}", hafen_core::i18n::render_error(&rust_i18n::locale(), .0).unwrap_or_else(|| .0.code.clone()))]
    Refused(Message),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
    #[error("{0}")]
    Apply(String),
    /// A backup that failed: its code (`err.run_*`), or its text as `err.app_backup`'s detail.
    #[error("{}", hafen_core::i18n::render_error(&rust_i18n::locale(), .0).unwrap_or_else(|| .0.code.clone()))]
    Backup(Message),
}

/// A refusal with its catalogue code (`err.refused_<code>`) and arguments.
pub(crate) fn refused(code: &str, args: &[(&str, String)]) -> AppError {
    AppError::Refused(Message { code: format!("refused_{code}"), args: crate::notify::args(args) })
}

/// A refusal whose text comes from elsewhere (a registry's answer, another error).
pub(crate) fn refused_text(detail: impl ToString) -> AppError {
    AppError::Refused(Message::new("app_refused").arg("detail", detail.to_string()))
}

impl AppError {
    /// The error as code + arguments (`hafen_api::Message`): what every client renders in its
    /// reader's language. Errors that arrive here as text (`Refused`, `Apply`, `Backup`, `Io`)
    /// carry that text, in the daemon's language, as their `detail`.
    pub fn message(&self) -> Message {
        use Message as M;
        match self {
            AppError::NotFound { id, dir, available } => M::new("app_not_found").arg("id", id).arg("dir", dir).arg("available", available),
            AppError::NotDeployed { id, deployed } => M::new("app_not_deployed").arg("id", id).arg("deployed", deployed),
            AppError::Definition { id, .. } => M::new("app_definition").arg("id", id),
            AppError::Settings { id, .. } => M::new("app_settings").arg("id", id),
            AppError::Refused(m) => m.clone(),
            AppError::Engine(e) => e.message(),
            AppError::Image(e) => e.message(),
            AppError::Store(e) => e.message(),
            AppError::Io { what, detail } => M::new("app_io").arg("what", what).arg("detail", detail),
            AppError::Apply(detail) => M::new("app_apply").arg("detail", detail),
            AppError::Backup(m) => m.clone(),
        }
    }
}

struct EngineStatus {
    reachable: bool,
    detail: String,
    since: String,
}

pub struct App {
    pub cfg: Config,
    pub store: Store,
    pub engine: Arc<dyn Engine>,
    pub(crate) op_lock: tokio::sync::Mutex<()>,
    pub(crate) health: Mutex<BTreeMap<String, ProbeState>>,
    engine_status: Mutex<EngineStatus>,
    last_reconcile: Mutex<(Option<String>, Option<String>)>,
    /// The catalogue as last read, with the newest modification time of its files.
    catalogue: Mutex<(Option<std::time::SystemTime>, Arc<Catalogue>)>,
    /// Stacks whose last reconcile failed: failures in a row, next attempt, last error.
    retry: Mutex<BTreeMap<String, (u32, Instant, String)>>,
    /// Stacks (and hafen's own state) with a backup running now.
    pub(crate) backups: crate::busy::Busy,
    /// The lock of each backup target (`busy::TargetLocks`).
    pub(crate) target_locks: crate::busy::TargetLocks,
    /// When the prober next has something due; `Instant::now()` forces a pass.
    next_probe: Mutex<Instant>,
    /// Test hook: stop the world after the action with this key (see docs/testing.md).
    pause_after: Option<String>,
    /// Test hook: stop the world before this step of an update (see docs/testing.md).
    pub(crate) pause_update: Option<String>,
    /// Stacks with an update running now (from its backup on).
    pub(crate) updating: crate::busy::Busy,
    /// The last throwaway rebuild of each recipe that differed (pending Debian updates).
    pub(crate) rebuilds: Mutex<BTreeMap<String, crate::images::rebuild::Probe>>,
    /// The event bus: the sequence number of each recorded event (`hafen events --follow`).
    pub bus: tokio::sync::broadcast::Sender<i64>,
    /// Restart decisions (backoff, crash loops), per `stack/service`.
    pub(crate) healer: Mutex<hafen_core::heal::Healer>,
    /// Each deployed stack's combined health as last computed.
    pub(crate) stack_states: Mutex<BTreeMap<String, crate::probe::StackHealth>>,
    /// What `hafen worker list` shows.
    pub workers: crate::worker_status::Registry,
    /// Wakes the reconciler early (an engine event, a restart due).
    pub kick_reconcile: tokio::sync::Notify,
    /// Wakes the notification sender (something was queued).
    pub notify_wake: tokio::sync::Notify,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Used-space samples per disk, for the days-until-full forecast.
    pub(crate) trends: Mutex<BTreeMap<String, crate::host::Trend>>,
    /// The last level of each host check item (alert key), to record changes once.
    pub(crate) check_levels: Mutex<BTreeMap<String, crate::host::Level>>,
    /// Something that can change a stack's health happened; the prober recomputes it.
    pub health_dirty: std::sync::atomic::AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    pub fn new(cfg: Config, store: Store, engine: Arc<dyn Engine>) -> App {
        App {
            cfg,
            store,
            engine,
            op_lock: tokio::sync::Mutex::new(()),
            health: Mutex::new(BTreeMap::new()),
            engine_status: Mutex::new(EngineStatus { reachable: false, detail: "not yet checked".into(), since: hafen_store::now() }),
            last_reconcile: Mutex::new((None, None)),
            catalogue: Mutex::new((None, Arc::new(Catalogue::default()))),
            next_probe: Mutex::new(Instant::now()),
            retry: Mutex::new(BTreeMap::new()),
            backups: Default::default(),
            target_locks: Default::default(),
            pause_after: std::env::var("HAFEN_TEST_PAUSE_AFTER").ok().filter(|s| !s.is_empty()),
            pause_update: std::env::var("HAFEN_TEST_PAUSE_UPDATE").ok().filter(|s| !s.is_empty()),
            updating: Default::default(),
            rebuilds: Mutex::new(BTreeMap::new()),
            bus: tokio::sync::broadcast::channel(256).0,
            healer: Mutex::new(hafen_core::heal::Healer::new(0, std::time::Duration::ZERO)),
            stack_states: Mutex::new(BTreeMap::new()),
            workers: Default::default(),
            kick_reconcile: tokio::sync::Notify::new(),
            notify_wake: tokio::sync::Notify::new(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            trends: Mutex::new(BTreeMap::new()),
            check_levels: Mutex::new(BTreeMap::new()),
            health_dirty: std::sync::atomic::AtomicBool::new(true),
        }
        .with_healer()
    }

    /// The healer with the configured limits; services that were crash-looping when hafen
    /// stopped (an open `crash_loop` alert) stay given up.
    fn with_healer(self) -> App {
        let mut h = hafen_core::heal::Healer::new(self.cfg.health.restart_limit, self.cfg.health.restart_window);
        for a in self.store.alerts().unwrap_or_default() {
            if let Some(key) = a.key.strip_prefix("crash_loop:") {
                h.mark_failed(key);
            }
        }
        *lock(&self.healer) = h;
        self
    }

    pub fn emit(&self, actor: &str, ev: Event) {
        let detail = serde_json::to_value(&ev).unwrap_or_default();
        tracing::info!(kind = %ev.kind(), stack = ev.stack().unwrap_or("-"), actor, "{}", ev.message());
        match self.store.record_event(&ev.kind(), ev.stack(), actor, &ev.message(), &detail, &ev.target(), ev.outcome()) {
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
                vec![crate::notify::step("retry_scheduled", &[("when", s(&self.cfg.backup_schedule))])],
            ),
            Event::BackupFinished { stack, .. } => {
                self.resolve(&format!("backup_failed:{stack}"));
                self.resolve(&format!("backup_stale:{stack}"));
            }
            Event::BackupCheckFailed { target, problems, .. } => self.raise(
                &format!("backup_check_failed:{target}"),
                "backup_check_failed",
                Severity::Critical,
                None,
                &[("target", s(target)), ("problems", problems.join("; "))],
                vec![],
            ),
            Event::BackupChecked { target, .. } => self.resolve(&format!("backup_check_failed:{target}")),
            Event::EngineUnreachable { detail } => self.raise(
                "engine_unreachable",
                "engine_unreachable",
                Severity::Critical,
                None,
                &[("endpoint", self.cfg.docker_socket.display().to_string()), ("detail", s(detail))],
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
            Event::ServiceRestarted { stack, service, .. } => self.metrics.inc_restarts(stack, service),
            _ => {}
        }
    }

    /// The stack definitions, re-read only when a file under the stacks directory changed.
    pub fn catalogue(&self) -> Arc<Catalogue> {
        let stamp = newest_mtime(&self.cfg.stacks_dir);
        let mut c = lock(&self.catalogue);
        if c.0.is_none() || c.0 != stamp {
            *c = (stamp, Arc::new(Catalogue::load(&self.cfg.stacks_dir)));
        }
        c.1.clone()
    }

    /// Makes the prober look at every service on its next tick (after changes).
    /// The last reconcile pass's problem, if it had one.
    pub fn last_reconcile_error(&self) -> Option<String> {
        lock(&self.last_reconcile).1.clone()
    }

    pub fn kick_prober(&self) {
        self.health_dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        *lock(&self.next_probe) = Instant::now();
    }

    pub(crate) fn stack_def(&self, id: &str) -> Result<StackDef, AppError> {
        let c = self.catalogue();
        if let Some(s) = c.stacks.get(id) {
            return Ok(s.clone());
        }
        let file = self.cfg.stacks_dir.join(id).join("stack.yaml").display().to_string();
        let issues: Vec<String> = c.issues.iter().filter(|i| i.file == file).map(|i| i.to_string()).collect();
        if !issues.is_empty() {
            return Err(AppError::Definition { id: id.into(), issues });
        }
        Err(AppError::NotFound {
            id: id.into(),
            dir: self.cfg.stacks_dir.display().to_string(),
            available: c.stacks.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The image reference of each service. With `fetch`, missing images are built or pulled and
    /// pinned; without it, only what would happen is listed. A service keeps the image it is
    /// pinned to; only an explicit deploy (`move_builds`) moves a built image to its recipe's
    /// current state (registry images move only with an update).
    async fn resolve_images(&self, stack: &StackDef, fetch: bool, move_builds: bool) -> Result<(BTreeMap<String, String>, Vec<String>), AppError> {
        let pins = self.store.pins(&stack.id)?;
        let mut refs = BTreeMap::new();
        let mut notes = Vec::new();
        let progress = |line: &str| tracing::info!(target: "hafen::images", "{line}");
        for (name, svc) in &stack.services {
            let reference = match &svc.image {
                ImageSource::Build { recipe } => {
                    let pinned = pins.get(name).filter(|p| p.reference.starts_with(&format!("hafen/{recipe}:")));
                    if let (Some(p), false) = (pinned, move_builds) {
                        if self.engine.image_id(&p.reference).await?.is_some() {
                            refs.insert(name.clone(), p.reference.clone());
                            continue;
                        }
                    }
                    let tag = images::tag_for(&self.cfg.images_dir, recipe)?;
                    let present = self.engine.image_id(&tag).await?;
                    if present.is_none() {
                        notes.push(format!("build {tag} from {}/{recipe}", self.cfg.images_dir.display()));
                    }
                    if let Some(p) = pinned.filter(|p| p.reference != tag) {
                        notes.push(format!("{name}: recipe changed, image moves from {} to {tag}", p.reference));
                    }
                    if fetch {
                        images::ensure_recipe(&*self.engine, &self.cfg.images_dir, recipe, &self.cfg.debian_mirror, &self.cfg.build_dir(), &progress).await?;
                        let id = self.engine.image_id(&tag).await?.unwrap_or_default();
                        if pins.get(name).map(|p| (&p.reference, &p.image_id)) != Some((&tag, &id)) {
                            self.store.pin(&ImagePin {
                                stack: stack.id.clone(),
                                service: name.clone(),
                                reference: tag.clone(),
                                image_id: id,
                                digest: None,
                                pinned_at: hafen_store::now(),
                            })?;
                        }
                    }
                    tag
                }
                ImageSource::Registry { name: img, tag, digest } => {
                    let written = svc.image.display();
                    if digest.is_some() {
                        if fetch && self.engine.image_id(&written).await?.is_none() {
                            notes.push(format!("pull {written}"));
                            self.engine.pull_image(&written, self.registry_login(&written)).await?;
                        }
                        written
                    } else {
                        let by_tag = format!("{img}:{}", tag.clone().unwrap_or_default());
                        // The pin wins while it names the same image: an update moves it to
                        // another tag of that image.
                        match pins.get(name).and_then(|p| p.digest.clone().filter(|_| p.reference == by_tag || p.reference.starts_with(&format!("{img}:")))) {
                            Some(d) => {
                                if fetch && self.engine.image_id(&d).await?.is_none() {
                                    notes.push(format!("pull {d}"));
                                    self.engine.pull_image(&d, self.registry_login(&d)).await?;
                                }
                                d
                            }
                            None => {
                                if self.engine.image_id(&by_tag).await?.is_none() {
                                    notes.push(format!("pull {by_tag} and pin its digest"));
                                    if fetch {
                                        self.engine.pull_image(&by_tag, self.registry_login(&by_tag)).await?;
                                    }
                                }
                                match (fetch, self.engine.image_digest(&by_tag).await?) {
                                    (true, Some(d)) => {
                                        self.store.pin(&ImagePin {
                                            stack: stack.id.clone(),
                                            service: name.clone(),
                                            reference: by_tag.clone(),
                                            image_id: self.engine.image_id(&by_tag).await?.unwrap_or_default(),
                                            digest: Some(d.clone()),
                                            pinned_at: hafen_store::now(),
                                        })?;
                                        d
                                    }
                                    _ => by_tag,
                                }
                            }
                        }
                    }
                }
            };
            refs.insert(name.clone(), reference);
        }
        Ok((refs, notes))
    }

    pub(crate) fn settings_for(&self, stack: &StackDef, changes: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AppError> {
        let mut given = self.store.stack(&stack.id)?.map(|r| r.settings).unwrap_or_default();
        // Settings the definition no longer has are dropped rather than refused.
        given.retain(|k, _| stack.settings.contains_key(k));
        given.extend(changes.clone());
        resolve_settings(stack, &given).map_err(|errors| AppError::Settings { id: stack.id.clone(), errors })
    }

    pub(crate) async fn desired(&self, stack: &StackDef, settings: &BTreeMap<String, String>, fetch: bool, move_builds: bool) -> Result<(Plan, Vec<String>), AppError> {
        self.desired_actual(stack, settings, fetch, move_builds).await.map(|(p, n, _)| (p, n))
    }

    /// `desired`, also handing back what the engine has (the healer looks at it).
    async fn desired_actual(&self, stack: &StackDef, settings: &BTreeMap<String, String>, fetch: bool, move_builds: bool) -> Result<(Plan, Vec<String>, Actual), AppError> {
        let (refs, notes) = self.resolve_images(stack, fetch, move_builds).await?;
        if fetch {
            crate::secrets::materialise(stack, &self.cfg.secrets_dir(), &self.cfg.run_dir())
                .map_err(|e| AppError::Io { what: format!("writing the secrets of {}", stack.id), detail: e.to_string() })?;
        }
        let specs = render(stack, settings, &refs, &self.cfg.run_dir()).map_err(|e| AppError::Definition { id: stack.id.clone(), issues: vec![e] })?;
        let actual = Actual::read(&*self.engine, &stack.id).await?;
        let volumes: Vec<String> = stack.volumes.keys().cloned().collect();
        Ok((reconcile::plan_deploy(&stack.id, &volumes, &specs, &actual), notes, actual))
    }

    /// The healer's say over a drift-repair plan: stopped services start only when the healer
    /// allows it (backoff, crash-loop limit) and after the services they depend on; services
    /// that turned unhealthy are stopped here and started by the plan. Returns the plan, the
    /// restarts it makes (service, reason, attempt) and the crash loops found (service, restarts).
    async fn heal_plan(&self, stack: &StackDef, plan: Plan, actual: &Actual) -> (Plan, Vec<(String, String, u32)>, Vec<(String, u32)>) {
        use hafen_core::heal::{Decision, Want};
        let now = Instant::now();
        let mut running: std::collections::BTreeSet<String> = actual.services.iter().filter(|s| s.running).map(|s| s.service.clone()).collect();
        let (mut healed, mut loops, mut actions, mut to_stop) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        {
            let mut h = lock(&self.healer);
            for a in plan.actions {
                let Action::StartService { service, .. } = &a else {
                    actions.push(a);
                    continue;
                };
                let key = format!("{}/{service}", stack.id);
                if h.want(&key).is_none() && !h.failed(&key) {
                    h.exited(&key, "found stopped", now);
                }
                let deps = stack.services.get(service).map(|d| d.depends_on.clone()).unwrap_or_default();
                if !deps.iter().all(|d| running.contains(d)) {
                    continue;
                }
                match h.decide(&key, now) {
                    Decision::Start { attempt, reason } => {
                        healed.push((service.clone(), reason, attempt));
                        running.insert(service.clone());
                        actions.push(a);
                    }
                    Decision::CrashLoop { restarts } => loops.push((service.clone(), restarts)),
                    _ => {}
                }
            }
            let probes = lock(&self.health);
            for st in actual.services.iter().filter(|s| s.running) {
                let key = format!("{}/{}", stack.id, st.service);
                match h.want(&key) {
                    Some(Want::Exited(_)) => h.settle(&key),
                    Some(Want::Unhealthy(_)) => {
                        let still = probes.get(&st.name).is_some_and(|p| p.container_id == st.id && p.health == Health::Unhealthy);
                        if !still {
                            h.settle(&key);
                            continue;
                        }
                        match h.decide(&key, now) {
                            Decision::Start { attempt, reason } => {
                                healed.push((st.service.clone(), reason, attempt));
                                to_stop.push(st.name.clone());
                                actions.push(Action::StartService { stack: stack.id.clone(), service: st.service.clone(), name: st.name.clone() });
                            }
                            Decision::CrashLoop { restarts } => loops.push((st.service.clone(), restarts)),
                            _ => {}
                        }
                    }
                    None => {}
                }
            }
        }
        for name in to_stop {
            if let Err(e) = self.engine.stop_service(&name, std::time::Duration::from_secs(10)).await {
                tracing::warn!(service = %name, error = %e, "could not stop the unhealthy service before restarting it");
            }
        }
        (Plan { stack: plan.stack, actions }, healed, loops)
    }

    pub(crate) async fn apply(&self, plan: &Plan, actor: &str, drift_repair: bool) -> (Vec<Applied>, Result<(), AppError>) {
        let observer = |a: &Action, r: &Result<(), EngineError>| {
            let ev = match r {
                Ok(()) if drift_repair => Some(Event::DriftRepaired { stack: plan.stack.clone(), action: a.key(), description: a.to_string() }),
                Ok(()) => Some(Event::ActionApplied { stack: plan.stack.clone(), action: a.key(), description: a.to_string() }),
                // The reconciler reports its failures once per distinct error (ReconcileFailed).
                Err(_) if drift_repair => None,
                Err(e) => Some(Event::ActionFailed { stack: plan.stack.clone(), action: a.key(), description: a.to_string(), error: e.to_string() }),
            };
            if let Some(ev) = ev {
                self.emit(actor, ev);
            }
            if self.pause_after.as_deref() == Some(a.key().as_str()) {
                let _ = std::fs::write(self.cfg.state_dir.join("paused"), a.key());
                tracing::warn!(action = %a.key(), "test hook HAFEN_TEST_PAUSE_AFTER: pausing for good");
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        };
        let (done, r) = reconcile::apply(&*self.engine, plan, &observer).await;
        self.kick_prober();
        (done, r.map_err(AppError::from))
    }

    /// Deploys or changes a stack. The desired state is stored before anything is applied.
    pub async fn deploy(&self, id: &str, req: &DeployRequest, actor: &str) -> Result<DeployResponse, AppError> {
        let stack = self.stack_def(id)?;
        let settings = self.settings_for(&stack, &req.settings)?;
        if req.dry_run {
            let (plan, images) = self.desired(&stack, &settings, false, true).await?;
            return Ok(DeployResponse { stack: id.into(), dry_run: true, images, plan, applied: vec![] });
        }
        let _g = self.op_lock.lock().await;
        lock(&self.retry).remove(id);
        lock(&self.healer).clear_stack(id);
        for a in self.store.alerts()?.iter().filter(|a| a.code == "crash_loop" && a.stack.as_deref() == Some(id)) {
            self.resolve(&a.key);
        }
        let before = self.store.stack(id)?.map(|r| r.settings).unwrap_or_default();
        let changed: Vec<String> = settings.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
        self.store.put_stack(id, true, &settings, &stack.file_hash)?;
        self.emit(actor, Event::StackDeployRequested { stack: id.into(), settings_changed: changed });
        let (plan, images) = self.desired(&stack, &settings, true, true).await?;
        let (applied, r) = self.apply(&plan, actor, false).await;
        r?;
        Ok(DeployResponse { stack: id.into(), dry_run: false, images, plan, applied })
    }

    /// Removes a stack's services and network; its volumes only with `purge` and confirmation.
    pub async fn remove(&self, id: &str, req: &RemoveRequest, actor: &str) -> Result<RemoveResponse, AppError> {
        if req.purge && req.confirm.as_deref() != Some(id) && !req.dry_run {
            return Err(refused("purge_confirm", &[("id", id.to_string())]));
        }
        let _g = if req.dry_run { None } else { Some(self.op_lock.lock().await) };
        let actual = Actual::read(&*self.engine, id).await?;
        let known = self.store.stack(id)?;
        if known.is_none() && actual.services.is_empty() && actual.volumes.is_empty() && !actual.network {
            return Err(AppError::NotDeployed { id: id.into(), deployed: self.deployed_ids()?.join(", ") });
        }
        let plan = reconcile::plan_remove(id, &actual, req.purge);
        let kept: Vec<String> = if req.purge { vec![] } else { actual.volumes.iter().map(|v| v.name.clone()).collect() };
        if req.dry_run {
            return Ok(RemoveResponse { stack: id.into(), dry_run: true, purge: req.purge, plan, applied: vec![], kept_volumes: kept });
        }
        if let Some(r) = &known {
            // Disable first, so the reconciler does not bring it back while we remove it.
            self.store.put_stack(id, false, &r.settings, &r.definition_hash)?;
        }
        let (applied, r) = self.apply(&plan, actor, false).await;
        r?;
        if req.purge {
            self.store.delete_stack(id)?;
            crate::secrets::purge(&self.cfg.secrets_dir(), &self.cfg.run_dir(), id)
                .map_err(|e| AppError::Io { what: format!("removing the secrets of {id}"), detail: e.to_string() })?;
        }
        lock(&self.health).retain(|k, _| !k.starts_with(&format!("hafen-{id}-")));
        self.emit(actor, Event::StackRemoved { stack: id.into(), purge: req.purge });
        // A removed stack has no health to watch: forget its restarts, state and series, and
        // close its open alerts (each with its resolved message).
        lock(&self.healer).clear_stack(id);
        lock(&self.stack_states).remove(id);
        self.metrics.forget_stack(id);
        for a in self.store.alerts()?.iter().filter(|a| a.stack.as_deref() == Some(id)) {
            self.resolve(&a.key);
        }
        Ok(RemoveResponse { stack: id.into(), dry_run: false, purge: req.purge, plan, applied, kept_volumes: kept })
    }

    fn deployed_ids(&self) -> Result<Vec<String>, AppError> {
        Ok(self.store.stacks()?.into_iter().filter(|s| s.enabled).map(|s| s.id).collect())
    }

    /// Checks the engine and records reachability changes; true when reachable.
    pub async fn check_engine(&self) -> bool {
        let r = self.engine.ping().await;
        let (reachable, detail) = match &r {
            Ok(v) => (true, v.clone()),
            Err(e) => (false, e.to_string()),
        };
        self.metrics.set_engine_up(reachable);
        let changed = {
            let mut s = lock(&self.engine_status);
            let changed = s.reachable != reachable || s.detail == "not yet checked";
            if changed {
                s.since = hafen_store::now();
            }
            s.reachable = reachable;
            s.detail = detail.clone();
            changed
        };
        if changed {
            self.emit("hafen", if reachable { Event::EngineReachable { detail } } else { Event::EngineUnreachable { detail } });
        }
        reachable
    }

    /// One pass over every enabled stack: plan and apply what differs (drift repair).
    pub async fn reconcile_all(&self) {
        if !self.check_engine().await {
            *lock(&self.last_reconcile) = (Some(hafen_store::now()), Some("container engine unreachable".into()));
            return;
        }
        let records = match self.store.stacks() {
            Ok(r) => r,
            Err(e) => {
                *lock(&self.last_reconcile) = (Some(hafen_store::now()), Some(e.to_string()));
                return;
            }
        };
        let catalogue = self.catalogue();
        let mut errors = Vec::new();
        for rec in records.into_iter().filter(|r| r.enabled) {
            let Some(stack) = catalogue.stacks.get(&rec.id) else {
                errors.push(format!("{}: definition missing or invalid; left as it runs", rec.id));
                continue;
            };
            if let Some((n, at, err)) = lock(&self.retry).get(&rec.id) {
                if Instant::now() < *at {
                    errors.push(format!("{}: {err} ({n} failures in a row; next attempt in {}s)", rec.id, at.saturating_duration_since(Instant::now()).as_secs()));
                    continue;
                }
            }
            let _g = self.op_lock.lock().await;
            // A stack in an update (or whose interrupted update is being rolled back) is the
            // update's business.
            if self.store.update_open_for(&rec.id).unwrap_or(false) {
                continue;
            }
            let r = async {
                let settings = self.settings_for(stack, &BTreeMap::new())?;
                let (plan, _, actual) = self.desired_actual(stack, &settings, true, false).await?;
                let (plan, healed, loops) = self.heal_plan(stack, plan, &actual).await;
                for (service, restarts) in loops {
                    let window_secs = self.cfg.health.restart_window.as_secs();
                    self.emit("healer", Event::ServiceCrashLooped { stack: stack.id.clone(), service, restarts, window_secs });
                }
                if !plan.is_empty() {
                    let (done, r) = self.apply(&plan, "reconciler", true).await;
                    for (service, reason, attempt) in healed {
                        let name = hafen_engine::container_name(&stack.id, &service);
                        if done.iter().any(|d| d.ok && d.action == format!("start:{name}")) {
                            lock(&self.health).remove(&name);
                            self.emit("healer", Event::ServiceRestarted { stack: stack.id.clone(), service, reason, attempt });
                        }
                    }
                    r?;
                }
                Ok::<(), AppError>(())
            }
            .await;
            match r {
                Ok(()) => {
                    lock(&self.retry).remove(&rec.id);
                }
                Err(e) => {
                    let msg = e.to_string();
                    errors.push(format!("{}: {msg}", rec.id));
                    let (n, same) = {
                        let mut retry = lock(&self.retry);
                        let entry = retry.entry(rec.id.clone()).or_insert((0, Instant::now(), String::new()));
                        let same = entry.2 == msg;
                        entry.0 += 1;
                        // Back off: 5 s, 10 s, 20 s … at most 5 minutes between attempts.
                        let delay = std::time::Duration::from_secs(5u64.saturating_mul(1 << entry.0.min(6).saturating_sub(1)).min(300));
                        entry.1 = Instant::now() + delay;
                        entry.2 = msg.clone();
                        (entry.0, same)
                    };
                    if !same {
                        self.emit("reconciler", Event::ReconcileFailed { stack: rec.id.clone(), error: format!("{msg} (attempt {n})") });
                    }
                }
            }
        }
        *lock(&self.last_reconcile) = (Some(hafen_store::now()), if errors.is_empty() { None } else { Some(errors.join("; ")) });
    }

    /// Runs the probes that are due and records health transitions.
    pub async fn probe_all(&self) {
        let now = Instant::now();
        if now < *lock(&self.next_probe) {
            return;
        }
        let Ok(services) = self.engine.list_services(None).await else { return };
        let catalogue = self.catalogue();
        // Without probes, look again after a while (new services kick the prober).
        let mut next = now + std::time::Duration::from_secs(30);
        for st in services {
            let Some(def) = catalogue.stacks.get(&st.stack).and_then(|s| s.services.get(&st.service)) else { continue };
            let Some(probe) = &def.probe else { continue };
            let due = {
                let mut h = lock(&self.health);
                let e = h.entry(st.name.clone()).or_insert_with(|| ProbeState::new(&st.id));
                if e.container_id != st.id {
                    *e = ProbeState::new(&st.id);
                }
                e.due(probe, now)
            };
            if !due {
                let h = lock(&self.health);
                if let Some(at) = h.get(&st.name).and_then(|e| e.next_due(probe)) {
                    next = next.min(at);
                }
                continue;
            }
            let result = crate::probe::run(&*self.engine, &st, probe).await;
            match &result {
                Ok(lat) => self.metrics.observe_probe(&st.stack, &st.service, lat.as_secs_f64()),
                Err(_) => self.metrics.inc_probe_failures(&st.stack, &st.service),
            }
            let transition = {
                let mut h = lock(&self.health);
                let e = h.entry(st.name.clone()).or_insert_with(|| ProbeState::new(&st.id));
                let before = e.health;
                e.record(probe, result, Instant::now());
                if let Some(at) = e.next_due(probe) {
                    next = next.min(at);
                }
                (before != e.health).then(|| (before, e.health, e.last_error.clone()))
            };
            if let Some((_, Health::Unhealthy, detail)) = &transition {
                lock(&self.healer).unhealthy(&format!("{}/{}", st.stack, st.service), &format!("unhealthy: {}", detail.clone().unwrap_or_default()), Instant::now());
                self.kick_reconcile.notify_one();
            }
            if let Some((from, to, detail)) = transition {
                self.health_dirty.store(true, std::sync::atomic::Ordering::Relaxed);
                self.emit(
                    "hafen",
                    Event::HealthChanged { stack: st.stack.clone(), service: st.service.clone(), from: health_word(from), to: health_word(to), detail },
                );
            }
        }
        let mut np = lock(&self.next_probe);
        // A kick during this pass (a newer time) wins over the computed schedule.
        if *np <= now {
            *np = next;
        }
    }

    fn service_views(&self, stack: Option<&StackDef>, services: &[ServiceState], settings: &BTreeMap<String, String>) -> Vec<ServiceView> {
        let h = lock(&self.health);
        let mut names: Vec<String> = stack.map(|s| s.order.clone()).unwrap_or_default();
        for s in services {
            if !names.contains(&s.service) {
                names.push(s.service.clone());
            }
        }
        names
            .into_iter()
            .map(|svc| {
                let st = services.iter().find(|s| s.service == svc);
                let def = stack.and_then(|s| s.services.get(&svc));
                let (health, detail) = match (st, def.and_then(|d| d.probe.as_ref())) {
                    (None, _) => ("absent".to_string(), None),
                    (Some(st), _) if !st.running => ("stopped".to_string(), None),
                    (Some(st), Some(_)) => match h.get(&st.name) {
                        Some(p) if p.container_id == st.id => (health_word(p.health), p.last_error.clone()),
                        _ => ("starting".to_string(), None),
                    },
                    (Some(_), None) => (health_word(Health::Unprobed), None),
                };
                ServiceView {
                    container: st.map(|s| s.name.clone()),
                    status: st.map(|s| s.status.clone()).unwrap_or_else(|| "absent".into()),
                    running: st.is_some_and(|s| s.running),
                    health,
                    health_detail: detail,
                    image: st.map(|s| s.observed.image.clone()).unwrap_or_default(),
                    ports: def
                        .map(|d| {
                            d.ports
                                .iter()
                                .map(|p| format!("{}:{}→{}/{}", p.host_ip, crate::catalogue::render::interpolate(&p.host_port, settings), p.container_port, p.protocol))
                                .collect()
                        })
                        .unwrap_or_default(),
                    restarts: st.map(|s| s.restart_count).unwrap_or(0),
                    service: svc,
                }
            })
            .collect()
    }

    fn summary(&self, id: &str, def: Option<&StackDef>, enabled: bool, services: &[ServiceState]) -> StackSummary {
        let stored = self.store.stack(id).ok().flatten().map(|r| r.settings).unwrap_or_default();
        let settings = match def {
            Some(d) => resolve_settings(d, &stored).unwrap_or(stored),
            None => stored,
        };
        let views = self.service_views(def, services, &settings);
        let state = if services.is_empty() {
            "not deployed"
        } else if views.iter().any(|v| v.health == "unhealthy" || v.health == "absent") {
            "unhealthy"
        } else if views.iter().any(|v| v.health == "stopped") {
            "stopped"
        } else if views.iter().any(|v| v.health == "starting") {
            "starting"
        } else {
            "healthy"
        };
        StackSummary {
            id: id.into(),
            name: def.map(|d| d.name.clone()).unwrap_or_else(|| id.into()),
            sphere: def.and_then(|d| d.sphere.clone()),
            enabled,
            state: state.into(),
            health: lock(&self.stack_states).get(id).map(|h| h.word().to_string()),
            services: views,
        }
    }

    pub async fn list(&self) -> Result<Vec<StackSummary>, AppError> {
        let catalogue = self.catalogue();
        let records = self.store.stacks()?;
        let services = self.engine.list_services(None).await.unwrap_or_default();
        let mut ids: Vec<String> = catalogue.stacks.keys().cloned().collect();
        for r in &records {
            if !ids.contains(&r.id) {
                ids.push(r.id.clone());
            }
        }
        Ok(ids
            .iter()
            .map(|id| {
                let mine: Vec<ServiceState> = services.iter().filter(|s| &s.stack == id).cloned().collect();
                let enabled = records.iter().any(|r| &r.id == id && r.enabled);
                self.summary(id, catalogue.stacks.get(id), enabled, &mine)
            })
            .collect())
    }

    pub async fn show(&self, id: &str) -> Result<StackDetail, AppError> {
        let def = self.stack_def(id).ok();
        let rec = self.store.stack(id)?;
        if def.is_none() && rec.is_none() {
            self.stack_def(id)?;
        }
        let services = self.engine.list_services(Some(id)).await?;
        let volumes = self.engine.list_volumes(Some(id)).await?.into_iter().map(|v| v.name).collect();
        Ok(StackDetail {
            summary: self.summary(id, def.as_ref(), rec.as_ref().is_some_and(|r| r.enabled), &services),
            description: def.as_ref().map(|d| d.description.clone()).unwrap_or_default(),
            definition: def.as_ref().map(|d| d.file.clone()).unwrap_or_default(),
            settings: rec.map(|r| r.settings).unwrap_or_default(),
            volumes,
        })
    }

    pub async fn logs(&self, id: &str, service: Option<&str>, tail: usize) -> Result<LogsResponse, AppError> {
        let services = self.engine.list_services(Some(id)).await?;
        if services.is_empty() {
            return Err(AppError::NotDeployed { id: id.into(), deployed: self.deployed_ids()?.join(", ") });
        }
        let mut logs = BTreeMap::new();
        for s in services.iter().filter(|s| service.is_none_or(|x| x == s.service)) {
            logs.insert(s.service.clone(), self.engine.logs(&s.name, tail).await?);
        }
        if logs.is_empty() {
            return Err(refused("no_service", &[("id", id.to_string()), ("service", service.unwrap_or_default().to_string())]));
        }
        Ok(LogsResponse { stack: id.into(), logs })
    }

    pub async fn status(&self) -> Result<StatusResponse, AppError> {
        let records = self.store.stacks()?;
        let all = self.engine.list_services(None).await.unwrap_or_default();
        let mut unmanaged: Vec<String> = all.iter().map(|s| s.stack.clone()).filter(|s| !records.iter().any(|r| &r.id == s)).collect();
        unmanaged.dedup();
        let catalogue = self.catalogue();
        let stacks = records
            .iter()
            .map(|r| {
                let mine: Vec<ServiceState> = all.iter().filter(|s| s.stack == r.id).cloned().collect();
                self.summary(&r.id, catalogue.stacks.get(&r.id), r.enabled, &mine)
            })
            .collect();
        let es = lock(&self.engine_status);
        let lr = lock(&self.last_reconcile).clone();
        Ok(StatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            config_source: self.cfg.source.clone(),
            state_dir: self.cfg.state_dir.display().to_string(),
            stacks_dir: self.cfg.stacks_dir.display().to_string(),
            engine: EngineView { reachable: es.reachable, detail: es.detail.clone(), since: es.since.clone() },
            stacks,
            unmanaged,
            last_reconcile: lr.0,
            last_reconcile_error: lr.1,
            catalogue_issues: catalogue.issues.clone(),
        })
    }

}

fn newest_mtime(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        for p in [e.path(), e.path().join("stack.yaml")] {
            if let Ok(t) = std::fs::metadata(&p).and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

pub fn health_word(h: Health) -> String {
    match h {
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Degraded => "degraded",
        Health::Unhealthy => "unhealthy",
        Health::Unprobed => "running",
    }
    .into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn refusals_are_codes_that_read_as_before_in_english_and_in_german() {
        let e = refused("purge_confirm", &[("id", "tryton".into())]);
        let en = hafen_core::i18n::render_error("en", &e.message()).unwrap();
        assert_eq!(en, "--purge deletes the data volumes of `tryton` for good; confirm by giving the stack id (`hafen stack remove tryton --purge --confirm tryton`)");
        let de = hafen_core::i18n::render_error("de", &e.message()).unwrap();
        assert!(de.starts_with("--purge löscht die Datenvolumes von `tryton`"), "{de}");
        let t = refused_text("registry down");
        assert_eq!((t.message().code.as_str(), hafen_core::i18n::render_error("de", &t.message()).unwrap().as_str()), ("app_refused", "registry down"));
        // A backup's own errors travel as their codes too (seen as shipped: no target configured).
        let b = AppError::from(crate::backup::BackupError::NoTarget);
        assert_eq!(b.message().code, "run_notarget");
        let de = hafen_core::i18n::render_error("de", &b.message()).unwrap();
        assert!(de != hafen_core::i18n::render_error("en", &b.message()).unwrap() && !de.contains("no backup target"), "{de}");
    }

    /// A service layer on the in-memory engine and a fresh state store in a temporary directory
    /// (removed when the returned guard is dropped), for services' and workers' own tests.
    pub(crate) fn app_with_fake_engine() -> (tempfile::TempDir, Arc<App>) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config { state_dir: dir.path().to_path_buf(), socket: dir.path().join("hafen.sock"), ..Config::default() };
        let store = Store::open(&cfg.store_path()).unwrap();
        (dir, Arc::new(App::new(cfg, store, Arc::new(hafen_engine::fake::FakeEngine::default()))))
    }
}
