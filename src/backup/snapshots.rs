//! Reading a repository's snapshot files one by one, so that one damaged or truncated file
//! hides no other snapshot (rustic_core's `get_all_snapshots` fails as a whole when one file
//! cannot be read). Used by the repository layer (`repo`: listing, restore, check) and by the
//! snapshot writer (`archive`: a damaged snapshot is never a parent); and how a snapshot is
//! shown (`info`).

use hafen_api::SnapInfo;
use rustic_core::repofile::{SnapshotFile, SnapshotId};
use rustic_core::{Repository, RusticError};

/// Every snapshot file of the repository that can be read, oldest first, and the full ids (file
/// names) of those that cannot. `loc` names the repository in the log.
pub fn read<S: rustic_core::Open>(repo: &Repository<S>, loc: &str) -> Result<(Vec<SnapshotFile>, Vec<String>), Box<RusticError>> {
    let listed: Vec<SnapshotId> = repo.list::<SnapshotId>()?.collect();
    let mut good = Vec::with_capacity(listed.len());
    // Read in parallel as rustic_core does, but each file on its own: a file that cannot be
    // read is an error item of the stream, not the end of it (its id is what is left over).
    for item in repo.stream_files_list::<SnapshotFile>(listed.clone())? {
        match item {
            Ok((id, mut snap)) => {
                snap.id = id;
                good.push(snap);
            }
            // Named by the callers (listing, check); the log keeps the library's words.
            Err(e) => tracing::info!(location = loc, error = %e.display_log(), "a snapshot file cannot be read; it is skipped"),
        }
    }
    good.sort_unstable();
    let damaged = listed.iter().filter(|id| !good.iter().any(|s| s.id == **id)).map(|id| id.to_hex().as_str().to_string()).collect();
    Ok((good, damaged))
}

/// A snapshot as hafen shows it.
pub fn info(s: &SnapshotFile) -> SnapInfo {
    let sum = s.summary.as_ref();
    SnapInfo {
        id: s.id.to_string(),
        time: s.time.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        unix_time: s.time.timestamp().as_second(),
        nanos: u32::try_from(s.time.timestamp().subsec_nanosecond()).unwrap_or(0),
        label: s.label.clone(),
        tags: s.tags.iter().map(|t| t.to_string()).collect(),
        paths: s.paths.iter().map(|p| p.to_string()).collect(),
        description: s.description.clone().unwrap_or_default(),
        files: sum.map_or(0, |x| x.total_files_processed),
        bytes: sum.map_or(0, |x| x.total_bytes_processed),
        added: sum.map_or(0, |x| x.data_added),
    }
}
