//! The planning of updates, as pure functions: image tags parsed as versions, the candidates a
//! stack's update channel allows, the version path through every required hop (no skipped
//! majors, the newest release of the current major first, required intermediate versions), what
//! each hop changes (images, database moves, migrations), and the decision what to do now given
//! the stack's update policy and maintenance window. Asking registries and running the
//! transaction are the daemon's (`hafen_daemon::registry`, `hafen_daemon::update`).

use crate::catalogue::model::{Channel, MigrationDef, UpgradeDef};
use std::collections::BTreeMap;
use serde::Serialize;
use std::cmp::Ordering;
use std::fmt;
use rust_i18n::t;

/// A version from an image tag: numeric dot parts (`31.0.9`, `7.0`, `15`), optionally with a
/// suffix after `-` (`33.0.1-apache`, kept, compared only when the numbers are equal). A leading
/// `v` is ignored. Tags that are not versions (`latest`, `stable`) are not updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Version {
    pub parts: Vec<u64>,
    pub suffix: String,
    /// The tag as written.
    pub tag: String,
}

impl Version {
    pub fn parse(tag: &str) -> Option<Version> {
        let t = tag.strip_prefix('v').unwrap_or(tag);
        let (nums, suffix) = match t.split_once('-') {
            Some((n, s)) => (n, s.to_string()),
            None => (t, String::new()),
        };
        let parts: Option<Vec<u64>> = nums.split('.').map(|p| if p.is_empty() || p.len() > 9 { None } else { p.parse().ok() }).collect();
        let parts = parts?;
        (!parts.is_empty() && parts.len() <= 4).then(|| Version { parts, suffix, tag: tag.to_string() })
    }

    fn part(&self, i: usize) -> u64 {
        self.parts.get(i).copied().unwrap_or(0)
    }

    pub fn major(&self) -> u64 {
        self.part(0)
    }

    /// Same major and minor.
    fn same_minor(&self, o: &Version) -> bool {
        self.part(0) == o.part(0) && self.part(1) == o.part(1)
    }

    /// `self` starts with the parts of `prefix` (`7.0.3` matches `7.0` and `7`).
    pub fn matches_prefix(&self, prefix: &Version) -> bool {
        prefix.parts.iter().enumerate().all(|(i, p)| self.part(i) == *p)
    }
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        let n = self.parts.len().max(o.parts.len());
        (0..n).map(|i| self.part(i).cmp(&o.part(i))).find(|c| c.is_ne()).unwrap_or_else(|| self.suffix.cmp(&o.suffix))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag)
    }
}

/// The tags that are versions, newer than `current`, with `current`'s suffix (an `-apache` image
/// stays an `-apache` image), that `channel` allows; sorted, oldest first.
pub fn candidates(current: &Version, tags: &[String], channel: Channel) -> Vec<Version> {
    let mut v: Vec<Version> = tags
        .iter()
        .filter_map(|t| Version::parse(t))
        .filter(|v| v.suffix == current.suffix && v > current)
        .filter(|v| match channel {
            Channel::Patch => v.same_minor(current),
            Channel::Minor => v.major() == current.major(),
            Channel::Major => true,
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| (*a).cmp(&*b) == Ordering::Equal);
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The target is not newer than what runs.
    NotNewer { current: String, target: String },
    /// A major in between has no release to go through.
    MissingMajor { from: String, to: String, major: u64 },
    /// A version the stack requires on the way is not available.
    MissingRequired { required: String },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NotNewer { current, target } => f.write_str(&t!("version.not_newer", target = target, current = current)),
            PlanError::MissingMajor { from, to, major } => f.write_str(&t!("version.missing_major", from = from, to = to, major = major)),
            PlanError::MissingRequired { required } => f.write_str(&t!("version.missing_required", required = required)),
        }
    }
}

