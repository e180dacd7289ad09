//! Stacks: deploy, remove, reconcile (drift repair) and heal, and what the API shows of them
//! (list, show, logs, status). Owns the restart decisions (the healer, with the core's rules
//! in `hafen_core::heal`), the reconciler's retries and last pass, the engine's reachability,
//! and each stack's combined health with its alert. The desired state is written to the store
//! *before* anything is applied, so a daemon killed mid-apply converges on restart; one
//! operation at a time changes a stack (`Ops::op_lock`). Nothing here removes a stack unless
//! asked.

use crate::alerts::Alerts;
use crate::busy::Ops;
use crate::catalogue::model::{ImageSource, MigrationDef};
use crate::catalogue::render::{render, resolve_settings};
use crate::catalogue::StackDef;
use crate::error::{refused, AppError};
use crate::health::{health_word, Health as HealthService};
use crate::images;
use crate::notify::{step, Severity, Step};
use crate::probe::{Health, StackHealth};
use crate::reconcile::{self, Action, Actual, Applied, Plan};
use crate::shared::{lock, Shared};
use hafen_api::*;
use hafen_core::events::Event;
use hafen_engine::{EngineError, ServiceState};
use hafen_store::ImagePin;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

struct EngineStatus {
    reachable: bool,
    detail: String,
    since: String,
}

/// How long a look at the engine may take before it counts as unresponsive.
pub const ENGINE_PING_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The recipe a built service runs: the one its pin names when the definition allows it for
/// that service (its own `build:` or a version's, `upgrade.versions`), else its own. `None` for
/// a service not built from a recipe.
pub(crate) fn recipe_in_use(stack: &StackDef, service: &str, pins: &BTreeMap<String, ImagePin>) -> Option<String> {
    let ImageSource::Build { recipe: own } = &stack.services.get(service)?.image else { return None };
    let pinned = pins.get(service).and_then(|p| p.reference.strip_prefix("hafen/")?.split_once(':').map(|(r, _)| r.to_string()));
    Some(pinned.filter(|r| stack.recipes_of(service).contains(r)).unwrap_or_else(|| own.clone()))
}

pub struct Stacks {
    shared: Arc<Shared>,
    alerts: Arc<Alerts>,
    health: Arc<HealthService>,
    ops: Arc<Ops>,
    engine_status: Mutex<EngineStatus>,
    /// When the reconciler last passed, and its problem if it had one.
    last_reconcile: Mutex<(Option<String>, Option<String>)>,
    /// Stacks whose last reconcile failed: failures in a row, next attempt, last error.
    retry: Mutex<BTreeMap<String, (u32, Instant, String)>>,
    /// Restart decisions (backoff, crash loops), per `stack/service`.
    healer: Mutex<hafen_core::heal::Healer>,
    /// Each deployed stack's combined health as last computed.
    stack_states: Mutex<BTreeMap<String, StackHealth>>,
    /// Test hook: stop the world after the action with this key (see docs/testing.md).
    pause_after: Option<String>,
    /// Test hook: the first reconcile pass that reaches this stack waits, before it takes the
    /// operation lock, until `<state>/paused-reconcile` is removed (see docs/testing.md).
    pause_reconcile: Mutex<Option<String>>,
}

impl Stacks {
    /// The service with the configured healer's limits; services that were crash-looping when
    /// hafen stopped (an open `crash_loop` alert) stay given up.
    pub fn new(shared: Arc<Shared>, alerts: Arc<Alerts>, health: Arc<HealthService>, ops: Arc<Ops>) -> Stacks {
        let mut healer = hafen_core::heal::Healer::new(shared.cfg.health.restart_limit, shared.cfg.health.restart_window);
        for a in shared.store.alerts().unwrap_or_default() {
            if let Some(key) = a.key.strip_prefix("crash_loop:") {
                healer.mark_failed(key);
            }
        }
        Stacks {
            shared,
            alerts,
            health,
            ops,
            engine_status: Mutex::new(EngineStatus { reachable: false, detail: "not yet checked".into(), since: hafen_store::now() }),
            last_reconcile: Mutex::new((None, None)),
            retry: Mutex::new(BTreeMap::new()),
            healer: Mutex::new(healer),
            stack_states: Mutex::new(BTreeMap::new()),
            pause_after: std::env::var("HAFEN_TEST_PAUSE_AFTER").ok().filter(|s| !s.is_empty()),
            pause_reconcile: Mutex::new(std::env::var("HAFEN_TEST_PAUSE_RECONCILE").ok().filter(|s| !s.is_empty())),
        }
    }

