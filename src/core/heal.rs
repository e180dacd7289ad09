//! The healer's rules: when a service that stopped or failed its probe may start again
//! (exponential backoff that grows with quick exits in a row), and when restarting stops
//! (`limit` restarts within `window`: a crash loop, reported once; only a deploy clears it).
//! Pure: the clock is passed in; the reconciler applies what these rules allow.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Why the healer wants a service started again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// The container stopped (crashed, killed, found stopped).
    Exited(String),
    /// It runs but failed its probe `retries` times in a row.
    Unhealthy(String),
}

#[derive(Debug, Default)]
struct Track {
    restarts: VecDeque<Instant>,
    last_exit: Option<Instant>,
    last_start: Option<Instant>,
    /// Exits in a row that came soon after a start: what the backoff grows with.
    quick: u32,
    want: Option<Want>,
    failed: bool,
}

/// What the healer says about a service that should run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it now; `attempt` counts the restarts in the window, this one included.
    Start { attempt: u32, reason: String },
    /// Not before then (backoff).
    Wait(Instant),
    /// This restart would exceed the limit: stop restarting (report it once).
    CrashLoop { restarts: u32 },
    /// Given up earlier; only a deploy clears it.
    Failed,
    /// Nothing wanted.
    Nothing,
}

/// Restart bookkeeping per service (`stack/service`): pure, so its rules are tested as a table.
#[derive(Debug)]
pub struct Healer {
    tracks: BTreeMap<String, Track>,
    pub limit: u32,
    pub window: Duration,
}

/// A service that ran this long before it stopped again ran fine: its backoff starts over.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Backoff before the next restart, given the quick exits in a row (see `STABLE_AFTER`): none
/// for the first (a single crash is healed at once), then 1 s, 2 s, 4 s … at most 60 s.
pub fn backoff(restarts: usize) -> Duration {
    match restarts {
        0 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 1).min(6)).min(Duration::from_secs(60)),
    }
}

impl Healer {
    pub fn new(limit: u32, window: Duration) -> Healer {
        Healer { tracks: BTreeMap::new(), limit, window }
    }

    pub fn exited(&mut self, key: &str, reason: &str, now: Instant) {
        let t = self.tracks.entry(key.to_string()).or_default();
        t.quick = match t.last_start {
            Some(s) if now.duration_since(s) < STABLE_AFTER => t.quick + 1,
            _ => 0,
        };
        t.last_exit = Some(now);
        t.want = Some(Want::Exited(reason.to_string()));
    }

    pub fn unhealthy(&mut self, key: &str, reason: &str, now: Instant) {
        let t = self.tracks.entry(key.to_string()).or_default();
        // Turning unhealthy takes failed probes after a start: each counts as a quick failure.
        t.quick += 1;
        t.last_exit = Some(now);
        t.want = Some(Want::Unhealthy(reason.to_string()));
    }

    pub fn want(&self, key: &str) -> Option<&Want> {
        self.tracks.get(key).and_then(|t| t.want.as_ref())
    }

    /// The service is fine again (started by someone, or healthy): nothing wanted.
    pub fn settle(&mut self, key: &str) {
        if let Some(t) = self.tracks.get_mut(key) {
            t.want = None;
        }
    }

    pub fn failed(&self, key: &str) -> bool {
        self.tracks.get(key).is_some_and(|t| t.failed)
    }

    pub fn mark_failed(&mut self, key: &str) {
        self.tracks.entry(key.to_string()).or_default().failed = true;
    }

    /// Forgets a stack's services (a deploy: the admin has acted).
    pub fn clear_stack(&mut self, stack: &str) {
        let prefix = format!("{stack}/");
        self.tracks.retain(|k, _| !k.starts_with(&prefix));
    }

    pub fn restarts(&self, key: &str) -> u32 {
        self.tracks.get(key).map(|t| t.restarts.len() as u32).unwrap_or(0)
    }