/// The hops from `current` to `target` (the last hop is `target`), each one step hafen takes with
/// a backup before it: when majors change and skipping is not allowed, first the newest
/// available release of the current major (Nextcloud asks for it), then the newest release of
/// every major in between, then the target; every required version in between is a hop too.
pub fn plan_path(current: &Version, target: &Version, available: &[Version], rules: &UpgradeDef) -> Result<Vec<Version>, PlanError> {
    if target <= current {
        return Err(PlanError::NotNewer { current: current.tag.clone(), target: target.tag.clone() });
    }
    let usable: Vec<&Version> = available.iter().filter(|v| v.suffix == current.suffix && *v > current && *v <= target).collect();
    let newest_of = |major: u64| usable.iter().filter(|v| v.major() == major).max().map(|v| (*v).clone());
    let mut hops: Vec<Version> = Vec::new();
    if !rules.allow_major_skip && target.major() > current.major() {
        if let Some(v) = newest_of(current.major()) {
            hops.push(v);
        }
        for major in current.major() + 1..target.major() {
            match newest_of(major) {
                Some(v) => hops.push(v),
                None => return Err(PlanError::MissingMajor { from: current.tag.clone(), to: target.tag.clone(), major }),
            }
        }
    }
    for r in &rules.required_versions {
        let Some(req) = Version::parse(r) else { continue };
        if req.matches_prefix(current) || req.parts.as_slice() > target.parts.as_slice() {
            continue;
        }
        // The newest available release matching the required prefix, if it lies on the way.
        let hit = usable.iter().filter(|v| v.matches_prefix(&req)).max().map(|v| (*v).clone());
        match hit {
            Some(v) if v < *target => hops.push(v),
            Some(_) => {}
            None if req > *current && req < *target => return Err(PlanError::MissingRequired { required: r.clone() }),
            None => {}
        }
    }
    hops.push(target.clone());
    hops.sort();
    hops.dedup_by(|a, b| (*a).cmp(&*b) == Ordering::Equal);
    Ok(hops)
}

/// What one hop changes: the image of every service that moves (service → (from, to) by tag),
/// the database services whose major version changes (their data moves by dump and load), and
/// the migrations that run.
#[derive(Debug, Clone, Serialize)]
pub struct HopChange {
    pub version: String,
    pub images: BTreeMap<String, (String, String)>,
    pub database_moves: Vec<String>,
    pub migrations: Vec<MigrationDef>,
}

/// The major version of an image reference's tag (`…/pg:15` → 15).
fn tag_major(reference: &str) -> Option<u64> {
    crate::image_ref::ImageRef::parse(reference).and_then(|r| r.tag).and_then(|t| Version::parse(&t)).map(|v| v.major())
}

/// What moving from `from` to `to` changes, given the images that run now (service → reference
/// by tag). The tracked service takes `to` as its tag; services named in the longest `with`
/// prefix that `to` matches take the tags given there; others stay. Migrations whose `to` the
/// new version matches and the old one does not are run (in the order written).
pub fn hop_change(rules: &UpgradeDef, current: &BTreeMap<String, String>, from: &Version, to: &Version) -> HopChange {
    let mut images = BTreeMap::new();
    let retag = |svc: &str, tag: &str| current.get(svc).and_then(|r| crate::image_ref::ImageRef::parse(r)).map(|r| r.with_tag(tag));
    if let Some(t) = &rules.track {
        if let (Some(old), Some(new)) = (current.get(t), retag(t, &to.tag)) {
            images.insert(t.clone(), (old.clone(), new));
        }
    }
    let best = rules
        .with
        .iter()
        .filter_map(|(p, m)| Version::parse(p).filter(|pv| to.matches_prefix(pv)).map(|pv| (pv.parts.len(), m)))
        .max_by_key(|(n, _)| *n)
        .map(|(_, m)| m);
    for (svc, tag) in best.into_iter().flatten() {
        if let (Some(old), Some(new)) = (current.get(svc), retag(svc, tag)) {
            if *old != new {
                images.insert(svc.clone(), (old.clone(), new));
            }
        }
    }
    let database_moves = rules.databases.iter().filter(|d| images.get(*d).is_some_and(|(o, n)| tag_major(o) != tag_major(n))).cloned().collect();
    HopChange { version: to.tag.clone(), images, database_moves, migrations: hop_migrations(rules, from, to) }
}

