//! The `notify:`, `health:` and `metrics_listen` parts of the config: where alerts go (e-mail,
//! webhooks, heartbeat), the limits of self-healing, the host-check thresholds, and the local
//! address of the metrics endpoint.

use super::*;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on this machine (127.0.0.1).
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub user: Option<String>,
    /// File holding the SMTP password (mode 0600).
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust, for a server with a private CA.
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookConfig {
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifyConfig {
    /// `de` (default) or `en`.
    pub language: String,
    /// How often an open problem is repeated.
    pub remind_every: Duration,
    pub email: Option<EmailConfig>,
    pub webhooks: Vec<WebhookConfig>,
    /// Pinged (GET) after each successful nightly run: silence there means trouble.
    pub heartbeat_url: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig { language: "de".into(), remind_every: Duration::from_secs(4 * 3600), email: None, webhooks: Vec::new(), heartbeat_url: None }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthConfig {
    /// Restarts within `restart_window` that make a crash loop (restarts stop, stack failed).
    pub restart_limit: u32,
    pub restart_window: Duration,
    /// Free space below this share (percent) of a disk: warning; below `disk_critical`: critical.
    pub disk_warning: f64,
    pub disk_critical: f64,
    /// A stack whose last good backup is older than this: warning.
    pub backup_max_age: Duration,
    /// How often the host checks run.
    pub host_check_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            restart_limit: 5,
            restart_window: Duration::from_secs(600),
            disk_warning: 15.0,
            disk_critical: 5.0,
            backup_max_age: Duration::from_secs(36 * 3600),
            host_check_interval: Duration::from_secs(60),
        }
    }
}

pub const DEFAULT_METRICS: &str = "127.0.0.1:9464";

fn http_url(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}

pub(super) fn parse_notify(v: &serde_norway::Value, is: &mut Issues) -> NotifyConfig {
    let mut n = NotifyConfig::default();
    let Some(mut o) = Obj::new(v, "notify", is) else { return n };
    match o.opt::<String>("language", is).as_deref() {
        None => {}
        Some(l @ ("de" | "en")) => n.language = l.into(),
        Some(other) => is.push("notify.language", t!("cfg.language", other = other).to_string()),
    }
    if let Some(s) = o.raw("remind_every").and_then(scalar) {
        match parse_duration(&s) {
            Ok(d) if d >= Duration::from_secs(60) => n.remind_every = d,
            Ok(_) => is.push("notify.remind_every", t!("cfg.too_short", s = s, min = "1m").to_string()),
            Err(e) => is.push("notify.remind_every", e),
        }
    }
    if let Some(ev) = o.raw("email") {
        if let Some(mut e) = Obj::new(ev, "notify.email", is) {
            let host: Option<String> = e.req("host", is);
            let security = match e.opt::<String>("security", is).as_deref() {
                None | Some("starttls") => SmtpSecurity::Starttls,
                Some("tls") => SmtpSecurity::Tls,
                Some("none") => SmtpSecurity::None,
                Some(other) => {
                    is.push("notify.email.security", t!("cfg.smtp_security", other = other).to_string());
                    SmtpSecurity::Starttls
                }
            };
            let port = e.opt::<u16>("port", is).unwrap_or(match security {
                SmtpSecurity::Tls => 465,
                SmtpSecurity::Starttls => 587,
                SmtpSecurity::None => 25,
            });
            let user: Option<String> = e.opt("user", is);
            let password_file = e.opt::<String>("password_file", is).map(PathBuf::from);
            if user.is_some() != password_file.is_some() {
                is.push("notify.email", t!("cfg.user_password_file").to_string());
            }
            let ca_file = e.opt::<String>("ca_file", is).map(PathBuf::from);
            let from: Option<String> = e.req("from", is);
            let to: Vec<String> = match e.raw("to") {
                Some(serde_norway::Value::String(s)) => vec![s.clone()],
                Some(_) => e.opt::<Vec<String>>("to", is).unwrap_or_default(),
                None => {
                    is.push("notify.email.to", t!("cfg.email_to").to_string());
                    vec![]
                }
            };
            for a in to.iter().chain(from.iter()) {
                if !a.contains('@') {
                    is.push("notify.email", t!("cfg.email_address", a = a).to_string());
                }
            }
            if security == SmtpSecurity::None {
                if let Some(h) = &host {
                    if !(h == "127.0.0.1" || h == "localhost" || h == "::1") {
                        is.push("notify.email.security", t!("cfg.smtp_none", h = h).to_string());
                    }
                }
            }
            e.finish(is);
            if let (Some(host), Some(from)) = (host, from) {
                n.email = Some(EmailConfig { host, port, security, user, password_file, ca_file, from, to });
            }
        }
    }
    if let Some(wv) = o.raw("webhooks") {
        for (v, ip) in crate::catalogue::decode::items(wv, "notify.webhooks", is) {
            let Some(mut w) = Obj::new(v, &ip, is) else { continue };
            let url: Option<String> = w.req("url", is);
            w.finish(is);
            if let Some(u) = url {
                if http_url(&u) {
                    n.webhooks.push(WebhookConfig { url: u });
                } else {
                    is.push(&ip, t!("v.url", m = u).to_string());
                }
            }
        }
    }
    if let Some(u) = o.opt::<String>("heartbeat_url", is) {
        if http_url(&u) {
            n.heartbeat_url = Some(u);
        } else {
            is.push("notify.heartbeat_url", t!("v.url", m = u).to_string());
        }
    }
    o.finish(is);
    n
}

pub(super) fn parse_health(v: &serde_norway::Value, is: &mut Issues) -> HealthConfig {
    let mut h = HealthConfig::default();
    let Some(mut o) = Obj::new(v, "health", is) else { return h };
    if let Some(n) = o.opt::<u32>("restart_limit", is) {
        if n >= 1 {
            h.restart_limit = n;
        } else {
            is.push("health.restart_limit", t!("cfg.at_least_one").to_string());
        }
    }
    for (key, slot) in [
        ("restart_window", &mut h.restart_window),
        ("backup_max_age", &mut h.backup_max_age),
        ("host_check_interval", &mut h.host_check_interval),
    ] {
        if let Some(s) = o.raw(key).and_then(scalar) {
            match parse_duration(&s) {
                Ok(d) if d >= Duration::from_secs(1) => *slot = d,
                Ok(_) => is.push(&format!("health.{key}"), t!("cfg.too_short", s = s, min = "1s").to_string()),
                Err(e) => is.push(&format!("health.{key}"), e),
            }
        }
    }
    for (key, slot) in [("disk_warning", &mut h.disk_warning), ("disk_critical", &mut h.disk_critical)] {
        if let Some(p) = o.opt::<f64>(key, is) {
            if (0.0..100.0).contains(&p) {
                *slot = p;
            } else {
                is.push(&format!("health.{key}"), t!("cfg.percent", p = p).to_string());
            }
        }
    }
    if h.disk_critical > h.disk_warning {
        is.push("health", t!("cfg.disk_order", critical = h.disk_critical, warning = h.disk_warning).to_string());
    }
    o.finish(is);
    h
}

/// `off` or an address; anything but loopback is refused unless `metrics_public: true` says so.
pub(super) fn parse_metrics(s: &str, public: bool) -> Result<Option<SocketAddr>, String> {
    if s == "off" {
        return Ok(None);
    }
    let a: SocketAddr = s.parse().map_err(|_| t!("cfg.metrics_address", s = s).to_string())?;
    if !a.ip().is_loopback() && !public {
        return Err(t!("cfg.metrics_public", s = s).to_string());
    }
    Ok(Some(a))
}
