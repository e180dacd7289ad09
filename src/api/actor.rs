//! Who asked for a change: recorded with every event and audit record. The daemon's own workers
//! are actors too, so the audit log says whether a person or the scheduler restored a stack.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A caller of the API socket, known by its peer credentials (`None`: not available).
    CliUser { uid: Option<u32> },
    /// A person signed in to the web console.
    ConsoleUser { name: String },
    /// The backup scheduler (nightly backups, read checks, retention).
    Scheduler,
    /// The update worker (scheduled checks and updates).
    Updater,
    /// The healer (restarts after crashes and failed probes).
    Healer,
    /// The reconciler (drift repair).
    Reconciler,
    /// The daemon itself (engine watch, resumed operations).
    Daemon,
}

impl fmt::Display for Actor {
    /// The form recorded in events and the audit log since the first release.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::CliUser { uid: Some(u) } => write!(f, "api:uid={u}"),
            Actor::CliUser { uid: None } => write!(f, "api:unknown"),
            Actor::ConsoleUser { name } => write!(f, "console:{name}"),
            Actor::Scheduler => write!(f, "scheduler"),
            Actor::Updater => write!(f, "updater"),
            Actor::Healer => write!(f, "healer"),
            Actor::Reconciler => write!(f, "reconciler"),
            Actor::Daemon => write!(f, "hafen"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_forms_stay_as_they_were() {
        assert_eq!(Actor::CliUser { uid: Some(0) }.to_string(), "api:uid=0");
        assert_eq!(Actor::CliUser { uid: None }.to_string(), "api:unknown");
        assert_eq!(Actor::Scheduler.to_string(), "scheduler");
        assert_eq!(Actor::Daemon.to_string(), "hafen");
    }
}
