//! The validated stack definition (format v1): the typed values every other module reads.
//! Nothing here touches the engine or the disk; see `load` for decoding and `render` for
//! turning a definition plus settings into container specs.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A validated `stacks/<id>/stack.yaml`.
#[derive(Debug, Clone, Serialize)]
pub struct StackDef {
    pub id: String,
    pub name: String,
    /// The description in English (or the only one given).
    pub description: String,
    /// The description by language (`de`, `en`), when the file gives it per language.
    pub descriptions: BTreeMap<String, String>,
    pub sphere: Option<String>,
    pub settings: BTreeMap<String, SettingDef>,
    pub secrets: BTreeMap<String, SecretDef>,
    pub volumes: BTreeMap<String, VolumeDef>,
    pub services: BTreeMap<String, ServiceDef>,
    /// Services in dependency order (dependencies first).
    pub order: Vec<String>,
    pub backup: BackupDef,
    pub upgrade: UpgradeDef,
    /// sha256 of the definition file, for the record.
    pub file_hash: String,
    pub file: String,
    /// The definition's text (without a byte-order mark): what a deploy records, so a deployed
    /// stack keeps running by the definition it was deployed with.
    #[serde(skip)]
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingType {
    String,
    Int,
    Port,
    Bool,
    Hostname,
    Email,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingDef {
    pub kind: SettingType,
    pub default: Option<String>,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretDef {
    pub length: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    Db,
    Data,
    Config,
    Cache,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeDef {
    pub kind: VolumeKind,
    pub backup: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ImageSource {
    /// A registry image; `digest` pins it when the file names one.
    Registry { name: String, tag: Option<String>, digest: Option<String> },
    /// Built by hafen from `images/<recipe>/`.
    Build { recipe: String },
}

impl ImageSource {
    /// The reference as written (`name:tag@digest`), or `build:<recipe>`.
    pub fn display(&self) -> String {
        match self {
            ImageSource::Registry { name, tag, digest } => {
                let mut s = name.clone();
                if let Some(t) = tag {
                    s.push(':');
                    s.push_str(t);
                }
                if let Some(d) = digest {
                    s.push('@');
                    s.push_str(d);
                }
                s
            }
            ImageSource::Build { recipe } => format!("build:{recipe}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretMount {
    pub secret: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortDef {
    pub host_ip: String,
    /// A number or a `${setting}` template.
    pub host_port: String,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ProbeKind {
    Http { port: u16, path: String, expect_status: u16, expect_body: Option<String> },
    Tcp { port: u16 },
    Exec { command: Vec<String> },
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeDef {
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u32,
}

/// Compose's `healthcheck`, passed to the engine as the container's own HEALTHCHECK.
#[derive(Debug, Clone, Serialize)]
pub struct HealthcheckDef {
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceDef {
    pub image: ImageSource,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub volumes: Vec<VolumeMount>,
    pub tmpfs: Vec<String>,
    pub secrets: Vec<SecretMount>,
    pub ports: Vec<PortDef>,
    pub depends_on: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub mem_limit: u64,
    pub pids_limit: i64,
    pub probe: Option<ProbeDef>,
    pub healthcheck: Option<HealthcheckDef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HookDef {
    pub service: String,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DumpDef {
    pub service: String,
    pub command: Vec<String>,
    pub file: String,
    /// Reads the dump on stdin into a fresh database (for `hafen restore`).
    pub restore: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct BackupDef {
    pub pre: Vec<HookDef>,
    pub dumps: Vec<DumpDef>,
    pub post: Vec<HookDef>,
    pub max_quiesce: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Patch,
    Minor,
    Major,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationDef {
    /// Applies when moving to this version (prefix match, e.g. `7.0`).
    pub to: String,
    pub service: String,
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpgradeDef {
    pub channel: Channel,
    pub allow_major_skip: bool,
    pub required_versions: Vec<String>,
    pub migrations: Vec<MigrationDef>,
    /// The service whose registry image tag is the stack's version; none: the stack is not
    /// updated from a registry (built images are rebuilt instead).
    pub track: Option<String>,
    /// Other services' tags that go with a version: (version prefix, service → tag), e.g.
    /// Tryton 7.0 runs on PostgreSQL 17. The longest matching prefix wins.
    pub with: Vec<(String, BTreeMap<String, String>)>,
    /// Database services: when their image's major version changes, their data moves by dump
    /// and load (the pre-update backup's dump into a fresh database of the new version).
    pub databases: Vec<String>,
    /// Versions of a stack built from Debian's packages: version → (service → image recipe),
    /// e.g. 6.0 → tryton60 + postgres15, 7.0 → tryton70 + postgres17. The services' own
    /// `build:` recipes are one of them (the version a first deploy runs). Updates then need no
    /// registry: a hop builds the new version's images from their recipes.
    pub versions: BTreeMap<String, BTreeMap<String, String>>,
    /// How long the probes may take to pass after an update before it is rolled back.
    pub health_deadline: Duration,
}

impl StackDef {
    /// Every recipe `service` may be built from: its own `build:` and each version's.
    pub fn recipes_of(&self, service: &str) -> Vec<String> {
        let mut out: Vec<String> = match self.services.get(service).map(|s| &s.image) {
            Some(ImageSource::Build { recipe }) => vec![recipe.clone()],
            _ => vec![],
        };
        for r in self.upgrade.versions.values().filter_map(|m| m.get(service)) {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }
}

impl Default for UpgradeDef {
    fn default() -> Self {
        UpgradeDef {
            channel: Channel::Minor,
            allow_major_skip: false,
            required_versions: Vec::new(),
            migrations: Vec::new(),
            track: None,
            with: Vec::new(),
            databases: Vec::new(),
            versions: BTreeMap::new(),
            health_deadline: Duration::from_secs(600),
        }
    }
}

/// Capabilities a stack may add back after hafen drops all of them.
pub const CAP_ALLOW_LIST: &[&str] =
    &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"];

pub const DEFAULT_MEM_LIMIT: u64 = 1 << 30;
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;
