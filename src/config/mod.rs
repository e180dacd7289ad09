//! The daemon's own configuration (`/etc/hafen/hafen.yaml` or `--config`): raw YAML → validated
//! `Config`, all problems reported at once with line numbers. Without a file, built-in defaults
//! apply. Owns nothing at runtime; `hafen config check` runs `load` offline.

use rust_i18n::t;
use crate::catalogue::decode::{parse_duration, parse_yaml, scalar, Issue, Issues, Obj};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONFIG: &str = "/etc/hafen/hafen.yaml";

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Where the state store, secrets and build scratch space live (mode 0700).
    pub state_dir: PathBuf,
    /// The daemon's API socket (mode 0660).
    pub socket: PathBuf,
    /// Group that may use the API socket (besides root); none by default.
    pub socket_group: Option<String>,
    pub docker_socket: PathBuf,
    pub stacks_dir: PathBuf,
    pub images_dir: PathBuf,
    /// Debian mirror for base images.
    pub debian_mirror: String,
    pub reconcile_interval: Duration,
    pub shutdown_deadline: Duration,
    pub log_format: LogFormat,
    /// Where backups go; the first is the default target.
    pub backup_targets: Vec<BackupTarget>,
    /// When the nightly backup of every deployed stack runs (cron with seconds).
    pub backup_schedule: String,
    /// Which snapshots each stack keeps after a scheduled backup.
    pub backup_retention: crate::backup::retention::Policy,
    /// Where the config came from (`built-in defaults` or a path).
    pub source: String,
}

/// A backup target. This version writes to local directories (a mounted USB disk or NAS share).
#[derive(Debug, Clone, Serialize)]
pub struct BackupTarget {
    pub name: String,
    pub path: PathBuf,
    /// The path must be a mount point (a USB disk): when the disk is absent, nothing is written
    /// to the directory underneath.
    pub require_mount: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `/usr/share/hafen/<what>` when installed, else `<cwd>/<what>` (a source checkout).
fn shared_dir(what: &str) -> PathBuf {
    let installed = Path::new("/usr/share/hafen").join(what);
    if installed.is_dir() {
        return installed;
    }
    std::env::current_dir().map(|d| d.join(what)).unwrap_or(installed)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/hafen"),
            socket: PathBuf::from("/run/hafen/hafen.sock"),
            socket_group: None,
            docker_socket: PathBuf::from("/var/run/docker.sock"),
            stacks_dir: shared_dir("stacks"),
            images_dir: shared_dir("images"),
            debian_mirror: "http://deb.debian.org/debian".into(),
            reconcile_interval: Duration::from_secs(5),
            shutdown_deadline: Duration::from_secs(30),
            log_format: LogFormat::Text,
            backup_targets: Vec::new(),
            backup_schedule: crate::backup::schedule::DEFAULT_SCHEDULE.into(),
            backup_retention: crate::backup::retention::Policy::default_local(),
            source: "built-in defaults".into(),
        }
    }
}

