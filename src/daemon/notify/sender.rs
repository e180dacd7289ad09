//! The way out: a notice is queued in the store's outbox once per configured channel
//! (`enqueue`), and one sender (`run_outbox`) delivers what is due, one row after the other,
//! marking each delivered or failed (retried later, never dropped). `send_test` bypasses the
//! outbox for `hafen notify test`. Texts are rendered at sending time, in the configured
//! language.

use super::{email, render, webhook, Notice, NoticeKind, Severity};
use crate::config::NotifyConfig;
use hafen_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// At most this many due rows are read at once.
const BATCH: usize = 50;
/// Sleep when nothing waits (a new row wakes the sender earlier).
const IDLE: Duration = Duration::from_secs(3600);
/// Pause after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// Where a row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    /// Index into `notify.webhooks`.
    Webhook(usize),
    Heartbeat,
}

impl Channel {
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "heartbeat" => Some(Channel::Heartbeat),
            _ => s.strip_prefix("webhook:")?.parse().ok().map(Channel::Webhook),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Email => f.write_str("email"),
            Channel::Webhook(i) => write!(f, "webhook:{i}"),
            Channel::Heartbeat => f.write_str("heartbeat"),
        }
    }
}

/// An outbox row's payload: the notice and an id of its own, the same on every channel and
/// every attempt (the e-mail's Message-ID, the webhook's `id`), so receivers can drop repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub id: String,
    pub notice: Notice,
}

impl Queued {
    pub fn new(notice: Notice) -> Queued {
        Queued { id: format!("{:032x}", rand::random::<u128>()), notice }
    }

    fn payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The channels a notice goes to: e-mail when configured, then each webhook.
pub fn notice_channels(cfg: &NotifyConfig) -> Vec<Channel> {
    let email = cfg.email.as_ref().map(|_| Channel::Email);
    email.into_iter().chain((0..cfg.webhooks.len()).map(Channel::Webhook)).collect()
}

/// Queues `notice` once per channel (in one transaction); returns the rows' ids, none when no
/// channel is configured. Wake the sender afterwards.
pub fn enqueue(store: &Store, cfg: &NotifyConfig, notice: &Notice) -> Result<Vec<i64>, StoreError> {
    let payload = Queued::new(notice.clone()).payload();
    let rows: Vec<(String, String)> = notice_channels(cfg).iter().map(|c| (c.to_string(), payload.clone())).collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    store.outbox_enqueue(&rows)
}

/// Queues the heartbeat ping (after a good nightly run); nothing without `heartbeat_url`.
pub fn enqueue_heartbeat(store: &Store, cfg: &NotifyConfig) -> Result<Option<i64>, StoreError> {
    if cfg.heartbeat_url.is_none() {
        return Ok(None);
    }
    Ok(store.outbox_enqueue(&[(Channel::Heartbeat.to_string(), "{}".to_string())])?.first().copied())
}

/// Delivers one row's payload on `channel` now.
pub async fn deliver(cfg: &NotifyConfig, channel: &str, payload: &str) -> Result<(), String> {
    match Channel::parse(channel) {
        Some(Channel::Heartbeat) => match &cfg.heartbeat_url {
            Some(url) => webhook::ping(url).await,
            None => Err("heartbeat: notify.heartbeat_url is no longer configured".into()),
        },
        Some(Channel::Email) => {
            let email = cfg.email.as_ref().ok_or("email: notify.email is no longer configured")?;
            let q = queued(channel, payload)?;
            email::send(email, &q, &render(&q.notice, &cfg.language)).await
        }
        Some(Channel::Webhook(i)) => {
            let hook = cfg.webhooks.get(i).ok_or_else(|| format!("{channel}: notify.webhooks has no entry {i} any more"))?;
            let q = queued(channel, payload)?;
            let r = render(&q.notice, &cfg.language);
            webhook::post(i, &hook.url, &webhook::body(&q, &r, &cfg.language)).await
        }
        None => Err(format!("unknown notification channel `{channel}`")),
    }
}

fn queued(channel: &str, payload: &str) -> Result<Queued, String> {
    serde_json::from_str(payload).map_err(|e| format!("{channel}: the queued notice cannot be read ({e})"))
}

/// The sender: delivers due rows one by one, then sleeps until the next is due, `wake` is
/// notified (a new row) or `cancel` fires.
pub async fn run_outbox(store: &Store, cfg: &NotifyConfig, cancel: CancellationToken, wake: &Notify) {
    while !cancel.is_cancelled() {
        let pause = match deliver_due(store, cfg, &cancel).await.and_then(|()| until_next_due(store)) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "the notification outbox could not be read or updated");
                STORE_RETRY
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

async fn deliver_due(store: &Store, cfg: &NotifyConfig, cancel: &CancellationToken) -> Result<(), StoreError> {
    for e in store.outbox_due(BATCH)? {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = deliver(cfg, &e.channel, &e.payload) => r,
        };
        match outcome {
            Ok(()) => {
                store.outbox_mark_delivered(e.id)?;
                tracing::info!(id = e.id, channel = %e.channel, "notification delivered");
            }
            Err(error) => {
                let next = store.outbox_mark_failed(e.id, &error)?;
                tracing::warn!(id = e.id, channel = %e.channel, attempts = e.attempts + 1, next = %next, %error, "notification not delivered; will retry");
            }
        }
    }
    Ok(())
}

fn until_next_due(store: &Store) -> Result<Duration, StoreError> {
    let Some(next) = store.outbox_next_due()? else { return Ok(IDLE) };
    let wait = match chrono::DateTime::parse_from_rfc3339(&next) {
        Ok(t) => (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO),
        Err(_) => STORE_RETRY,
    };
    Ok(wait.min(IDLE))
}

/// Sends a test notice straight to every configured channel (the heartbeat included), without
/// the outbox; one result per channel.
pub async fn send_test(cfg: &NotifyConfig) -> Vec<(String, Result<(), String>)> {
    let mut channels = notice_channels(cfg);
    channels.extend(cfg.heartbeat_url.as_ref().map(|_| Channel::Heartbeat));
    if channels.is_empty() {
        let why = "no notification channel is configured: add notify.email, notify.webhooks or notify.heartbeat_url to the configuration";
        return vec![("none".into(), Err(why.into()))];
    }
    let payload = Queued::new(test_notice(&host_name())).payload();
    let mut out = Vec::new();
    for c in channels {
        let name = c.to_string();
        let r = deliver(cfg, &name, &payload).await;
        out.push((name, r));
    }
    out
}

/// The notice `hafen notify test` sends.
pub fn test_notice(host: &str) -> Notice {
    Notice {
        kind: NoticeKind::Test,
        severity: Severity::Info,
        key: "test".into(),
        code: "test".into(),
        stack: None,
        args: BTreeMap::new(),
        since: hafen_store::now(),
        tried: Vec::new(),
        host: host.into(),
    }
}

/// This machine's name, as notices show it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "hafen".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EmailConfig, SmtpSecurity, WebhookConfig};