/// Migrations whose `to` the new version matches and the old one does not (in the order written).
fn hop_migrations(rules: &UpgradeDef, from: &Version, to: &Version) -> Vec<crate::catalogue::model::MigrationDef> {
    rules.migrations.iter().filter(|m| Version::parse(&m.to).is_some_and(|mv| to.matches_prefix(&mv) && !from.matches_prefix(&mv))).cloned().collect()
}

/// The same for a stack built from its recipes (`upgrade.versions`): each service the version
/// `to` names moves to that recipe's image (`image_of` gives a recipe's image reference), and a
/// database whose recipe changes moves its data by dump and load. `current`: service → (recipe,
/// image reference) as they run now.
pub fn recipe_hop_change(rules: &UpgradeDef, current: &BTreeMap<String, (String, String)>, image_of: &dyn Fn(&str) -> Option<String>, from: &Version, to: &Version) -> HopChange {
    let mut images = BTreeMap::new();
    let mut moved = Vec::new();
    for (svc, recipe) in rules.versions.get(&to.tag).into_iter().flatten() {
        let Some((old_recipe, old_ref)) = current.get(svc) else { continue };
        if old_recipe != recipe {
            if let Some(new) = image_of(recipe) {
                images.insert(svc.clone(), (old_ref.clone(), new));
                moved.push(svc.clone());
            }
        }
    }
    let database_moves = rules.databases.iter().filter(|d| moved.contains(d)).cloned().collect();
    HopChange { version: to.tag.clone(), images, database_moves, migrations: hop_migrations(rules, from, to) }
}

/// The version whose recipes are the ones running (`current`: service → recipe).
pub fn recipe_version(rules: &UpgradeDef, current: &BTreeMap<String, String>) -> Option<Version> {
    rules.versions.iter().find(|(_, m)| m.iter().all(|(svc, r)| current.get(svc) == Some(r))).and_then(|(v, _)| Version::parse(v))
}

/// How a stack takes updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only when an admin says `hafen update apply`.
    Manual,
    /// Tell the admin (an alert), never apply.
    Notify,
    /// Apply in the maintenance window.
    Automatic,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub channel: Channel,
    /// When automatic updates may run (cron with seconds); none: any time.
    pub window: Option<String>,
    /// `hafen update pin`: never beyond this version.
    pub pin: Option<Version>,
    /// Rebuilds of the same version (security fixes of Debian's packages, a new digest under
    /// the same tag) run automatically in the window even when feature updates are manual.
    pub security_automatic: bool,
}

/// What to do about one stack now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    Nothing,
    /// Tell the admin what is available and the path it would take.
    Notify { path: Vec<String> },
    /// Start the update transaction now (a path of hops; empty path = rebuild in place).
    Apply { path: Vec<String>, rebuild: bool },
    /// Automatic, but outside the window: the next window opens then.
    WaitForWindow { path: Vec<String>, rebuild: bool, opens: String },
    /// An update exists but cannot be planned (the reason says why).
    Blocked { reason: String },
}

/// Whether `now` is inside the window: the window is a cron expression whose firing starts a
/// one-hour slot (the time a careful admin would book for an update).
pub fn in_window(window: &str, now: chrono::DateTime<chrono::Utc>) -> Result<(bool, chrono::DateTime<chrono::Utc>), String> {
    let s = crate::schedule::parse(window)?;
    let slot = chrono::Duration::hours(1);
    let opened = s.after(&(now - slot)).next().is_some_and(|t| t <= now);
    let next = s.after(&now).next().ok_or_else(|| t!("version.window_never_opens", window = window).to_string())?;
    Ok((opened, next))
}

