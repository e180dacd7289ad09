//! The update transaction on the daemon, hop by hop: a fresh backup of the stack (abort if it
//! fails) → pull the new images (abort if the registry fails; nothing has changed yet) → stop
//! the stack → switch the image pins → move the data when a database changes major version
//! (the backup's dump into a fresh database of the new version) → run the migrations → start →
//! wait for the probes within the stack's deadline → commit. Any failure from the stop on rolls
//! back: the old pins, the pre-update snapshot's data, the probes, one notification. The step is
//! written to the store before it is taken; a daemon killed mid-update rolls back at start
//! (`resume`). Also owns `check` (what the registries offer), `plan`, `rollback` of the last
//! committed hop, and the scheduled tick that applies automatic updates in their window.

use super::registry::{ImageRef, Registry};
use hafen_core::version::{candidates, decide, hop_change, plan_path, recipe_hop_change, recipe_version, Decision, HopChange, Policy, Version};
use hafen_api::{BackupRunRequest, RestoreRequest};
use crate::alerts::Alerts;
use crate::backup::Backups;
use crate::busy::Ops;
use crate::error::AppError;
use crate::health::Health;
use crate::shared::{lock, Shared};
use crate::stacks::{last_lines, recipe_in_use, Stacks};
use std::sync::{Arc, Mutex};
use crate::catalogue::model::{ImageSource, MigrationDef};
use crate::catalogue::StackDef;
use hafen_core::events::Event;
use hafen_store::{ImagePin, UpdateRecord};
use std::collections::BTreeMap;
use std::time::Instant;

pub use hafen_api::StackCheck;

pub use hafen_api::HopView;

pub use hafen_api::PlanView;

pub use hafen_api::ApplyReport;

/// A step failed: its name, the reason and the last lines of what it printed.
struct StepError {
    step: String,
    error: String,
    log: String,
}

fn fail(step: &str, error: impl ToString) -> StepError {
    StepError { step: step.into(), error: error.to_string(), log: String::new() }
}

const ACTOR_TICK: &str = "updater";

/// The version name of a rebuild of the same version (Debian security fixes).
pub const REBUILD: &str = "rebuild";

/// The stack's services built from recipes (service → recipe).
fn built_services(stack: &StackDef) -> Vec<(String, String)> {
    stack
        .services
        .iter()
        .filter_map(|(n, s)| match &s.image {
            ImageSource::Build { recipe } => Some((n.clone(), recipe.clone())),
            _ => None,
        })
        .collect()
}

/// The update service: check, plan, apply (hop by hop, each a transaction), roll back, pins,
/// the automatic tick and the rebuild check. It takes the pre-update backup and the data move
/// from the backup service and the stack's stop, plan and start from the stacks service.
/// The step a rollback that an admin asked for is recorded under (`hafen update rollback`).
const ROLLBACK_REQUESTED: &str = "rollback requested";

pub struct Updates {
    shared: Arc<Shared>,
    alerts: Arc<Alerts>,
    health: Arc<Health>,
    stacks: Arc<Stacks>,
    backups: Arc<Backups>,
    ops: Arc<Ops>,
    /// The last throwaway rebuild of each recipe that differed (pending Debian updates).
    rebuilds: Mutex<BTreeMap<String, crate::images::rebuild::Probe>>,
    /// Test hook: stop the world before this step of an update (see docs/testing.md).
    pause_update: Option<String>,
}

impl Updates {
    pub fn new(shared: Arc<Shared>, alerts: Arc<Alerts>, health: Arc<Health>, stacks: Arc<Stacks>, backups: Arc<Backups>, ops: Arc<Ops>) -> Updates {
        Updates {
            shared,
            alerts,
            health,
            stacks,
            backups,
            ops,
            rebuilds: Mutex::new(BTreeMap::new()),
            pause_update: std::env::var("HAFEN_TEST_PAUSE_UPDATE").ok().filter(|s| !s.is_empty()),
        }
    }

