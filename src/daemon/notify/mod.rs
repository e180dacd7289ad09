//! Notifications: alerts rendered in the configured language (German by default) and delivered
//! by e-mail (SMTP with STARTTLS or TLS) and webhooks (JSON), plus the heartbeat ping after each
//! good nightly run. Every notice goes through the persistent outbox in the state store (one row
//! per channel), so an unreachable receiver delays it and a restart loses or repeats nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod email;
mod render;
mod sender;
mod webhook;

pub use email::{message_id, read_password};
pub use render::{render, step_line, Rendered};
pub use sender::{deliver, enqueue, enqueue_heartbeat, host_name, notice_channels, run_outbox, send_test, test_notice, Channel, Queued};
pub use webhook::body as webhook_body;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Severity {
        match s {
            "critical" => Severity::Critical,
            "warning" => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// A problem started.
    Problem,
    /// It is still there (every `remind_every`).
    Reminder,
    /// It got worse (warning → critical).
    Escalated,
    /// It is over.
    Resolved,
    /// `hafen notify test`.
    Test,
}

/// Something hafen already did about a problem; `code` selects the text (`step.<code>`).
pub use hafen_api::Message as Step;

/// One notification, language-neutral: texts are chosen when it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub severity: Severity,
    /// The alert's identity, e.g. `crash_loop:tryton/server`: the same for its problem,
    /// reminder and resolved notices.
    pub key: String,
    /// The kind of problem; selects the texts (`alert.<code>.title|what|todo`).
    pub code: String,
    pub stack: Option<String>,
    pub args: BTreeMap<String, String>,
    /// When the problem started (UTC, RFC 3339).
    pub since: String,
    /// What hafen already tried.
    pub tried: Vec<Step>,
    /// The box's host name, so one admin with several boxes knows which one speaks.
    pub host: String,
}

/// Named arguments of a step or an alert.
pub fn args(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// A step (`step.<code>`) with its arguments.
pub fn step(code: &str, pairs: &[(&str, String)]) -> Step {
    Step { code: code.into(), args: args(pairs) }
}
