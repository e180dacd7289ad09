//! hafen's daemon: the services that own the running box's state (stacks, health, backups,
//! updates, alerts and notifications, host checks), the named workers that run them, the API
//! server, and the offline operations the CLI calls without a daemon (stack check, image build,
//! whole-box recovery). See docs/ARCHITECTURE.md for the crate graph and the module map.

rust_i18n::i18n!("../../locales", fallback = "en");

pub mod alerts;
pub mod app;
pub mod backup;
pub mod busy;
pub mod catalogue;
pub mod checks;
pub mod config;
pub mod error;
pub mod health;
pub mod host;
pub mod images;
pub mod metrics;
pub mod notify;
pub mod offline;
pub mod probe;
pub mod reconcile;
pub mod recover;
pub mod registry;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod shared;
pub mod stacks;
pub mod update;
pub mod watch;
pub mod worker;
pub mod worker_status;
