//! The audit log: every domain event as a record of who (a user, the scheduler, hafen itself),
//! what, on which target, with which outcome and when (UTC), append-only in the state store and
//! hash-chained: each record's hash covers its fields and the previous record's hash, and the
//! newest (seq, hash) is also kept beside the store (`state.db.audit-head`), so a changed,
//! removed or re-ordered record, or a cut-off tail, is found by `verify`.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub use hafen_api::AuditRecord;

/// The hash of a record's content chained to `prev`.
pub fn chain_hash(prev: &str, seq: i64, ts: &str, actor: &str, action: &str, target: &str, outcome: &str, detail: &str) -> String {
    let content = serde_json::json!([seq, ts, actor, action, target, outcome, detail]).to_string();
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(content.as_bytes());
    hex::encode(h.finalize())
}

/// The hash a record must carry, from its fields and the previous record's hash.
pub fn expected_hash(r: &AuditRecord) -> String {
    chain_hash(&r.prev, r.seq, &r.ts, &r.actor, &r.action, &r.target, &r.outcome, &r.detail)
}

/// Where the newest (seq, hash) is kept, beside the store file.
pub fn head_path(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".audit-head");
    PathBuf::from(p)
}

pub fn write_head(store: &Path, seq: i64, hash: &str) -> std::io::Result<()> {
    let path = head_path(store);
    let tmp = path.with_extension("audit-head.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(format!("{seq} {hash}\n").as_bytes())?;
    }
    std::fs::rename(&tmp, &path)
}

pub fn read_head(store: &Path) -> Option<(i64, String)> {
    let s = std::fs::read_to_string(head_path(store)).ok()?;
    let (seq, hash) = s.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_string()))
}

/// The first record that does not check out, and why: a catalogue key (`audit.…`) with its
/// arguments, which each reader sees in their language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub seq: i64,
    pub reason: hafen_api::Message,
}

/// Walks the chain; `Ok(count)` when every record is intact and the tail matches the head.
pub fn verify(records: &[AuditRecord], head: Option<(i64, String)>) -> Result<usize, Broken> {
    use hafen_api::Message as M;
    let mut prev = GENESIS.to_string();
    let mut last_seq = 0;
    for r in records {
        if r.seq != last_seq + 1 {
            return Err(Broken { seq: last_seq + 1, reason: M::new("audit.missing").arg("seq", last_seq + 1).arg("next", r.seq) });
        }
        if r.prev != prev {
            return Err(Broken { seq: r.seq, reason: M::new("audit.relinked").arg("seq", r.seq).arg("prev", last_seq) });
        }
        if expected_hash(r) != r.hash {
            return Err(Broken { seq: r.seq, reason: M::new("audit.changed").arg("seq", r.seq).arg("action", &r.action).arg("actor", &r.actor).arg("ts", &r.ts) });
        }
        prev = r.hash.clone();
        last_seq = r.seq;
    }
    if let Some((hseq, hhash)) = head {
        if hseq > last_seq {
            return Err(Broken { seq: last_seq + 1, reason: M::new("audit.removed").arg("from", last_seq + 1).arg("to", hseq).arg("end", last_seq) });
        }
        if let Some(r) = records.iter().find(|r| r.seq == hseq) {
            if r.hash != hhash {
                return Err(Broken { seq: hseq, reason: M::new("audit.differs").arg("seq", hseq) });
            }
        }
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let ts = format!("2026-11-28T10:00:{seq:02}.000Z");
                let hash = chain_hash(&prev, seq, &ts, "scheduler", "backup_finished", "tryton", "ok", "{}");
                let r = AuditRecord { seq, ts, actor: "scheduler".into(), action: "backup_finished".into(), target: "tryton".into(), outcome: "ok".into(), detail: "{}".into(), prev: prev.clone(), hash: hash.clone() };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c, Some((5, c[4].hash.clone()))), Ok(5));
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn every_kind_of_tampering_is_named() {
        let c = chain(5);
        let mut changed = c.clone();
        changed[2].actor = "api:uid=1000".into();
        assert_eq!(verify(&changed, None).unwrap_err().seq, 3);
        let mut rehashed = c.clone();
        rehashed[2].outcome = "failed".into();
        rehashed[2].hash = expected_hash(&rehashed[2]);
        let e = verify(&rehashed, None).unwrap_err();
        assert_eq!(e.seq, 4, "the next record no longer links: {e:?}");
        let mut gap = c.clone();
        gap.remove(1);
        assert_eq!(verify(&gap, None).unwrap_err().seq, 2);
        let cut = &c[..3];
        let e = verify(cut, Some((5, c[4].hash.clone()))).unwrap_err();
        assert!(e.reason.code == "audit.removed", "{e:?}");
        // A whole chain rewritten from some record on is caught by the head kept aside.
        let e = verify(&rehashed[..3], Some((3, c[2].hash.clone()))).unwrap_err();
        assert_eq!(e.seq, 3);
    }
}
