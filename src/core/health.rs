//! The health state machine: a service's health from its probe results, with hysteresis (healthy
//! → degraded at the first failure → unhealthy after `retries` failures in a row → healthy again
//! only after `RECOVER_AFTER` passes in a row), and the stack's combined state (`stack_health`).
//! Pure: the clock is passed in; running the probes is the daemon's (`hafen_daemon::probe`).

use crate::catalogue::model::ProbeDef;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Within the start period and not yet passed.
    Starting,
    Healthy,
    /// Failed at least once lately, not yet `retries` times in a row: nobody is paged.
    Degraded,
    Unhealthy,
    /// The service has no probe; only its running state counts.
    Unprobed,
}

#[derive(Debug, Clone)]
pub struct ProbeState {
    pub health: Health,
    pub since: Instant,
    pub last_run: Option<Instant>,
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_latency: Option<Duration>,
    /// Passes in a row (an unhealthy service must pass `RECOVER_AFTER` times to be healthy).
    pub passes: u32,
    /// The container this state belongs to; a new container starts over.
    pub container_id: String,
}

/// Passes in a row that turn an unhealthy service healthy again.
pub const RECOVER_AFTER: u32 = 2;

impl ProbeState {
    pub fn new(container_id: &str) -> ProbeState {
        ProbeState {
            health: Health::Starting,
            since: Instant::now(),
            last_run: None,
            failures: 0,
            last_error: None,
            last_latency: None,
            passes: 0,
            container_id: container_id.to_string(),
        }
    }

    pub fn due(&self, p: &ProbeDef, now: Instant) -> bool {
        match self.last_run {
            None => true,
            // While starting, probe often so a deploy does not wait a whole interval.
            Some(t) if self.health == Health::Starting => now.duration_since(t) >= Duration::from_secs(2).min(p.interval),
            Some(t) => now.duration_since(t) >= p.interval,
        }
    }

    /// When the next probe is due.
    pub fn next_due(&self, p: &ProbeDef) -> Option<Instant> {
        let gap = if self.health == Health::Starting { Duration::from_secs(2).min(p.interval) } else { p.interval };
        self.last_run.map(|t| t + gap)
    }

    /// Folds one probe result into the state.
    pub fn record(&mut self, p: &ProbeDef, result: Result<Duration, String>, now: Instant) {
        self.last_run = Some(now);
        let next = match result {
            Ok(lat) => {
                self.failures = 0;
                self.passes += 1;
                self.last_error = None;
                self.last_latency = Some(lat);
                match self.health {
                    Health::Unhealthy if self.passes < RECOVER_AFTER => Health::Unhealthy,
                    _ => Health::Healthy,
                }
            }
            Err(e) => {
                self.failures += 1;
                self.passes = 0;
                self.last_error = Some(e);
                let in_start = self.health == Health::Starting && now.duration_since(self.since) < p.start_period;
                match self.health {
                    _ if in_start => Health::Starting,
                    _ if self.failures >= p.retries.max(1) => Health::Unhealthy,
                    Health::Starting => Health::Starting,
                    Health::Unhealthy => Health::Unhealthy,
                    _ => Health::Degraded,
                }
            }
        };
        if next != self.health {
            self.health = next;
            self.since = now;
        }
    }
}

/// A stack's combined state, from its services' states (`None`: the service has no container).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StackHealth {
    Healthy,
    Starting,
    Degraded,
    Unhealthy,
    /// hafen stopped restarting a crash-looping service: a person must look.
    Failed,
}

impl StackHealth {
    pub fn word(self) -> &'static str {
        match self {
            StackHealth::Healthy => "healthy",
            StackHealth::Starting => "starting",
            StackHealth::Degraded => "degraded",
            StackHealth::Unhealthy => "unhealthy",
            StackHealth::Failed => "failed",
        }
    }
}

/// One service as the stack's health sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceHealth {
    pub running: bool,
    /// `None` for a service without a probe.
    pub probe: Option<Health>,
    /// hafen will restart it (backoff running).
    pub restart_pending: bool,
    pub crash_looped: bool,
}

