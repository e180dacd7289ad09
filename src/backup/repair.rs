//! Repairing a damaged repository, planned first and changed only when asked — what restic's
//! `repair index`, `repair packs` and `repair snapshots --forget` do for the common cases:
//! - an index file that cannot be read is removed, and the intact packs it named are indexed
//!   again from their own headers;
//! - a pack whose content fails its check (or that the index names but the target lacks) loses
//!   its place in the index; every blob of it that still decrypts and hashes to its id is copied
//!   into a new pack first (restic's salvage). The blobs that are lost are no longer "known", so
//!   the next backup stores that data again when the live files still hold it — and since blobs
//!   are named by their content, older snapshots that need the same data become whole again;
//! - a snapshot file that cannot be read is removed (there is nothing left to restore from it);
//! - a snapshot whose top directory is lost is forgotten; a snapshot with some lost files is
//!   kept and named, with its first few paths.
//!
//! Hand-written because rustic_core 0.13 has no `repair packs`, and its `repair_index` stops as a
//! whole at the first index file it cannot read — the very case to repair. Every pack is read
//! once (as `check --read-data` does); nothing is changed without `apply`. Changes are ordered so
//! that a repair killed at any point loses nothing: new packs and the new index are stored before
//! any old index file, damaged pack or snapshot file is removed (an index that names a blob twice
//! is valid; the next repair or prune tidies it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hafen_api::{IncompleteSnapshot, PackDamage, RepairReport, SnapInfo};
use rustic_core::repofile::{IndexFile, NodeType, SnapshotFile, Tree};
use rustic_core::{FileType, Id, OpenStatus, Repository, WriteBackend};

use crate::archive::{sealing, sha256, Crypt, Packer};

/// How many paths an incomplete snapshot names.
const EXAMPLES: usize = 5;

/// One blob as an index or a pack header lists it.
#[derive(Clone, Copy)]
struct Blob {
    id: Id,
    tree: bool,
    offset: u32,
    length: u32,
    uncompressed: Option<u32>,
}