    /// When the healer next wants a restart (the reconciler wakes for it).
    pub fn next_restart_due(&self) -> Option<Instant> {
        lock(&self.healer).next_due()
    }

    /// The last reconcile pass's problem, if it had one.
    pub fn last_reconcile_error(&self) -> Option<String> {
        lock(&self.last_reconcile).1.clone()
    }

    /// The image reference of each service. With `fetch`, missing images are built or pulled and
    /// pinned; without it, only what would happen is listed. A service keeps the image it is
    /// pinned to; only an explicit deploy (`move_builds`) moves a built image to its recipe's
    /// current state (registry images move only with an update).
    async fn resolve_images(&self, stack: &StackDef, fetch: bool, move_builds: bool) -> Result<(BTreeMap<String, String>, Vec<String>), AppError> {
        let pins = self.shared.store.pins(&stack.id)?;
        let mut refs = BTreeMap::new();
        let mut notes = Vec::new();
        let progress = |line: &str| tracing::info!(target: "hafen::images", "{line}");
        for (name, svc) in &stack.services {
            let reference = match &svc.image {
                ImageSource::Build { .. } => {
                    // The recipe it runs: an update may have moved it to another version's.
                    let recipe = &recipe_in_use(stack, name, &pins).unwrap_or_default();
                    let pinned = pins.get(name).filter(|p| p.reference.starts_with(&format!("hafen/{recipe}:")));
                    if let (Some(p), false) = (pinned, move_builds) {
                        if self.shared.engine.image_id(&p.reference).await?.is_some() {
                            refs.insert(name.clone(), p.reference.clone());
                            continue;
                        }
                    }
                    let tag = images::tag_for(&self.shared.cfg.images_dir, recipe)?;
                    let present = self.shared.engine.image_id(&tag).await?;
                    if present.is_none() {
                        notes.push(format!("build {tag} from {}/{recipe}", self.shared.cfg.images_dir.display()));
                    }
                    if let Some(p) = pinned.filter(|p| p.reference != tag) {
                        notes.push(format!("{name}: recipe changed, image moves from {} to {tag}", p.reference));
                    }
                    if fetch {
                        let t0 = Instant::now();
                        images::ensure_recipe(&*self.shared.engine, &self.shared.cfg.images_dir, recipe, &self.shared.cfg.debian_mirror, &self.shared.cfg.build_dir(), &progress).await?;
                        if present.is_none() {
                            self.alerts.emit("hafen", Event::ImageReady { stack: stack.id.clone(), image: tag.clone(), how: "built".into(), seconds: t0.elapsed().as_secs_f64() });
                        }
                        let id = self.shared.engine.image_id(&tag).await?.unwrap_or_default();
                        if pins.get(name).map(|p| (&p.reference, &p.image_id)) != Some((&tag, &id)) {
                            self.shared.store.pin(&ImagePin {
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
                        if fetch && self.shared.engine.image_id(&written).await?.is_none() {
                            notes.push(format!("pull {written}"));
                            let t0 = Instant::now();
                            self.shared.engine.pull_image(&written, self.shared.registry_login(&written)).await?;
                            self.alerts.emit("hafen", Event::ImageReady { stack: stack.id.clone(), image: written.clone(), how: "pulled".into(), seconds: t0.elapsed().as_secs_f64() });
                        }
                        written
                    } else {
                        let by_tag = format!("{img}:{}", tag.clone().unwrap_or_default());
                        // The pin wins while it names the same image: an update moves it to
                        // another tag of that image.
                        match pins.get(name).and_then(|p| p.digest.clone().filter(|_| p.reference == by_tag || p.reference.starts_with(&format!("{img}:")))) {
                            Some(d) => {
                                if fetch && self.shared.engine.image_id(&d).await?.is_none() {
                                    notes.push(format!("pull {d}"));
                                    self.shared.engine.pull_image(&d, self.shared.registry_login(&d)).await?;
                                }
                                d
                            }
                            None => {
                                if self.shared.engine.image_id(&by_tag).await?.is_none() {
                                    notes.push(format!("pull {by_tag} and pin its digest"));
                                    if fetch {
                                        self.shared.engine.pull_image(&by_tag, self.shared.registry_login(&by_tag)).await?;
                                    }
                                }
                                match (fetch, self.shared.engine.image_digest(&by_tag).await?) {
                                    (true, Some(d)) => {
                                        self.shared.store.pin(&ImagePin {
                                            stack: stack.id.clone(),
                                            service: name.clone(),
                                            reference: by_tag.clone(),
                                            image_id: self.shared.engine.image_id(&by_tag).await?.unwrap_or_default(),
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
        let mut given = self.shared.store.stack(&stack.id)?.map(|r| r.settings).unwrap_or_default();
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
            crate::secrets::materialise(stack, &self.shared.cfg.secrets_dir(), &self.shared.cfg.run_dir())
                .map_err(|e| AppError::Io { what: format!("writing the secrets of {}", stack.id), detail: e.to_string() })?;
        }
        let specs = render(stack, settings, &refs, &self.shared.cfg.run_dir()).map_err(|e| AppError::Definition { id: stack.id.clone(), issues: vec![e] })?;
        let actual = Actual::read(&*self.shared.engine, &stack.id).await?;
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
            for (key, reason, at) in self.health.take_unhealthy() {
                h.unhealthy(&key, &reason, at);
            }
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
            let probes = self.health.probes();
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
            if let Err(e) = self.shared.engine.stop_service(&name, std::time::Duration::from_secs(10)).await {
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
                self.alerts.emit(actor, ev);
            }
            if self.pause_after.as_deref() == Some(a.key().as_str()) {
                let _ = std::fs::write(self.shared.cfg.state_dir.join("paused"), a.key());
                tracing::warn!(action = %a.key(), "test hook HAFEN_TEST_PAUSE_AFTER: pausing for good");
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        };
        let (done, r) = reconcile::apply(&*self.shared.engine, plan, &observer).await;
        self.health.kick();
        (done, r.map_err(AppError::from))
    }

    /// Deploys or changes a stack. The desired state is stored before anything is applied.
    pub async fn deploy(&self, id: &str, req: &DeployRequest, actor: &str) -> Result<DeployResponse, AppError> {
        let stack = self.shared.stack_def(id)?;
        let settings = self.settings_for(&stack, &req.settings)?;
        if req.dry_run {
            let (plan, images) = self.desired(&stack, &settings, false, true).await?;
            return Ok(DeployResponse { stack: id.into(), dry_run: true, images, plan, applied: vec![] });
        }
        let _g = self.ops.op_lock.lock().await;
        lock(&self.retry).remove(id);
        lock(&self.healer).clear_stack(id);
        for a in self.shared.store.alerts()?.iter().filter(|a| a.code == "crash_loop" && a.stack.as_deref() == Some(id)) {
            self.alerts.resolve(&a.key);
        }
        let before = self.shared.store.stack(id)?.map(|r| r.settings).unwrap_or_default();
        let changed: Vec<String> = settings.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
        self.shared.store.put_stack(id, true, &settings, &stack.file_hash, Some(&stack.source))?;
        self.alerts.emit(actor, Event::StackDeployRequested { stack: id.into(), settings_changed: changed });
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
        let _g = if req.dry_run { None } else { Some(self.ops.op_lock.lock().await) };
        let actual = Actual::read(&*self.shared.engine, id).await?;
        let known = self.shared.store.stack(id)?;
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
            self.shared.store.put_stack(id, false, &r.settings, &r.definition_hash, None)?;
        }
        let (applied, r) = self.apply(&plan, actor, false).await;
        r?;
        if req.purge {
            self.shared.store.delete_stack(id)?;
            crate::secrets::purge(&self.shared.cfg.secrets_dir(), &self.shared.cfg.run_dir(), id)
                .map_err(|e| AppError::Io { what: format!("removing the secrets of {id}"), detail: e.to_string() })?;
        }
        self.health.forget_stack(id);
        self.alerts.emit(actor, Event::StackRemoved { stack: id.into(), purge: req.purge });
        // A removed stack has no health to watch: forget its restarts, state and series, and
        // close its open alerts (each with its resolved message).
        lock(&self.healer).clear_stack(id);
        lock(&self.stack_states).remove(id);
        self.shared.metrics.forget_stack(id);
        for a in self.shared.store.alerts()?.iter().filter(|a| a.stack.as_deref() == Some(id)) {
            self.alerts.resolve(&a.key);
        }
        Ok(RemoveResponse { stack: id.into(), dry_run: false, purge: req.purge, plan, applied, kept_volumes: kept })
    }

    fn deployed_ids(&self) -> Result<Vec<String>, AppError> {
        Ok(self.shared.store.stacks()?.into_iter().filter(|s| s.enabled).map(|s| s.id).collect())
    }

    /// Checks the engine and records reachability changes; true when reachable. An engine that
    /// does not answer within `ENGINE_PING_LIMIT` (hung, or stopped with SIGSTOP) counts as
    /// unreachable, so no pass waits on it for the client's full request timeout.
    pub async fn check_engine(&self) -> bool {
        let (reachable, detail) = match self.bounded(self.shared.engine.ping()).await {
            Ok(v) => (true, v),
            Err(e) => (false, e.to_string()),
        };
        self.shared.metrics.set_engine_up(reachable);
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
            self.alerts.emit("hafen", if reachable { Event::EngineReachable { detail } } else { Event::EngineUnreachable { detail } });
        }
        reachable
    }

    /// A deployed stack whose file no longer validates keeps running by its recorded definition;
    /// the file's problems (file, line, what) are a warning alert until the file is mended.
    fn tell_definition_issues(&self, id: &str) {
        let key = format!("definition_invalid:{id}");
        let file = self.shared.cfg.stacks_dir.join(id).join("stack.yaml").display().to_string();
        let catalogue = self.shared.catalogue();
        let issues: Vec<String> = catalogue.issues.iter().filter(|i| i.file == file).map(|i| i.to_string()).collect();
        if issues.is_empty() {
            self.alerts.resolve(&key);
            return;
        }
        let pairs = [("stack", id.to_string()), ("file", file), ("issues", issues.join("; "))];
        if self.shared.store.alert(&key).ok().flatten().is_some_and(|a| a.args == crate::notify::args(&pairs)) {
            return;
        }
        self.alerts.raise(&key, "definition_invalid", Severity::Warning, Some(id), &pairs, vec![]);
    }

    /// One pass over every enabled stack: plan and apply what differs (drift repair).
    pub async fn reconcile_all(&self) {
        if !self.check_engine().await {
            *lock(&self.last_reconcile) = (Some(hafen_store::now()), Some("container engine unreachable".into()));
            return;
        }
        let records = match self.shared.store.stacks() {
            Ok(r) => r,
            Err(e) => {
                *lock(&self.last_reconcile) = (Some(hafen_store::now()), Some(e.to_string()));
                return;
            }
        };
        let mut errors = Vec::new();
        for rec in records.into_iter().filter(|r| r.enabled) {
            self.tell_definition_issues(&rec.id);
            if let Some((n, at, err)) = lock(&self.retry).get(&rec.id) {
                if Instant::now() < *at {
                    errors.push(format!("{}: {err} ({n} failures in a row; next attempt in {}s)", rec.id, at.saturating_duration_since(Instant::now()).as_secs()));
                    continue;
                }
            }
            let pause = { lock(&self.pause_reconcile).take_if(|s| *s == rec.id) };
            if pause.is_some() {
                let mark = self.shared.cfg.state_dir.join("paused-reconcile");
                let _ = std::fs::write(&mark, &rec.id);
                tracing::warn!(stack = %rec.id, "test hook HAFEN_TEST_PAUSE_RECONCILE: the pass waits until {} is removed", mark.display());
                while mark.exists() {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
            let _g = self.ops.op_lock.lock().await;
            // The list was read before the lock: a stack removed meanwhile (its remove held the
            // lock) must not be brought back, and what is acted on is the record as it is now.
            let Some(rec) = self.shared.store.stack(&rec.id).ok().flatten().filter(|r| r.enabled) else {
                continue;
            };
            // Drift is repaired by the definition the stack was deployed with, never by a file
            // changed since (that waits for `hafen stack deploy`).
            let Some(stack) = self.shared.deployed(&rec) else {
                errors.push(format!("{}: definition missing or invalid; left as it runs", rec.id));
                continue;
            };
            let stack = &*stack;
            // A stack in an update (or whose interrupted update is being rolled back) is the
            // update's business.
            if self.shared.store.update_open_for(&rec.id).unwrap_or(false) {
                continue;
            }
            let r = async {
                let settings = self.settings_for(stack, &BTreeMap::new())?;
                let (plan, _, actual) = self.desired_actual(stack, &settings, true, false).await?;
                let (plan, healed, loops) = self.heal_plan(stack, plan, &actual).await;
                for (service, restarts) in loops {
                    let window_secs = self.shared.cfg.health.restart_window.as_secs();
                    self.alerts.emit("healer", Event::ServiceCrashLooped { stack: stack.id.clone(), service, restarts, window_secs });
                }
                if !plan.is_empty() {
                    let (done, r) = self.apply(&plan, "reconciler", true).await;
                    for (service, reason, attempt) in healed {
                        let name = hafen_engine::container_name(&stack.id, &service);
                        if done.iter().any(|d| d.ok && d.action == format!("start:{name}")) {
                            self.health.probes().remove(&name);
                            self.alerts.emit("healer", Event::ServiceRestarted { stack: stack.id.clone(), service, reason, attempt });
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
                        self.alerts.emit("reconciler", Event::ReconcileFailed { stack: rec.id.clone(), error: format!("{msg} (attempt {n})") });
                    }
                }
            }
        }
        *lock(&self.last_reconcile) = (Some(hafen_store::now()), if errors.is_empty() { None } else { Some(errors.join("; ")) });
    }

    fn service_views(&self, stack: Option<&StackDef>, services: &[ServiceState], settings: &BTreeMap<String, String>) -> Vec<ServiceView> {
        let pins = stack.and_then(|s| self.shared.store.pins(&s.id).ok()).unwrap_or_default();
        let h = self.health.probes();
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
                    reference: pins.get(&svc).map(|p| p.reference.clone()),
                    digest: pins.get(&svc).and_then(|p| p.digest.clone()),
                    service: svc,
                }
            })
            .collect()
    }

    /// A stack at a glance; `def` is the definition it runs by (recorded) or, when it is not
    /// recorded, the file's.
    fn summary(&self, id: &str, def: Option<&StackDef>, rec: Option<&hafen_store::StackRecord>, services: &[ServiceState]) -> StackSummary {
        let enabled = rec.is_some_and(|r| r.enabled);
        let stored = self.shared.store.stack(id).ok().flatten().map(|r| r.settings).unwrap_or_default();
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
            pending_change: rec.is_some_and(|r| r.enabled && self.shared.pending_change(r)),
        }
    }

    /// An engine call that answers what is seen now, bounded by `ENGINE_PING_LIMIT`: a hung
    /// engine makes a listing fail at once with a clear error instead of holding the API for
    /// the client's full request timeout.
    async fn bounded<T>(&self, call: impl std::future::Future<Output = Result<T, hafen_engine::EngineError>>) -> Result<T, AppError> {
        match tokio::time::timeout(ENGINE_PING_LIMIT, call).await {
            Ok(r) => r.map_err(AppError::from),
            Err(_) => Err(AppError::from(hafen_engine::EngineError::Unreachable {
                endpoint: self.shared.cfg.docker_socket.display().to_string(),
                detail: format!("the engine did not answer within {}s (hung?)", ENGINE_PING_LIMIT.as_secs()),
            })),
        }
    }

    pub async fn list(&self) -> Result<Vec<StackSummary>, AppError> {
        let catalogue = self.shared.catalogue();
        let records = self.shared.store.stacks()?;
        let services = self.bounded(self.shared.engine.list_services(None)).await.unwrap_or_default();
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
                let rec = records.iter().find(|r| &r.id == id);
                let def = rec.and_then(|r| self.shared.deployed(r)).or_else(|| catalogue.stacks.get(id).cloned().map(Arc::new));
                self.summary(id, def.as_deref(), rec, &mine)
            })
            .collect())
    }

    pub async fn show(&self, id: &str) -> Result<StackDetail, AppError> {
        let def = self.shared.deployed_def(id).ok();
        let rec = self.shared.store.stack(id)?;
        if def.is_none() && rec.is_none() {
            self.shared.stack_def(id)?;
        }
        let services = self.bounded(self.shared.engine.list_services(Some(id))).await?;
        let volumes = self.bounded(self.shared.engine.list_volumes(Some(id))).await?.into_iter().map(|v| v.name).collect();
        let summary = self.summary(id, def.as_ref(), rec.as_ref(), &services);
        // A changed file: the plan its deploy would carry out (as `stack deploy --dry-run`).
        let pending_plan = match (summary.pending_change, self.shared.catalogue().stacks.get(id).cloned()) {
            (true, Some(file)) => match self.settings_for(&file, &BTreeMap::new()) {
                Ok(settings) => self.desired(&file, &settings, false, true).await.ok().map(|(p, _)| p),
                Err(_) => None,
            },
            _ => None,
        };
        Ok(StackDetail {
            summary,
            pending_plan,
            description: def.as_ref().map(|d| d.description.clone()).unwrap_or_default(),
            descriptions: def.as_ref().map(|d| d.descriptions.clone()).unwrap_or_default(),
            definition: def.as_ref().map(|d| d.file.clone()).unwrap_or_default(),
            settings: rec.map(|r| r.settings).unwrap_or_default(),
            volumes,
        })
    }

    pub async fn logs(&self, id: &str, service: Option<&str>, tail: usize) -> Result<LogsResponse, AppError> {
        let services = self.shared.engine.list_services(Some(id)).await?;
        if services.is_empty() {
            return Err(AppError::NotDeployed { id: id.into(), deployed: self.deployed_ids()?.join(", ") });
        }
        let mut logs = BTreeMap::new();
        for s in services.iter().filter(|s| service.is_none_or(|x| x == s.service)) {
            logs.insert(s.service.clone(), self.shared.engine.logs(&s.name, tail).await?);
        }
        if logs.is_empty() {
            return Err(refused("no_service", &[("id", id.to_string()), ("service", service.unwrap_or_default().to_string())]));
        }
        Ok(LogsResponse { stack: id.into(), logs })
    }

    pub async fn status(&self) -> Result<StatusResponse, AppError> {
        let records = self.shared.store.stacks()?;
        let all = self.bounded(self.shared.engine.list_services(None)).await.unwrap_or_default();
        let mut unmanaged: Vec<String> = all.iter().map(|s| s.stack.clone()).filter(|s| !records.iter().any(|r| &r.id == s)).collect();
        unmanaged.dedup();
        let catalogue = self.shared.catalogue();
        let stacks = records
            .iter()
            .map(|r| {
                let mine: Vec<ServiceState> = all.iter().filter(|s| s.stack == r.id).cloned().collect();
                self.summary(&r.id, self.shared.deployed(r).as_deref(), Some(r), &mine)
            })
            .collect();
        let es = lock(&self.engine_status);
        let lr = lock(&self.last_reconcile).clone();
        Ok(StatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            config_source: self.shared.cfg.source.clone(),
            state_dir: self.shared.cfg.state_dir.display().to_string(),
            stacks_dir: self.shared.cfg.stacks_dir.display().to_string(),
            engine: EngineView { reachable: es.reachable, detail: es.detail.clone(), since: es.since.clone() },
            stacks,
            unmanaged,
            last_reconcile: lr.0,
            last_reconcile_error: lr.1,
            catalogue_issues: catalogue.issues.clone(),
        })
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
                lock(&self.healer).exited(&key, &reason, Instant::now());
                self.shared.wake_reconciler.notify_one();
            }
            "oom" => {
                self.alerts.raise(
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
        self.health.kick();
    }

    /// Recomputes every deployed stack's combined health; records changes, raises and resolves
    /// the stack's alert and sets the metrics.
    pub async fn update_stack_health(&self) {
        let Ok(records) = self.shared.store.stacks() else { return };
        let Ok(services) = self.shared.engine.list_services(None).await else { return };
        for rec in records.into_iter().filter(|r| r.enabled) {
            let Some(def) = self.shared.deployed(&rec) else { continue };
            // During an update the stack is down on purpose; the update reports its own outcome.
            if self.ops.updating.contains(&rec.id) || self.shared.store.update_open_for(&rec.id).unwrap_or(false) {
                continue;
            }
            let (states, unhealthy): (Vec<crate::probe::ServiceHealth>, Vec<String>) = {
                let h = self.health.probes();
                let healer = lock(&self.healer);
                let mut bad = Vec::new();
                let states = def
                    .order
                    .iter()
                    .map(|svc| {
                        let st = services.iter().find(|s| s.stack == rec.id && &s.service == svc);
                        let key = format!("{}/{svc}", rec.id);
                        let probe = match (st, def.services.get(svc).and_then(|d| d.probe.as_ref())) {
                            (Some(st), Some(_)) => Some(h.get(&st.name).filter(|p| p.container_id == st.id).map(|p| p.health).unwrap_or(Health::Starting)),
                            _ => None,
                        };
                        if probe == Some(Health::Unhealthy) {
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
            let before = lock(&self.stack_states).insert(rec.id.clone(), now_state);
            self.shared.metrics.set_stack_health(&rec.id, now_state.word());
            if before == Some(now_state) {
                continue;
            }
            let from = before.map(|b| b.word()).unwrap_or("unknown").to_string();
            self.alerts.emit("hafen", hafen_core::events::Event::StackHealthChanged { stack: rec.id.clone(), from, to: now_state.word().into() });
            let key = format!("stack_unhealthy:{}", rec.id);
            match now_state {
                StackHealth::Unhealthy => {
                    let tried = self.tried_for(&rec.id);
                    self.alerts.raise(&key, "stack_unhealthy", Severity::Critical, Some(&rec.id), &[("stack", rec.id.clone()), ("services", unhealthy.iter().map(|u| u.split(':').next().unwrap_or("").to_string()).collect::<Vec<_>>().join(", ")), ("detail", unhealthy.join("; "))], tried);
                }
                StackHealth::Healthy => self.alerts.resolve(&key),
                _ => {}
            }
        }
    }

    fn tried_for(&self, stack: &str) -> Vec<Step> {
        let healer = lock(&self.healer);
        let mut out = Vec::new();
        if let Some(def) = self.shared.store.stack(stack).ok().flatten().and_then(|r| self.shared.deployed(&r)) {
            for svc in &def.order {
                let n = healer.restarts(&format!("{stack}/{svc}"));
                if n > 0 {
                    out.push(step("restarted", &[("service", svc.clone()), ("count", n.to_string())]));
                }
            }
        }
        out
    }

    /// Removes the stack's containers (volumes and network stay).
    pub(crate) async fn stop_services(&self, id: &str, actor: &str) -> Result<(), AppError> {
        let actual = Actual::read(&*self.shared.engine, id).await?;
        let mut stop = reconcile::plan_remove(id, &actual, false);
        stop.actions.retain(|a| matches!(a, Action::RemoveService { .. }));
        let (_, r) = self.apply(&stop, actor, false).await;
        r
    }

    /// Creates and starts only `services` of the stack.
    pub(crate) async fn start_only(&self, stack: &StackDef, settings: &BTreeMap<String, String>, services: &[String], actor: &str) -> Result<(), AppError> {
        let (mut plan, _) = self.desired(stack, settings, true, false).await?;
        plan.actions.retain(|a| match a {
            Action::CreateService { spec } | Action::RecreateService { spec, .. } => services.contains(&spec.service),
            Action::StartService { service, .. } => services.contains(service),
            _ => true,
        });
        let (_, r) = self.apply(&plan, actor, false).await;
        r
    }

    /// Runs one migration: in its service's container when that runs already (a database
    /// started first for the migrations of the services on it), else in a one-off container of
    /// the service's new image (mounts, secrets and hardening as the service; no ports). Err:
    /// the reason, a line break, the output's last lines.
    pub(crate) async fn run_migration(&self, stack: &StackDef, settings: &BTreeMap<String, String>, m: &MigrationDef) -> Result<String, String> {
        let limit = stack.upgrade.health_deadline.max(std::time::Duration::from_secs(3600));
        let running = self.shared.engine.list_services(Some(&stack.id)).await.map_err(|e| e.to_string())?.into_iter().any(|s| s.service == m.service && s.running);
        if running {
            let out = self.shared.engine.exec(&hafen_engine::container_name(&stack.id, &m.service), &m.command, limit).await.map_err(|e| e.to_string())?;
            return if out.exit_code == 0 {
                Ok(format!("`{}` in the running {} finished", m.command.join(" "), m.service))
            } else {
                Err(format!("the migration `{}` in {} exited with {}\n{}", m.command.join(" "), m.service, out.exit_code, last_lines(&format!("{}{}", out.stdout, out.stderr), 20)))
            };
        }
        let (plan, _) = self.desired(stack, settings, true, false).await.map_err(|e| e.to_string())?;
        let spec = plan
            .actions
            .iter()
            .find_map(|a| match a {
                Action::CreateService { spec } | Action::RecreateService { spec, .. } if spec.service == m.service => Some(spec.clone()),
                _ => None,
            });
        // The service's container is gone (the stack was stopped by removing its containers);
        // a container still there would be a leftover: the migration needs a fresh one.
        let Some(mut spec) = spec else { return Err(format!("`{}` still has a container; the migration runs only on a stopped stack", m.service)) };
        spec.service = format!("{}-migrate", m.service);
        spec.command = Some(m.command.clone());
        let out = self.shared.engine.run_once(&spec, limit).await.map_err(|e| e.to_string())?;
        let tail = last_lines(&format!("{}{}", out.stdout, out.stderr), 20);
        if out.exit_code == 0 {
            Ok(format!("`{}` in {} finished", m.command.join(" "), m.service))
        } else {
            Err(format!("the migration `{}` in {} exited with {}\n{tail}", m.command.join(" "), m.service, out.exit_code))
        }
    }
}

/// The last `n` lines of `s` (a failed command's output, for its report).
pub(crate) fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Alerts;
    use crate::health::Health as HealthService;
    use hafen_engine::fake::FakeEngine;
    use hafen_engine::Engine as _;

    const WEB: &str = "version: 1\nid: web\nservices:\n  app:\n    image: \"docker.io/library/nginx:1.27\"\n    user: \"101:101\"\n    mem_limit: 64m\n    pids_limit: 32\nvolumes:\n  data:\n    kind: data\n";

    /// The stacks service on its own: only the shared ports (a fresh store, the in-memory
    /// engine, a stacks directory with one stack), alerts and health below it.
    fn stacks() -> (tempfile::TempDir, Arc<FakeEngine>, Stacks) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("stacks/web")).unwrap();
        std::fs::write(dir.path().join("stacks/web/stack.yaml"), WEB).unwrap();
        let cfg = crate::config::Config { state_dir: dir.path().to_path_buf(), stacks_dir: dir.path().join("stacks"), ..crate::config::Config::default() };
        let store = hafen_store::Store::open(&cfg.store_path()).unwrap();
        let engine = Arc::new(FakeEngine::default());
        let shared = Arc::new(Shared::new(cfg, store, engine.clone()));
        let alerts = Arc::new(Alerts::new(shared.clone()));
        let health = Arc::new(HealthService::new(shared.clone(), alerts.clone()));
        (dir, engine, Stacks::new(shared, alerts, health, Arc::new(Ops::default())))
    }

    #[tokio::test]
    async fn a_deploy_stores_the_desired_state_first_and_a_remove_keeps_the_data() {
        let (_dir, engine, s) = stacks();
        let r = s.deploy("web", &DeployRequest::default(), "test").await.unwrap();
        assert!(!r.applied.is_empty(), "{r:?}");
        assert!(s.shared.store.stack("web").unwrap().is_some_and(|rec| rec.enabled), "the desired state is in the store");
        assert_eq!(engine.list_services(Some("web")).await.unwrap().len(), 1);
        // A second deploy has nothing to do.
        assert!(s.deploy("web", &DeployRequest::default(), "test").await.unwrap().applied.is_empty());
        // Remove without purge: the service goes, the volume stays; the store says disabled.
        s.remove("web", &RemoveRequest::default(), "test").await.unwrap();
        assert!(engine.list_services(Some("web")).await.unwrap().is_empty());
        assert_eq!(engine.list_volumes(Some("web")).await.unwrap().len(), 1, "data kept");
        assert!(s.shared.store.stack("web").unwrap().is_none_or(|rec| !rec.enabled));
        // Purge needs the id as confirmation; refused without it, nothing changed.
        let refused = s.remove("web", &RemoveRequest { purge: true, ..Default::default() }, "test").await.unwrap_err();
        assert_eq!(refused.message().code, "refused_purge_confirm");
        assert_eq!(engine.list_volumes(Some("web")).await.unwrap().len(), 1);
    }

    /// The reconciler reads the enabled stacks before it takes the operation lock; a stack
    /// removed while it waited for the lock is not brought back (found as a flaky e2e test).
    #[tokio::test]
    async fn a_stack_removed_while_the_reconciler_waits_is_not_brought_back() {
        let (_dir, engine, s) = stacks();
        let s = Arc::new(s);
        s.deploy("web", &DeployRequest::default(), "test").await.unwrap();
        let held = s.ops.op_lock.lock().await;
        let pass = tokio::spawn({
            let s = s.clone();
            async move { s.reconcile_all().await }
        });
        // The pass has read the list (web enabled) and now waits for the lock; meanwhile the
        // stack is removed as `remove` does it, under the lock.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        s.shared.store.put_stack("web", false, &BTreeMap::new(), "", None).unwrap();
        for svc in engine.list_services(Some("web")).await.unwrap() {
            engine.remove_service(&svc.name).await.unwrap();
        }
        drop(held);
        pass.await.unwrap();
        assert!(engine.list_services(Some("web")).await.unwrap().is_empty(), "{:?}", engine.calls());
    }

    #[tokio::test]
    async fn an_unknown_stack_is_refused_with_its_code() {
        let (_dir, engine, s) = stacks();
        let e = s.deploy("nosuch", &DeployRequest::default(), "test").await.unwrap_err();
        assert_eq!(e.message().code, "app_not_found");
        assert!(engine.calls().iter().all(|c| !c.starts_with("create")), "{:?}", engine.calls());
    }
}
