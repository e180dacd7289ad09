//! Backups: key custody with age (`keys`), retention as a pure function (`retention`).
//! Repositories in restic's format, capture, targets and restore are built on these.

pub mod archive;
pub mod export;
pub mod keys;
pub mod progress;
pub mod kit;
pub mod repo;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod walk;