impl Config {
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join("state.db")
    }
    pub fn secrets_dir(&self) -> PathBuf {
        self.state_dir.join("secrets")
    }
    /// Per-service copies of secrets, the only host files ever mounted into containers.
    pub fn run_dir(&self) -> PathBuf {
        self.state_dir.join("run")
    }
    /// age identities, recipients and wrapped repository keys (0700).
    pub fn keys_dir(&self) -> PathBuf {
        self.state_dir.join("keys")
    }
    pub fn build_dir(&self) -> PathBuf {
        self.state_dir.join("build")
    }

    /// `--config PATH` must exist; without it, `/etc/hafen/hafen.yaml` is used when present,
    /// else the built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, Vec<Issue>> {
        match explicit {
            Some(p) => Self::load_file(p),
            None if Path::new(DEFAULT_CONFIG).exists() => Self::load_file(Path::new(DEFAULT_CONFIG)),
            None => Ok(Config::default()),
        }
    }

    pub fn load_file(path: &Path) -> Result<Config, Vec<Issue>> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| {
            vec![Issue { file: file.clone(), line: None, path: "(file)".into(), message: t!("v.config_read", e = e.to_string()).to_string() }]
        })?;
        Self::parse(&file, &src, path.parent().unwrap_or(Path::new("/")))
    }

    /// Relative paths in the file are taken relative to the file's directory.
    pub fn parse(file: &str, src: &str, base: &Path) -> Result<Config, Vec<Issue>> {
        let value = parse_yaml(file, src)?;
        let mut is = Issues::new(file, src);
        let mut c = Config { source: file.to_string(), ..Config::default() };
        if let Some(mut o) = Obj::new(&value, "", &mut is) {
            let path = |o: &mut Obj, k: &str, is: &mut Issues| -> Option<PathBuf> {
                o.opt::<String>(k, is).map(|s| if Path::new(&s).is_absolute() { PathBuf::from(s) } else { base.join(s) })
            };
            if let Some(p) = path(&mut o, "state_dir", &mut is) {
                c.state_dir = p;
            }
            if let Some(p) = path(&mut o, "socket", &mut is) {
                c.socket = p;
            }
            c.socket_group = o.opt("socket_group", &mut is);
            if let Some(p) = path(&mut o, "docker_socket", &mut is) {
                c.docker_socket = p;
            }
            if let Some(p) = path(&mut o, "stacks_dir", &mut is) {
                c.stacks_dir = p;
            }
            if let Some(p) = path(&mut o, "images_dir", &mut is) {
                c.images_dir = p;
            }
            if let Some(m) = o.opt::<String>("debian_mirror", &mut is) {
                if !(m.starts_with("http://") || m.starts_with("https://")) {
                    is.push("debian_mirror", t!("v.url", m = m).to_string());
                }
                c.debian_mirror = m;
            }
            for (key, slot, min) in [
                ("reconcile_interval", &mut c.reconcile_interval, Duration::from_secs(1)),
                ("shutdown_deadline", &mut c.shutdown_deadline, Duration::from_secs(1)),
            ] {
                if let Some(s) = o.raw(key).and_then(scalar) {
                    match parse_duration(&s) {
                        Ok(d) if d >= min => *slot = d,
                        Ok(_) => is.push(key, t!("v.too_short", s = s, min = min.as_secs()).to_string()),
                        Err(e) => is.push(key, e),
                    }
                }
            }
            match o.opt::<String>("log_format", &mut is).as_deref() {
                None | Some("text") => {}
                Some("json") => c.log_format = LogFormat::Json,
                Some(other) => is.push("log_format", t!("v.log_format", other = other).to_string()),
            }
            if let Some(expr) = o.opt::<String>("backup_schedule", &mut is) {
                match crate::backup::schedule::parse(&expr) {
                    Ok(_) => c.backup_schedule = expr,
                    Err(e) => is.push("backup_schedule", e),
                }
            }
            if let Some(rv) = o.raw("backup_retention") {
                if let Some(mut r) = Obj::new(rv, "backup_retention", &mut is) {
                    let mut p = crate::backup::retention::Policy::default();
                    p.keep_last = r.opt("keep_last", &mut is).unwrap_or(0);
                    p.keep_daily = r.opt("keep_daily", &mut is).unwrap_or(0);
                    p.keep_weekly = r.opt("keep_weekly", &mut is).unwrap_or(0);
                    p.keep_monthly = r.opt("keep_monthly", &mut is).unwrap_or(0);
                    p.keep_yearly = r.opt("keep_yearly", &mut is).unwrap_or(0);
                    if let Some(w) = r.raw("keep_within").and_then(scalar) {
                        match parse_duration(&w) {
                            Ok(d) => p.keep_within = chrono::Duration::from_std(d).ok(),
                            Err(e) => is.push("backup_retention.keep_within", e),
                        }
                    }
                    r.finish(&mut is);
                    if p == crate::backup::retention::Policy::default() {
                        is.push("backup_retention", "this policy keeps nothing; give at least one keep_* value");
                    }
                    c.backup_retention = p;
                }
            }
            if let Some(tv) = o.raw("backup_targets") {
                for (v, ip) in crate::catalogue::decode::items(tv, "backup_targets", &mut is) {
                    let Some(mut t) = Obj::new(v, &ip, &mut is) else { continue };
                    let name: String = t.req("name", &mut is).unwrap_or_default();
                    if !name.is_empty() && !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
                        is.push(&t.path_of("name"), format!("`{name}` is not a valid target name: use lowercase letters, digits, - and _"));
                    }
                    if c.backup_targets.iter().any(|b| b.name == name) {
                        is.push(&t.path_of("name"), format!("two targets are called `{name}`"));
                    }
                    match t.opt::<String>("type", &mut is).as_deref() {
                        None | Some("local") => {}
                        Some(other) => is.push(&t.path_of("type"), format!("target type `{other}` is not supported by this version; use `local` (a mounted disk or share)")),
                    }
                    let path: Option<String> = t.req("path", &mut is);
                    let require_mount = t.opt::<bool>("require_mount", &mut is).unwrap_or(false);
                    t.finish(&mut is);
                    if let Some(p) = path {
                        let p = if Path::new(&p).is_absolute() { PathBuf::from(p) } else { base.join(p) };
                        c.backup_targets.push(BackupTarget { name, path: p, require_mount });
                    }
                }
            }
            o.finish(&mut is);
        }
        if is.is_empty() {
            Ok(c)
        } else {
            Err(is.into_sorted())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_errors_with_lines() {
        let src = "state_dir: /tmp/x\nreconcile_interval: fast\nlog_format: xml\nsokcet: /tmp/s\n";
        let e = Config::parse("hafen.yaml", src, Path::new("/etc/hafen")).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[0].line, Some(2));
        assert!(e.iter().any(|i| i.line == Some(4) && i.message.contains("did you mean `socket`")), "{e:?}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let c = Config::parse("c.yaml", "state_dir: state\n", Path::new("/etc/hafen")).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/etc/hafen/state"));
    }
}