/// Plans (and with `apply` carries out) the repair of the repository `repo` stored in `be`.
/// `read` is told the bytes of each pack read, against the total.
pub fn repair(
    repo: &Repository<OpenStatus>,
    be: Arc<dyn WriteBackend>,
    location: &str,
    apply: bool,
    read: &dyn Fn(u64, u64),
) -> Result<RepairReport, String> {
    let (crypt, level) = sealing(repo)?;
    let rerr = |e: Box<rustic_core::RusticError>| e.display_log();
    let mut report = RepairReport {
        location: location.to_string(),
        applied: apply,
        ..Default::default()
    };

    // 1. Index files: each read on its own; which packs each names.
    let mut indexed: HashMap<Id, (Id, Vec<Blob>)> = HashMap::new();
    let mut index_files: Vec<(Id, IndexFile)> = Vec::new();
    for id in be.list(FileType::Index).map_err(rerr)? {
        match be
            .read_full(FileType::Index, &id)
            .map_err(rerr)
            .and_then(|raw| decode_file(&crypt, &id, &raw))
            .and_then(|plain| {
                serde_json::from_slice::<IndexFile>(&plain).map_err(|e| e.to_string())
            }) {
            Ok(ix) => {
                for p in ix.packs.iter().chain(&ix.packs_to_delete) {
                    let blobs = p
                        .blobs
                        .iter()
                        .map(|b| Blob {
                            id: *b.id,
                            tree: b.tpe == rustic_core::repofile::BlobType::Tree,
                            offset: b.location.offset,
                            length: b.location.length,
                            uncompressed: b.location.uncompressed_length.map(|n| n.get()),
                        })
                        .collect();
                    indexed.entry(*p.id).or_insert((id, blobs));
                }
                index_files.push((id, ix));
            }
            Err(e) => {
                tracing::info!(location, index = %id, error = %e, "an index file cannot be read");
                report.damaged_index_files.push(id.to_hex().to_string());
            }
        }
    }

    // 2. Every pack on the target, read whole and checked against its name (its SHA-256).
    let on_target: Vec<(Id, u32)> = be.list_with_size(FileType::Pack).map_err(rerr)?;
    let total: u64 = on_target.iter().map(|(_, s)| u64::from(*s)).sum();
    let present: HashSet<Id> = on_target.iter().map(|(id, _)| *id).collect();
    let mut available: HashSet<Id> = HashSet::new();
    // Tree blobs as stored (sealed), to walk the snapshots; data blobs only by id.
    let mut trees: HashMap<Id, (Vec<u8>, Option<u32>)> = HashMap::new();
    let mut salvaged: Vec<(Blob, Vec<u8>)> = Vec::new();
    let mut unindexed: Vec<(Id, Vec<Blob>)> = Vec::new();
    let mut bad_packs: Vec<Id> = Vec::new();
    let mut unreadable: HashSet<Id> = HashSet::new();
    let mut lost_candidates: Vec<(usize, Vec<Id>)> = Vec::new();
    let mut done = 0u64;
    for (id, size) in &on_target {
        // A pack that cannot be read at all (an I/O error) leaves the index but stays on the
        // target: if it reads again later, the next repair indexes it again.
        let data = match be.read_full(FileType::Pack, id) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(location, pack = %id, error = %e.display_log(), "a pack cannot be read");
                unreadable.insert(*id);
                bytes::Bytes::new()
            }
        };
        done += u64::from(*size);
        report.packs_read += 1;
        report.bytes_read += data.len() as u64;
        read(done, total);
        let intact = !data.is_empty() && Id::new(sha256(&data)) == *id;
        let listed = indexed.get(id).map(|(_, b)| b.clone());
        let blobs = match (&listed, intact) {
            (Some(b), _) => b.clone(),
            (None, _) => header(&crypt, &data).unwrap_or_default(),
        };
        if intact {
            for b in &blobs {
                available.insert(b.id);
                if b.tree {
                    if let Some(sealed) = slice(&data, b) {
                        trees.insert(b.id, (sealed.to_vec(), b.uncompressed));
                    }
                }
            }
            if listed.is_none() && !blobs.is_empty() {
                report.unindexed_packs.push(id.to_hex().to_string());
                unindexed.push((*id, blobs));
            }
            continue;
        }
        // Damaged: save what still checks out, blob by blob.
        let mut damage = PackDamage {
            id: id.to_hex().to_string(),
            missing: false,
            blobs: blobs.len() as u64,
            ..Default::default()
        };
        let mut gone = Vec::new();
        for b in &blobs {
            match slice(&data, b).filter(|sealed| open_blob(&crypt, sealed, b).is_some()) {
                Some(sealed) => {
                    damage.salvaged += 1;
                    available.insert(b.id);
                    if b.tree {
                        trees.insert(b.id, (sealed.to_vec(), b.uncompressed));
                    }
                    salvaged.push((*b, sealed.to_vec()));
                }
                None => gone.push(b.id),
            }
        }
        bad_packs.push(*id);
        lost_candidates.push((report.damaged_packs.len(), gone));
        report.damaged_packs.push(damage);
    }
    // Packs the index names that the target does not have.
    for (id, (_, blobs)) in &indexed {
        if !present.contains(id) {
            lost_candidates.push((
                report.damaged_packs.len(),
                blobs.iter().map(|b| b.id).collect(),
            ));
            report.damaged_packs.push(PackDamage {
                id: id.to_hex().to_string(),
                missing: true,
                blobs: blobs.len() as u64,
                ..Default::default()
            });
        }
    }
    // A blob is lost only if no other pack holds it too.
    for (i, gone) in lost_candidates {
        report.damaged_packs[i].lost =
            gone.iter().filter(|b| !available.contains(*b)).count() as u64;
    }
    report.damaged_packs.sort_by(|a, b| a.id.cmp(&b.id));

    // 3. Snapshots: which cannot be read, which lost their top directory, which lost files.
    let (snaps, damaged_files) = super::snapshots::read(repo, location).map_err(rerr)?;
    report.damaged_snapshot_files = damaged_files;
    let mut memo: HashMap<Id, (u64, Vec<String>)> = HashMap::new();
    let mut forget: Vec<Id> = Vec::new();
    for s in &snaps {
        if !available.contains(&*s.tree) {
            forget.push(*s.id);
            report.snapshots_lost.push(snap_info(s));
            continue;
        }
        let (count, paths) = walk(&crypt, &trees, &available, *s.tree, &mut memo);
        if count > 0 {
            report.snapshots_incomplete.push(IncompleteSnapshot {
                snapshot: snap_info(s),
                count,
                paths,
            });
        }
    }

    if !apply || report.is_clean() {
        report.applied = apply && !report.is_clean();
        return Ok(report);
    }

    // 4. The changes, in an order that a kill at any point leaves no blob unindexed.
    let bad: HashSet<Id> = bad_packs
        .iter()
        .copied()
        .chain(indexed.keys().filter(|id| !present.contains(*id)).copied())
        .collect();
    let mut entries: Vec<serde_json::Value> = Vec::new();
    // Salvaged blobs into new packs (trees and data apart, as restic keeps them).
    for tree in [true, false] {
        let mut packer = Packer::new(tree);
        for (b, sealed) in salvaged.iter().filter(|(b, _)| b.tree == tree) {
            packer.push(raw(&b.id), sealed, b.uncompressed);
            if packer.full() {
                entries.push(store_pack(be.as_ref(), &crypt, &mut packer, tree)?);
            }
        }
        if !packer.is_empty() {
            entries.push(store_pack(be.as_ref(), &crypt, &mut packer, tree)?);
        }
    }
    // Intact packs no index names, with the blobs their headers list.
    for (id, blobs) in &unindexed {
        entries.push(index_entry(id, blobs));
    }
    // The other packs of every index file that names a damaged pack.
    let touched: Vec<Id> = index_files
        .iter()
        .filter(|(_, ix)| {
            ix.packs
                .iter()
                .chain(&ix.packs_to_delete)
                .any(|p| bad.contains(&*p.id))
        })
        .map(|(id, _)| *id)
        .collect();
    for (id, ix) in &index_files {
        if touched.contains(id) {
            for p in ix.packs.iter().filter(|p| !bad.contains(&*p.id)) {
                entries.push(serde_json::to_value(p).map_err(|e| e.to_string())?);
            }
        }
    }
    for chunk in entries.chunks(crate::archive::INDEX_PACKS) {
        let json = serde_json::to_vec(&serde_json::json!({ "packs": chunk }))
            .map_err(|e| e.to_string())?;
        crate::archive::save_file(be.as_ref(), &crypt, level, FileType::Index, &json)
            .map_err(|e| format!("storing an index file: {e}"))?;
    }
    let remove = |tpe: FileType, id: &Id| {
        be.remove(tpe, id, tpe != FileType::Pack)
            .map_err(|e| format!("removing {tpe:?} {id}: {}", e.display_log()))
    };
    for id in touched {
        remove(FileType::Index, &id)?;
    }
    for id in &report.damaged_index_files {
        remove(
            FileType::Index,
            &id.parse::<Id>().map_err(|e| e.to_string())?,
        )?;
    }
    for id in bad_packs.iter().filter(|id| !unreadable.contains(*id)) {
        remove(FileType::Pack, id)?;
    }
    for id in &forget {
        remove(FileType::Snapshot, id)?;
    }
    for id in &report.damaged_snapshot_files {
        remove(
            FileType::Snapshot,
            &id.parse::<Id>().map_err(|e| e.to_string())?,
        )?;
    }
    Ok(report)
}

