//! The `updates:` and `registries:` parts of the config: how each stack takes updates (manual,
//! notify, automatic; the maintenance window; whether security rebuilds may run by themselves),
//! when hafen asks the registries, and how it logs in to them.

use super::*;
use hafen_core::version::Mode;

#[derive(Debug, Clone, Serialize)]
pub struct UpdatePolicy {
    pub mode: Mode,
    /// Cron expression (with seconds) whose firing opens a one-hour maintenance window.
    pub window: Option<String>,
    /// Rebuilds of the running version (security fixes) run in the window even when feature
    /// updates are manual.
    pub security_automatic: bool,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        // Tell the admin, never change anything by itself; security rebuilds at night.
        UpdatePolicy { mode: Mode::Notify, window: Some(DEFAULT_WINDOW.into()), security_automatic: true }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UpdatesConfig {
    /// When hafen asks the registries what is new (cron with seconds).
    pub check_schedule: String,
    /// When hafen rebuilds its own images in a throwaway build to find pending Debian updates.
    pub rebuild_schedule: String,
    /// For stacks not named in `stacks`.
    pub default: UpdatePolicy,
    pub stacks: BTreeMap<String, UpdatePolicy>,
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        UpdatesConfig { check_schedule: DEFAULT_CHECK.into(), rebuild_schedule: DEFAULT_REBUILD.into(), default: UpdatePolicy::default(), stacks: BTreeMap::new() }
    }
}

impl UpdatesConfig {
    pub fn policy(&self, stack: &str) -> &UpdatePolicy {
        self.stacks.get(stack).unwrap_or(&self.default)
    }
}

/// Login for one registry (`host[:port]` as in image references).
#[derive(Debug, Clone, Serialize)]
pub struct RegistryConfig {
    pub host: String,
    pub user: Option<String>,
    /// File holding the password or token (mode 0600).
    pub password_file: Option<PathBuf>,
    /// Plain HTTP: only for a registry on this machine (loopback is plain HTTP by default, as
    /// Docker does it).
    pub plain_http: bool,
}

pub const DEFAULT_CHECK: &str = "0 15 */6 * * *";
pub const DEFAULT_WINDOW: &str = "0 0 3 * * *";
pub const DEFAULT_REBUILD: &str = "0 30 1 * * *";

use std::collections::BTreeMap;

fn parse_policy(v: &serde_norway::Value, path: &str, is: &mut Issues) -> UpdatePolicy {
    let mut p = UpdatePolicy::default();
    let Some(mut o) = Obj::new(v, path, is) else { return p };
    match o.opt::<String>("mode", is).as_deref() {
        None => {}
        Some("manual") => p.mode = Mode::Manual,
        Some("notify") => p.mode = Mode::Notify,
        Some("automatic") => p.mode = Mode::Automatic,
        Some(other) => is.push(&format!("{path}.mode"), t!("cfg.update_mode", other = other).to_string()),
    }
    match o.raw("window") {
        None => {}
        Some(serde_norway::Value::Null) => p.window = None,
        Some(w) => match scalar(w) {
            Some(s) if s == "any" => p.window = None,
            Some(s) => match hafen_core::schedule::parse(&s) {
                Ok(_) => p.window = Some(s),
                Err(e) => is.push(&format!("{path}.window"), e),
            },
            None => is.push(&format!("{path}.window"), t!("cfg.window_cron").to_string()),
        },
    }
    if let Some(s) = o.opt::<String>("security", is) {
        match s.as_str() {
            "automatic" => p.security_automatic = true,
            "same" => p.security_automatic = false,
            other => is.push(&format!("{path}.security"), t!("cfg.security_mode", other = other).to_string()),
        }
    }
    o.finish(is);
    p
}

pub(super) fn parse_updates(v: &serde_norway::Value, is: &mut Issues) -> UpdatesConfig {
    let mut u = UpdatesConfig::default();
    let Some(mut o) = Obj::new(v, "updates", is) else { return u };
    for (key, slot) in [("check_schedule", &mut u.check_schedule), ("rebuild_schedule", &mut u.rebuild_schedule)] {
        if let Some(s) = o.opt::<String>(key, is) {
            match hafen_core::schedule::parse(&s) {
                Ok(_) => *slot = s,
                Err(e) => is.push(&format!("updates.{key}"), e),
            }
        }
    }
    if let Some(d) = o.raw("default") {
        u.default = parse_policy(d, "updates.default", is);
    }
    if let Some(sv) = o.raw("stacks") {
        match sv {
            serde_norway::Value::Mapping(m) => {
                for (k, v) in m {
                    let Some(id) = scalar(k) else { continue };
                    let p = parse_policy(v, &format!("updates.stacks.{id}"), is);
                    u.stacks.insert(id, p);
                }
            }
            _ => is.push("updates.stacks", t!("cfg.stacks_map").to_string()),
        }
    }
    o.finish(is);
    u
}

pub(super) fn parse_registries(v: &serde_norway::Value, is: &mut Issues) -> Vec<RegistryConfig> {
    let mut out = Vec::new();
    for (v, ip) in crate::catalogue::decode::items(v, "registries", is) {
        let Some(mut r) = Obj::new(v, &ip, is) else { continue };
        let host: Option<String> = r.req("host", is);
        let user: Option<String> = r.opt("user", is);
        let password_file = r.opt::<String>("password_file", is).map(PathBuf::from);
        if user.is_some() != password_file.is_some() {
            is.push(&ip, t!("cfg.user_password_file").to_string());
        }
        let plain = r.opt::<bool>("plain_http", is);
        r.finish(is);
        if let Some(host) = host {
            let loopback = hafen_core::image_ref::is_loopback_host(&host);
            if plain == Some(true) && !loopback {
                is.push(&ip, t!("cfg.plain_http", host = host).to_string());
            }
            out.push(RegistryConfig { host, user, password_file, plain_http: plain.unwrap_or(loopback) });
        }
    }
    out
}
