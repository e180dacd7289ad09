//! When the nightly backup runs: a cron expression (the `cron` crate, with seconds) and the time
//! of the last run, persisted like systemd's `Persistent=`. A run missed while the box was off
//! runs once after start; missing several runs still gives one catch-up, not a storm; a clock
//! set back waits for the next regular time, not for the old last run. Pure
//! functions of (schedule, last run, now).

use chrono::{DateTime, Utc};
use std::str::FromStr;

/// hafen's default: every night at 02:00 (the box's UTC clock).
pub const DEFAULT_SCHEDULE: &str = "0 0 2 * * *";

/// A cron expression with seconds; refused when it is none, or when it names no time that
/// exists (30 February), so a schedule that would never run is never accepted silently.
pub fn parse(expr: &str) -> Result<cron::Schedule, String> {
    let s = cron::Schedule::from_str(expr).map_err(|e| format!("`{expr}` is not a cron expression (sec min hour day month weekday, e.g. `{DEFAULT_SCHEDULE}`): {e}"))?;
    if s.upcoming(chrono::Utc).next().is_none() {
        return Err(format!("`{expr}` names no time that exists (such as 30 February), so it would never run; e.g. `{DEFAULT_SCHEDULE}`"));
    }
    Ok(s)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Run now; `missed` is the scheduled time that passed.
    Now { missed: DateTime<Utc> },
    /// Nothing to do before `next`.
    Wait { next: DateTime<Utc> },
    /// The last run lies in the future: the clock went back. Record now as the last run, so the
    /// next regular time runs (rather than nothing until the clock catches up, perhaps a year).
    ClockBack { next: DateTime<Utc> },
}

/// With no last run (first start), nothing is owed: the first run is the next scheduled one.
pub fn due(schedule: &cron::Schedule, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Due {
    let next_after_now = schedule.after(&now).next().unwrap_or(now + chrono::Duration::days(365));
    let Some(last) = last_run else { return Due::Wait { next: next_after_now } };
    if last > now {
        // The clock went back: wait for the next regular time rather than running at once.
        return Due::ClockBack { next: next_after_now };
    }
    match schedule.after(&last).next() {
        Some(t) if t <= now => Due::Now { missed: t },
        _ => Due::Wait { next: next_after_now },
    }
}

/// hafen's default for the rotating read check: every night at 04:30.
pub const DEFAULT_CHECK_SCHEDULE: &str = "0 30 4 * * *";
/// Parts the packs are split into for the rotating read check: with a daily check every pack is
/// read at least once in any 28 days, so at least once a month.
pub const DEFAULT_CHECK_PARTS: u32 = 28;

/// Which part (`n/parts`, restic's `--read-data-subset` syntax) the check on `day` reads:
/// consecutive days walk through all parts, whatever day the box started on.
pub fn check_subset(day: DateTime<Utc>, parts: u32) -> String {
    let parts = parts.max(1);
    let n = day.timestamp().div_euclid(86_400).rem_euclid(i64::from(parts)) + 1;
    format!("{n}/{parts}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn table() {
        let s = parse(DEFAULT_SCHEDULE).unwrap();
        let cases = [
            ("first start owes nothing", None, t(28, 12, 0), Due::Wait { next: t(29, 2, 0) }),
            ("ran last night, now afternoon", Some(t(28, 2, 0)), t(28, 12, 0), Due::Wait { next: t(29, 2, 0) }),
            ("box was off at 02:00", Some(t(27, 2, 0)), t(28, 8, 30), Due::Now { missed: t(28, 2, 0) }),
            ("off for a week: one catch-up", Some(t(20, 2, 0)), t(28, 8, 30), Due::Now { missed: t(21, 2, 0) }),
            ("exactly on time", Some(t(27, 2, 0)), t(28, 2, 0), Due::Now { missed: t(28, 2, 0) }),
            ("clock went back", Some(t(28, 2, 0)), t(27, 23, 0), Due::ClockBack { next: t(28, 2, 0) }),
            ("clock went back a year", Some(t(28, 2, 0) + chrono::Duration::days(365)), t(28, 1, 0), Due::ClockBack { next: t(28, 2, 0) }),
        ];
        for (name, last, now, want) in cases {
            assert_eq!(due(&s, last, now), want, "{name}");
        }
        assert!(parse("nightly").unwrap_err().contains("not a cron expression"));
    }

    #[test]
    fn the_read_check_reads_every_part_within_a_month() {
        for start in [t(1, 4, 30), t(17, 23, 59)] {
            let seen: std::collections::BTreeSet<String> = (0..28).map(|i| check_subset(start + chrono::Duration::days(i), 28)).collect();
            assert_eq!(seen.len(), 28, "28 days from {start} miss a part: {seen:?}");
        }
        assert_eq!(check_subset(t(5, 1, 0), 1), "1/1");
        assert_eq!(check_subset(t(5, 1, 0), 0), "1/1", "0 parts means everything");
    }
}

#[cfg(test)]
mod edge_tests {
    use super::*;

    /// TM-09: cron expressions at the edges are refused with a reason or run on a strictly
    /// increasing schedule; none panics.
    #[test]
    fn cron_edge_cases_are_refused_or_run_in_order() {
        let now = chrono::Utc::now();
        for expr in ["*/0 * * * * *", "0 0 2 30 2 *", "0 0 2 31 4 *", "0 0 25 * * *", "60 * * * * *", "0 0 2 * * 8", "", "0 0 2", "0 0 2 * * * * *", "0 0 0-59/1 * * *"] {
            let r = std::panic::catch_unwind(|| parse(expr));
            let Ok(r) = r else { panic!("`{expr}` panicked") };
            if let Ok(s) = r {
                let next: Vec<_> = s.after(&now).take(5).collect();
                assert!(next.windows(2).all(|w| w[0] < w[1]), "`{expr}`: {next:?}");
                // A schedule that never fires must not be accepted silently.
                assert!(!next.is_empty(), "`{expr}` is accepted but never runs");
            }
        }
        assert!(parse("0 0 2 30 2 *").unwrap_err().contains("never run"));
        let long = format!("0 0 {} * * *", (0..24).map(|h| h.to_string()).collect::<Vec<_>>().join(","));
        assert!(parse(&long).is_ok());
    }
}
