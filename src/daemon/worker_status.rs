//! What `hafen worker list` shows: each named worker's latest report (`Registry`, owned by the
//! daemon's service layer), and the lines it is made of — a text from elsewhere, or a catalogue
//! key with arguments that each front end renders in its reader's language.

use hafen_api::WorkerInfo;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What `hafen worker list` shows: each named worker's latest report.
#[derive(Debug, Default)]
pub struct Registry {
    workers: Mutex<BTreeMap<String, WorkerInfo>>,
}

impl Registry {
    /// Records a named worker's latest round.
    pub fn set(&self, name: &str, every: impl Into<Line>, state: &str, detail: impl Into<Line>) {
        let (every, every_text, _) = every.into().split();
        let (detail, detail_text, detail_lines) = detail.into().split();
        let info = WorkerInfo { name: name.into(), every, state: state.into(), last_run: Some(hafen_store::now()), detail, every_text, detail_text, detail_lines };
        self.workers.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), info);
    }

    pub fn list(&self) -> Vec<WorkerInfo> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}

/// A line of `hafen worker list`: a text from elsewhere (an error), or a catalogue key
/// (`worker.…`) with arguments that each front end renders in its reader's language, or several
/// such (one per disk, stack, …).
pub enum Line {
    Text(String),
    Msg(hafen_api::Message),
    Msgs(Vec<hafen_api::Message>),
}

impl Line {
    /// `worker.<code>` with its arguments.
    pub fn code(code: &str, args: &[(&str, String)]) -> Line {
        Line::Msg(hafen_api::Message { code: format!("worker.{code}"), args: crate::notify::args(args) })
    }

    /// The English line and, for catalogue texts, their codes.
    fn split(self) -> (String, Option<hafen_api::Message>, Vec<hafen_api::Message>) {
        match self {
            Line::Text(s) => (s, None, Vec::new()),
            Line::Msg(m) => (hafen_core::i18n::render("en", &m), Some(m), Vec::new()),
            Line::Msgs(ms) => (ms.iter().map(|m| hafen_core::i18n::render("en", m)).collect::<Vec<_>>().join("; "), None, ms),
        }
    }
}

impl From<String> for Line {
    fn from(s: String) -> Line {
        Line::Text(s)
    }
}

impl From<&str> for Line {
    fn from(s: &str) -> Line {
        Line::Text(s.to_string())
    }
}

impl From<&String> for Line {
    fn from(s: &String) -> Line {
        Line::Text(s.clone())
    }
}

