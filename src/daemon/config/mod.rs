//! The daemon's own configuration (`/etc/hafen/hafen.yaml` or `--config`): raw YAML → validated
//! `Config`, all problems reported at once with line numbers. Without a file, built-in defaults
//! apply. Owns nothing at runtime; `hafen config check` runs `load` offline.

use rust_i18n::t;
use crate::catalogue::decode::{parse_duration, parse_yaml, scalar, Issue, Issues, Obj};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod update;
mod watch;
pub use update::{RegistryConfig, UpdatePolicy, UpdatesConfig};
pub use watch::{EmailConfig, HealthConfig, NotifyConfig, SmtpSecurity, WebhookConfig};

pub const DEFAULT_CONFIG: &str = "/etc/hafen/hafen.yaml";

/// The largest configuration file hafen reads (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

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
    pub backup_retention: hafen_core::retention::Policy,
    /// When the rotating read check of every target runs (cron with seconds).
    pub backup_check_schedule: String,
    /// The packs are read in this many parts, one per check (28: each pack at least monthly
    /// with a daily check; 1: everything every time).
    pub backup_check_parts: u32,
    /// Where alerts go and how often open problems are repeated.
    pub notify: NotifyConfig,
    /// Self-healing limits and host-check thresholds.
    pub health: HealthConfig,
    /// The Prometheus text endpoint (loopback by default; `off` disables it).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How each stack takes updates, and when hafen asks the registries.
    pub updates: UpdatesConfig,
    /// Logins for image registries.
    pub registries: Vec<RegistryConfig>,
    /// Where the config came from (`built-in defaults` or a path).
    pub source: String,
}

/// A backup target: where one restic-format repository lives.
#[derive(Debug, Clone, Serialize)]
pub struct BackupTarget {
    pub name: String,
    pub kind: TargetKind,
    /// The server keeps everything (e.g. `rest-server --append-only`): hafen never forgets or
    /// prunes there, and says so; the server's admin prunes with their own credentials.
    pub append_only: bool,
}

/// How to reach a target given by location alone (offline restore).
#[derive(Debug, Clone, Default)]
pub struct TargetAccess {
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub credentials: Option<PathBuf>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TargetKind {
    /// A directory: a mounted USB disk or NAS share.
    Local {
        path: PathBuf,
        /// The path must be a mount point (a USB disk): when the disk is absent, nothing is
        /// written to the directory underneath.
        require_mount: bool,
    },
    /// An SSH server's SFTP subsystem, with a key file and a pinned host key.
    Sftp { host: String, port: u16, user: String, path: String, ssh_key: PathBuf, known_hosts: PathBuf },
    /// An S3-compatible object store; the key pair comes from a file (mode 0600).
    S3 { endpoint: String, region: String, bucket: String, prefix: String, credentials: PathBuf },
    /// restic's REST protocol (rest-server, `rclone serve restic`); optional basic-auth
    /// credentials (`user:password`) from a file (mode 0600).
    Rest { url: String, credentials: Option<PathBuf> },
}

impl BackupTarget {
    /// The repository as restic names it (`/mnt/usb/hafen`, `sftp:user@host:/path`,
    /// `s3:http://host/bucket/prefix`, `rest:http://host/path/`), for people and the kit.
    pub fn location(&self) -> String {
        match &self.kind {
            TargetKind::Local { path, .. } => path.display().to_string(),
            TargetKind::Sftp { host, port: 22, user, path, .. } => format!("sftp:{user}@{host}:{path}"),
            TargetKind::Sftp { host, port, user, path, .. } => format!("sftp://{user}@{host}:{port}/{}", path.trim_start_matches('/')),
            TargetKind::S3 { endpoint, bucket, prefix, .. } if prefix.is_empty() => format!("s3:{}/{bucket}", endpoint.trim_end_matches('/')),
            TargetKind::S3 { endpoint, bucket, prefix, .. } => format!("s3:{}/{bucket}/{prefix}", endpoint.trim_end_matches('/')),
            TargetKind::Rest { url, .. } => format!("rest:{url}"),
        }
    }

