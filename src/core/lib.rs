//! hafen's pure core: the stack model, its decoding and validation with lines, rendering into
//! neutral service specs, and every policy — retention, schedule, version order and paths, the
//! update decision, image references, the health state machine with hysteresis, the healer's
//! backoff and crash-loop rules, the container policy check, domain events and the language
//! choice. No runtime, no engine, no store, no network; clocks and texts are passed in.
//! `tests/deps.sh` checks that it stays so.

rust_i18n::i18n!("../../locales", fallback = "en");

pub mod alerts;
pub mod catalogue;
pub mod clock;
pub mod describe;
pub mod events;
pub mod heal;
pub mod health;
pub mod i18n;
pub mod image_ref;
pub mod policy;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod spec;
pub mod version;