    pub fn decide(&mut self, key: &str, now: Instant) -> Decision {
        let (limit, window) = (self.limit, self.window);
        let Some(t) = self.tracks.get_mut(key) else { return Decision::Nothing };
        if t.failed {
            return Decision::Failed;
        }
        let Some(want) = t.want.clone() else { return Decision::Nothing };
        while t.restarts.front().is_some_and(|r| now.duration_since(*r) > window) {
            t.restarts.pop_front();
        }
        if t.restarts.len() as u32 >= limit {
            t.failed = true;
            t.want = None;
            return Decision::CrashLoop { restarts: t.restarts.len() as u32 };
        }
        let at = t.last_exit.unwrap_or(now) + backoff(t.quick as usize);
        if now < at {
            return Decision::Wait(at);
        }
        t.restarts.push_back(now);
        t.last_start = Some(now);
        t.want = None;
        let reason = match want {
            Want::Exited(r) | Want::Unhealthy(r) => r,
        };
        Decision::Start { attempt: t.restarts.len() as u32, reason }
    }

    /// The earliest time a waiting restart becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.tracks
            .values()
            .filter(|t| t.want.is_some() && !t.failed)
            .filter_map(|t| t.last_exit.map(|e| e + backoff(t.quick as usize)))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let secs: Vec<u64> = (0..10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn crash_loop_after_the_limit_within_the_window() {
        let t0 = Instant::now();
        let mut h = Healer::new(3, Duration::from_secs(600));
        let k = "s/app";
        assert_eq!(h.decide(k, t0), Decision::Nothing);
        h.exited(k, "exited with code 1", t0);
        assert_eq!(h.decide(k, t0), Decision::Start { attempt: 1, reason: "exited with code 1".into() });
        h.exited(k, "exited with code 1", t0 + Duration::from_secs(1));
        // Second restart waits 1 s after the exit.
        assert_eq!(h.decide(k, t0 + Duration::from_secs(1)), Decision::Wait(t0 + Duration::from_secs(2)));
        assert_eq!(h.next_due(), Some(t0 + Duration::from_secs(2)));
        assert!(matches!(h.decide(k, t0 + Duration::from_secs(2)), Decision::Start { attempt: 2, .. }));
        h.exited(k, "x", t0 + Duration::from_secs(3));
        assert!(matches!(h.decide(k, t0 + Duration::from_secs(5)), Decision::Start { attempt: 3, .. }));
        h.exited(k, "x", t0 + Duration::from_secs(6));
        assert_eq!(h.decide(k, t0 + Duration::from_secs(20)), Decision::CrashLoop { restarts: 3 });
        assert!(h.failed(k));
        h.exited(k, "x", t0 + Duration::from_secs(30));
        assert_eq!(h.decide(k, t0 + Duration::from_secs(40)), Decision::Failed, "reported once, then only failed");
        h.clear_stack("s");
        assert!(!h.failed(k));
    }

    #[test]
    fn a_service_that_ran_fine_is_restarted_at_once_again() {
        let t0 = Instant::now();
        let mut h = Healer::new(10, Duration::from_secs(600));
        let k = "s/app";
        let s = Duration::from_secs;
        h.exited(k, "x", t0);
        assert!(matches!(h.decide(k, t0), Decision::Start { attempt: 1, .. }));
        // Crashed again 2 s after the start: backoff 1 s.
        h.exited(k, "x", t0 + s(2));
        assert_eq!(h.decide(k, t0 + s(2)), Decision::Wait(t0 + s(3)));
        assert!(matches!(h.decide(k, t0 + s(3)), Decision::Start { attempt: 2, .. }));
        // Ran 30 s fine, then killed: restarted at once (still counted in the window).
        h.exited(k, "x", t0 + s(33));
        assert!(matches!(h.decide(k, t0 + s(33)), Decision::Start { attempt: 3, .. }));
    }

    #[test]
    fn restarts_outside_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut h = Healer::new(2, Duration::from_secs(60));
        let k = "s/db";
        for i in 0..5u64 {
            let t = t0 + Duration::from_secs(i * 100);
            h.exited(k, "x", t);
            assert!(matches!(h.decide(k, t), Decision::Start { attempt: 1, .. }), "restart {i}");
        }
    }

    #[test]
    fn settled_services_want_nothing() {
        let t0 = Instant::now();
        let mut h = Healer::new(5, Duration::from_secs(600));
        h.unhealthy("s/web", "probe failed", t0);
        assert_eq!(h.want("s/web"), Some(&Want::Unhealthy("probe failed".into())));
        h.settle("s/web");
        assert_eq!(h.decide("s/web", t0), Decision::Nothing);
    }
}