/// Stores the packer's pack; its entry for the new index.
fn store_pack(
    be: &dyn WriteBackend,
    crypt: &Crypt,
    packer: &mut Packer,
    tree: bool,
) -> Result<serde_json::Value, String> {
    let Some(p) = packer.take(crypt) else {
        return Ok(serde_json::Value::Null);
    };
    let id = Id::new(sha256(&p.data));
    be.write_bytes(FileType::Pack, &id, tree, p.data.into())
        .map_err(|e| format!("storing a pack: {}", e.display_log()))?;
    serde_json::to_value(crate::archive::IxPack { id, blobs: p.blobs }).map_err(|e| e.to_string())
}

/// An index entry for a pack read from its header.
fn index_entry(id: &Id, blobs: &[Blob]) -> serde_json::Value {
    let blobs: Vec<serde_json::Value> = blobs
        .iter()
        .map(|b| {
            let mut v = serde_json::json!({ "id": b.id, "type": if b.tree { "tree" } else { "data" }, "offset": b.offset, "length": b.length });
            if let Some(u) = b.uncompressed {
                v["uncompressed_length"] = u.into();
            }
            v
        })
        .collect();
    serde_json::json!({ "id": id, "blobs": blobs })
}

/// The plain content of an unpacked repository file (index, snapshot): its name is the hash of
/// what is stored; encrypted; for repository v2 a version byte 2 and zstd, or plain JSON.
fn decode_file(crypt: &Crypt, id: &Id, raw: &[u8]) -> Result<Vec<u8>, String> {
    if Id::new(sha256(raw)) != *id {
        return Err("the file does not match its name (damaged or truncated)".into());
    }
    let plain = crypt.open(raw)?;
    match plain.first() {
        Some(2) => zstd::stream::decode_all(&plain[1..]).map_err(|e| format!("zstd: {e}")),
        _ => Ok(plain),
    }
}

