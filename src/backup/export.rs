//! Archival export: one snapshot of a stack as a single `tar | zstd | age` file, encrypted to the
//! recovery recipients only, that comes back with nothing but `age -d`, `zstd -d` and `tar -x`
//! (for 10-year archives under GoBD, or to hand data to another provider). Owns the file format:
//! a `LIESMICH.txt`/`README.txt` pair first, then the snapshot under `<stack>-<date>/`.
//!
//! The file is written as `<out>.partial` (mode 0600, never overwriting anything) and renamed
//! only when complete and synced, so an interrupted export never leaves a file that looks whole.
//! Its SHA-256 is computed while writing, for the archive register.

use super::repo::{Repo, RepoError, SnapInfo};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}", rust_i18n::t!("err.export_exists", path = .0))]
    Exists(String),
    #[error("{}", rust_i18n::t!("err.export_norecipient"))]
    NoRecipient,
    #[error("{}", rust_i18n::t!("err.export_io", path = .path, detail = .detail))]
    Io { path: String, detail: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

pub use hafen_api::ExportReport;

/// Counts and hashes what passes through to the file.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn readme(stack: &str, snap: &SnapInfo, dir: &str) -> (String, String) {
    let file = format!("{dir}.tar.zst.age");
    let de = format!(
        "hafen – Archivexport des Stacks `{stack}`\n\nSicherung (Snapshot) {id} vom {time}.\n\n\
         Inhalt von {dir}/:\n  dumps/    Datenbank-Abzüge (z. B. tryton.sql, mit psql einspielbar)\n  \
         volumes/  die Datenverzeichnisse der Dienste\n  hafen/    Stack-Definition, Einstellungen, Image-Stände und Geheimnisse\n\n\
         Entpacken ohne hafen (Identität aus dem Wiederherstellungsset in recovery.txt; erst\n\
         entschlüsseln, nur ohne Fehler entpacken):\n  \
         age -d -i recovery.txt -o archiv.tar.zst {file} && zstd -dc archiv.tar.zst | tar -x\n",
        id = snap.id,
        time = snap.time
    );
    let en = format!(
        "hafen – archive export of the stack `{stack}`\n\nSnapshot {id} of {time}.\n\n\
         Contents of {dir}/:\n  dumps/    database dumps (e.g. tryton.sql, load with psql)\n  \
         volumes/  the services' data directories\n  hafen/    stack definition, settings, image pins and secrets\n\n\
         Unpack without hafen (identity from the recovery kit in recovery.txt; decrypt first,\n\
         unpack only without an error):\n  \
         age -d -i recovery.txt -o archive.tar.zst {file} && zstd -dc archive.tar.zst | tar -x\n",
        id = snap.id,
        time = snap.time
    );
    (de, en)
}

fn text_entry<W: Write>(tar: &mut tar::Builder<W>, name: &str, text: &str) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(text.len() as u64);
    h.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    tar.append_data(&mut h, name, text.as_bytes())
}

/// Exports snapshot `snapshot` (id, prefix or `latest`) of `stack` to `out`, encrypted to
/// `recipients` (age x25519 public keys). `progress` gets (bytes done, bytes total).
pub fn export(repo: &Repo, stack: &str, snapshot: &str, recipients: &[String], out: &Path, progress: &dyn Fn(u64, u64)) -> Result<ExportReport, ExportError> {
    if recipients.is_empty() {
        return Err(ExportError::NoRecipient);
    }
    if out.exists() {
        return Err(ExportError::Exists(out.display().to_string()));
    }
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let ioerr = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| ExportError::Io { path: p.clone(), detail: e.to_string() }
    };
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        // A stale partial file from an interrupted export is ours to replace.
        let _ = std::fs::remove_file(&partial);
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).map_err(ioerr(&partial))?
    };
    let result = (|| -> Result<ExportReport, ExportError> {
        let hashing = HashingWriter { inner: std::io::BufWriter::with_capacity(1 << 20, file), hash: Sha256::new(), bytes: 0 };
        let age_w = super::keys::encrypting_writer(recipients, hashing, &out.display().to_string())
            .map_err(|e| ExportError::Io { path: out.display().to_string(), detail: e.to_string() })?;
        let mut zstd_w = zstd::Encoder::new(age_w, 6).map_err(ioerr(&partial))?;
        zstd_w.multithread(2).map_err(ioerr(&partial))?;
        let mut tar = tar::Builder::new(zstd_w);
        let tags = vec![format!("stack:{stack}")];
        // The snapshot is only known once opened; the readme names it, so it goes in after the
        // first pass resolves the id.
        let snap = repo.snapshots()?.into_iter().rev().find(|s| s.tags.contains(&tags[0]) && (snapshot == "latest" || s.id.starts_with(snapshot)));
        let Some(snap) = snap else {
            return Err(RepoError::NoSnapshot(format!("{snapshot} (stack {stack})")).into());
        };
        let day = snap.time.get(..10).unwrap_or("undated").to_string();
        let dir = format!("{stack}-{day}");
        let (de, en) = readme(stack, &snap, &dir);
        text_entry(&mut tar, "LIESMICH.txt", &de).map_err(ioerr(&partial))?;
        text_entry(&mut tar, "README.txt", &en).map_err(ioerr(&partial))?;
        let (snap, skipped) = repo.write_tar(&snap.id, &tags, &dir, &mut tar, progress)?;
        let zstd_w = tar.into_inner().map_err(ioerr(&partial))?;
        let age_w = zstd_w.finish().map_err(ioerr(&partial))?;
        let mut hashing = age_w.finish().map_err(ioerr(&partial))?;
        hashing.flush().map_err(ioerr(&partial))?;
        let file = hashing.inner.into_inner().map_err(|e| ExportError::Io { path: partial.display().to_string(), detail: e.to_string() })?;
        file.sync_all().map_err(ioerr(&partial))?;
        Ok(ExportReport {
            file: out.display().to_string(),
            bytes: hashing.bytes,
            sha256: hex::encode(hashing.hash.finalize()),
            snapshot: snap,
            recipients: recipients.to_vec(),
            skipped,
        })
    })();
    match result {
        Ok(r) => {
            if out.exists() {
                let _ = std::fs::remove_file(&partial);
                return Err(ExportError::Exists(out.display().to_string()));
            }
            std::fs::rename(&partial, out).map_err(ioerr(out))?;
            if let Some(dir) = out.parent() {
                let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(r)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}
