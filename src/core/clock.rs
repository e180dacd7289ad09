//! Whether the wall clock can be trusted to remove backups. The wall clock is compared with the
//! time since boot (which no one sets and which counts suspend): when the two drift apart by more
//! than a few minutes between two looks, the wall clock was set — an NTP step after a dead RTC, a
//! hand-set date, a battery that lost the time. Removing backups by age is held back for a while
//! after such a jump, because a wrong date makes new snapshots look old or old ones new; backups
//! themselves keep running. Pure: the caller passes both clocks in.

use chrono::{DateTime, Duration, Utc};

/// A step of the wall clock smaller than this counts as drift, not a jump.
pub const JUMP_TOLERANCE_SECS: i64 = 120;
/// How long removing backups waits after a jump, counted on the boot clock.
pub const HOLD_AFTER_JUMP: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// What one look at the clocks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// The first look, or the clocks moved together.
    Steady,
    /// The wall clock moved `by` (positive: forward) more than the boot clock did.
    Jumped { by: Duration },
}

/// The last look at both clocks and how long removals are held.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    last: Option<(DateTime<Utc>, std::time::Duration)>,
    held_until: Option<std::time::Duration>,
}

impl Guard {
    /// Compares the wall clock's advance with the boot clock's since the last look.
    pub fn look(&mut self, wall: DateTime<Utc>, boot: std::time::Duration) -> Look {
        let prev = self.last.replace((wall, boot));
        let Some((w0, b0)) = prev else { return Look::Steady };
        let boot_delta = Duration::from_std(boot.saturating_sub(b0)).unwrap_or(Duration::zero());
        let by = (wall - w0) - boot_delta;
        if by.num_seconds().abs() <= JUMP_TOLERANCE_SECS {
            return Look::Steady;
        }
        self.held_until = Some(boot + HOLD_AFTER_JUMP);
        Look::Jumped { by }
    }

    /// Whether removals may run now (`boot`: the boot clock). False for `HOLD_AFTER_JUMP` after
    /// the last jump.
    pub fn removals_allowed(&self, boot: std::time::Duration) -> bool {
        self.held_until.is_none_or(|until| boot >= until)
    }

    /// Whether a hold is set and has run out (the caller closes its alert once).
    pub fn hold_ended(&mut self, boot: std::time::Duration) -> bool {
        match self.held_until {
            Some(until) if boot >= until => {
                self.held_until = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn jumps_both_ways_hold_removals_and_drift_does_not() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap();
        let s = std::time::Duration::from_secs;
        let mut g = Guard::default();
        assert_eq!(g.look(t0, s(1000)), Look::Steady, "the first look");
        assert!(g.removals_allowed(s(1000)));
        // A minute later on both clocks, then 30 s of drift.
        assert_eq!(g.look(t0 + Duration::seconds(60), s(1060)), Look::Steady);
        assert_eq!(g.look(t0 + Duration::seconds(150), s(1120)), Look::Steady, "30 s of drift");
        // The box was suspended for a day: both clocks moved (boot time counts suspend).
        assert_eq!(g.look(t0 + Duration::days(1), s(1000 + 86_400)), Look::Steady, "suspend is no jump");
        // A year forward in ten seconds.
        let b = 1000 + 86_400 + 10;
        match g.look(t0 + Duration::days(366), s(b)) {
            Look::Jumped { by } => assert!(by > Duration::days(364), "{by}"),
            l => panic!("{l:?}"),
        }
        assert!(!g.removals_allowed(s(b)));
        assert!(!g.hold_ended(s(b + 3600)));
        // Back a year: another jump, the hold starts again.
        match g.look(t0 + Duration::days(1), s(b + 3610)) {
            Look::Jumped { by } => assert!(by < -Duration::days(364), "{by}"),
            l => panic!("{l:?}"),
        }
        let b = b + 3610;
        assert!(!g.removals_allowed(s(b + HOLD_AFTER_JUMP.as_secs() - 1)));
        assert!(g.removals_allowed(s(b + HOLD_AFTER_JUMP.as_secs())));
        assert!(g.hold_ended(s(b + HOLD_AFTER_JUMP.as_secs())));
        assert!(!g.hold_ended(s(b + HOLD_AFTER_JUMP.as_secs() + 1)), "ended once");
    }
}
