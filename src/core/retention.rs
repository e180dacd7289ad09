//! Retention as a pure function of (policy, snapshots, now): which snapshots to keep, why, and
//! which to forget. Semantics follow restic's `forget --keep-*` (buckets in UTC; a bucket counts
//! only if it has a snapshot; the newest snapshot of a bucket is kept; `keep_within` is measured
//! from the newest snapshot, so backups that stopped do not age the last good ones away). Nothing
//! is forgotten when the clock looks wrong (a snapshot newer than `now`) or when the policy would
//! keep nothing.

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default)]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    #[serde(default)]
    pub keep_yearly: u32,
    /// Keep everything this close to the newest snapshot.
    #[serde(default, with = "opt_secs")]
    pub keep_within: Option<Duration>,
}

mod opt_secs {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.num_seconds()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map(Duration::seconds))
    }
}

impl Policy {
    /// hafen's default for local targets: 14 daily, 8 weekly, 12 monthly, nothing yearly (data
    /// minimisation; statutory archives belong in the exports, not in nightly backups).
    pub fn default_local() -> Policy {
        Policy { keep_daily: 14, keep_weekly: 8, keep_monthly: 12, ..Policy::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub id: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Decision {
    /// Kept snapshot ids with the rules that keep them.
    pub keep: BTreeMap<String, Vec<String>>,
    pub forget: Vec<String>,
    /// Why nothing is forgotten, when pruning was refused.
    pub refused: Option<Refusal>,
}

/// Why retention forgot nothing: a code (`clock_behind`, `keeps_nothing`) for events and
/// alerts, and the English line for logs and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub code: &'static str,
    pub text: String,
}

/// Clock skew tolerated before pruning is refused.
pub const CLOCK_TOLERANCE_MINUTES: i64 = 5;

pub fn decide(policy: &Policy, snaps: &[Snap], now: DateTime<Utc>) -> Decision {
    let mut sorted: Vec<&Snap> = snaps.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
    let mut d = Decision::default();
    if let Some(newest) = sorted.first() {
        if newest.time > now + Duration::minutes(CLOCK_TOLERANCE_MINUTES) {
            d.refused = Some(Refusal {
                code: "clock_behind",
                text: format!("the clock says {now}, but snapshot {} was taken at {}; pruning is skipped until the clock is right", newest.id, newest.time),
            });
            for s in &sorted {
                d.keep.entry(s.id.clone()).or_default().push("clock".into());
            }
            return d;
        }
    }
    let keep = |s: &Snap, why: &str, d: &mut Decision| d.keep.entry(s.id.clone()).or_default().push(why.to_string());
    for s in sorted.iter().take(policy.keep_last as usize) {
        keep(s, "last", &mut d);
    }
    type Bucket = fn(&DateTime<Utc>) -> (i32, u32);
    let rules: [(&str, u32, Bucket); 4] = [
        ("daily", policy.keep_daily, |t| (t.year(), t.ordinal())),
        ("weekly", policy.keep_weekly, |t| (t.iso_week().year(), t.iso_week().week())),
        ("monthly", policy.keep_monthly, |t| (t.year(), t.month())),
        ("yearly", policy.keep_yearly, |t| (t.year(), 0)),
    ];
    for (name, n, bucket) in rules {
        let mut seen = BTreeSet::new();
        for s in &sorted {
            if seen.len() >= n as usize {
                break;
            }
            if seen.insert(bucket(&s.time)) {
                keep(s, name, &mut d);
            }
        }
    }
    if let (Some(within), Some(newest)) = (policy.keep_within, sorted.first()) {
        for s in &sorted {
            if newest.time - s.time <= within {
                keep(s, "within", &mut d);
            }
        }
    }
    if d.keep.is_empty() && !sorted.is_empty() {
        d.refused = Some(Refusal { code: "keeps_nothing", text: "the retention policy would keep no snapshot at all; nothing is forgotten".into() });
        for s in &sorted {
            d.keep.entry(s.id.clone()).or_default().push("policy-empty".into());
        }
        return d;
    }
    d.forget = sorted.iter().filter(|s| !d.keep.contains_key(&s.id)).map(|s| s.id.clone()).collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    /// Nightly snapshots at 02:00 for `days` days ending on 2026-11-28.
    fn nightly(days: i64) -> Vec<Snap> {
        (0..days).map(|i| Snap { id: format!("s{i:03}"), time: at(2026, 11, 28, 2) - Duration::days(i) }).collect()
    }

    fn kept(d: &Decision) -> Vec<String> {
        d.keep.keys().cloned().collect()
    }

    #[test]
    fn table() {
        let now = at(2026, 11, 28, 12);
        struct Case {
            name: &'static str,
            policy: Policy,
            snaps: Vec<Snap>,
            keep: usize,
            forget: usize,
            refused: bool,
        }
        let cases = vec![
            Case { name: "no snapshots", policy: Policy::default_local(), snaps: vec![], keep: 0, forget: 0, refused: false },
            Case { name: "keep last 3 of 10", policy: Policy { keep_last: 3, ..Default::default() }, snaps: nightly(10), keep: 3, forget: 7, refused: false },
            Case { name: "daily 14 of 30 nights", policy: Policy { keep_daily: 14, ..Default::default() }, snaps: nightly(30), keep: 14, forget: 16, refused: false },
            // 400 nights: 14 daily, 8 weekly (overlapping the first two weeks), 12 monthly.
            Case { name: "default policy over 400 nights", policy: Policy::default_local(), snaps: nightly(400), keep: 14 + 6 + 10, forget: 400 - 30, refused: false },
            Case { name: "yearly over 3 years", policy: Policy { keep_yearly: 5, ..Default::default() }, snaps: nightly(3 * 365), keep: 4, forget: 3 * 365 - 4, refused: false },
            Case {
                name: "keep_within measured from the newest snapshot",
                policy: Policy { keep_within: Some(Duration::days(3)), ..Default::default() },
                snaps: nightly(10).into_iter().map(|mut s| { s.time -= Duration::days(60); s }).collect(),
                keep: 4,
                forget: 6,
                refused: false,
            },
            Case { name: "empty policy keeps everything", policy: Policy::default(), snaps: nightly(5), keep: 5, forget: 0, refused: true },
            Case {
                name: "clock behind the newest snapshot",
                policy: Policy { keep_last: 1, ..Default::default() },
                snaps: vec![Snap { id: "future".into(), time: now + Duration::days(2) }, Snap { id: "old".into(), time: now - Duration::days(9) }],
                keep: 2,
                forget: 0,
                refused: true,
            },
            Case {
                name: "small skew is tolerated",
                policy: Policy { keep_last: 1, ..Default::default() },
                snaps: vec![Snap { id: "a".into(), time: now + Duration::minutes(2) }, Snap { id: "b".into(), time: now - Duration::days(1) }],
                keep: 1,
                forget: 1,
                refused: false,
            },
            Case {
                name: "two snapshots in one day: the newer is the daily one",
                policy: Policy { keep_daily: 1, ..Default::default() },
                snaps: vec![Snap { id: "morning".into(), time: at(2026, 11, 28, 2) }, Snap { id: "noon".into(), time: at(2026, 11, 28, 11) }],
                keep: 1,
                forget: 1,
                refused: false,
            },
        ];
        for c in cases {
            let d = decide(&c.policy, &c.snaps, now);
            assert_eq!((d.keep.len(), d.forget.len(), d.refused.is_some()), (c.keep, c.forget, c.refused), "case `{}`: {:?}", c.name, kept(&d));
            for f in &d.forget {
                assert!(!d.keep.contains_key(f), "case `{}`", c.name);
            }
        }
    }

    #[test]
    fn the_newest_in_a_bucket_is_kept_with_its_reasons() {
        let now = at(2026, 11, 28, 12);
        let d = decide(&Policy { keep_daily: 1, ..Default::default() }, &[Snap { id: "morning".into(), time: at(2026, 11, 28, 2) }, Snap { id: "noon".into(), time: at(2026, 11, 28, 11) }], now);
        assert_eq!(d.keep.get("noon"), Some(&vec!["daily".to_string()]));
        assert_eq!(d.forget, vec!["morning".to_string()]);
    }
}