    fn tracked<'a>(&self, stack: &'a StackDef) -> Result<&'a str, AppError> {
        stack
            .upgrade
            .track
            .as_deref()
            .ok_or_else(|| crate::error::refused("update_no_track", &[("id", stack.id.clone())]))
    }

    /// The image each registry service runs now, by tag (the pin an update moved, else the
    /// definition's).
    fn current_refs(&self, stack: &StackDef) -> Result<BTreeMap<String, String>, AppError> {
        let pins = self.shared.store.pins(&stack.id)?;
        let mut out = BTreeMap::new();
        for (name, svc) in &stack.services {
            if let ImageSource::Registry { name: img, tag: Some(tag), digest: None } = &svc.image {
                let written = format!("{img}:{tag}");
                let r = pins.get(name).map(|p| p.reference.clone()).filter(|r| r.starts_with(&format!("{img}:"))).unwrap_or(written);
                out.insert(name.clone(), r);
            }
        }
        Ok(out)
    }

    /// Each built service's recipe as it runs now and its image (the pin's, else the recipe's
    /// current build).
    fn current_recipes(&self, stack: &StackDef) -> Result<BTreeMap<String, (String, String)>, AppError> {
        let pins = self.shared.store.pins(&stack.id)?;
        let mut out = BTreeMap::new();
        for name in stack.services.keys() {
            let Some(recipe) = recipe_in_use(stack, name, &pins) else { continue };
            let reference = match pins.get(name).filter(|p| p.reference.starts_with(&format!("hafen/{recipe}:"))) {
                Some(p) => p.reference.clone(),
                None => crate::images::tag_for(&self.shared.cfg.images_dir, &recipe)?,
            };
            out.insert(name.clone(), (recipe, reference));
        }
        Ok(out)
    }

    /// For a stack in versions of its recipes: the version it runs, every version it has, and
    /// whether a rebuild of the same version is pending (Debian's packages moved on).
    fn versions_view(&self, stack: &StackDef) -> Result<(Version, Vec<String>, bool), AppError> {
        let running: BTreeMap<String, String> = self.current_recipes(stack)?.into_iter().map(|(s, (r, _))| (s, r)).collect();
        let current = recipe_version(&stack.upgrade, &running).ok_or_else(|| {
            let text = running.iter().map(|(s, r)| format!("{s}: {r}")).collect::<Vec<_>>().join(", ");
            crate::error::refused("recipes_no_version", &[("id", stack.id.clone()), ("recipes", text)])
        })?;
        let tags = stack.upgrade.versions.keys().cloned().collect();
        let rebuild = !self.pending_rebuilds(stack)?.is_empty();
        Ok((current, tags, rebuild))
    }

    /// The definition the stack was deployed with (a changed file waits for its deploy).
    fn deployed_def(&self, id: &str) -> Result<StackDef, AppError> {
        let Some(rec) = self.shared.store.stack(id)? else {
            self.shared.catalogue().stacks.get(id).ok_or_else(|| crate::error::refused("update_no_definition", &[("id", id.to_string())]))?;
            return Err(crate::error::refused("update_not_deployed", &[("id", id.to_string())]));
        };
        self.shared.deployed(&rec).map(|d| (*d).clone()).ok_or_else(|| crate::error::refused("update_no_definition", &[("id", id.to_string())]))
    }

    fn policy_of(&self, id: &str) -> Result<Policy, AppError> {
        let p = self.shared.cfg.updates.policy(id);
        let stack = self.deployed_def(id)?;
        let pin = self.shared.store.version_pin(id)?.and_then(|v| Version::parse(&v));
        Ok(Policy { mode: p.mode, channel: stack.upgrade.channel, window: p.window.clone(), pin, security_automatic: p.security_automatic })
    }

    /// Current version, tags of the tracked image, and whether the running tag moved to a new
    /// digest.
    async fn registry_view(&self, stack: &StackDef) -> Result<(Version, Vec<String>, bool), AppError> {
        let track = self.tracked(stack)?;
        let refs = self.current_refs(stack)?;
        let cur_ref = refs.get(track).cloned().unwrap_or_default();
        let r = ImageRef::parse(&cur_ref).ok_or_else(|| crate::error::refused("not_image_ref", &[("value", cur_ref.clone())]))?;
        let cur_tag = r.tag.clone().unwrap_or_default();
        let current = Version::parse(&cur_tag).ok_or_else(|| crate::error::refused("tag_not_version", &[("tag", cur_tag.clone()), ("id", stack.id.clone())]))?;
        let reg = Registry::new(&self.shared.cfg.registries);
        let tags = reg.tags(&r).await.map_err(crate::error::refused_text)?;
        let pinned_digest = self.shared.store.pins(&stack.id)?.get(track).and_then(|p| p.digest.clone());
        let rebuild = match (pinned_digest, tags.contains(&cur_tag)) {
            (Some(d), true) => {
                let now = reg.digest(&r, &cur_tag).await.map_err(crate::error::refused_text)?;
                !d.ends_with(&now)
            }
            _ => false,
        };
        Ok((current, tags, rebuild))
    }

    /// `hafen update check`: what each deployed, registry-tracked stack could move to.
    pub async fn update_check(&self, only: Option<&str>) -> Result<Vec<StackCheck>, AppError> {
        let ids: Vec<String> = match only {
            Some(id) => vec![id.to_string()],
            None => self
                .shared
                .store
                .stacks()?
                .into_iter()
                .filter(|s| s.enabled && self.shared.deployed(s).is_some_and(|d| d.upgrade.track.is_some() || !built_services(&d).is_empty()))
                .map(|s| s.id)
                .collect(),
        };
        let mut out = Vec::new();
        for id in ids {
            let stack = self.deployed_def(&id)?;
            let policy = self.policy_of(&id)?;
            let pinned = policy.pin.as_ref().map(|v| v.tag.clone());
            let versioned = !stack.upgrade.versions.is_empty();
            if stack.upgrade.track.is_none() && !versioned {
                // Built from Debian's packages: what the last throwaway rebuild found.
                let changes = self.pending_rebuilds(&stack)?.into_iter().flat_map(|(svc, p)| p.changes.iter().map(|c| format!("{svc}: {c}")).collect::<Vec<_>>()).collect::<Vec<_>>();
                let rebuild = !changes.is_empty();
                let zero = Version::parse("0").expect("version");
                let d = decide(&zero, &[], rebuild, &policy, &stack.upgrade, chrono::Utc::now());
                out.push(StackCheck { missing: vec![], stack: id, current: "built".into(), available: vec![], path: vec![], rebuild, pinned, decision: serde_json::to_value(d).unwrap_or_default(), error: None, changes });
                continue;
            }
            let (current_tag, view) = if versioned {
                ("?".to_string(), self.versions_view(&stack))
            } else {
                (self.current_refs(&stack)?.get(self.tracked(&stack)?).and_then(|r| ImageRef::parse(r)).and_then(|r| r.tag).unwrap_or_default(), self.registry_view(&stack).await)
            };
            match view {
                Ok((current, tags, rebuild)) => {
                    let mut avail = candidates(&current, &tags, policy.channel);
                    if let Some(p) = &policy.pin {
                        avail.retain(|v| v <= p);
                    }
                    let (path, error) = match avail.last() {
                        None => (vec![], None),
                        Some(t) => match plan_path(&current, t, &avail, &stack.upgrade) {
                            Ok(p) => (p.into_iter().map(|v| v.tag).collect(), None),
                            Err(e) => (vec![], Some(e.to_string())),
                        },
                    };
                    let d = decide(&current, &tags, rebuild, &policy, &stack.upgrade, chrono::Utc::now());
                    out.push(StackCheck { missing: vec![], stack: id, current: current.tag, available: avail.into_iter().map(|v| v.tag).collect(), path, rebuild, pinned, decision: serde_json::to_value(d).unwrap_or_default(), error, changes: vec![] });
                }
                Err(e) => out.push(StackCheck { missing: vec![], stack: id, current: current_tag, available: vec![], path: vec![], rebuild: false, pinned, decision: serde_json::Value::Null, error: Some(e.to_string()), changes: vec![] }),
            }
        }
        // Said up front: what an update that is due would lack.
        for c in out.iter_mut().filter(|c| c.error.is_none() && (!c.path.is_empty() || c.rebuild)) {
            c.missing = self.missing(&c.stack);
        }
        Ok(out)
    }

    /// The hops to `target` (default: the newest the channel and pin allow), what each does,
    /// and what the box lacks for them (`missing`).
    pub async fn update_plan(&self, id: &str, target: Option<&str>) -> Result<PlanView, AppError> {
        let mut plan = self.plan_hops(id, target).await?;
        if !plan.hops.is_empty() {
            plan.missing = self.missing(id);
        }
        Ok(plan)
    }

    async fn plan_hops(&self, id: &str, target: Option<&str>) -> Result<PlanView, AppError> {
        let stack = self.deployed_def(id)?;
        // Built from its recipes in versions (`upgrade.versions`): a newer version is a hop like a
        // registry's; without one, a rebuild of the same version is what there is to do.
        let versioned = !stack.upgrade.versions.is_empty();
        let newer = versioned && target.is_none() && {
            let (current, tags, _) = self.versions_view(&stack)?;
            !candidates(&current, &tags, self.policy_of(id)?.channel).is_empty()
        };
        if stack.upgrade.track.is_none() && !(versioned && (target.is_some() || newer)) {
            if let Some(t) = target {
                return Err(crate::error::refused("update_debian_built", &[("id", id.to_string()), ("to", t.to_string())]));
            }
            let pending = self.pending_rebuilds(&stack)?;
            if pending.is_empty() {
                return Ok(PlanView { missing: vec![], stack: id.into(), current: "built".into(), target: "built".into(), hops: vec![] });
            }
            let images = pending.iter().map(|(svc, p)| (svc.clone(), (p.current.clone(), p.fresh.clone()))).collect();
            let change = HopChange { version: REBUILD.into(), images, database_moves: vec![], migrations: vec![] };
            let from = Version::parse("0").expect("version");
            let mut hop = hop_view(&from, &change);
            hop.from = "built".into();
            hop.steps[1] = "pull (the rebuilt images are here already)".into();
            return Ok(PlanView { missing: vec![], stack: id.into(), current: "built".into(), target: REBUILD.into(), hops: vec![hop] });
        }
        let policy = self.policy_of(id)?;
        let (current, tags, rebuild) = if versioned { self.versions_view(&stack)? } else { self.registry_view(&stack).await? };
        let mut avail = candidates(&current, &tags, if target.is_some() { crate::catalogue::model::Channel::Major } else { policy.channel });
        let target = match target {
            Some(t) => {
                let v = Version::parse(t).ok_or_else(|| crate::error::refused("not_version", &[("value", t.to_string())]))?;
                if v != current && !tags.contains(&v.tag) {
                    if versioned {
                        return Err(crate::error::refused("no_such_version", &[("id", id.to_string()), ("version", t.to_string()), ("versions", tags.join(", "))]));
                    }
                    return Err(crate::error::refused("no_such_tag", &[("id", id.to_string()), ("tag", t.to_string())]));
                }
                if let Some(p) = &policy.pin {
                    if &v > p {
                        return Err(crate::error::refused("update_pinned", &[("id", id.to_string()), ("pin", p.to_string()), ("to", t.to_string())]));
                    }
                }
                v
            }
            None => {
                if let Some(p) = &policy.pin {
                    avail.retain(|v| v <= p);
                }
                match avail.last() {
                    Some(v) => v.clone(),
                    None if rebuild => current.clone(),
                    None => return Ok(PlanView { missing: vec![], stack: id.into(), current: current.tag.clone(), target: current.tag.clone(), hops: vec![] }),
                }
            }
        };
        let path = if target == current { vec![current.clone()] } else { plan_path(&current, &target, &avail, &stack.upgrade).map_err(|e| crate::error::refused_text(format!("{id}: {e}")))? };
        let mut refs = self.current_refs(&stack)?;
        let mut recipes = if versioned { self.current_recipes(&stack)? } else { BTreeMap::new() };
        let images_dir = self.shared.cfg.images_dir.clone();
        let image_of = |recipe: &str| crate::images::tag_for(&images_dir, recipe).ok();
        let mut from = current.clone();
        let mut hops = Vec::new();
        for to in path {
            let change = if versioned { recipe_hop_change(&stack.upgrade, &recipes, &image_of, &from, &to) } else { hop_change(&stack.upgrade, &refs, &from, &to) };
            for (svc, (_, new)) in &change.images {
                refs.insert(svc.clone(), new.clone());
                if let Some(r) = stack.upgrade.versions.get(&to.tag).and_then(|m| m.get(svc)) {
                    recipes.insert(svc.clone(), (r.clone(), new.clone()));
                }
            }
            hops.push(hop_view(&from, &change));
            from = to;
        }
        Ok(PlanView { missing: vec![], stack: id.into(), current: current.tag, target: target.tag, hops })
    }

    /// `hafen update apply`: runs the plan hop by hop; stops at the first hop that fails (it is
    /// rolled back; earlier hops stay).
    pub async fn update_apply(&self, id: &str, target: Option<&str>, actor: &str) -> Result<ApplyReport, AppError> {
        let plan = self.update_plan(id, target).await?;
        if plan.hops.is_empty() {
            return Ok(ApplyReport { stack: id.into(), hops: vec![], version: plan.current, error: None });
        }
        self.preconditions(id)?;
        let running = if self.shared.store.update_open_for(id)? { None } else { self.ops.updating.mark(id) };
        let Some(running) = running else {
            return Err(crate::error::refused("update_running", &[("id", id.to_string())]));
        };
        let mut report = ApplyReport { stack: id.into(), hops: vec![], version: plan.current.clone(), error: None };
        for hop in &plan.hops {
            let r = self.run_hop(id, hop, actor).await;
            match r {
                Ok(rec) => {
                    let ok = rec.state == "committed";
                    if ok {
                        report.version = rec.to_version.clone();
                    } else {
                        report.error = rec.error.clone();
                    }
                    report.hops.push(rec);
                    if !ok {
                        break;
                    }
                }
                Err(e) => {
                    report.error = Some(e.to_string());
                    break;
                }
            }
        }
        drop(running);
        Ok(report)
    }

    /// What every update needs before it begins, checked before anything changes: a backup
    /// target (the hop backs up first) and a recovery recipient (without one no backup is
    /// made). Each missing one is refused with what to do.
    fn preconditions(&self, id: &str) -> Result<(), AppError> {
        match self.missing(id).into_iter().next() {
            Some(m) => Err(AppError::Refused(m)),
            None => Ok(()),
        }
    }

    /// Each precondition the box lacks, as the refusal `update apply` gives for it.
    fn missing(&self, id: &str) -> Vec<hafen_api::Message> {
        let mut out = Vec::new();
        let refusal = |code: &str| hafen_api::Message::new(&format!("refused_{code}")).arg("id", id);
        if self.shared.cfg.backup_targets.is_empty() {
            out.push(refusal("update_no_target"));
        }
        let has_key = hafen_backup::keys::Keyring::open(&self.shared.cfg.keys_dir()).and_then(|k| k.has_recovery()).unwrap_or(false);
        if !has_key {
            out.push(refusal("update_no_key"));
        }
        out
    }

    /// Test hook (`HAFEN_TEST_PAUSE_UPDATE=<step>`): stop the world before that step, so a test
    /// can kill the daemon exactly there.
    async fn update_pause(&self, step: &str) {
        if self.pause_update.as_deref() == Some(step) {
            tracing::warn!(step, "test hook: update paused before step {step}");
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    }

    async fn update_step(&self, id: i64, stack: &str, step: &str, detail: String, actor: &str) {
        self.update_pause(step).await;
        if let Err(e) = self.shared.store.update_step(id, step, "running") {
            tracing::error!(error = %e, "could not record the update step");
        }
        self.alerts.emit(actor, Event::UpdateStep { stack: stack.into(), id, step: step.into(), detail });
    }

    async fn run_hop(&self, id: &str, hop: &HopView, actor: &str) -> Result<UpdateRecord, AppError> {
        let stack = self.deployed_def(id)?;
        let target = self.shared.cfg.backup_targets.first().map(|t| t.name.clone()).ok_or_else(|| {
            crate::error::refused("update_no_target", &[("id", id.to_string())])
        })?;
        let old_pins = self.shared.store.pins(id)?;
        let new_refs: BTreeMap<String, String> = hop.images.iter().map(|(s, (_, n))| (s.clone(), n.clone())).collect();
        // 1. A fresh backup; nothing is recorded as begun before it exists.
        self.update_pause("backup").await;
        let b = self.backups.backup_run(&BackupRunRequest { stack: id.into(), target: Some(target.clone()), host: false }, actor).await;
        let snapshot = match b {
            Ok(r) if r.error.is_none() && r.snapshot.is_some() => r.snapshot.map(|s| s.id).unwrap_or_default(),
            Ok(r) => return Err(self.abort_early(id, hop, "backup", r.error.unwrap_or_else(|| "no snapshot".into()), actor)),
            Err(e) => return Err(self.abort_early(id, hop, "backup", e.to_string(), actor)),
        };
        let uid = self.shared.store.update_begin(&hafen_store::NewHop { stack: id, from: &hop.from, to: &hop.to, target: &target, old_pins: &old_pins, new_refs: &new_refs, actor })?;
        self.shared.store.update_snapshot(uid, &snapshot)?;
        self.alerts.emit(actor, Event::UpdateStarted { stack: id.into(), from: hop.from.clone(), to: hop.to.clone(), id: uid });
        // 2. Pull (nothing has changed yet: a failure aborts).
        self.update_step(uid, id, "pull", new_refs.values().cloned().collect::<Vec<_>>().join(", "), actor).await;
        let mut new_pins = old_pins.clone();
        for (svc, r) in &new_refs {
            let pulled = async {
                if hop.to == REBUILD {
                    let image_id = self.shared.engine.image_id(r).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("the rebuilt image {r} is gone; run `hafen update check --rebuild` again"))?;
                    return Ok(ImagePin { stack: id.into(), service: svc.clone(), reference: r.clone(), image_id, digest: None, pinned_at: hafen_store::now() });
                }
                // A version built from a recipe: built here (before anything stops), no registry.
                let recipe = stack.upgrade.versions.get(&hop.to).and_then(|m| m.get(svc)).filter(|_| matches!(stack.services.get(svc).map(|s| &s.image), Some(ImageSource::Build { .. })));
                if let Some(recipe) = recipe {
                    let t0 = Instant::now();
                    let present = self.shared.engine.image_id(r).await.map_err(|e| e.to_string())?.is_some();
                    let progress = |line: &str| tracing::info!(target: "hafen::images", "{line}");
                    let tag = crate::images::ensure_recipe(&*self.shared.engine, &self.shared.cfg.images_dir, recipe, &self.shared.cfg.debian_mirror, &self.shared.cfg.build_dir(), &progress).await.map_err(|e| e.to_string())?;
                    if &tag != r {
                        return Err(format!("the recipe {recipe} changed since the plan ({r} → {tag}); plan the update again"));
                    }
                    let image_id = self.shared.engine.image_id(&tag).await.map_err(|e| e.to_string())?.unwrap_or_default();
                    if !present {
                        self.alerts.emit(actor, Event::ImageReady { stack: id.into(), image: tag.clone(), how: "built".into(), seconds: t0.elapsed().as_secs_f64() });
                    }
                    return Ok(ImagePin { stack: id.into(), service: svc.clone(), reference: tag, image_id, digest: None, pinned_at: hafen_store::now() });
                }
                let rr = ImageRef::parse(r).ok_or_else(|| format!("`{r}` is not an image reference"))?;
                // The registry first: a vanished tag or an unreachable registry is named as such.
                Registry::new(&self.shared.cfg.registries).digest(&rr, rr.tag.as_deref().unwrap_or("latest")).await.map_err(|e| e.to_string())?;
                self.shared.engine.pull_image(r, self.shared.registry_login(r)).await.map_err(|e| e.to_string())?;
                let digest = self.shared.engine.image_digest(r).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("{r} has no registry digest after the pull"))?;
                let image_id = self.shared.engine.image_id(r).await.map_err(|e| e.to_string())?.unwrap_or_default();
                Ok::<ImagePin, String>(ImagePin { stack: id.into(), service: svc.clone(), reference: r.clone(), image_id, digest: Some(digest), pinned_at: hafen_store::now() })
            }
            .await;
            match pulled {
                Ok(p) => {
                    new_pins.insert(svc.clone(), p);
                }
                Err(e) => {
                    self.shared.store.update_end(uid, "aborted", Some(&e), None)?;
                    self.alerts.emit(actor, Event::UpdateAborted { stack: id.into(), to: hop.to.clone(), id: uid, step: "pull".into(), error: e });
                    return Ok(self.shared.store.update_record(uid)?.expect("update row"));
                }
            }
        }
        // 3.– From here on the stack changes: rolled back on any failure.
        let _g = self.ops.op_lock.lock().await;
        let down = Instant::now();
        let change = HopChange {
            version: hop.to.clone(),
            images: hop.images.clone(),
            database_moves: hop.database_moves.clone(),
            migrations: stack.upgrade.migrations.iter().filter(|m| hop.migrations.contains(&migration_label(m))).cloned().collect(),
        };
        let r = self.forward(uid, &stack, &change, &new_pins, &snapshot, &target, actor).await;
        let rec = match r {
            Ok(()) => {
                self.update_pause("commit").await;
                if hop.to == REBUILD {
                    self.commit_rebuild(uid, id, &hop.images, &old_pins).await;
                }
                let secs = down.elapsed().as_secs_f64();
                self.shared.store.update_end(uid, "committed", None, Some(secs))?;
                self.alerts.emit(actor, Event::UpdateCommitted { stack: id.into(), from: hop.from.clone(), to: hop.to.clone(), id: uid, downtime: secs });
                for key in [format!("update_rolled_back:{id}"), format!("update_failed:{id}"), format!("update_available:{id}")] {
                    self.alerts.resolve(&key);
                }
                self.shared.store.update_record(uid)?.expect("update row")
            }
            Err(e) => {
                self.shared.store.update_error(uid, &format!("{}: {}", e.step, e.error))?;
                self.roll_back(uid, &e.step, &e.error, &e.log, down, actor).await?
            }
        };
        Ok(rec)
    }

    /// The backup failed: nothing was begun, nothing changed.
    fn abort_early(&self, id: &str, hop: &HopView, step: &str, error: String, actor: &str) -> AppError {
        self.alerts.emit(actor, Event::UpdateAborted { stack: id.into(), to: hop.to.clone(), id: 0, step: step.into(), error: error.clone() });
        crate::error::refused("update_aborted", &[("id", id.to_string()), ("to", hop.to.clone()), ("step", step.to_string()), ("error", error)])
    }

    /// Steps 3–7 of a hop (the caller holds `op_lock`).
    #[allow(clippy::too_many_arguments)]
    async fn forward(&self, uid: i64, stack: &StackDef, change: &HopChange, new_pins: &BTreeMap<String, ImagePin>, snapshot: &str, target: &str, actor: &str) -> Result<(), StepError> {
        let id = stack.id.as_str();
        self.update_step(uid, id, "stop", "stopping every service".into(), actor).await;
        self.shared.store.update_stopped(uid).map_err(|e| fail("stop", e))?;
        self.stacks.stop_services(id, actor).await.map_err(|e| fail("stop", e))?;
        self.update_step(uid, id, "switch", "image pins moved to the new version".into(), actor).await;
        self.shared.store.replace_pins(id, new_pins).map_err(|e| fail("switch", e))?;
        let settings = self.stacks.settings_for(stack, &BTreeMap::new()).map_err(|e| fail("switch", e))?;
        if !change.database_moves.is_empty() {
            // The database's new major version starts empty and loads the pre-update dump; the
            // migrations run before the application starts.
            self.update_step(uid, id, "data", format!("{} move by dump and load from snapshot {}", change.database_moves.join(", "), short_id(snapshot)), actor).await;
            let req = RestoreRequest { stack: id.into(), snapshot: Some(snapshot.into()), at: None, target: Some(target.into()) };
            let rep = self.backups.restore_locked(&req, actor, None, &change.migrations).await.map_err(|e| fail("data", e))?;
            // Each dump loaded and each migration run is an event, with how long it took.
            for s in rep.steps.iter().filter(|s| s.ok && (s.step.starts_with("load") || s.step.starts_with("migrate"))) {
                self.alerts.emit(actor, Event::UpdateStep { stack: id.into(), id: uid, step: s.step.clone(), detail: format!("{} ({:.1}s)", s.detail, s.seconds) });
            }
            if let Some(e) = rep.error {
                let log = rep.steps.iter().filter(|s| !s.ok).map(|s| format!("{}: {}", s.step, s.detail)).collect::<Vec<_>>().join("\n");
                let step = if rep.steps.iter().any(|s| !s.ok && s.step.starts_with("migrate")) { "migrate" } else { "data" };
                return Err(StepError { step: step.into(), error: e, log });
            }
        } else {
            if !change.migrations.is_empty() {
                self.update_step(uid, id, "migrate", change.migrations.iter().map(migration_label).collect::<Vec<_>>().join("; "), actor).await;
                // What the migrations need runs first (their dependencies), then each one.
                let needs = dependencies(stack, &change.migrations.iter().map(|m| m.service.clone()).collect::<Vec<_>>());
                if !needs.is_empty() {
                    self.stacks.start_only(stack, &settings, &needs, actor).await.map_err(|e| fail("migrate", e))?;
                    self.health.wait_healthy(stack, &needs, stack.upgrade.health_deadline).await.map_err(|e| fail("migrate", e))?;
                }
                for m in &change.migrations {
                    let t0 = Instant::now();
                    self.stacks.run_migration(stack, &settings, m).await.map_err(|e| {
                        let (error, log) = e.split_once('\n').map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or((e.clone(), String::new()));
                        StepError { step: "migrate".into(), error, log }
                    })?;
                    let detail = format!("{} ({:.1}s)", migration_label(m), t0.elapsed().as_secs_f64());
                    self.alerts.emit(actor, Event::UpdateStep { stack: id.into(), id: uid, step: format!("migrate {}", m.service), detail });
                }
            }
            self.update_step(uid, id, "start", "starting every service".into(), actor).await;
            let (plan, _) = self.stacks.desired(stack, &settings, true, false).await.map_err(|e| fail("start", e))?;
            let (_, r) = self.stacks.apply(&plan, actor, false).await;
            r.map_err(|e| fail("start", e))?;
        }
        self.update_step(uid, id, "health", format!("waiting up to {}s for the probes", stack.upgrade.health_deadline.as_secs()), actor).await;
        if let Err(e) = self.health.wait_healthy(stack, &[], stack.upgrade.health_deadline).await {
            let mut log = String::new();
            for svc in stack.services.keys() {
                if let Ok(l) = self.shared.engine.logs(&hafen_engine::container_name(id, svc), 15).await {
                    if !l.trim().is_empty() {
                        log.push_str(&format!("[{svc}]\n{}\n", l.trim_end()));
                    }
                }
            }
            return Err(StepError { step: "health".into(), error: e, log });
        }
        Ok(())
    }

    /// Back to the pins before the hop and the data of the pre-update snapshot (the caller
    /// holds `op_lock`). `step` is where the hop failed, or `ROLLBACK_REQUESTED` when an admin
    /// takes back a committed hop.
    async fn roll_back(&self, uid: i64, step: &str, error: &str, log: &str, down: Instant, actor: &str) -> Result<UpdateRecord, AppError> {
        let rec = self.shared.store.update_record(uid)?.ok_or_else(|| crate::error::refused("no_update", &[("id", uid.to_string())]))?;
        let id = rec.stack.clone();
        self.shared.store.update_step(uid, "rollback", "rolling_back")?;
        let result: Result<(), String> = async {
            self.shared.store.replace_pins(&id, &rec.old_pins).map_err(|e| e.to_string())?;
            self.update_pause("rollback").await;
            let snapshot = rec.snapshot.clone().ok_or("the update has no pre-update snapshot")?;
            let req = RestoreRequest { stack: id.clone(), snapshot: Some(snapshot), at: None, target: Some(rec.target.clone()) };
            let rep = self.backups.restore_locked(&req, actor, None, &[]).await.map_err(|e| e.to_string())?;
            match rep.error {
                None => Ok(()),
                Some(e) => Err(e),
            }
        }
        .await;
        let secs = down.elapsed().as_secs_f64();
        let s = |v: &str| v.to_string();
        let snap = rec.snapshot.as_deref().map(short_id).unwrap_or_default();
        match result {
            Ok(()) if step == ROLLBACK_REQUESTED => {
                // Taken back as asked: recorded as a rollback, not as a failure, and no alert.
                self.shared.store.update_end(uid, "rolled_back", None, Some(secs))?;
                self.alerts.emit(actor, Event::UpdateTakenBack { stack: id.clone(), from: rec.from_version.clone(), to: rec.to_version.clone(), id: uid, downtime: secs });
            }
            Ok(()) => {
                self.shared.store.update_end(uid, "rolled_back", None, Some(secs))?;
                self.alerts.emit(actor, Event::UpdateRolledBack { stack: id.clone(), from: rec.from_version.clone(), to: rec.to_version.clone(), id: uid, step: step.into(), error: error.into(), downtime: secs });
                self.alerts.raise(
                    &format!("update_rolled_back:{id}"),
                    "update_rolled_back",
                    crate::notify::Severity::Warning,
                    Some(&id),
                    &[("stack", s(&id)), ("from", rec.from_version.clone()), ("to", rec.to_version.clone()), ("step", s(step)), ("error", s(error)), ("log", if log.is_empty() { "-".into() } else { last_lines(log, 20) })],
                    vec![
                        crate::notify::step("update_backup", &[("snapshot", snap.clone())]),
                        crate::notify::step("update_rolled_back", &[("from", rec.from_version.clone())]),
                        crate::notify::step("data_restored", &[("snapshot", snap)]),
                    ],
                );
            }
            Err(e) => {
                let msg = format!("{step}: {error}; rollback: {e}");
                self.shared.store.update_end(uid, "failed", Some(&msg), None)?;
                self.alerts.emit(actor, Event::UpdateFailed { stack: id.clone(), to: rec.to_version.clone(), id: uid, error: msg.clone() });
                self.alerts.raise(&format!("update_failed:{id}"), "update_failed", crate::notify::Severity::Critical, Some(&id), &[("stack", s(&id)), ("to", rec.to_version.clone()), ("error", msg)], vec![]);
            }
        }
        Ok(self.shared.store.update_record(uid)?.expect("update row"))
    }

    /// `hafen update rollback`: takes back the stack's last committed hop (its images and the
    /// data of its pre-update snapshot; what changed since is lost, so it asks first on the CLI).
    pub async fn update_rollback(&self, id: &str, actor: &str) -> Result<UpdateRecord, AppError> {
        self.deployed_def(id)?;
        if self.shared.store.update_open_for(id)? || self.ops.updating.contains(id) {
            return Err(crate::error::refused("update_running_wait", &[("id", id.to_string())]));
        }
        // The newest hop still in effect (one taken back is `rolled_back` now).
        let Some(last) = self.shared.store.updates(Some(id), 200)?.into_iter().find(|u| u.state == "committed") else {
            return Err(crate::error::refused("nothing_to_roll_back", &[("id", id.to_string())]));
        };
        let _g = self.ops.op_lock.lock().await;
        let down = Instant::now();
        self.stacks.stop_services(id, actor).await?;
        self.roll_back(last.id, ROLLBACK_REQUESTED, &format!("asked by {actor}"), "", down, actor).await
    }

    /// At start: transactions a killed daemon left open. Before the stop nothing changed (the
    /// old version still runs): aborted. After it: rolled back to the old version and its data.
    pub async fn update_resume(&self) {
        let open = match self.shared.store.open_updates() {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "could not read open updates");
                return;
            }
        };
        for rec in open {
            let msg = format!("hafen stopped during the step `{}`", rec.step);
            if rec.state == "running" && rec.step == "pull" {
                let _ = self.shared.store.update_end(rec.id, "aborted", Some(&msg), None);
                self.alerts.emit("hafen", Event::UpdateAborted { stack: rec.stack.clone(), to: rec.to_version.clone(), id: rec.id, step: rec.step.clone(), error: msg });
                continue;
            }
            tracing::warn!(stack = %rec.stack, id = rec.id, step = %rec.step, "an update was interrupted; rolling it back");
            let _g = self.ops.op_lock.lock().await;
            // The downtime counts from when the hop stopped the stack, before the restart.
            let since_stop = self
                .shared
                .store
                .update_stopped_at(rec.id)
                .ok()
                .flatten()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .and_then(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().ok())
                .unwrap_or_default();
            let down = Instant::now().checked_sub(since_stop).unwrap_or_else(Instant::now);
            // What stopped it is the hop's error (the rollback keeps it).
            if let Err(e) = self.shared.store.update_error(rec.id, &msg) {
                tracing::error!(error = %e, "could not record why the update stopped");
            }
            let _ = self.stacks.stop_services(&rec.stack, "hafen").await;
            if let Err(e) = self.roll_back(rec.id, &rec.step, &msg, "", down, "hafen").await {
                tracing::error!(error = %e, stack = %rec.stack, "rollback of an interrupted update failed");
            }
        }
    }

    /// Worker `updater`: on its schedule, asks the registries; notifies (once per new path) or
    /// applies in the window, as each stack's policy says.
    pub async fn update_tick(&self) {
        const JOB: &str = "update-check";
        const REBUILD_JOB: &str = "rebuild-check";
        if let Some(now) = self.shared.job_due(REBUILD_JOB, &self.shared.cfg.updates.rebuild_schedule) {
            let err = self.rebuild_check(None).await.err().map(|e| e.to_string());
            let _ = self.shared.store.set_job(REBUILD_JOB, &now.to_rfc3339(), err.as_deref());
            if let Some(e) = err {
                tracing::error!(error = %e, "the throwaway rebuilds failed");
            }
        }
        let Some(now) = self.shared.job_due(JOB, &self.shared.cfg.updates.check_schedule) else { return };
        let mut errors = Vec::new();
        match self.update_check(None).await {
            Ok(checks) => {
                for c in checks {
                    if let Some(e) = &c.error {
                        errors.push(format!("{}: {e}", c.stack));
                        continue;
                    }
                    let d: Option<Decision> = serde_json::from_value(c.decision.clone()).ok();
                    match d {
                        Some(Decision::Notify { path }) | Some(Decision::WaitForWindow { path, .. }) if !path.is_empty() => {
                            let shown = path.join(" → ");
                            let key = format!("update_available:{}", c.stack);
                            let known = self.shared.store.alert(&key).ok().flatten().is_some_and(|a| a.args.get("path") == Some(&shown));
                            if !known {
                                self.alerts.emit(ACTOR_TICK, Event::UpdateAvailable { stack: c.stack.clone(), current: c.current.clone(), path: path.clone() });
                                self.alerts.resolve(&key);
                                let s = |v: &str| v.to_string();
                                self.alerts.raise(&key, "update_available", crate::notify::Severity::Warning, Some(&c.stack), &[("stack", s(&c.stack)), ("current", c.current.clone()), ("path", shown)], vec![]);
                            }
                        }
                        Some(Decision::Apply { path, .. }) => {
                            // A hop that failed is not tried again by itself (until one to the
                            // same version went through).
                            let wanted: Vec<String> = if path.is_empty() { vec![REBUILD.into()] } else { path.clone() };
                            let failed_before = self.shared.store.updates(Some(&c.stack), 50).unwrap_or_default().iter().find(|u| wanted.contains(&u.to_version)).is_some_and(|u| u.state == "rolled_back" || u.state == "failed");
                            if failed_before {
                                continue;
                            }
                            let target = path.last().cloned();
                            match self.update_apply(&c.stack, target.as_deref(), ACTOR_TICK).await {
                                Ok(r) => {
                                    if let Some(e) = r.error {
                                        errors.push(format!("{}: {e}", c.stack));
                                    }
                                }
                                Err(e) => errors.push(format!("{}: {e}", c.stack)),
                            }
                        }
                        Some(Decision::Blocked { reason }) => errors.push(format!("{}: {reason}", c.stack)),
                        _ => {}
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        let err = (!errors.is_empty()).then(|| errors.join("; "));
        let _ = self.shared.store.set_job(JOB, &now.to_rfc3339(), err.as_deref());
        self.shared.workers.set("updater", &self.shared.cfg.updates.check_schedule, if err.is_some() { "warning" } else { "ok" }, err.map(crate::worker_status::Line::Text).unwrap_or_else(|| crate::worker_status::Line::code("registries_asked", &[])));
    }

    /// `hafen update check --rebuild`: a throwaway rebuild of every recipe a deployed stack (or
    /// `only`) runs, on a fresh Debian base, compared by installed packages with the running
    /// image. Remembers the ones that differ.
    pub async fn rebuild_check(&self, only: Option<&str>) -> Result<Vec<crate::images::rebuild::Probe>, AppError> {
        let ids: Vec<String> = match only {
            Some(id) => vec![id.to_string()],
            None => self.shared.store.stacks()?.into_iter().filter(|s| s.enabled).map(|s| s.id).collect(),
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        let progress = |line: &str| tracing::info!(target: "hafen::images", "{line}");
        for id in ids {
            let stack = self.deployed_def(&id)?;
            let pins = self.shared.store.pins(&id)?;
            for (svc, own) in built_services(&stack) {
                let recipe = recipe_in_use(&stack, &svc, &pins).unwrap_or(own);
                let current = match pins.get(&svc).map(|p| p.reference.clone()).filter(|r| r.starts_with(&format!("hafen/{recipe}:"))) {
                    Some(r) => r,
                    None => crate::images::tag_for(&self.shared.cfg.images_dir, &recipe)?,
                };
                if !seen.insert(current.clone()) {
                    continue;
                }
                let p = crate::images::rebuild::probe(&*self.shared.engine, &self.shared.cfg.images_dir, &recipe, &current, &self.shared.cfg.debian_mirror, &self.shared.cfg.build_dir(), &progress).await?;
                let mut cache = lock(&self.rebuilds);
                if let Some(old) = cache.remove(&current) {
                    // The throwaway rebuild before this one is not needed any more.
                    if old.fresh != p.fresh {
                        let e = self.shared.engine.clone();
                        tokio::spawn(async move { e.untag_image(&old.fresh).await });
                    }
                }
                if !p.changes.is_empty() {
                    cache.insert(current.clone(), p.clone());
                }
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The stack's built services whose image has a pending rebuild (service → probe).
    fn pending_rebuilds(&self, stack: &StackDef) -> Result<Vec<(String, crate::images::rebuild::Probe)>, AppError> {
        let pins = self.shared.store.pins(&stack.id)?;
        let cache = lock(&self.rebuilds).clone();
        let mut out = Vec::new();
        for (svc, own) in built_services(stack) {
            let recipe = recipe_in_use(stack, &svc, &pins).unwrap_or(own);
            let current = match pins.get(&svc).map(|p| p.reference.clone()).filter(|r| r.starts_with(&format!("hafen/{recipe}:"))) {
                Some(r) => r,
                None => crate::images::tag_for(&self.shared.cfg.images_dir, &recipe)?,
            };
            if let Some(p) = cache.get(&current) {
                out.push((svc, p.clone()));
            }
        }
        Ok(out)
    }

    /// A committed rebuild: the recipe's tag now names the rebuilt image (a later deploy keeps
    /// it), the previous image keeps a tag of its own for `update rollback`.
    async fn commit_rebuild(&self, uid: i64, id: &str, images: &BTreeMap<String, (String, String)>, old_pins: &BTreeMap<String, ImagePin>) {
        let mut rollback_pins = old_pins.clone();
        for (svc, (old, new)) in images {
            // `hafen/<recipe>:<hash>[-r<time>|-prev<n>]` → `hafen/<recipe>:<hash>`
            let base = match old.rsplit_once(':') {
                Some((repo, tag)) => format!("{repo}:{}", tag.split('-').next().unwrap_or(tag)),
                None => old.clone(),
            };
            let prev = format!("{base}-prev{uid}");
            if let Some(p) = rollback_pins.get_mut(svc) {
                let source = if p.image_id.is_empty() { old.clone() } else { p.image_id.clone() };
                if self.shared.engine.tag_image(&source, &prev).await.is_ok() {
                    p.reference = prev.clone();
                }
            }
            if let Err(e) = self.shared.engine.tag_image(new, &base).await {
                tracing::error!(error = %e, "could not tag the rebuilt image as {base}");
            }
            lock(&self.rebuilds).remove(old);
        }
        if let Err(e) = self.shared.store.update_old_pins(uid, &rollback_pins) {
            tracing::error!(error = %e, stack = id, "could not record the previous images of the rebuild");
        }
    }

    /// Version pins (`hafen update pin|unpin`).
    pub fn update_pin(&self, id: &str, version: Option<&str>, actor: &str) -> Result<(), AppError> {
        self.deployed_def(id)?;
        if let Some(v) = version {
            Version::parse(v).ok_or_else(|| crate::error::refused("not_version", &[("value", v.to_string())]))?;
        }
        self.shared.store.set_version_pin(id, version)?;
        self.alerts.emit(actor, Event::UpdatePinned { stack: id.into(), version: version.map(String::from) });
        Ok(())
    }

    pub fn update_list(&self, id: Option<&str>) -> Result<Vec<UpdateRecord>, AppError> {
        Ok(self.shared.store.updates(id, 50)?)
    }
}

fn migration_label(m: &MigrationDef) -> String {
    format!("{}: {}", m.service, m.command.join(" "))
}

fn hop_view(from: &Version, c: &HopChange) -> HopView {
    let mut steps = vec!["backup".to_string(), "pull".into(), "stop".into(), "switch".into()];
    if !c.database_moves.is_empty() {
        steps.push(format!("data ({} by dump and load)", c.database_moves.join(", ")));
        if !c.migrations.is_empty() {
            steps.push("migrate".into());
        }
    } else {
        if !c.migrations.is_empty() {
            steps.push("migrate".into());
        }
        steps.push("start".into());
    }
    steps.extend(["health".to_string(), "commit".into()]);
    HopView {
        from: from.tag.clone(),
        to: c.version.clone(),
        images: c.images.clone(),
        database_moves: c.database_moves.clone(),
        migrations: c.migrations.iter().map(migration_label).collect(),
        steps,
    }
}

/// Every service the given ones depend on, transitively, in start order (a migration service
/// that another one depends on is among them: its migrations run in its running container).
fn dependencies(stack: &StackDef, of: &[String]) -> Vec<String> {
    let mut need = std::collections::BTreeSet::new();
    let mut todo: Vec<String> = of.to_vec();
    while let Some(s) = todo.pop() {
        for d in stack.services.get(&s).map(|x| x.depends_on.clone()).unwrap_or_default() {
            if need.insert(d.clone()) {
                todo.push(d);
            }
        }
    }
    stack.order.iter().filter(|s| need.contains(*s)).cloned().collect()
}

fn short_id(s: &str) -> String {
    s.chars().take(8).collect()
}

