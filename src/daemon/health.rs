//! Health: the probes of every running service (when each is due, its state machine with
//! hysteresis from `hafen_core::health`), waiting until a stack passes its probes, and the
//! services that turned unhealthy since the healer last looked (`take_unhealthy`). Owns the
//! probe states; the stacks' combined health and the restart decisions are the stacks'.

use crate::alerts::Alerts;
use crate::catalogue::StackDef;
use crate::probe::{Health as State, ProbeState};
use crate::shared::{lock, Shared};
use hafen_core::events::Event;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub struct Health {
    shared: Arc<Shared>,
    alerts: Arc<Alerts>,
    /// Each probed container's state, by container name.
    probes: Mutex<BTreeMap<String, ProbeState>>,
    /// When the prober next has something due; `Instant::now()` forces a pass.
    next_probe: Mutex<Instant>,
    /// Something that can change a stack's health happened; the prober recomputes it.
    pub dirty: AtomicBool,
    /// Services (`stack/service`) that turned unhealthy, with the reason, for the healer.
    turned_unhealthy: Mutex<Vec<(String, String, Instant)>>,
}

impl Health {
    pub fn new(shared: Arc<Shared>, alerts: Arc<Alerts>) -> Health {
        Health {
            shared,
            alerts,
            probes: Mutex::new(BTreeMap::new()),
            next_probe: Mutex::new(Instant::now()),
            dirty: AtomicBool::new(true),
            turned_unhealthy: Mutex::new(Vec::new()),
        }
    }

    /// The probe states, by container name (held briefly: the prober waits for it).
    pub(crate) fn probes(&self) -> MutexGuard<'_, BTreeMap<String, ProbeState>> {
        lock(&self.probes)
    }

    /// The services that turned unhealthy since the last call (for the healer).
    pub(crate) fn take_unhealthy(&self) -> Vec<(String, String, Instant)> {
        std::mem::take(&mut *lock(&self.turned_unhealthy))
    }

    /// Forgets the probe states of a stack's containers (it was removed).
    pub(crate) fn forget_stack(&self, id: &str) {
        lock(&self.probes).retain(|k, _| !k.starts_with(&format!("hafen-{id}-")));
    }

    /// Makes the prober look at every service on its next pass (after changes).
    pub fn kick(&self) {
        self.dirty.store(true, Ordering::Relaxed);
        *lock(&self.next_probe) = Instant::now();
    }

    /// Runs the probes that are due and records health transitions.
    pub async fn probe_all(&self) {
        let now = Instant::now();
        if now < *lock(&self.next_probe) {
            return;
        }
        let Ok(services) = self.shared.engine.list_services(None).await else { return };
        // Each stack's probes as it was deployed.
        let defs: std::collections::BTreeMap<String, std::sync::Arc<crate::catalogue::StackDef>> =
            self.shared.store.stacks().unwrap_or_default().iter().filter_map(|r| Some((r.id.clone(), self.shared.deployed(r)?))).collect();
        // Without probes, look again after a while (new services kick the prober).
        let mut next = now + std::time::Duration::from_secs(30);
        for st in services {
            let Some(def) = defs.get(&st.stack).and_then(|s| s.services.get(&st.service)) else { continue };
            let Some(probe) = &def.probe else { continue };
            let due = {
                let mut h = lock(&self.probes);
                let e = h.entry(st.name.clone()).or_insert_with(|| ProbeState::new(&st.id));
                if e.container_id != st.id {
                    *e = ProbeState::new(&st.id);
                }
                e.due(probe, now)
            };
            if !due {
                let h = lock(&self.probes);
                if let Some(at) = h.get(&st.name).and_then(|e| e.next_due(probe)) {
                    next = next.min(at);
                }
                continue;
            }
            let result = crate::probe::run(&*self.shared.engine, &st, probe).await;
            match &result {
                Ok(lat) => self.shared.metrics.observe_probe(&st.stack, &st.service, lat.as_secs_f64()),
                Err(_) => self.shared.metrics.inc_probe_failures(&st.stack, &st.service),
            }
            let transition = {
                let mut h = lock(&self.probes);
                let e = h.entry(st.name.clone()).or_insert_with(|| ProbeState::new(&st.id));
                let before = e.health;
                e.record(probe, result, Instant::now());
                if let Some(at) = e.next_due(probe) {
                    next = next.min(at);
                }
                (before != e.health).then(|| (before, e.health, e.last_error.clone()))
            };
            if let Some((_, State::Unhealthy, detail)) = &transition {
                lock(&self.turned_unhealthy).push((format!("{}/{}", st.stack, st.service), format!("unhealthy: {}", detail.clone().unwrap_or_default()), Instant::now()));
                self.shared.wake_reconciler.notify_one();
            }
            if let Some((from, to, detail)) = transition {
                self.dirty.store(true, Ordering::Relaxed);
                self.alerts.emit(
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

    /// Waits until every service in `services` (all when empty) of `stack` runs and passes its
    /// probe; Err with the states when `limit` passes. A service whose container exits, or
    /// restarts, while it is waited for fails the wait at once with its exit code (no service
    /// here is meant to end), so a crash at start is not waited out for the whole limit.
    pub(crate) async fn wait_healthy(&self, stack: &StackDef, services: &[String], limit: std::time::Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        // Each container's restarts when the wait began (a restart later is a crash).
        let mut restarts: std::collections::BTreeMap<String, i64> = Default::default();
        loop {
            self.kick();
            self.probe_all().await;
            let states = self.shared.engine.list_services(Some(&stack.id)).await.map_err(|e| e.to_string())?;
            let h = lock(&self.probes).clone();
            let mut pending = Vec::new();
            for (name, def) in &stack.services {
                if !services.is_empty() && !services.contains(name) {
                    continue;
                }
                let st = states.iter().find(|s| &s.service == name);
                if let Some(st) = st {
                    let before = *restarts.entry(st.id.clone()).or_insert(st.restart_count);
                    if matches!(st.status.as_str(), "exited" | "dead") || st.restart_count > before {
                        let code = st.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
                        return Err(format!("{name} stopped with exit code {code} while waiting for it to become healthy"));
                    }
                }
                let ok = match (st, &def.probe) {
                    (Some(st), Some(_)) => st.running && h.get(&st.name).is_some_and(|p| p.container_id == st.id && p.health == State::Healthy),
                    (Some(st), None) => st.running,
                    (None, _) => false,
                };
                if !ok {
                    pending.push(name.clone());
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not healthy within {}s: {}", limit.as_secs(), pending.join(", ")));
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
}

/// A service's health as the API and events word it.
pub fn health_word(h: State) -> String {
    match h {
        State::Starting => "starting",
        State::Healthy => "healthy",
        State::Degraded => "degraded",
        State::Unhealthy => "unhealthy",
        State::Unprobed => "running",
    }
    .into()
}
