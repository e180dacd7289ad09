//! Errors and messages as data: a stable code and its arguments, never prose. A front end renders
//! `err.<code>` from its own catalogue in its reader's language, so a console user who reads
//! English gets English while the daemon runs in German. The daemon's own rendering travels along
//! (`error`) for clients that do not know a code yet.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A text to show a person, as a catalogue key and its named arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub code: String,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

impl Message {
    pub fn new(code: &str) -> Message {
        Message { code: code.to_string(), args: BTreeMap::new() }
    }

    pub fn arg(mut self, name: &str, value: impl ToString) -> Message {
        self.args.insert(name.to_string(), value.to_string());
        self
    }
}

/// Every error the API returns (with the HTTP status the API edge chose for its kind).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable kind: not_found, invalid, conflict, engine, backup, internal.
    pub kind: String,
    /// The stable code (`app_not_found`, `run_busy`, …): the catalogue key without `err.`.
    #[serde(default)]
    pub code: String,
    /// The code's arguments; an argument that is itself a message arrives rendered by the daemon.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// The daemon's rendering in its own language, for clients that do not know the code.
    pub error: String,
    #[serde(default)]
    pub details: Vec<String>,
}

impl ApiError {
    pub fn message(&self) -> Message {
        Message { code: self.code.clone(), args: self.args.clone() }
    }
}
