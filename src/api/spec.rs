//! The neutral service spec: everything needed to run one service, as the core renders it from a
//! stack definition and as a plan shows it. No engine's types; the engine adapter translates it.
//! Names of hafen's objects (`hafen-<stack>-<service>`) are part of the contract.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn container_name(stack: &str, service: &str) -> String {
    format!("hafen-{stack}-{service}")
}
pub fn network_name(stack: &str) -> String {
    format!("hafen-{stack}")
}
pub fn volume_name(stack: &str, volume: &str) -> String {
    format!("hafen-{stack}-{volume}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountSpec {
    /// A named volume created by hafen.
    Volume { name: String, target: String, read_only: bool },
    /// A single file hafen wrote (a secret), always read-only.
    File { source: String, target: String },
    Tmpfs { target: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u32,
}

/// Everything needed to run one service; its hash decides whether a running one is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub stack: String,
    pub service: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<MountSpec>,
    pub ports: Vec<PortSpec>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub memory_bytes: u64,
    pub pids_limit: i64,
    pub healthcheck: Option<HealthSpec>,
}

impl ServiceSpec {
    pub fn name(&self) -> String {
        container_name(&self.stack, &self.service)
    }
    pub fn network(&self) -> String {
        network_name(&self.stack)
    }
}