/// The worst of the services: failed > unhealthy > degraded > starting > healthy. A stopped
/// service that hafen is about to restart counts as degraded (one crash pages nobody).
pub fn stack_health(services: &[ServiceHealth]) -> StackHealth {
    services
        .iter()
        .map(|s| match s {
            ServiceHealth { crash_looped: true, .. } => StackHealth::Failed,
            ServiceHealth { running: false, restart_pending: true, .. } => StackHealth::Degraded,
            ServiceHealth { running: false, .. } => StackHealth::Unhealthy,
            ServiceHealth { probe: Some(Health::Unhealthy), .. } => StackHealth::Unhealthy,
            ServiceHealth { probe: Some(Health::Degraded), .. } => StackHealth::Degraded,
            ServiceHealth { probe: Some(Health::Starting), .. } => StackHealth::Starting,
            _ => StackHealth::Healthy,
        })
        .max()
        .unwrap_or(StackHealth::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::model::ProbeKind;

    fn probe() -> ProbeDef {
        ProbeDef {
            kind: ProbeKind::Tcp { port: 1 },
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(30),
            retries: 3,
        }
    }

    #[test]
    fn failures_during_start_period_do_not_count() {
        let p = probe();
        let t0 = Instant::now();
        let mut s = ProbeState::new("c");
        for i in 0..5 {
            s.record(&p, Err("x".into()), t0 + Duration::from_secs(i));
        }
        assert_eq!(s.health, Health::Starting);
        s.record(&p, Ok(Duration::from_millis(3)), t0 + Duration::from_secs(6));
        assert_eq!(s.health, Health::Healthy);
    }

    #[test]
    fn hysteresis_degraded_then_unhealthy_then_two_passes_to_recover() {
        let p = probe();
        let t0 = Instant::now();
        let mut s = ProbeState::new("c");
        let mut t = 0;
        let mut step = |s: &mut ProbeState, r: Result<Duration, String>| {
            t += 10;
            s.record(&p, r, t0 + Duration::from_secs(t));
            s.health
        };
        use Health::*;
        let ok = || Ok(Duration::ZERO);
        let bad = || Err("down".to_string());
        // (result, expected state after it)
        let table: Vec<(Result<Duration, String>, Health)> = vec![
            (ok(), Healthy),
            (bad(), Degraded),
            (bad(), Degraded),
            (ok(), Healthy),
            (bad(), Degraded),
            (bad(), Degraded),
            (bad(), Unhealthy),
            (bad(), Unhealthy),
            (ok(), Unhealthy),
            (bad(), Unhealthy),
            (ok(), Unhealthy),
            (ok(), Healthy),
        ];
        for (i, (r, want)) in table.into_iter().enumerate() {
            assert_eq!(step(&mut s, r), want, "step {i}");
        }
    }

    #[test]
    fn stack_health_is_the_worst_service() {
        let svc = |running, probe, restart_pending, crash_looped| ServiceHealth { running, probe, restart_pending, crash_looped };
        use StackHealth as S;
        let cases = [
            (vec![svc(true, Some(Health::Healthy), false, false), svc(true, None, false, false)], S::Healthy),
            (vec![svc(true, Some(Health::Healthy), false, false), svc(true, Some(Health::Starting), false, false)], S::Starting),
            (vec![svc(true, Some(Health::Degraded), false, false), svc(true, Some(Health::Starting), false, false)], S::Degraded),
            (vec![svc(false, None, true, false), svc(true, Some(Health::Healthy), false, false)], S::Degraded),
            (vec![svc(false, None, false, false), svc(true, Some(Health::Degraded), false, false)], S::Unhealthy),
            (vec![svc(true, Some(Health::Unhealthy), false, false)], S::Unhealthy),
            (vec![svc(false, None, false, true), svc(true, Some(Health::Unhealthy), false, false)], S::Failed),
            (vec![], S::Healthy),
        ];
        for (i, (services, want)) in cases.into_iter().enumerate() {
            assert_eq!(stack_health(&services), want, "case {i}");
        }
    }
}