    /// A target from a location as restic writes it (what the recovery kit prints), for the
    /// offline restore on a new machine: a path, `sftp:user@host:/path`,
    /// `sftp://user@host:port/path`, `s3:http(s)://endpoint/bucket[/prefix]` or `rest:http(s)://…`.
    /// Credentials come from files, as in the configuration.
    pub fn from_location(loc: &str, access: &TargetAccess) -> Result<BackupTarget, String> {
        let need = |what: Option<&PathBuf>, flag: &str| what.cloned().ok_or_else(|| t!("cfg.loc_needs", loc = loc, flag = flag).to_string());
        let kind = if let Some(rest) = loc.strip_prefix("sftp://") {
            let (userhost, path) = rest.split_once('/').ok_or_else(|| t!("cfg.loc_expected", loc = loc, form = "sftp://user@host:port/path").to_string())?;
            let (user, hostport) = userhost.split_once('@').ok_or_else(|| t!("cfg.loc_no_user", loc = loc, form = "sftp://user@host:port/path").to_string())?;
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| t!("cfg.loc_port", loc = loc, p = p).to_string())?),
                None => (hostport.to_string(), 22),
            };
            TargetKind::Sftp { host, port, user: user.into(), path: format!("/{path}"), ssh_key: need(access.ssh_key.as_ref(), "--ssh-key")?, known_hosts: need(access.known_hosts.as_ref(), "--known-hosts")? }
        } else if let Some(rest) = loc.strip_prefix("sftp:") {
            let (userhost, path) = rest.split_once(':').ok_or_else(|| t!("cfg.loc_expected", loc = loc, form = "sftp:user@host:/path").to_string())?;
            let (user, host) = userhost.split_once('@').ok_or_else(|| t!("cfg.loc_no_user", loc = loc, form = "sftp:user@host:/path").to_string())?;
            TargetKind::Sftp { host: host.into(), port: 22, user: user.into(), path: path.into(), ssh_key: need(access.ssh_key.as_ref(), "--ssh-key")?, known_hosts: need(access.known_hosts.as_ref(), "--known-hosts")? }
        } else if let Some(url) = loc.strip_prefix("s3:") {
            let (scheme, rest) = url.split_once("://").ok_or_else(|| t!("cfg.loc_expected", loc = loc, form = "s3:http(s)://endpoint/bucket/prefix").to_string())?;
            let mut parts = rest.splitn(3, '/');
            let host = parts.next().unwrap_or_default();
            let bucket = parts.next().filter(|b| !b.is_empty()).ok_or_else(|| t!("cfg.loc_no_bucket", loc = loc).to_string())?;
            let prefix = parts.next().unwrap_or_default().trim_matches('/').to_string();
            TargetKind::S3 {
                endpoint: format!("{scheme}://{host}"),
                region: access.region.clone().unwrap_or_else(|| "us-east-1".into()),
                bucket: bucket.into(),
                prefix,
                credentials: need(access.credentials.as_ref(), &t!("cfg.loc_s3_credentials"))?,
            }
        } else if let Some(url) = loc.strip_prefix("rest:") {
            let mut url = url.to_string();
            if !url.ends_with('/') {
                url.push('/');
            }
            TargetKind::Rest { url, credentials: access.credentials.clone() }
        } else if Path::new(loc).is_absolute() {
            TargetKind::Local { path: PathBuf::from(loc), require_mount: false }
        } else {
            return Err(t!("cfg.loc_unknown", loc = loc).to_string());
        };
        Ok(BackupTarget { name: "recovery".into(), kind, append_only: false })
    }

    /// Files holding credentials; each must be a regular file readable only by its owner.
    pub fn credential_files(&self) -> Vec<&Path> {
        match &self.kind {
            TargetKind::Local { .. } => vec![],
            TargetKind::Sftp { ssh_key, .. } => vec![ssh_key.as_path()],
            TargetKind::S3 { credentials, .. } => vec![credentials.as_path()],
            TargetKind::Rest { credentials, .. } => credentials.iter().map(|p| p.as_path()).collect(),
        }
    }
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
            backup_schedule: hafen_core::schedule::DEFAULT_SCHEDULE.into(),
            backup_retention: hafen_core::retention::Policy::default_local(),
            backup_check_schedule: hafen_core::schedule::DEFAULT_CHECK_SCHEDULE.into(),
            backup_check_parts: hafen_core::schedule::DEFAULT_CHECK_PARTS,
            notify: NotifyConfig::default(),
            health: HealthConfig::default(),
            metrics_listen: Some(watch::DEFAULT_METRICS.parse().expect("default metrics address")),
            updates: UpdatesConfig::default(),
            registries: Vec::new(),
            source: t!("cfg.builtin_defaults").to_string(),
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
        // As a stack file: a byte-order mark is not text, and a configuration is small.
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        if src.len() > MAX_CONFIG_BYTES {
            let message = t!("v.config_too_large", bytes = src.len(), max = MAX_CONFIG_BYTES).to_string();
            return Err(vec![Issue { file: file.to_string(), line: None, path: String::new(), message }]);
        }
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
                match hafen_core::schedule::parse(&expr) {
                    Ok(_) => c.backup_schedule = expr,
                    Err(e) => is.push("backup_schedule", e),
                }
            }
            if let Some(expr) = o.opt::<String>("backup_check_schedule", &mut is) {
                match hafen_core::schedule::parse(&expr) {
                    Ok(_) => c.backup_check_schedule = expr,
                    Err(e) => is.push("backup_check_schedule", e),
                }
            }
            if let Some(n) = o.opt::<u32>("backup_check_parts", &mut is) {
                if (1..=366).contains(&n) {
                    c.backup_check_parts = n;
                } else {
                    is.push("backup_check_parts", t!("cfg.check_parts", n = n).to_string());
                }
            }
            if let Some(rv) = o.raw("backup_retention") {
                if let Some(mut r) = Obj::new(rv, "backup_retention", &mut is) {
                    let mut p = hafen_core::retention::Policy::default();
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
                    if p == hafen_core::retention::Policy::default() {
                        is.push("backup_retention", t!("cfg.keeps_nothing").to_string());
                    }
                    c.backup_retention = p;
                }
            }
            if let Some(tv) = o.raw("backup_targets") {
                for (v, ip) in crate::catalogue::decode::items(tv, "backup_targets", &mut is) {
                    let Some(mut t) = Obj::new(v, &ip, &mut is) else { continue };
                    let name: String = t.req("name", &mut is).unwrap_or_default();
                    if !name.is_empty() && !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
                        is.push(&t.path_of("name"), t!("cfg.target_name", name = name).to_string());
                    }
                    if c.backup_targets.iter().any(|b| b.name == name) {
                        is.push(&t.path_of("name"), t!("cfg.target_twice", name = name).to_string());
                    }
                    let abs = |p: String| if Path::new(&p).is_absolute() { PathBuf::from(p) } else { base.join(p) };
                    let kind = match t.opt::<String>("type", &mut is).as_deref() {
                        None | Some("local") => {
                            let path: Option<String> = t.req("path", &mut is);
                            let require_mount = t.opt::<bool>("require_mount", &mut is).unwrap_or(false);
                            path.map(|p| TargetKind::Local { path: abs(p), require_mount })
                        }
                        Some("sftp") => {
                            let host: Option<String> = t.req("host", &mut is);
                            let port = t.opt::<u16>("port", &mut is).unwrap_or(22);
                            let user: Option<String> = t.req("user", &mut is);
                            let path: Option<String> = t.req("path", &mut is);
                            let key: Option<String> = t.req("ssh_key", &mut is);
                            let kh: Option<String> = t.req("known_hosts", &mut is);
                            match (host, user, path, key, kh) {
                                (Some(host), Some(user), Some(path), Some(key), Some(kh)) => {
                                    if !path.starts_with('/') {
                                        is.push(&t.path_of("path"), t!("cfg.sftp_path", path = path).to_string());
                                    }
                                    Some(TargetKind::Sftp { host, port, user, path, ssh_key: abs(key), known_hosts: abs(kh) })
                                }
                                _ => None,
                            }
                        }
                        Some("s3") => {
                            let endpoint: Option<String> = t.req("endpoint", &mut is);
                            let region = t.opt::<String>("region", &mut is).unwrap_or_else(|| "us-east-1".into());
                            let bucket: Option<String> = t.req("bucket", &mut is);
                            let prefix = t.opt::<String>("path", &mut is).unwrap_or_default().trim_matches('/').to_string();
                            let creds: Option<String> = t.req("credentials", &mut is);
                            if let Some(e) = &endpoint {
                                if !(e.starts_with("https://") || e.starts_with("http://")) {
                                    is.push(&t.path_of("endpoint"), t!("v.url", m = e).to_string());
                                }
                            }
                            match (endpoint, bucket, creds) {
                                (Some(endpoint), Some(bucket), Some(c)) => Some(TargetKind::S3 { endpoint, region, bucket, prefix, credentials: abs(c) }),
                                _ => None,
                            }
                        }
                        Some("rest") => {
                            let url: Option<String> = t.req("url", &mut is);
                            let creds = t.opt::<String>("credentials", &mut is).map(abs);
                            if let Some(u) = &url {
                                if !(u.starts_with("https://") || u.starts_with("http://")) {
                                    is.push(&t.path_of("url"), t!("v.url", m = u).to_string());
                                } else if u.split_once("://").is_some_and(|(_, rest)| rest.contains('@')) {
                                    is.push(&t.path_of("url"), t!("cfg.url_password").to_string());
                                }
                            }
                            url.map(|mut url| {
                                if !url.ends_with('/') {
                                    url.push('/');
                                }
                                TargetKind::Rest { url, credentials: creds }
                            })
                        }
                        Some(other) => {
                            is.push(&t.path_of("type"), t!("cfg.target_type", other = other).to_string());
                            None
                        }
                    };
                    let append_only = t.opt::<bool>("append_only", &mut is).unwrap_or(false);
                    t.finish(&mut is);
                    if let Some(kind) = kind {
                        c.backup_targets.push(BackupTarget { name, kind, append_only });
                    }
                }
            }
            if let Some(v) = o.raw("notify") {
                c.notify = watch::parse_notify(v, &mut is);
            }
            if let Some(v) = o.raw("health") {
                c.health = watch::parse_health(v, &mut is);
            }
            if let Some(v) = o.raw("updates") {
                c.updates = update::parse_updates(v, &mut is);
            }
            if let Some(v) = o.raw("registries") {
                c.registries = update::parse_registries(v, &mut is);
            }
            let public = o.opt::<bool>("metrics_public", &mut is).unwrap_or(false);
            if let Some(s) = o.raw("metrics_listen").and_then(scalar) {
                match watch::parse_metrics(&s, public) {
                    Ok(a) => c.metrics_listen = a,
                    Err(e) => is.push("metrics_listen", e),
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

    /// A byte-order mark reads as YAML does; a file far larger than any configuration is refused
    /// before it is decoded, naming its size.
    #[test]
    fn a_bom_is_no_text_and_size_is_limited() {
        let c = Config::parse("c.yaml", "\u{feff}state_dir: /tmp/x\n", Path::new("/etc/hafen")).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
        let big = format!("state_dir: /tmp/x\n# {}\n", "x".repeat(MAX_CONFIG_BYTES));
        let e = Config::parse("c.yaml", &big, Path::new("/etc/hafen")).unwrap_err();
        assert!(e.len() == 1 && e[0].message.contains(&big.len().to_string()), "{e:?}");
    }

    #[test]
    fn targets_of_every_kind_and_their_errors() {
        let src = "backup_targets:\n  - name: usb\n    path: /mnt/usb\n    require_mount: true\n  - name: off\n    type: sftp\n    host: nas.local\n    port: 2222\n    user: hafen\n    path: /srv/hafen\n    ssh_key: keys/off\n    known_hosts: keys/known_hosts\n  - name: cloud\n    type: s3\n    endpoint: http://127.0.0.1:3900\n    bucket: b\n    path: /box1/\n    credentials: s3.env\n  - name: vault\n    type: rest\n    url: http://127.0.0.1:8000/hafen\n    append_only: true\n";
        let c = Config::parse("c.yaml", src, Path::new("/etc/hafen")).unwrap();
        let loc: Vec<String> = c.backup_targets.iter().map(|t| t.location()).collect();
        assert_eq!(loc, ["/mnt/usb", "sftp://hafen@nas.local:2222/srv/hafen", "s3:http://127.0.0.1:3900/b/box1", "rest:http://127.0.0.1:8000/hafen/"]);
        assert_eq!(c.backup_targets[1].credential_files(), [Path::new("/etc/hafen/keys/off")]);
        assert!(c.backup_targets[3].append_only && !c.backup_targets[0].append_only);
        // What the kit prints parses back into the same target.
        let access = TargetAccess { ssh_key: Some("/k".into()), known_hosts: Some("/kh".into()), credentials: Some("/c".into()), region: Some("garage".into()) };
        for l in &loc {
            assert_eq!(&BackupTarget::from_location(l, &access).unwrap().location(), l);
        }
        let e = BackupTarget::from_location("sftp:h:/x", &access).unwrap_err();
        assert!(e.contains("user is missing"), "{e}");
        let e = BackupTarget::from_location("s3:http://h:1/b", &TargetAccess::default()).unwrap_err();
        assert!(e.contains("--credentials"), "{e}");
        assert!(BackupTarget::from_location("backups", &access).unwrap_err().contains("absolute path"));
        let bad = "backup_targets:\n  - name: a\n    type: ftp\n  - name: b\n    type: sftp\n    host: h\n  - name: c\n    type: rest\n    url: http://u:pw@h/\n";
        let e = Config::parse("c.yaml", bad, Path::new("/etc/hafen")).unwrap_err();
        let text: Vec<String> = e.iter().map(|i| format!("{:?} {} {}", i.line, i.path, i.message)).collect();
        assert!(text.iter().any(|l| l.contains("Some(3)") && l.contains("`ftp` is unknown")), "{text:?}");
        assert!(text.iter().any(|l| l.contains("backup_targets[1]") && l.contains("user")), "{text:?}");
        assert!(text.iter().any(|l| l.contains("Some(9)") && l.contains("no password into the URL")), "{text:?}");
    }

    #[test]
    fn notify_health_and_metrics() {
        let src = "notify:\n  language: en\n  remind_every: 2h\n  email:\n    host: mail.example.org\n    user: hafen\n    password_file: /etc/hafen/smtp\n    from: hafen@example.org\n    to: it@example.org\n  webhooks:\n    - url: http://127.0.0.1:9/hook\n  heartbeat_url: https://hc.example.org/ping/1\nhealth:\n  restart_limit: 3\n  restart_window: 5m\n  disk_warning: 20\nmetrics_listen: 127.0.0.1:9999\n";
        let c = Config::parse("c.yaml", src, Path::new("/etc/hafen")).unwrap();
        let e = c.notify.email.as_ref().unwrap();
        assert_eq!((e.port, e.security, e.to.clone()), (587, SmtpSecurity::Starttls, vec!["it@example.org".to_string()]));
        assert_eq!(c.notify.language, "en");
        assert_eq!(c.notify.remind_every, Duration::from_secs(7200));
        assert_eq!(c.notify.webhooks.len(), 1);
        assert_eq!((c.health.restart_limit, c.health.restart_window, c.health.disk_warning), (3, Duration::from_secs(300), 20.0));
        assert_eq!(c.metrics_listen.unwrap().port(), 9999);
        assert_eq!(Config::default().metrics_listen.unwrap().to_string(), "127.0.0.1:9464");
        let bad = "notify:\n  language: fr\n  email:\n    host: mail.example.org\n    security: none\n    from: x\n    to: [a@b]\nhealth:\n  disk_warning: 3\n  disk_critical: 10\nmetrics_listen: 0.0.0.0:9464\n";
        let e = Config::parse("c.yaml", bad, Path::new("/etc/hafen")).unwrap_err();
        let text: Vec<String> = e.iter().map(|i| format!("{} {}", i.path, i.message)).collect();
        for want in ["`fr` is not offered", "unencrypted", "`x` is not an e-mail", "must not be above", "metrics_public"] {
            assert!(text.iter().any(|l| l.contains(want)), "{want}: {text:?}");
        }
        assert!(Config::parse("c.yaml", "metrics_listen: off\n", Path::new("/")).unwrap().metrics_listen.is_none());
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let c = Config::parse("c.yaml", "state_dir: state\n", Path::new("/etc/hafen")).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/etc/hafen/state"));
    }
}
