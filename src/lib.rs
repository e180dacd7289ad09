//! hafen: one daemon that deploys, reconciles and guards containerised stacks for small social
//! organisations. `main.rs` only parses arguments; everything lives here so tests can reach it.
//! See docs/ARCHITECTURE.md for the module map and the dependency rule.

rust_i18n::i18n!("locales", fallback = "en");

pub mod api;
pub mod app;
pub mod catalogue;
pub mod events;
pub mod engine;
pub mod config;
pub mod images;
pub mod secrets;
pub mod store;
pub mod reconcile;
pub mod health;
pub mod daemon;
pub mod i18n;
pub mod cli;
pub mod backup;
pub mod recover;
pub mod notify;
pub mod host;
pub mod metrics;
pub mod audit;
pub mod watch;
pub mod update;
