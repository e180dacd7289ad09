//! The decrypted contents of a repository's files as hafen reads them: snapshot files
//! (`hafen_backup::snapshots::read` decodes them through rustic_core into `SnapshotFile`, and
//! `hafen_backup::snapshots::info` shows them), index files and trees (`hafen_backup::repair`
//! decodes them with `serde_json::from_slice` into `IndexFile` and `Tree` and reads the fields
//! below). The pack-header parser (`repair::header`) is private and needs a repository key, so
//! it is not reached from here. The first byte picks the kind.
use rustic_core::repofile::{IndexFile, SnapshotFile, Tree};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, body)) = data.split_first() else { return };
        match which % 3 {
            0 => {
                if let Ok(s) = serde_json::from_slice::<SnapshotFile>(body) {
                    let _ = hafen_backup::snapshots::info(&s);
                }
            }
            1 => {
                if let Ok(ix) = serde_json::from_slice::<IndexFile>(body) {
                    // The fields repair reads from each pack and blob.
                    let mut n = 0u64;
                    for p in ix.packs.iter().chain(&ix.packs_to_delete) {
                        for b in &p.blobs {
                            n += u64::from(b.location.offset) + u64::from(b.location.length);
                            n += u64::from(b.location.uncompressed_length.map_or(0, |u| u.get()));
                            std::hint::black_box((*p.id, *b.id, b.tpe));
                        }
                    }
                    std::hint::black_box(n);
                }
            }
            _ => {
                if let Ok(t) = serde_json::from_slice::<Tree>(body) {
                    for node in &t.nodes {
                        std::hint::black_box(node.name().to_string_lossy().to_string());
                        std::hint::black_box((&node.node_type, node.subtree, node.content.iter().flatten().count()));
                    }
                }
            }
        }
    });
}
