//! The API's request bodies as the daemon decodes them (axum's `Json` extractor is
//! `serde_json::from_slice` into the `hafen_api` types), and the restore's `at`, which the daemon
//! then reads with `hafen_backup::repo::parse_at`. The first byte picks the type.
use hafen_api::*;

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice::<T>(body).ok()
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, body)) = data.split_first() else { return };
        match which % 10 {
            0 => drop(decode::<DeployRequest>(body)),
            1 => drop(decode::<RemoveRequest>(body)),
            2 => drop(decode::<BackupRunRequest>(body)),
            3 => drop(decode::<BackupCheckRequest>(body)),
            4 => drop(decode::<BackupExportRequest>(body)),
            5 => drop(decode::<BackupPruneRequest>(body)),
            6 | 7 => {
                if let Some(r) = decode::<RestoreRequest>(body) {
                    if let Some(at) = r.at {
                        let _ = hafen_backup::repo::parse_at(&at);
                    }
                }
            }
            8 => drop(decode::<UpdateRequest>(body)),
            _ => drop(decode::<BackupRepairRequest>(body)),
        }
    });
}
