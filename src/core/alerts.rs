//! Alert rules as pure functions: how serious a reading is (`Level`), which open alerts are due
//! for a reminder, and when a stack's backup counts as too old. The daemon's alert lifecycle
//! (`hafen_daemon::watch`) applies them.

use hafen_api::AlertRecord;

/// How serious a host reading is. Ordered: `Ok < Warning < Critical`, so the worst of several
/// readings is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

/// The open alerts whose last notice is at least `every` old (an unreadable time counts as due:
/// better one reminder too many than a problem forgotten).
pub fn reminders_due(open: &[AlertRecord], now: chrono::DateTime<chrono::Utc>, every: chrono::Duration) -> Vec<String> {
    open.iter()
        .filter(|a| match chrono::DateTime::parse_from_rfc3339(&a.last_notified) {
            Ok(t) => now - t.with_timezone(&chrono::Utc) >= every,
            Err(_) => true,
        })
        .map(|a| a.key.clone())
        .collect()
}

/// How old a stack's last good backup is, and whether that is a problem: counted from the last
/// good backup, or, never backed up, from when the stack was deployed (a new stack gets one
/// nightly run before it counts as missing).
pub fn backup_age_level(
    last_good: Option<chrono::DateTime<chrono::Utc>>,
    deployed: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    max: chrono::Duration,
) -> (chrono::Duration, Level) {
    let since = last_good.or(deployed).unwrap_or(now);
    let age = now - since;
    (age, if age > max { Level::Warning } else { Level::Ok })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn reminders_fall_due_every_interval_per_alert() {
        let alert = |key: &str, last: &str| AlertRecord {
            key: key.into(),
            code: "disk_low".into(),
            severity: "warning".into(),
            stack: None,
            args: BTreeMap::new(),
            since: "2026-11-28T08:00:00.000Z".into(),
            last_notified: last.into(),
            tried: vec![],
        };
        let open = [alert("a", "2026-11-28T08:00:00.000Z"), alert("b", "2026-11-28T11:30:00.000Z"), alert("c", "garbage")];
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let h = chrono::Duration::hours;
        assert_eq!(reminders_due(&open, now, h(4)), ["a", "c"]);
        assert_eq!(reminders_due(&open, now, h(5)), ["c"]);
        assert_eq!(reminders_due(&open, now, chrono::Duration::minutes(30)), ["a", "b", "c"]);
    }

    #[test]
    fn backup_age_counts_from_the_last_good_backup_or_the_deploy() {
        use Level::*;
        let t = |h: i64| chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().with_timezone(&chrono::Utc) + chrono::Duration::hours(h);
        let max = chrono::Duration::hours(36);
        let cases = [
            (Some(t(-10)), Some(t(-100)), Ok, 10),
            (Some(t(-40)), Some(t(-100)), Warning, 40),
            (None, Some(t(-20)), Ok, 20),
            (None, Some(t(-37)), Warning, 37),
            (None, None, Ok, 0),
        ];
        for (i, (last, deployed, level, hours)) in cases.into_iter().enumerate() {
            let (age, l) = backup_age_level(last, deployed, t(0), max);
            assert_eq!((l, age.num_hours()), (level, hours), "case {i}");
        }
    }

}
