//! Backup repositories in restic's format, readable by stock restic: creating and opening them,
//! hafen's own snapshot writer (`archive`) over its volume walker (`walk`), restore with the
//! path-safety guard, check and prune through rustic_core (`repo`, with its progress adaptor
//! `progress`), snapshot files read one by one so that a damaged one hides no other
//! (`snapshots`), index files that fail their check kept out of rustic_core's sight (`sound`),
//! the repair of damaged index files, packs and snapshots, planned first (`repair`), key
//! custody with age (`keys`, the only age user), the recovery kit (`kit`) and archive exports
//! (`export`). Which stack to back up when, and the app-consistent run around a
//! capture (hooks, dumps, restore into place), is the daemon's backup service.

rust_i18n::i18n!("../../locales", fallback = "en");

pub mod archive;
pub mod export;
pub mod keys;
pub mod kit;
pub mod progress;
pub mod repair;
pub mod repo;
pub mod snapshots;
pub mod sound;
pub mod walk;