    fn cfg(email: bool, hooks: usize, heartbeat: bool) -> NotifyConfig {
        NotifyConfig {
            email: email.then(|| EmailConfig {
                host: "127.0.0.1".into(),
                port: 1,
                security: SmtpSecurity::None,
                user: None,
                password_file: None,
                ca_file: None,
                from: "hafen@example.org".into(),
                to: vec!["admin@example.org".into()],
            }),
            webhooks: (0..hooks).map(|i| WebhookConfig { url: format!("http://127.0.0.1:1/{i}") }).collect(),
            heartbeat_url: heartbeat.then(|| "http://127.0.0.1:1/hb".into()),
            ..NotifyConfig::default()
        }
    }

    #[test]
    fn channel_names_round_trip() {
        for c in [Channel::Email, Channel::Webhook(0), Channel::Webhook(12), Channel::Heartbeat] {
            assert_eq!(Channel::parse(&c.to_string()), Some(c));
        }
        for bad in ["", "webhook", "webhook:", "webhook:x", "sms"] {
            assert_eq!(Channel::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_row_per_channel_sharing_one_id() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("state.db")).unwrap();
        let ids = enqueue(&store, &cfg(true, 2, true), &test_notice("box1")).unwrap();
        assert_eq!(ids.len(), 3, "e-mail and two webhooks; the heartbeat is not for notices");
        let rows = store.outbox_due(10).unwrap();
        assert_eq!(rows.iter().map(|r| r.channel.as_str()).collect::<Vec<_>>(), ["email", "webhook:0", "webhook:1"]);
        let q: Vec<Queued> = rows.iter().map(|r| serde_json::from_str(&r.payload).unwrap()).collect();
        assert!(q.iter().all(|x| x.id == q[0].id && x.notice.host == "box1"));
        assert!(enqueue(&store, &cfg(false, 0, true), &test_notice("box1")).unwrap().is_empty());
        assert_eq!(enqueue_heartbeat(&store, &cfg(false, 0, false)).unwrap(), None);
        assert!(enqueue_heartbeat(&store, &cfg(false, 0, true)).unwrap().is_some());
    }

    #[tokio::test]
    async fn a_test_without_channels_says_what_to_configure() {
        let r = send_test(&cfg(false, 0, false)).await;
        assert_eq!(r.len(), 1);
        assert!(r[0].1.as_ref().unwrap_err().contains("notify.email"), "{r:?}");
    }

    #[tokio::test]
    async fn rows_for_channels_gone_from_the_config_fail_clearly() {
        let payload = Queued::new(test_notice("box1")).payload();
        let e = deliver(&cfg(false, 1, false), "webhook:3", &payload).await.unwrap_err();
        assert!(e.contains("webhook:3") && e.contains("no entry 3"), "{e}");
        assert!(deliver(&cfg(false, 0, false), "email", &payload).await.unwrap_err().contains("notify.email"));
        assert!(deliver(&cfg(false, 0, false), "pigeon", &payload).await.unwrap_err().contains("pigeon"));
    }

    /// The daemon spawns the sender on the multi-threaded runtime.
    #[allow(dead_code)]
    fn the_sender_is_send(store: &'static Store, cfg: &'static NotifyConfig, wake: &'static Notify) {
        fn send<T: Send>(_: T) {}
        send(run_outbox(store, cfg, CancellationToken::new(), wake));
    }
}
