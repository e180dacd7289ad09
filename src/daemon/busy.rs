//! Which stacks have a long operation running now (a backup, an update), as a set with guards:
//! the mark goes when its guard is dropped — also when the operation's future is dropped half-way
//! (a client that went away) or panics — so a stack is never left marked busy by accident. The
//! services that change a stack share one `Ops`: the lock every change of a stack takes, and
//! the marks of running backups and updates and the backup targets' locks.

use std::collections::BTreeSet;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Busy {
    set: Mutex<BTreeSet<String>>,
}

/// Held while the operation runs; dropping it clears the mark.
#[derive(Debug)]
pub struct Mark<'a> {
    busy: &'a Busy,
    key: String,
}

impl Busy {
    fn set(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `key` busy; `None` when it already is.
    pub fn mark(&self, key: &str) -> Option<Mark<'_>> {
        self.set().insert(key.to_string()).then(|| Mark { busy: self, key: key.to_string() })
    }

    pub fn contains(&self, key: &str) -> bool {
        self.set().contains(key)
    }
}

impl Drop for Mark<'_> {
    fn drop(&mut self) {
        self.busy.set().remove(&self.key);
    }
}

/// One lock per backup target: backups share it, prune takes it alone (rustic_core takes no
/// repository locks, and a prune must never remove packs a running backup still writes).
#[derive(Debug, Default)]
pub struct TargetLocks {
    locks: Mutex<std::collections::BTreeMap<String, std::sync::Arc<tokio::sync::RwLock<()>>>>,
}

impl TargetLocks {
    /// The lock of the target `name` (the same one for every caller).
    pub fn of(&self, name: &str) -> std::sync::Arc<tokio::sync::RwLock<()>> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).entry(name.to_string()).or_default().clone()
    }
}

/// What runs on the stacks now, shared by the services that change them (stacks, backups,
/// updates): each takes what it needs from here explicitly.
#[derive(Debug, Default)]
pub struct Ops {
    /// One change of a stack at a time (deploy, remove, reconcile, restore, update).
    pub op_lock: tokio::sync::Mutex<()>,
    /// Stacks (and hafen's own state) with a backup running now.
    pub backups: Busy,
    /// Stacks with an update running now (from its backup on).
    pub updating: Busy,
    /// The lock of each backup target.
    pub targets: TargetLocks,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_exclusive_and_goes_with_its_guard() {
        let b = Busy::default();
        let m = b.mark("tryton").expect("free");
        assert!(b.contains("tryton") && b.mark("tryton").is_none());
        assert!(b.mark("radicale").is_some(), "other stacks are not held");
        drop(m);
        assert!(!b.contains("tryton") && b.mark("tryton").is_some());
    }

    #[tokio::test]
    async fn a_dropped_operation_leaves_no_mark() {
        let b = std::sync::Arc::new(Busy::default());
        let b2 = b.clone();
        let op = tokio::spawn(async move {
            let _m = b2.mark("tryton").unwrap();
            std::future::pending::<()>().await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(b.contains("tryton"));
        op.abort();
        let _ = op.await;
        assert!(!b.contains("tryton"), "the aborted operation's mark is gone");
    }
}
