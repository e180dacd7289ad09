//! Update transactions and version pins. One row per hop of an update: the images before and
//! after, the pre-update snapshot, and the step it is at, written before each step is taken, so
//! a daemon killed mid-update finds the row at start and finishes the rollback. Owns the
//! `updates` and `update_pins` tables.

use super::{now, ImagePin, Store, StoreError};
use rusqlite::{params, OptionalExtension, Row};
use std::collections::BTreeMap;

pub use hafen_api::UpdateRecord;

/// What `update_begin` records.
pub struct NewHop<'a> {
    pub stack: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub target: &'a str,
    pub old_pins: &'a BTreeMap<String, ImagePin>,
    pub new_refs: &'a BTreeMap<String, String>,
    pub actor: &'a str,
}

fn row(r: &Row) -> rusqlite::Result<UpdateRecord> {
    let old: String = r.get(8)?;
    let new: String = r.get(9)?;
    Ok(UpdateRecord {
        id: r.get(0)?,
        stack: r.get(1)?,
        from_version: r.get(2)?,
        to_version: r.get(3)?,
        step: r.get(4)?,
        state: r.get(5)?,
        snapshot: r.get(6)?,
        target: r.get(7)?,
        old_pins: serde_json::from_str(&old).unwrap_or_default(),
        new_refs: serde_json::from_str(&new).unwrap_or_default(),
        error: r.get(10)?,
        actor: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
        downtime: r.get(14)?,
    })
}

const COLS: &str = "id, stack, from_version, to_version, step, state, snapshot, target, old_pins, new_refs, error, actor, started_at, finished_at, downtime";

impl Store {
    /// Records a hop that begins (its backup exists); returns its id.
    pub fn update_begin(&self, hop: &NewHop) -> Result<i64, StoreError> {
        let c = self.conn();
        c.execute(
            "INSERT INTO updates (stack, from_version, to_version, step, state, target, old_pins, new_refs, actor, started_at) VALUES (?1, ?2, ?3, 'backup', 'running', ?4, ?5, ?6, ?7, ?8)",
            params![
                hop.stack,
                hop.from,
                hop.to,
                hop.target,
                serde_json::to_string(hop.old_pins).unwrap_or_default(),
                serde_json::to_string(hop.new_refs).unwrap_or_default(),
                hop.actor,
                now()
            ],
        )?;
        Ok(c.last_insert_rowid())
    }

    /// Moves the transaction to `step` (and `state`), before the step is taken.
    pub fn update_step(&self, id: i64, step: &str, state: &str) -> Result<(), StoreError> {
        self.conn().execute("UPDATE updates SET step = ?2, state = ?3 WHERE id = ?1", params![id, step, state])?;
        Ok(())
    }

    /// The pins a rollback of this update goes back to (a rebuild keeps the previous image
    /// under a tag of its own once committed).
    pub fn update_old_pins(&self, id: i64, pins: &BTreeMap<String, ImagePin>) -> Result<(), StoreError> {
        self.conn().execute("UPDATE updates SET old_pins = ?2 WHERE id = ?1", params![id, serde_json::to_string(pins).unwrap_or_default()])?;
        Ok(())
    }

    pub fn update_snapshot(&self, id: i64, snapshot: &str) -> Result<(), StoreError> {
        self.conn().execute("UPDATE updates SET snapshot = ?2 WHERE id = ?1", params![id, snapshot])?;
        Ok(())
    }

    /// Ends the transaction in `state` (committed, rolled_back, aborted, failed).
    pub fn update_end(&self, id: i64, state: &str, error: Option<&str>, downtime: Option<f64>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE updates SET state = ?2, error = COALESCE(?3, error), downtime = ?4, finished_at = ?5 WHERE id = ?1",
            params![id, state, error, downtime, now()],
        )?;
        Ok(())
    }

    /// Records the error of a step without ending the transaction (a rollback follows).
    /// The hop stopped the stack now (the first time only): its downtime counts from here.
    pub fn update_stopped(&self, id: i64) -> Result<(), StoreError> {
        self.conn().execute("UPDATE updates SET stopped_at = COALESCE(stopped_at, ?2) WHERE id = ?1", params![id, now()])?;
        Ok(())
    }

    /// When the hop stopped the stack (RFC 3339), if it did.
    pub fn update_stopped_at(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(self.conn().query_row("SELECT stopped_at FROM updates WHERE id = ?1", params![id], |r| r.get(0)).optional()?.flatten())
    }

    pub fn update_error(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.conn().execute("UPDATE updates SET error = ?2 WHERE id = ?1", params![id, error])?;
        Ok(())
    }

    /// Transactions a killed daemon left open.
    pub fn open_updates(&self) -> Result<Vec<UpdateRecord>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(&format!("SELECT {COLS} FROM updates WHERE state IN ('running', 'rolling_back') ORDER BY id"))?;
        let rows = q.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn update_open_for(&self, stack: &str) -> Result<bool, StoreError> {
        let n: i64 = self.conn().query_row("SELECT count(*) FROM updates WHERE stack = ?1 AND state IN ('running', 'rolling_back')", params![stack], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// The newest transactions first (of one stack, or all).
    pub fn updates(&self, stack: Option<&str>, limit: usize) -> Result<Vec<UpdateRecord>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(&format!("SELECT {COLS} FROM updates WHERE (?1 IS NULL OR stack = ?1) ORDER BY id DESC LIMIT ?2"))?;
        let rows = q.query_map(params![stack, limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn update_record(&self, id: i64) -> Result<Option<UpdateRecord>, StoreError> {
        Ok(self.conn().query_row(&format!("SELECT {COLS} FROM updates WHERE id = ?1"), params![id], row).optional()?)
    }

    /// `hafen update pin`: never beyond this version.
    pub fn set_version_pin(&self, stack: &str, version: Option<&str>) -> Result<(), StoreError> {
        let c = self.conn();
        match version {
            Some(v) => c.execute(
                "INSERT INTO update_pins (stack, version, pinned_at) VALUES (?1, ?2, ?3) ON CONFLICT(stack) DO UPDATE SET version = ?2, pinned_at = ?3",
                params![stack, v, now()],
            )?,
            None => c.execute("DELETE FROM update_pins WHERE stack = ?1", params![stack])?,
        };
        Ok(())
    }

    pub fn version_pin(&self, stack: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn().query_row("SELECT version FROM update_pins WHERE stack = ?1", params![stack], |r| r.get(0)).optional()?)
    }

    /// Puts a stack's image pins back to `pins` exactly (services without one lose theirs).
    pub fn replace_pins(&self, stack: &str, pins: &BTreeMap<String, ImagePin>) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        tx.execute("DELETE FROM image_pins WHERE stack = ?1", params![stack])?;
        for p in pins.values() {
            tx.execute(
                "INSERT INTO image_pins (stack, service, reference, image_id, digest, pinned_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![p.stack, p.service, p.reference, p.image_id, p.digest, p.pinned_at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