/// The decision function: what runs, what is available (version tags), whether the running
/// version has a rebuild pending (same version, new digest or Debian security updates), the
/// policy and the time.
pub fn decide(current: &Version, tags: &[String], rebuild_pending: bool, policy: &Policy, rules: &UpgradeDef, now: chrono::DateTime<chrono::Utc>) -> Decision {
    let mut cands = candidates(current, tags, policy.channel);
    if let Some(pin) = &policy.pin {
        cands.retain(|v| v <= pin);
    }
    let path = match cands.last() {
        None => None,
        Some(target) => match plan_path(current, target, &cands, rules) {
            Ok(p) => Some(p),
            Err(e) => return Decision::Blocked { reason: e.to_string() },
        },
    };
    let (path, rebuild) = match path {
        Some(p) => (p.iter().map(|v| v.tag.clone()).collect::<Vec<_>>(), false),
        None if rebuild_pending => (Vec::new(), true),
        None => return Decision::Nothing,
    };
    let automatic = policy.mode == Mode::Automatic || (rebuild && policy.security_automatic);
    if !automatic {
        return match policy.mode {
            Mode::Manual if rebuild => Decision::Nothing,
            _ => Decision::Notify { path },
        };
    }
    match policy.window.as_deref().map(|w| in_window(w, now)) {
        None => Decision::Apply { path, rebuild },
        Some(Ok((true, _))) => Decision::Apply { path, rebuild },
        Some(Ok((false, next))) => Decision::WaitForWindow { path, rebuild, opens: next.to_rfc3339() },
        Some(Err(e)) => Decision::Blocked { reason: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn tags(s: &[&str]) -> Vec<String> {
        s.iter().map(|t| t.to_string()).collect()
    }
    fn no_skip() -> UpgradeDef {
        UpgradeDef::default()
    }
    fn path(p: &[Version]) -> Vec<&str> {
        p.iter().map(|v| v.tag.as_str()).collect()
    }

    #[test]
    fn versions_parse_and_order() {
        assert!(v("31.0.10") > v("31.0.9"));
        assert!(v("7.0") > v("6.8.12"));
        assert_eq!(v("v1.2.3").parts, [1, 2, 3]);
        assert_eq!(v("33.0.1-apache").suffix, "apache");
        for bad in ["latest", "stable", "", "1..2", "x1.2"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn channels_limit_the_candidates() {
        let all = tags(&["31.0.8", "31.0.9", "31.1.0", "32.0.0", "latest", "31.0.9-fpm", "30.0.1"]);
        let cur = v("31.0.8");
        let t = |c| candidates(&cur, &all, c).into_iter().map(|v| v.tag).collect::<Vec<_>>();
        assert_eq!(t(Channel::Patch), ["31.0.9"]);
        assert_eq!(t(Channel::Minor), ["31.0.9", "31.1.0"]);
        assert_eq!(t(Channel::Major), ["31.0.9", "31.1.0", "32.0.0"]);
    }

    #[test]
    fn nextcloud_31_to_33_goes_through_the_newest_31_and_32() {
        let avail: Vec<Version> = ["31.0.2", "31.0.9", "32.0.0", "32.0.5", "33.0.0", "33.0.1"].iter().map(|s| v(s)).collect();
        let p = plan_path(&v("31.0.2"), &v("33.0.1"), &avail, &no_skip()).unwrap();
        assert_eq!(path(&p), ["31.0.9", "32.0.5", "33.0.1"]);
        // Already on the newest 31: straight to 32, then 33.
        let p = plan_path(&v("31.0.9"), &v("33.0.0"), &avail, &no_skip()).unwrap();
        assert_eq!(path(&p), ["32.0.5", "33.0.0"]);
    }

    #[test]
    fn a_plan_that_would_skip_a_major_is_refused() {
        let avail: Vec<Version> = ["31.0.9", "33.0.1"].iter().map(|s| v(s)).collect();
        let e = plan_path(&v("31.0.9"), &v("33.0.1"), &avail, &no_skip()).unwrap_err();
        assert_eq!(e, PlanError::MissingMajor { from: "31.0.9".into(), to: "33.0.1".into(), major: 32 });
        // The text is in the process-wide language, which another test of this crate switches;
        // so this looks at the numbers, not the words.
        assert!(["31.0.9", "33.0.1", "32"].iter().all(|n| e.to_string().contains(n)), "{e}");
        // A stack that allows skipping goes straight there.
        let skip = UpgradeDef { allow_major_skip: true, ..UpgradeDef::default() };
        assert_eq!(path(&plan_path(&v("31.0.9"), &v("33.0.1"), &avail, &skip).unwrap()), ["33.0.1"]);
        // No downgrades.
        assert!(matches!(plan_path(&v("33.0.1"), &v("31.0.9"), &avail, &no_skip()), Err(PlanError::NotNewer { .. })));
    }

    #[test]
    fn required_versions_are_hops() {
        let rules = UpgradeDef { allow_major_skip: true, required_versions: vec!["6.4".into()], ..UpgradeDef::default() };
        let avail: Vec<Version> = ["6.2.1", "6.4.0", "6.4.3", "6.8.0", "7.0.2"].iter().map(|s| v(s)).collect();
        assert_eq!(path(&plan_path(&v("6.0.5"), &v("7.0.2"), &avail, &rules).unwrap()), ["6.4.3", "7.0.2"]);
        // Already past it: nothing extra.
        assert_eq!(path(&plan_path(&v("6.5.0"), &v("7.0.2"), &avail, &rules).unwrap()), ["7.0.2"]);
        let missing: Vec<Version> = ["6.8.0", "7.0.2"].iter().map(|s| v(s)).collect();
        assert!(matches!(plan_path(&v("6.0.5"), &v("7.0.2"), &missing, &rules), Err(PlanError::MissingRequired { .. })));
    }

    #[test]
    fn a_hop_moves_images_databases_and_picks_migrations() {
        let mig = |to: &str| MigrationDef { to: to.into(), service: "server".into(), command: vec!["admin".into(), "--all".into()] };
        let rules = UpgradeDef {
            track: Some("server".into()),
            with: vec![("7".into(), BTreeMap::from([("db".to_string(), "16".to_string())])), ("7.0".into(), BTreeMap::from([("db".to_string(), "17".to_string())]))],
            databases: vec!["db".into()],
            migrations: vec![mig("7.0"), mig("6")],
            ..UpgradeDef::default()
        };
        let cur = BTreeMap::from([("server".to_string(), "127.0.0.1:5000/hafen/tryton:6.0".to_string()), ("db".to_string(), "127.0.0.1:5000/hafen/pg:15".to_string())]);
        let h = hop_change(&rules, &cur, &v("6.0"), &v("7.0"));
        assert_eq!(h.images["server"].1, "127.0.0.1:5000/hafen/tryton:7.0");
        // The longest prefix wins: 7.0 → PostgreSQL 17, a major move of the database.
        assert_eq!(h.images["db"], ("127.0.0.1:5000/hafen/pg:15".to_string(), "127.0.0.1:5000/hafen/pg:17".to_string()));
        assert_eq!(h.database_moves, ["db"]);
        assert_eq!(h.migrations.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(), ["7.0"]);
        // A patch hop within 6.0: only the tracked image, no database move, no migration.
        let h = hop_change(&rules, &cur, &v("6.0"), &v("6.0.1"));
        assert_eq!(h.images.keys().collect::<Vec<_>>(), ["server"]);
        assert!(h.database_moves.is_empty() && h.migrations.is_empty());
        // Same database tag: nothing moves there.
        let on17 = BTreeMap::from([("server".to_string(), "r/tryton:7.0".to_string()), ("db".to_string(), "r/pg:17".to_string())]);
        let h = hop_change(&rules, &on17, &v("7.0"), &v("7.0.2"));
        assert!(!h.images.contains_key("db") && h.database_moves.is_empty());
    }

    #[test]
    fn a_hop_between_recipes_builds_the_new_ones_and_moves_a_database_whose_recipe_changes() {
        let mig = |to: &str| MigrationDef { to: to.into(), service: "server".into(), command: vec!["admin".into(), "--all".into()] };
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<BTreeMap<String, String>>();
        let rules = UpgradeDef {
            versions: BTreeMap::from([
                ("6.0".to_string(), map(&[("server", "tryton60"), ("db", "postgres15")])),
                ("6.4".to_string(), map(&[("server", "tryton64"), ("db", "postgres15")])),
                ("7.0".to_string(), map(&[("server", "tryton70"), ("db", "postgres17")])),
            ]),
            databases: vec!["db".into()],
            migrations: vec![mig("7.0")],
            ..UpgradeDef::default()
        };
        let running = map(&[("server", "tryton60"), ("db", "postgres15")]);
        assert_eq!(recipe_version(&rules, &running), Some(v("6.0")));
        assert_eq!(recipe_version(&rules, &map(&[("server", "tryton70"), ("db", "postgres15")])), None, "no version runs tryton70 on postgres15");
        let cur: BTreeMap<String, (String, String)> = running.iter().map(|(s, r)| (s.clone(), (r.clone(), format!("hafen/{r}:aaaa")))).collect();
        let image_of = |r: &str| Some(format!("hafen/{r}:bbbb"));
        let h = recipe_hop_change(&rules, &cur, &image_of, &v("6.0"), &v("7.0"));
        assert_eq!(h.images["server"], ("hafen/tryton60:aaaa".to_string(), "hafen/tryton70:bbbb".to_string()));
        assert_eq!(h.images["db"], ("hafen/postgres15:aaaa".to_string(), "hafen/postgres17:bbbb".to_string()));
        assert_eq!(h.database_moves, ["db"]);
        assert_eq!(h.migrations.len(), 1);
        // 6.0 → 6.4: the server only; the database keeps its recipe, so no data moves.
        let h = recipe_hop_change(&rules, &cur, &image_of, &v("6.0"), &v("6.4"));
        assert_eq!(h.images.keys().collect::<Vec<_>>(), ["server"]);
        assert!(h.database_moves.is_empty() && h.migrations.is_empty());
        // The versions are the candidates (no registry): 6.4 and 7.0, one major at a time.
        let tags: Vec<String> = rules.versions.keys().cloned().collect();
        let avail = candidates(&v("6.0"), &tags, Channel::Major);
        assert_eq!(path(&avail), ["6.4", "7.0"]);
        assert_eq!(path(&plan_path(&v("6.0"), &v("7.0"), &avail, &rules).unwrap()), ["6.4", "7.0"]);
    }

    #[test]
    fn the_decision_table() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T02:30:00Z").unwrap().with_timezone(&chrono::Utc);
        let night = Some("0 0 2 * * *".to_string());
        let pol = |mode, window: Option<String>, pin: Option<&str>, sec| Policy { mode, channel: Channel::Minor, window, pin: pin.map(v), security_automatic: sec };
        let avail = tags(&["7.0.1", "7.0.3", "7.2.0"]);
        let none: Vec<String> = vec![];
        let cur = v("7.0.1");
        let rules = no_skip();
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // (tags, rebuild pending, policy, expected)
        let table: Vec<(&Vec<String>, bool, Policy, Decision)> = vec![
            (&none, false, pol(Mode::Automatic, night.clone(), None, true), Decision::Nothing),
            (&avail, false, pol(Mode::Manual, night.clone(), None, false), Decision::Notify { path: p(&["7.2.0"]) }),
            (&avail, false, pol(Mode::Notify, None, None, false), Decision::Notify { path: p(&["7.2.0"]) }),
            (&avail, false, pol(Mode::Automatic, night.clone(), None, false), Decision::Apply { path: p(&["7.2.0"]), rebuild: false }),
            (&avail, false, pol(Mode::Automatic, night.clone(), Some("7.0.9"), false), Decision::Apply { path: p(&["7.0.3"]), rebuild: false }),
            (&avail, false, pol(Mode::Automatic, night.clone(), Some("7.0.1"), false), Decision::Nothing),
            (&none, true, pol(Mode::Manual, night.clone(), None, true), Decision::Apply { path: vec![], rebuild: true }),
            (&none, true, pol(Mode::Manual, night.clone(), None, false), Decision::Nothing),
            (&none, true, pol(Mode::Notify, night.clone(), None, false), Decision::Notify { path: vec![] }),
            (&avail, false, pol(Mode::Automatic, Some("0 0 4 * * *".into()), None, false), Decision::WaitForWindow { path: p(&["7.2.0"]), rebuild: false, opens: "2026-11-28T04:00:00+00:00".into() }),
        ];
        for (i, (t, rb, pol, want)) in table.into_iter().enumerate() {
            assert_eq!(decide(&cur, t, rb, &pol, &rules, now), want, "case {i}");
        }
        // A window that is not cron is a clear block, not a silent update.
        let bad = pol(Mode::Automatic, Some("nightly".into()), None, false);
        assert!(matches!(decide(&cur, &avail, false, &bad, &rules, now), Decision::Blocked { .. }));
    }
}