/// The 32 bytes of an id (rustic_core's `Id` shows them only as hex).
fn raw(id: &Id) -> [u8; 32] {
    let mut out = [0u8; 32];
    // An id's hex form is always 64 valid digits.
    let _ = hex::decode_to_slice(id.to_hex().as_str(), &mut out);
    out
}

/// The stored bytes of `b` in `pack`, if the pack is long enough.
fn slice<'a>(pack: &'a [u8], b: &Blob) -> Option<&'a [u8]> {
    let (start, end) = (b.offset as usize, b.offset as usize + b.length as usize);
    pack.get(start..end)
}

/// The blob's content, if it decrypts, decompresses and hashes to its id.
fn open_blob(crypt: &Crypt, sealed: &[u8], b: &Blob) -> Option<Vec<u8>> {
    let plain = crypt.open(sealed).ok()?;
    let plain = match b.uncompressed {
        Some(n) => zstd::bulk::decompress(&plain, n as usize).ok()?,
        None => plain,
    };
    (Id::new(sha256(&plain)) == b.id).then_some(plain)
}

/// The blobs a pack's own header lists (restic's format: the encrypted header, then its length
/// as 4 bytes; each entry a type byte, the length, for compressed blobs the plain length, the id).
fn header(crypt: &Crypt, pack: &[u8]) -> Option<Vec<Blob>> {
    let n = pack.len();
    let hlen = u32::from_le_bytes(pack.get(n.checked_sub(4)?..)?.try_into().ok()?) as usize;
    let start = n.checked_sub(4 + hlen)?;
    let plain = crypt.open(&pack[start..n - 4]).ok()?;
    let (mut at, mut offset, mut blobs) = (0usize, 0u32, Vec::new());
    while at < plain.len() {
        let tpe = *plain.get(at)?;
        let length = u32::from_le_bytes(plain.get(at + 1..at + 5)?.try_into().ok()?);
        at += 5;
        let uncompressed = if tpe >= 2 {
            let u = u32::from_le_bytes(plain.get(at..at + 4)?.try_into().ok()?);
            at += 4;
            Some(u)
        } else {
            None
        };
        let id: [u8; 32] = plain.get(at..at + 32)?.try_into().ok()?;
        at += 32;
        if tpe > 3 {
            return None;
        }
        blobs.push(Blob {
            id: Id::new(id),
            tree: tpe == 1 || tpe == 3,
            offset,
            length,
            uncompressed,
        });
        offset = offset.checked_add(length)?;
    }
    (offset as usize <= start).then_some(blobs)
}

/// The files and directories under tree `id` whose data is lost: how many, the first few paths.
fn walk(
    crypt: &Crypt,
    trees: &HashMap<Id, (Vec<u8>, Option<u32>)>,
    available: &HashSet<Id>,
    id: Id,
    memo: &mut HashMap<Id, (u64, Vec<String>)>,
) -> (u64, Vec<String>) {
    if let Some(r) = memo.get(&id) {
        return r.clone();
    }
    let tree = trees.get(&id).and_then(|(sealed, u)| {
        let b = Blob {
            id,
            tree: true,
            offset: 0,
            length: sealed.len() as u32,
            uncompressed: *u,
        };
        open_blob(crypt, sealed, &b)
    });
    let Some(tree) = tree.and_then(|t| serde_json::from_slice::<Tree>(&t).ok()) else {
        let r = (1, vec!["/".to_string()]);
        memo.insert(id, r.clone());
        return r;
    };
    let (mut count, mut paths) = (0u64, Vec::new());
    for node in &tree.nodes {
        let name = node.name().to_string_lossy().to_string();
        let (n, sub) = match (&node.node_type, node.subtree) {
            (NodeType::Dir, Some(sub)) if available.contains(&*sub) => {
                walk(crypt, trees, available, *sub, memo)
            }
            (NodeType::Dir, _) => (1, vec!["/".to_string()]),
            (NodeType::File, _)
                if node
                    .content
                    .iter()
                    .flatten()
                    .any(|d| !available.contains(&**d)) =>
            {
                (1, vec![String::new()])
            }
            _ => (0, Vec::new()),
        };
        count += n;
        // A lost file comes back as "", a lost directory as "/", deeper ones with their path.
        for p in sub {
            if paths.len() < EXAMPLES {
                paths.push(format!("/{name}{p}"));
            }
        }
    }
    memo.insert(id, (count, paths.clone()));
    (count, paths)
}

fn snap_info(s: &SnapshotFile) -> SnapInfo {
    crate::snapshots::info(s)
}
