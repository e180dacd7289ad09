//! The notification outbox: one row per notice and channel, written before anything is sent, so
//! an unreachable receiver only delays a notice and a restart neither loses nor repeats one.
//! A failed attempt is retried after 10 s, 30 s, 1 min, 2 min, 5 min, then every 15 min; rows
//! are never dropped. Owns the `outbox` table only; what a payload means is `notify`'s business.

use super::{now, Store, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One notice for one channel, as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: i64,
    /// `email`, `webhook:<index>` or `heartbeat`.
    pub channel: String,
    pub payload: String,
    pub created: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it is (or was) due next (RFC 3339, UTC).
    pub next_attempt: String,
    pub last_error: Option<String>,
    /// When it was delivered; `None` while it waits.
    pub delivered: Option<String>,
}

/// How long to wait after the `attempts`-th failed attempt (1-based).
pub fn retry_delay(attempts: u32) -> Duration {
    let secs = match attempts {
        0 | 1 => 10,
        2 => 30,
        3 => 60,
        4 => 120,
        5 => 300,
        _ => 900,
    };
    Duration::from_secs(secs)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

const COLUMNS: &str = "id, channel, payload, created, attempts, next_attempt, last_error, delivered";

fn entry(r: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: r.get(0)?,
        channel: r.get(1)?,
        payload: r.get(2)?,
        created: r.get(3)?,
        attempts: r.get(4)?,
        next_attempt: r.get(5)?,
        last_error: r.get(6)?,
        delivered: r.get(7)?,
    })
}

impl Store {
    /// Queues `(channel, payload)` rows, due at once, in one transaction (all or none);
    /// returns their ids.
    pub fn outbox_enqueue(&self, rows: &[(String, String)]) -> Result<Vec<i64>, StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let ts = now();
        let mut ids = Vec::with_capacity(rows.len());
        for (channel, payload) in rows {
            tx.execute(
                "INSERT INTO outbox (channel, payload, created, next_attempt) VALUES (?1, ?2, ?3, ?3)",
                params![channel, payload, ts],
            )?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Undelivered rows whose next attempt is due now, oldest first.
    pub fn outbox_due(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE delivered IS NULL AND next_attempt <= ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = q.query_map(params![now(), limit as i64], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the earliest undelivered row is due (RFC 3339, UTC); `None` when nothing waits.
    pub fn outbox_next_due(&self) -> Result<Option<String>, StoreError> {
        let c = self.conn();
        Ok(c.query_row("SELECT min(next_attempt) FROM outbox WHERE delivered IS NULL", [], |r| r.get(0))?)
    }

    pub fn outbox_mark_delivered(&self, id: i64) -> Result<(), StoreError> {
        self.conn().execute("UPDATE outbox SET delivered = ?2, last_error = NULL WHERE id = ?1", params![id, now()])?;
        Ok(())
    }

    /// Records a failed attempt and schedules the next one (`retry_delay`); returns when
    /// that is.
    pub fn outbox_mark_failed(&self, id: i64, error: &str) -> Result<String, StoreError> {
        let c = self.conn();
        let attempts: u32 = c.query_row("SELECT attempts FROM outbox WHERE id = ?1", params![id], |r| r.get(0))?;
        let attempts = attempts + 1;
        let delay = chrono::Duration::from_std(retry_delay(attempts)).unwrap_or(chrono::Duration::minutes(15));
        let next = stamp(Utc::now() + delay);
        c.execute(
            "UPDATE outbox SET attempts = ?2, last_error = ?3, next_attempt = ?4 WHERE id = ?1",
            params![id, attempts, error, next],
        )?;
        Ok(next)
    }

    /// How many rows wait for delivery.
    pub fn outbox_pending(&self) -> Result<u64, StoreError> {
        let c = self.conn();
        Ok(c.query_row("SELECT count(*) FROM outbox WHERE delivered IS NULL", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// For display: every waiting row (oldest first), then the newest delivered ones, at most
    /// `limit` rows in all.
    pub fn outbox_list(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(&format!(
            "SELECT {COLUMNS} FROM outbox ORDER BY delivered IS NOT NULL, CASE WHEN delivered IS NULL THEN id ELSE -id END LIMIT ?1"
        ))?;
        let rows = q.query_map(params![limit as i64], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("state.db")).unwrap();
        (d, s)
    }

    fn rows(channels: &[&str]) -> Vec<(String, String)> {
        channels.iter().map(|c| (c.to_string(), format!("payload for {c}"))).collect()
    }

    #[test]
    fn backoff_table() {
        let cases = [(1, 10), (2, 30), (3, 60), (4, 120), (5, 300), (6, 900), (7, 900), (1000, 900)];
        for (attempts, secs) in cases {
            assert_eq!(retry_delay(attempts), Duration::from_secs(secs), "after attempt {attempts}");
        }
    }

    #[test]
    fn enqueued_rows_are_due_oldest_first_and_survive_a_reopen() {
        let (d, s) = store();
        let ids = s.outbox_enqueue(&rows(&["email", "webhook:0"])).unwrap();
        assert_eq!(ids.len(), 2);
        drop(s);
        let s = Store::open(&d.path().join("state.db")).unwrap();
        let due = s.outbox_due(10).unwrap();
        assert_eq!(due.iter().map(|e| e.channel.as_str()).collect::<Vec<_>>(), ["email", "webhook:0"]);
        assert_eq!(due[0].attempts, 0);
        assert_eq!(s.outbox_pending().unwrap(), 2);
    }

    #[test]
    fn delivered_rows_are_no_longer_due() {
        let (_d, s) = store();
        let ids = s.outbox_enqueue(&rows(&["email"])).unwrap();
        s.outbox_mark_delivered(ids[0]).unwrap();
        assert!(s.outbox_due(10).unwrap().is_empty());
        assert_eq!(s.outbox_pending().unwrap(), 0);
        assert_eq!(s.outbox_next_due().unwrap(), None);
        let list = s.outbox_list(10).unwrap();
        assert!(list[0].delivered.is_some());
    }

    #[test]
    fn a_failed_row_waits_keeps_its_error_and_counts_attempts() {
        let (_d, s) = store();
        let ids = s.outbox_enqueue(&rows(&["email"])).unwrap();
        let before = Utc::now();
        let next = s.outbox_mark_failed(ids[0], "smtp down").unwrap();
        let next_t = DateTime::parse_from_rfc3339(&next).unwrap().with_timezone(&Utc);
        let wait = (next_t - before).num_milliseconds();
        assert!((9_000..=11_000).contains(&wait), "first retry after about 10 s, not {wait} ms");
        assert!(s.outbox_due(10).unwrap().is_empty());
        assert_eq!(s.outbox_next_due().unwrap(), Some(next));
        s.outbox_mark_failed(ids[0], "still down").unwrap();
        let e = &s.outbox_list(10).unwrap()[0];
        assert_eq!((e.attempts, e.last_error.as_deref(), e.delivered.as_deref()), (2, Some("still down"), None));
        assert_eq!(s.outbox_pending().unwrap(), 1);
    }

    #[test]
    fn the_list_shows_waiting_rows_first() {
        let (_d, s) = store();
        let ids = s.outbox_enqueue(&rows(&["a", "b", "c"])).unwrap();
        s.outbox_mark_delivered(ids[0]).unwrap();
        let list = s.outbox_list(10).unwrap();
        assert_eq!(list.iter().map(|e| e.channel.as_str()).collect::<Vec<_>>(), ["b", "c", "a"]);
    }
}
