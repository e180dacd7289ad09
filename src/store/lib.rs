//! The state store: hafen's desired state (which stacks are enabled, with which settings), the
//! image each service is pinned to, and the event record. SQLite in WAL mode with synchronous
//! FULL, versioned migrations (`MIGRATIONS`, never edited once shipped) and an integrity check at
//! open, so a damaged file stops hafen before it acts on wrong state.

rust_i18n::i18n!("../../locales", fallback = "en");

pub mod audit;

pub use hafen_api::{AlertRecord, EventRecord};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod outbox;
mod updates;
pub use outbox::OutboxEntry;
pub use updates::{NewHop, UpdateRecord};

/// `PRAGMA application_id` marking the file as hafen's ("hafn").
const APP_ID: i64 = 0x6861_666e;

/// Schema migrations; index + 1 is the version they lead to.
const MIGRATIONS: &[&str] = &[
    // v1
    "CREATE TABLE stacks (
        id TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL,
        settings TEXT NOT NULL,
        definition_hash TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
     );
     CREATE TABLE image_pins (
        stack TEXT NOT NULL,
        service TEXT NOT NULL,
        reference TEXT NOT NULL,
        image_id TEXT NOT NULL,
        digest TEXT,
        pinned_at TEXT NOT NULL,
        PRIMARY KEY (stack, service)
     );
     CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        kind TEXT NOT NULL,
        stack TEXT,
        actor TEXT NOT NULL,
        message TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
     );",
    // v2: scheduled jobs remember their last run (catch-up after the box was off)
    "CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        last_run TEXT NOT NULL,
        last_error TEXT
     );",
    // v3: the hash-chained audit log (append-only: triggers refuse changes; the chain shows
    // changes made around them), open alerts, and the notification outbox.
    "CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
     );
     CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
     CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
     CREATE TABLE alerts (
        key TEXT PRIMARY KEY,
        code TEXT NOT NULL,
        severity TEXT NOT NULL,
        stack TEXT,
        args TEXT NOT NULL,
        since TEXT NOT NULL,
        last_notified TEXT NOT NULL,
        tried TEXT NOT NULL DEFAULT '[]'
     );
     CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        payload TEXT NOT NULL,
        created TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT NOT NULL,
        last_error TEXT,
        delivered TEXT
     );",
    // v4: update transactions (one row per hop, the step written before it is taken) and
    // version pins.
    "CREATE TABLE updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        stack TEXT NOT NULL,
        from_version TEXT NOT NULL,
        to_version TEXT NOT NULL,
        step TEXT NOT NULL,
        state TEXT NOT NULL,
        snapshot TEXT,
        target TEXT NOT NULL,
        old_pins TEXT NOT NULL,
        new_refs TEXT NOT NULL,
        error TEXT,
        actor TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        downtime REAL
     );
     CREATE TABLE update_pins (
        stack TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        pinned_at TEXT NOT NULL
     );",
    // v5: a deployed stack keeps the definition it was deployed with (its text; a changed file
    // waits for the next deploy); an update records when it stopped the stack (its downtime
    // counts from there, also across a restart).
    "ALTER TABLE stacks ADD COLUMN definition TEXT NOT NULL DEFAULT '';
     ALTER TABLE updates ADD COLUMN stopped_at TEXT;",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}", rust_i18n::t!("err.store_corrupt", path = .path, detail = .detail))]
    Corrupt { path: String, detail: String },
    #[error("{}", rust_i18n::t!("err.store_toonew", path = .path, found = .found, known = .known))]
    TooNew { path: String, found: i64, known: i64 },
    #[error("{}", rust_i18n::t!("err.store_open", path = .path, detail = .detail))]
    Open { path: String, detail: String },
    /// The disk below the store fails its reads or writes (SQLite's I/O error): not damage of
    /// the file's content, so the advice differs (never "move it aside").
    #[error("{}", rust_i18n::t!("err.store_unreadable", path = .path, detail = .detail))]
    Unreadable { path: String, detail: String },
    #[error("{}", rust_i18n::t!("err.store_query", _0 = .0))]
    Query(#[from] rusqlite::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackRecord {
    pub id: String,
    pub enabled: bool,
    pub settings: BTreeMap<String, String>,
    pub definition_hash: String,
    pub updated_at: String,
    /// The definition's text as deployed (empty in records from before hafen kept it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub definition: String,
}

