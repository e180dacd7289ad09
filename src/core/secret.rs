//! A secret value (a password, a repository key) that never shows itself: its `Debug` is redacted,
//! so it cannot reach a log line or an error by accident. Writing and reading secret files is the
//! daemon's (`hafen_daemon::secrets`).

use std::fmt;

/// A secret value with a redacting `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn from_string(s: String) -> Secret {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

