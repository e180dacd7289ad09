//! A plan: what the reconciler will do to bring one stack to its desired state, as a value that
//! is printed (`--dry-run`) before it is applied, and the outcome of each applied action.

use crate::spec::ServiceSpec;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateNetwork { stack: String },
    CreateVolume { stack: String, volume: String },
    CreateService { spec: Box<ServiceSpec> },
    RecreateService { spec: Box<ServiceSpec>, reason: String },
    StartService { stack: String, service: String, name: String },
    RemoveService { stack: String, service: String, name: String },
    RemoveNetwork { stack: String },
    RemoveVolume { stack: String, volume: String },
}

impl Action {
    /// Short English key for events and the test pause hook (`create:hafen-x-db`).
    pub fn key(&self) -> String {
        match self {
            Action::CreateNetwork { stack } => format!("network:{stack}"),
            Action::CreateVolume { stack, volume } => format!("volume:{stack}-{volume}"),
            Action::CreateService { spec } => format!("create:{}", spec.name()),
            Action::RecreateService { spec, .. } => format!("recreate:{}", spec.name()),
            Action::StartService { name, .. } => format!("start:{name}"),
            Action::RemoveService { name, .. } => format!("remove:{name}"),
            Action::RemoveNetwork { stack } => format!("remove-network:{stack}"),
            Action::RemoveVolume { stack, volume } => format!("remove-volume:{stack}-{volume}"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateNetwork { stack } => write!(f, "create network hafen-{stack}"),
            Action::CreateVolume { stack, volume } => write!(f, "create volume hafen-{stack}-{volume}"),
            Action::CreateService { spec } => write!(f, "create service {} ({})", spec.name(), spec.image),
            Action::RecreateService { spec, reason } => write!(f, "recreate service {} ({reason})", spec.name()),
            Action::StartService { name, .. } => write!(f, "start service {name}"),
            Action::RemoveService { name, .. } => write!(f, "remove service {name}"),
            Action::RemoveNetwork { stack } => write!(f, "remove network hafen-{stack}"),
            Action::RemoveVolume { stack, volume } => write!(f, "DELETE volume hafen-{stack}-{volume} and its data"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub stack: String,
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// The outcome of one applied action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub action: String,
    pub description: String,
    pub ok: bool,
    pub error: Option<String>,
}