pub use hafen_api::ImagePin;


impl StoreError {
    /// The error as code + arguments (`hafen_api::Message`), rendered by each reader's front end.
    pub fn message(&self) -> hafen_api::Message {
        use hafen_api::Message as M;
        match self {
            StoreError::Corrupt { path, detail } => M::new("store_corrupt").arg("path", path).arg("detail", detail),
            StoreError::TooNew { path, found, known } => M::new("store_toonew").arg("path", path).arg("found", found).arg("known", known),
            StoreError::Open { path, detail } => M::new("store_open").arg("path", path).arg("detail", detail),
            StoreError::Unreadable { path, detail } => M::new("store_unreadable").arg("path", path).arg("detail", detail),
            StoreError::Query(e) => M::new("store_query").arg("_0", e),
        }
    }
}

pub struct Store {
    conn: Mutex<Connection>,
    pub path: PathBuf,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Opens (creating if absent) and migrates the store; refuses a damaged or foreign file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open { path: p.clone(), detail: e.to_string() })?;
        }
        let fresh = !path.exists() || std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(true);
        // Created private before SQLite opens it: SQLite gives its write-ahead log and shared
        // memory file the database file's mode, so they are private from the start too.
        restrict(path);
        let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::SystemIoFailure) => StoreError::Unreadable { path: p.clone(), detail: e.to_string() },
            _ => StoreError::Corrupt { path: p.clone(), detail: e.to_string() },
        };
        let conn = Connection::open(path).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::SystemIoFailure) => StoreError::Unreadable { path: p.clone(), detail: e.to_string() },
            _ => StoreError::Open { path: p.clone(), detail: e.to_string() },
        })?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(corrupt)?;
        if check != "ok" {
            return Err(StoreError::Corrupt { path: p, detail: check });
        }
        let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(corrupt)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(corrupt)?;
        if !fresh && app_id != APP_ID && !(app_id == 0 && version == 0 && table_count(&conn).map_err(corrupt)? == 0) {
            return Err(StoreError::Corrupt { path: p, detail: format!("application id {app_id:#x} is not hafen's") });
        }
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;")
            .map_err(corrupt)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { path: p, found: version, known });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(m)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}; PRAGMA application_id = {APP_ID};", i + 1))?;
            tx.commit()?;
        }
        restrict(path);
        Ok(Store { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn().query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Records a stack; `definition` (its text) replaces the recorded one when given, else the
    /// recorded text stays.
    pub fn put_stack(&self, id: &str, enabled: bool, settings: &BTreeMap<String, String>, definition_hash: &str, definition: Option<&str>) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO stacks (id, enabled, settings, definition_hash, updated_at, definition) VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, ''))
             ON CONFLICT(id) DO UPDATE SET enabled = ?2, settings = ?3, definition_hash = ?4, updated_at = ?5, definition = COALESCE(?6, definition)",
            params![id, enabled, serde_json::to_string(settings).unwrap_or_default(), definition_hash, now(), definition],
        )?;
        Ok(())
    }

    pub fn delete_stack(&self, id: &str) -> Result<(), StoreError> {
        let c = self.conn();
        c.execute("DELETE FROM stacks WHERE id = ?1", params![id])?;
        c.execute("DELETE FROM image_pins WHERE stack = ?1", params![id])?;
        Ok(())
    }

    pub fn stacks(&self) -> Result<Vec<StackRecord>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare("SELECT id, enabled, settings, definition_hash, updated_at, definition FROM stacks ORDER BY id")?;
        let rows = q.query_map([], |r| {
            let settings: String = r.get(2)?;
            Ok(StackRecord {
                id: r.get(0)?,
                enabled: r.get(1)?,
                settings: serde_json::from_str(&settings).unwrap_or_default(),
                definition_hash: r.get(3)?,
                updated_at: r.get(4)?,
                definition: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn stack(&self, id: &str) -> Result<Option<StackRecord>, StoreError> {
        Ok(self.stacks()?.into_iter().find(|s| s.id == id))
    }

    pub fn pin(&self, pin: &ImagePin) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO image_pins (stack, service, reference, image_id, digest, pinned_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(stack, service) DO UPDATE SET reference = ?3, image_id = ?4, digest = ?5, pinned_at = ?6",
            params![pin.stack, pin.service, pin.reference, pin.image_id, pin.digest, pin.pinned_at],
        )?;
        Ok(())
    }

    pub fn pins(&self, stack: &str) -> Result<BTreeMap<String, ImagePin>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare("SELECT stack, service, reference, image_id, digest, pinned_at FROM image_pins WHERE stack = ?1")?;
        let rows = q.query_map(params![stack], |r| {
            Ok(ImagePin { stack: r.get(0)?, service: r.get(1)?, reference: r.get(2)?, image_id: r.get(3)?, digest: r.get(4)?, pinned_at: r.get(5)? })
        })?;
        let mut out = BTreeMap::new();
        for p in rows {
            let p = p?;
            out.insert(p.service.clone(), p);
        }
        Ok(out)
    }

    /// Records an event and its audit record (chained to the previous one) in one transaction;
    /// then keeps the newest audit hash beside the store.
    pub fn record_event(&self, kind: &str, stack: Option<&str>, actor: &str, message: &str, detail: &serde_json::Value, target: &str, outcome: &str) -> Result<i64, StoreError> {
        let ts = now();
        let detail = detail.to_string();
        let (seq, audit_seq, hash) = {
            let mut c = self.conn();
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO events (ts, kind, stack, actor, message, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![ts, kind, stack, actor, message, detail],
            )?;
            let seq = tx.last_insert_rowid();
            let (last, prev): (i64, String) = tx
                .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .unwrap_or((0, crate::audit::GENESIS.to_string()));
            let aseq = last + 1;
            let hash = crate::audit::chain_hash(&prev, aseq, &ts, actor, kind, target, outcome, &detail);
            tx.execute(
                "INSERT INTO audit (seq, ts, actor, action, target, outcome, detail, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![aseq, ts, actor, kind, target, outcome, detail, prev, hash],
            )?;
            tx.commit()?;
            (seq, aseq, hash)
        };
        if let Err(e) = crate::audit::write_head(&self.path, audit_seq, &hash) {
            tracing::warn!(error = %e, "could not keep the newest audit hash beside the store");
        }
        Ok(seq)
    }

    /// Audit records with `seq > since`, oldest first.
    pub fn audit(&self, since: i64, limit: usize) -> Result<Vec<crate::audit::AuditRecord>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare("SELECT seq, ts, actor, action, target, outcome, detail, prev, hash FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = q.query_map(params![since, limit as i64], |r| {
            Ok(crate::audit::AuditRecord {
                seq: r.get(0)?,
                ts: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                outcome: r.get(5)?,
                detail: r.get(6)?,
                prev: r.get(7)?,
                hash: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The open alert with this key.
    pub fn alert(&self, key: &str) -> Result<Option<AlertRecord>, StoreError> {
        Ok(self.alerts()?.into_iter().find(|a| a.key == key))
    }

    pub fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare("SELECT key, code, severity, stack, args, since, last_notified, tried FROM alerts ORDER BY since")?;
        let rows = q.query_map([], |r| {
            let args: String = r.get(4)?;
            let tried: String = r.get(7)?;
            Ok(AlertRecord {
                key: r.get(0)?,
                code: r.get(1)?,
                severity: r.get(2)?,
                stack: r.get(3)?,
                args: serde_json::from_str(&args).unwrap_or_default(),
                since: r.get(5)?,
                last_notified: r.get(6)?,
                tried: serde_json::from_str(&tried).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn put_alert(&self, a: &AlertRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO alerts (key, code, severity, stack, args, since, last_notified, tried) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(key) DO UPDATE SET code = ?2, severity = ?3, stack = ?4, args = ?5, since = ?6, last_notified = ?7, tried = ?8",
            params![a.key, a.code, a.severity, a.stack, serde_json::to_string(&a.args).unwrap_or_default(), a.since, a.last_notified, serde_json::to_string(&a.tried).unwrap_or_default()],
        )?;
        Ok(())
    }

    pub fn delete_alert(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute("DELETE FROM alerts WHERE key = ?1", params![key])? > 0)
    }

    /// When the newest event of `kind` for `stack` was recorded.
    pub fn last_event_of(&self, kind: &str, stack: &str) -> Result<Option<String>, StoreError> {
        let c = self.conn();
        Ok(c.query_row("SELECT ts FROM events WHERE kind = ?1 AND stack = ?2 ORDER BY seq DESC LIMIT 1", params![kind, stack], |r| r.get(0)).optional()?)
    }

    pub fn events(&self, since: i64, stack: Option<&str>, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare(
            "SELECT seq, ts, kind, stack, actor, message, detail FROM events
             WHERE seq > ?1 AND (?2 IS NULL OR stack = ?2) ORDER BY seq LIMIT ?3",
        )?;
        let rows = q.query_map(params![since, stack, limit as i64], |r| {
            let d: String = r.get(6)?;
            Ok(EventRecord {
                seq: r.get(0)?,
                ts: r.get(1)?,
                kind: r.get(2)?,
                stack: r.get(3)?,
                actor: r.get(4)?,
                message: r.get(5)?,
                detail: serde_json::from_str(&d).unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn job_last_run(&self, name: &str) -> Result<Option<String>, StoreError> {
        let c = self.conn();
        let mut q = c.prepare("SELECT last_run FROM jobs WHERE name = ?1")?;
        let mut rows = q.query(params![name])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }

    pub fn set_job(&self, name: &str, last_run: &str, last_error: Option<&str>) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO jobs (name, last_run, last_error) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET last_run = ?2, last_error = ?3",
            params![name, last_run, last_error],
        )?;
        Ok(())
    }

    /// Checkpoints the WAL into the main file (at shutdown).
    /// A consistent copy of the whole store in one file (for hafen's own backup); `to` must
    /// not exist.
    pub fn copy_to(&self, to: &Path) -> Result<(), StoreError> {
        self.conn().execute("VACUUM INTO ?1", [to.display().to_string()])?;
        Ok(())
    }

    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn().execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

fn table_count(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
}

/// The store file, its write-ahead log, its shared memory and its audit head: 0600 (created
/// so when missing; tightened when an older hafen left them readable).
fn restrict(path: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    }
    for suffix in ["", "-wal", "-shm", ".audit-head"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if p.exists() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.db");
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let set = BTreeMap::from([("http_port".to_string(), "8000".to_string())]);
        s.put_stack("tryton", true, &set, "abc", Some("id: tryton\n")).unwrap();
        drop(s);
        let s = Store::open(&p).unwrap();
        let r = s.stack("tryton").unwrap().unwrap();
        assert!(r.enabled);
        assert_eq!(r.settings, set);
        assert_eq!(r.definition, "id: tryton\n");
        // Recorded again without a text (a remove that disables it): the text stays.
        s.put_stack("tryton", false, &set, "abc", None).unwrap();
        assert_eq!(s.stack("tryton").unwrap().unwrap().definition, "id: tryton\n");
        // The store's files are private (also the write-ahead log and its shared memory).
        use std::os::unix::fs::PermissionsExt;
        for f in ["state.db", "state.db-wal", "state.db-shm"] {
            let mode = std::fs::metadata(d.path().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f} is {mode:o}");
        }
        let seq = s.record_event("stack_deployed", Some("tryton"), "cli", "deployed", &serde_json::json!({}), "stack:tryton", "ok").unwrap();
        assert_eq!(s.events(seq - 1, None, 10).unwrap().len(), 1);
    }

    #[test]
    fn garbage_file_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.db");
        let junk = vec![0x42u8; 8192];
        std::fs::write(&p, &junk).unwrap();
        let e = Store::open(&p).err().expect("must refuse");
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("changed nothing"));
        assert_eq!(std::fs::read(&p).unwrap(), junk);
    }

    #[test]
    fn newer_schema_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.db");
        drop(Store::open(&p).unwrap());
        Connection::open(&p).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(matches!(Store::open(&p).err().unwrap(), StoreError::TooNew { found: 99, .. }));
    }
}
