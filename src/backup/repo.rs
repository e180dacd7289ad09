//! Repositories in restic's format (v2, zstd), created, read, checked and restored through
//! `rustic_core`; new snapshots are written by
//! `backup::archive`. Everything here is blocking (rustic_core uses threads, not async):
//! call it from `spawn_blocking`. A fresh repository handle is opened per operation (an indexed
//! handle does not see what the previous backup wrote). rustic_core takes no repository locks, so
//! callers serialise work per repository.
//!
//! What this module adds to rustic_core, each because stock `restic` must restore what hafen
//! writes, or because a bad capture must never count as a backup:
//! - one snapshot from several parts (volume directories and streamed dumps), each at a stable
//!   path (`/volumes/<name>`, `/dumps/<file>`, `/hafen/…`), with each part's own top directory
//!   metadata (PGDATA is 0700 and owned by 999);
//! - every read error and a non-zero exit of a dump makes the run fail before a snapshot file is
//!   written (rustic_core would only warn and skip).

use bytes::Bytes;
use rustic_backend::BackendOptions;
use rustic_core::repofile::{Metadata, Node, NodeType, SnapshotFile, SnapshotId};
use rustic_core::{
    CheckOptions, ConfigOptions, Credentials, ErrorKind, IndexedFullStatus, KeyOptions, LocalDestination, LsOptions, OpenStatus, ReadSource, ReadSourceEntry, ReadSourceOpen, ReadSubsetOption,
    Repository, RepositoryOptions, RestoreOptions, RusticError, RusticResult, SnapshotOptions,
};
use super::snapshots::info;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{}", rust_i18n::t!("err.repo_wrongkey", location = .location))]
    WrongKey { location: String },
    #[error("{}", rust_i18n::t!("err.repo_other", location = .location, detail = .detail))]
    Repo { location: String, detail: String },
    #[error("the capture of `{label}` failed and its snapshot was discarded: {}", .errors.join("; "))]
    Capture { label: String, errors: Vec<String> },
    #[error("{}", rust_i18n::t!("err.repo_nosnap", _0 = .0))]
    NoSnapshot(String),
    #[error("{}", rust_i18n::t!("err.repo_restore", target = .target, detail = .detail))]
    Restore { target: String, detail: String },
    #[error("{}", rust_i18n::t!("err.repo_unsafe", location = .location, path = .path, why = .why))]
    Unsafe { location: String, path: String, why: String },
    #[error("{}", rust_i18n::t!("err.repo_damaged", target = .target))]
    Damaged { target: String },
    #[error("{}", rust_i18n::t!("err.repo_full", target = .target))]
    TargetFull { target: String },
    /// The system could not read a file of the repository (a failing disk or cable).
    #[error("{}", rust_i18n::t!("err.repo_read", target = .target, file = .file, reason = os_text(*.errno)))]
    ReadFailed { target: String, file: String, errno: i32 },
}

/// The system's reason for `errno` in the reader's language.
fn os_text(errno: i32) -> String {
    match errno {
        libc::EIO => rust_i18n::t!("os.eio").to_string(),
        libc::EACCES | libc::EPERM => rust_i18n::t!("os.eacces").to_string(),
        n => rust_i18n::t!("os.other", code = n).to_string(),
    }
}

pub use hafen_api::SnapInfo;
use hafen_api::Message;

/// One part of a snapshot.
pub enum Part {
    /// A directory tree stored at `dst`.
    Dir { src: PathBuf, dst: PathBuf },
    /// A stream (e.g. `pg_dump` via the engine) stored as the file `dst`. `done` carries the
    /// producer's verdict once the stream has ended: Err when the dump failed.
    Stream { dst: PathBuf, data: tokio::sync::mpsc::Receiver<Bytes>, done: std::sync::mpsc::Receiver<Result<(), String>> },
}

/// Where a repository is and how to reach it: a location in rustic_backend's syntax (`/path`,
/// `opendal:sftp`, `opendal:s3`, `rest:http://…`) and the backend's options (credentials
/// included, so this never goes into logs; `display` is what people see).
#[derive(Clone)]
pub struct Location {
    pub backend: String,
    pub options: std::collections::BTreeMap<String, String>,
    pub display: String,
    /// Strings blanked out of every error message (passwords, secret keys).
    pub secrets: Vec<String>,
}

impl Location {
    pub fn local(path: &Path) -> Location {
        Location { backend: path.display().to_string(), options: Default::default(), display: path.display().to_string(), secrets: vec![] }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({})", self.display)
    }
}

#[derive(Clone)]
pub struct Repo {
    location: String,
    target: Location,
    password: hafen_core::secret::Secret,
    progress: Option<Progress>,
    /// The master key once the password opened it: later opens skip the (deliberately slow)
    /// scrypt derivation.
    key: Arc<std::sync::OnceLock<rustic_core::repofile::MasterKey>>,
    /// rustic_core's local cache of index, snapshot and tree files (encrypted as in the
    /// repository); none means no cache.
    cache: Option<PathBuf>,
    /// The most file data one restore pass holds (see `restore`).
    restore_batch: u64,
}

pub use crate::progress::Progress;

/// The most file data one restore pass holds (see `Repo::restore`).
const RESTORE_BATCH: u64 = 256 << 20;

/// Snapshots of at most this many entries have their listing kept in memory during a restore
/// (a few hundred bytes each), larger ones are walked again for each restore part.
const KEEP_LISTING: usize = 200_000;

/// Held while a repository is created (see `Repo::open_or_init`).
static INIT: Mutex<()> = Mutex::new(());

/// Master keys of the repositories this process has opened, by location, config id and the
/// password's hash: a daemon opens the same targets every night, and the password's scrypt
/// derivation (about 0.3 s on a small box) protects nothing here, the password being a random
/// key itself. A repository created anew at the same place has another config id and is opened
/// with its password.
static OPENED: Mutex<Vec<((String, String), rustic_core::repofile::MasterKey)>> = Mutex::new(Vec::new());

/// Tag of a capture that does not count: hafen before its own archiver wrote a capture first
/// under this tag; where the server is append-only, such snapshots stay and are never picked.
pub const INCOMPLETE: &str = "hafen-incomplete";

/// Credentials of the targets opened in this process; blanked out of every error text
/// (rustic_backend may name a URL with its password in an error).
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn redact(mut text: String) -> String {
    for s in SECRETS.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|s| s.len() >= 4) {
        text = text.replace(s.as_str(), "***");
    }
    text
}

fn rerr(location: &str) -> impl Fn(Box<RusticError>) -> RepoError + '_ {
    move |e: Box<RusticError>| {
        if e.is_incorrect_password() {
            RepoError::WrongKey { location: location.to_string() }
        } else {
            RepoError::Repo { location: location.to_string(), detail: redact(e.display_log()) }
        }
    }
}

impl Repo {
    /// The target's storage as rustic_backend reaches it, damaged index files left out
    /// (`sound`).
    fn backends(&self) -> Result<rustic_core::RepositoryBackends, RepoError> {
        let raw = self.raw_backends()?;
        Ok(rustic_core::RepositoryBackends::new(super::sound::Sound::wrap(raw.repository()), raw.repo_hot()))
    }

    /// The target's storage as it is (for `repair`, which must see the damaged files).
    fn raw_backends(&self) -> Result<rustic_core::RepositoryBackends, RepoError> {
        BackendOptions::default().repository(&self.target.backend).options(self.target.options.clone()).to_backends().map_err(rerr(&self.location))
    }

    fn handle(&self) -> Result<Repository<()>, RepoError> {
        {
            let mut known = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
            for s in &self.target.secrets {
                if !known.contains(s) {
                    known.push(s.clone());
                }
            }
        }
        let be = self.backends()?;
        let opts = match &self.cache {
            Some(dir) => RepositoryOptions::default().cache_dir(dir.clone()),
            None => RepositoryOptions::default().no_cache(true),
        };
        match self.progress {
            None => Repository::new(&opts, &be),
            Some(p) => Repository::new_with_progress(&opts, &be, crate::progress::Bars(p)),
        }
        .map_err(rerr(&self.location))
    }

    /// Keeps rustic_core's cache in `dir` (speeds up every run after the first).
    pub fn with_cache(mut self, dir: PathBuf) -> Repo {
        self.cache = Some(dir);
        self
    }

    /// Restores in passes of at most `bytes` of file data (default 256 MiB).
    pub fn with_restore_batch(mut self, bytes: u64) -> Repo {
        self.restore_batch = bytes.max(1);
        self
    }

    /// Shows the progress of long work (restore, check) from now on.
    pub fn with_progress(mut self, p: Progress) -> Repo {
        self.progress = Some(p);
        self
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn open(&self) -> Result<Repository<OpenStatus>, RepoError> {
        let creds = match self.key.get() {
            Some(k) => Credentials::Masterkey(k.clone()),
            None => Credentials::password(self.password.expose()),
        };
        let repo = self.handle()?.open(&creds).map_err(rerr(&self.location))?;
        let _ = self.key.set(repo.key());
        Ok(repo)
    }

    /// Opens the repository at `target`, creating it (format v2, zstd) when it has no config.
    pub fn open_or_init(target: Location, password: hafen_core::secret::Secret) -> Result<Repo, RepoError> {
        let r = Repo { location: target.display.clone(), target, password, progress: None, key: Default::default(), cache: None, restore_batch: RESTORE_BATCH };
        let loc = r.location.clone();
        if Path::new(&r.target.backend).is_absolute() {
            std::fs::create_dir_all(&r.target.backend).map_err(|e| RepoError::Repo { location: loc.clone(), detail: e.to_string() })?;
        }
        let mut handle = r.handle()?;
        let mut config = handle.config_id().map_err(rerr(&loc))?;
        if config.is_none() {
            // Two first runs at once (a scheduled backup and a listing) must not both create a
            // repository: the second would replace the first's config and key.
            let _one = INIT.lock().unwrap_or_else(|e| e.into_inner());
            handle = r.handle()?;
            config = handle.config_id().map_err(rerr(&loc))?;
            if config.is_none() {
                let keys = KeyOptions::default().hostname(Some("hafen".into())).with_created(true);
                let created = handle
                    .init(&Credentials::password(r.password.expose()), &keys, &ConfigOptions::default().set_version(2u32).set_compression(1))
                    .map_err(rerr(&loc))?;
                r.remember(created.config_id().map_err(rerr(&loc))?, created.key());
                return Ok(r);
            }
        }
        let known = r.opened_as(config.as_ref());
        let cached = OPENED.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(k, _)| *k == known).map(|(_, m)| m.clone());
        let opened = match cached {
            Some(master) => handle.open(&Credentials::Masterkey(master)),
            None => handle.open(&Credentials::password(r.password.expose())),
        }
        .map_err(rerr(&loc))?;
        r.remember(config, opened.key());
        Ok(r)
    }

    /// Keeps the master key for this handle's later opens and for later handles of this process.
    fn remember(&self, config: Option<impl std::fmt::Display>, master: rustic_core::repofile::MasterKey) {
        let known = self.opened_as(config);
        let _ = self.key.set(master.clone());
        let mut all = OPENED.lock().unwrap_or_else(|e| e.into_inner());
        if !all.iter().any(|(k, _)| *k == known) {
            all.push((known, master));
        }
    }

    /// The entry of this repository among those opened (see `OPENED`). The password's hash is
    /// part of it: another password must fail as it would without the cache.
    fn opened_as(&self, config: Option<impl std::fmt::Display>) -> (String, String) {
        use sha2::Digest;
        let pw = hex::encode(sha2::Sha256::digest(self.password.expose().as_bytes()));
        (self.target.backend.clone(), format!("{}/{pw}", config.map(|c| c.to_string()).unwrap_or_default()))
    }

    /// Opens an existing repository (restore on a new host).
    pub fn open_existing(target: Location, password: hafen_core::secret::Secret) -> Result<Repo, RepoError> {
        let r = Repo { location: target.display.clone(), target, password, progress: None, key: Default::default(), cache: None, restore_batch: RESTORE_BATCH };
        r.open()?;
        Ok(r)
    }

    /// Writes one snapshot from `parts` (sorted by `dst`, none inside another). Any read error
    /// or failed stream deletes the snapshot and returns `Capture`.
    pub fn backup(&self, parts: Vec<Part>, label: &str, tags: &[String], description: &str) -> Result<SnapInfo, RepoError> {
        self.backup_cancellable(parts, label, tags, description, Arc::new(std::sync::atomic::AtomicBool::new(false)))
    }

    /// `backup`, stopped when `cancel` becomes true (every read fails from then on, so no
    /// snapshot is written): the bound on how long an app stays quiesced.
    pub fn backup_cancellable(&self, parts: Vec<Part>, label: &str, tags: &[String], description: &str, cancel: Arc<std::sync::atomic::AtomicBool>) -> Result<SnapInfo, RepoError> {
        let loc = &self.location;
        let mut opts = SnapshotOptions::default()
            .host(hostname())
            .label(label.to_string())
            .description(description.to_string())
            .command(format!("hafen {}", env!("CARGO_PKG_VERSION")));
        for t in tags {
            opts = opts.add_tags(t).map_err(rerr(loc))?;
        }
        let snap = opts.to_snapshot().map_err(rerr(loc))?;
        let source = MultiSource::new(parts, cancel).map_err(|e| RepoError::Capture { label: label.into(), errors: vec![e] })?;
        let paths = source.paths();
        let repo = self.open()?;
        let be = self.backends()?.repository();
        // Data and trees first; the snapshot file only once every source has said it succeeded
        // (a dump's exit status arrives at the end of its stream).
        let written = super::archive::write(&repo, be.clone(), &source, snap, &paths);
        let mut errors = source.finish();
        let snap = match written {
            Ok(s) => s,
            Err(more) => {
                for e in more {
                    if !errors.iter().any(|x| x == &e || e.contains(x.as_str())) {
                        errors.push(redact(e));
                    }
                }
                return Err(RepoError::Capture { label: label.into(), errors });
            }
        };
        if !errors.is_empty() {
            return Err(RepoError::Capture { label: label.into(), errors });
        }
        let saved = super::archive::save_snapshot(&repo, be.as_ref(), snap).map_err(|d| RepoError::Repo { location: loc.clone(), detail: redact(d) })?;
        Ok(info(&saved))
    }

    /// The snapshots that count (captures superseded or failed on an append-only server, tagged
    /// `hafen-incomplete`, are left out). A snapshot file that cannot be read is skipped (and
    /// logged): it must not hide the others — `snapshots_and_damage` names it.
    pub fn snapshots(&self) -> Result<Vec<SnapInfo>, RepoError> {
        Ok(self.snapshots_and_damage()?.0)
    }

    /// The snapshots that count, and the full ids (file names) of snapshot files that cannot be
    /// read (truncated, changed, not decryptable).
    pub fn snapshots_and_damage(&self) -> Result<(Vec<SnapInfo>, Vec<String>), RepoError> {
        let (good, damaged) = read_snapshots(&self.open()?, &self.location)?;
        Ok((good.iter().map(info).filter(|s| !s.tags.iter().any(|t| t == INCOMPLETE)).collect(), damaged))
    }

    /// Restores `sub` ("" = everything) of snapshot `id` (or `latest` among those with all
    /// `tags`) into `target`, which must be empty or absent. Returns the snapshot restored.
    pub fn restore(&self, id: &str, tags: &[String], sub: &str, target: &Path) -> Result<SnapInfo, RepoError> {
        let loc = &self.location;
        let repo = self.open()?.to_indexed().map_err(rerr(loc))?;
        let snap = find_snapshot(&repo, loc, id, tags).ok_or_else(|| RepoError::NoSnapshot(format!("{id} ({})", tags.join(", "))))?;
        let node = repo.node_from_snapshot_and_path(&snap, sub).map_err(|e| RepoError::Restore { target: target.display().to_string(), detail: e.display_log() })?;
        std::fs::create_dir_all(target).map_err(|e| RepoError::Restore { target: target.display().to_string(), detail: e.to_string() })?;
        // A single file goes into the target directory under its own name.
        let dest_path = if node.is_dir() { target.to_path_buf() } else { target.join(node.name()) };
        let dest = LocalDestination::new(&dest_path.display().to_string(), true, !node.is_dir()).map_err(rerr(loc))?;
        let opts = RestoreOptions::default().numeric_id(true);
        let ls = LsOptions::default();
        // rustic_core reads packs faster than a disk writes and queues what it decrypted, so its
        // memory grows with the data restored. Restore the files in parts of at most
        // `restore_batch` bytes (directories and other nodes with the last part, so their
        // metadata is set last); memory stays bounded by the part.
        let walk = check_tree_safe(repo.ls(&node, &ls).map_err(rerr(loc))?, loc, self.restore_batch, KEEP_LISTING)?;
        let parts = walk.parts;
        let part = |k: usize| -> Result<Box<dyn Iterator<Item = RusticResult<(PathBuf, Node)>> + '_>, RepoError> {
            let in_part = move |p: usize, is_file: bool| if is_file { p == k } else { k + 1 == parts };
            Ok(match &walk.listing {
                // Small snapshots: the listing of the safety walk, not another walk of the trees.
                Some(all) => Box::new(all.iter().filter(move |(_, n, p)| in_part(*p, n.is_file())).map(|(path, n, _)| Ok((path.clone(), n.clone())))),
                None => {
                    let mut file = 0usize;
                    let part_of = &walk.part_of;
                    Box::new(repo.ls(&node, &ls).map_err(rerr(loc))?.filter(move |item| match item {
                        Ok((_, n)) if n.is_file() => {
                            file += 1;
                            part_of.get(file - 1).is_some_and(|p| in_part(*p, true))
                        }
                        Ok(_) => in_part(0, false),
                        Err(_) => true,
                    }))
                }
            })
        };
        // rustic_core's restore unwraps read and write errors (a damaged pack, a full disk): it
        // panics. Catch that here, and remove what was written: the target was empty, and
        // half-written or damaged files must not be mistaken for the data.
        let r = contained(|| -> RusticResult<()> {
            for k in 0..parts {
                let (Ok(a), Ok(b)) = (part(k), part(k)) else {
                    return Err(RusticError::new(ErrorKind::Internal, "cannot list the snapshot"));
                };
                let plan = repo.prepare_restore(&opts, a, &dest, false)?;
                repo.restore(plan, &opts, b, &dest)?;
                // The part's buffers were freed in the reader threads' malloc arenas; give them
                // back before the next part, or the arenas keep them all (peak memory).
                // SAFETY: malloc_trim only releases free memory.
                unsafe { libc::malloc_trim(0) };
            }
            Ok(())
        });
        let t = target.display().to_string();
        let failed = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(RepoError::Restore { target: t, detail: redact(e.display_log()) }),
            Err(p) => {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                // The system's own error first (a backtrace names `decrypt` modules too).
                let errno = msg.split("Os { code: ").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()).and_then(|n| n.parse::<i32>().ok());
                let file = msg.split("(\"path\", \"").nth(1).and_then(|r| r.split('"').next()).map(str::to_string);
                Some(if let (Some(errno), Some(file)) = (errno.filter(|e| *e != libc::ENOSPC), file) {
                    RepoError::ReadFailed { target: t, file, errno }
                } else if msg.contains("MAC check failed") || msg.contains("Cryptography") || msg.contains("Decrypt") {
                    RepoError::Damaged { target: t }
                } else if msg.contains("No space left") || msg.contains("os error 28") {
                    RepoError::TargetFull { target: t }
                } else {
                    RepoError::Restore { target: t, detail: redact(msg.chars().take(300).collect::<String>()) }
                })
            }
        };
        if let Some(e) = failed {
            let _ = clear_dir(target);
            return Err(e);
        }
        if node.is_dir() {
            apply_dir_meta(target, &node).map_err(|e| RepoError::Restore { target: target.display().to_string(), detail: e.to_string() })?;
        }
        Ok(info(&snap))
    }

    /// Writes snapshot `id` (or `latest` among those with all `tags`) as a tar stream into `out`,
    /// every entry under `prefix/`, with modes, owners and times. File contents are read blob by
    /// blob (each verified on reading); `progress` gets the content bytes written so far.
    /// Devices, FIFOs and sockets are left out and named in the returned list.
    pub fn write_tar<W: std::io::Write>(&self, id: &str, tags: &[String], prefix: &str, out: &mut tar::Builder<W>, progress: &dyn Fn(u64, u64)) -> Result<(SnapInfo, Vec<String>), RepoError> {
        let loc = &self.location;
        let repo = self.open()?.to_indexed().map_err(rerr(loc))?;
        let snap = find_snapshot(&repo, loc, id, tags).ok_or_else(|| RepoError::NoSnapshot(id.to_string()))?;
        let root = repo.node_from_snapshot_and_path(&snap, "").map_err(rerr(loc))?;
        let total = snap.summary.as_ref().map_or(0, |s| s.total_bytes_processed);
        let snap_time = snap.time.timestamp();
        check_tree_safe(repo.ls(&root, &LsOptions::default()).map_err(rerr(loc))?, loc, u64::MAX, 0)?;
        let io = |e: std::io::Error| RepoError::Repo { location: loc.clone(), detail: format!("writing the archive: {e}") };
        let mut done = 0u64;
        let mut skipped = Vec::new();
        for item in repo.ls(&root, &LsOptions::default()).map_err(rerr(loc))? {
            let (path, node) = item.map_err(rerr(loc))?;
            let name = Path::new(prefix).join(&path);
            let mut h = tar::Header::new_gnu();
            let m = &node.meta;
            h.set_mode(m.mode.map_or(0o644, unix_mode));
            h.set_uid(u64::from(m.uid.unwrap_or(0)));
            h.set_gid(u64::from(m.gid.unwrap_or(0)));
            if let Some(u) = &m.user {
                let _ = h.set_username(u);
            }
            if let Some(g) = &m.group {
                let _ = h.set_groupname(g);
            }
            // A node without a time (a directory an older hafen made up) gets the snapshot's.
            h.set_mtime(m.mtime.unwrap_or(snap_time).as_second().max(0) as u64);
            match &node.node_type {
                NodeType::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    out.append_data(&mut h, &name, std::io::empty()).map_err(io)?;
                }
                NodeType::File => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(m.size);
                    let open = repo.open_file(&node).map_err(rerr(loc))?;
                    let reader = RepoReader { repo: &repo, open, pos: 0, size: m.size, buf: Bytes::new(), err: None };
                    let mut reader = CountingReader { inner: reader, done: &mut done, total, progress };
                    let r = out.append_data(&mut h, &name, &mut reader);
                    if let Some(e) = reader.inner.err.take() {
                        return Err(RepoError::Repo { location: loc.clone(), detail: format!("{}: {e}", path.display()) });
                    }
                    r.map_err(io)?;
                }
                NodeType::Symlink { .. } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    out.append_link(&mut h, &name, node.node_type.to_link()).map_err(io)?;
                }
                _ => skipped.push(path.display().to_string()),
            }
        }
        Ok((info(&snap), skipped))
    }

    /// Structure check, or with `read_data` every pack read and verified (a subset like `1/28`).
    /// Only errors count; warnings (e.g. packs a running or failed backup left unindexed, which
    /// the next prune removes) are logged.
    pub fn check(&self, read_data: bool, subset: Option<&str>) -> Result<Vec<String>, RepoError> {
        Ok(self.check_findings(read_data, subset)?.iter().map(|m| hafen_core::i18n::render("en", m)).collect())
    }

    /// The check's findings as catalogue keys with arguments (`finding`), for readers of any
    /// language; `check` says them in English.
    pub fn check_findings(&self, read_data: bool, subset: Option<&str>) -> Result<Vec<Message>, RepoError> {
        let loc = &self.location;
        let mut opts = CheckOptions::default().read_data(read_data);
        if let Some(s) = subset {
            let sub: ReadSubsetOption = s.parse().map_err(|e: Box<RusticError>| RepoError::Repo { location: loc.clone(), detail: e.display_log() })?;
            opts = opts.read_data_subset(sub);
        }
        // The trees of every snapshot that can be read; a snapshot file that cannot is a problem
        // of its own, named, and stops no other part of the check.
        let repo = self.open()?;
        let (snaps, damaged) = read_snapshots(&repo, loc)?;
        let res = repo.check_with_trees(opts, snaps.iter().map(|s| s.tree).collect()).map_err(rerr(loc))?;
        let mut problems: Vec<Message> = damaged.iter().map(|id| Message::new("check.snapshot_unreadable").arg("location", loc).arg("id", id)).collect();
        problems.extend(levels(&res.0, loc));
        Ok(problems)
    }

    /// The structural check after a backup: index and pack files of the whole repository, and
    /// the trees of snapshot `id` (not every older snapshot again).
    pub fn check_snapshot(&self, id: &str) -> Result<Vec<String>, RepoError> {
        let loc = &self.location;
        let repo = self.open()?;
        let snap = repo.get_snapshots(&[id]).map_err(rerr(loc))?.into_iter().next().ok_or_else(|| RepoError::NoSnapshot(id.to_string()))?;
        let res = repo.check_with_trees(CheckOptions::default(), vec![snap.tree]).map_err(rerr(loc))?;
        Ok(levels(&res.0, loc).iter().map(|m| hafen_core::i18n::render("en", m)).collect())
    }

    /// Plans the repair of damaged index files, packs and snapshots (`repair`), and carries it
    /// out with `apply`. The caller holds the target's lock: no backup may write meanwhile.
    pub fn repair(&self, apply: bool) -> Result<hafen_api::RepairReport, RepoError> {
        let loc = &self.location;
        let repo = self.open()?;
        let be = self.raw_backends()?.repository();
        let bar = self.progress.map(|p| {
            use rustic_core::ProgressBars;
            crate::progress::Bars(p).progress(rustic_core::ProgressType::Bytes, &rust_i18n::t!("progress.repair_read"))
        });
        let shown = std::cell::Cell::new(0u64);
        let read = |done: u64, total: u64| {
            if let Some(b) = &bar {
                b.set_length(total);
                b.inc(done.saturating_sub(shown.replace(done)));
            }
        };
        let r = contained(|| super::repair::repair(&repo, be, loc, apply, &read));
        if let Some(b) = &bar {
            b.finish();
        }
        match r {
            Ok(r) => r.map_err(|detail| RepoError::Repo { location: loc.clone(), detail: redact(detail) }),
            Err(_) => Err(RepoError::Repo { location: loc.clone(), detail: rust_i18n::t!("err.repair_panicked").to_string() }),
        }
    }

    /// Removes data no snapshot needs any more.
    pub fn prune(&self) -> Result<(), RepoError> {
        let loc = &self.location;
        let repo = self.open()?.to_indexed_ids().map_err(rerr(loc))?;
        let opts = rustic_core::PruneOptions::default().instant_delete(true);
        let plan = repo.prune_plan(&opts).map_err(rerr(loc))?;
        repo.prune(&opts, plan).map_err(rerr(loc))
    }

    pub fn forget(&self, ids: &[String]) -> Result<(), RepoError> {
        let repo = self.open()?;
        let snaps = repo.get_snapshots(ids).map_err(rerr(&self.location))?;
        let ids: Vec<SnapshotId> = snaps.iter().map(|s| s.id).collect();
        repo.delete_snapshots(&ids).map_err(rerr(&self.location))
    }
}

/// A point in time for `--at`: RFC 3339, or `YYYY-MM-DD HH:MM[:SS]` / `YYYY-MM-DD` in the
/// machine's local time (a bare date means the end of that day). Seconds since the epoch.
pub fn parse_at(s: &str) -> Result<i64, String> {
    use chrono::TimeZone;
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let local = |n: chrono::NaiveDateTime| chrono::Local.from_local_datetime(&n).earliest().map(|t| t.timestamp());
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return local(n).ok_or_else(|| format!("`{s}` does not exist in local time (clock change)"));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(23, 59, 59).and_then(local) {
            return Ok(t);
        }
    }
    Err(rust_i18n::t!("err.at_format", value = s).to_string())
}

/// rustic_core unwraps some read and write errors on its restore path (a pack failing its
/// integrity check, a full disk): it panics, also in its worker threads. `contained` runs such
/// work with the panic caught, and while it runs the process's panic hook (set once, chaining the
/// previous one) keeps these panics off the terminal — the caller names the failure instead; the
/// panic's text goes to the daemon's log (info; a terminal shows it only with `--verbose`). A
/// panic elsewhere still reaches the previous hook.
fn contained<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static QUIET: AtomicUsize = AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.load(Ordering::SeqCst) > 0 {
                tracing::info!(panic = %info, "a panic in the repository library, contained");
            } else {
                previous(info)
            }
        }));
    });
    QUIET.fetch_add(1, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.fetch_sub(1, Ordering::SeqCst);
    r
}

/// `snapshots::read` with the repository's errors.
pub fn read_snapshots<S: rustic_core::Open>(repo: &Repository<S>, loc: &str) -> Result<(Vec<SnapshotFile>, Vec<String>), RepoError> {
    super::snapshots::read(repo, loc).map_err(rerr(loc))
}

/// The snapshot `id` (a full id, a unique prefix, or `latest` among those with all `tags`)
/// among those that can be read.
fn find_snapshot<S: rustic_core::Open>(repo: &Repository<S>, loc: &str, id: &str, tags: &[String]) -> Option<SnapshotFile> {
    let (snaps, _) = read_snapshots(repo, loc).ok()?;
    let mine: Vec<SnapshotFile> = snaps.into_iter().filter(|s| tags.iter().all(|t| s.tags.contains(t)) && !s.tags.contains(INCOMPLETE)).collect();
    if id == "latest" {
        return mine.into_iter().max_by_key(|s| s.time.timestamp());
    }
    let mut hits: Vec<SnapshotFile> = mine.into_iter().filter(|s| s.id.to_hex().as_str().starts_with(id)).collect();
    (hits.len() == 1).then(|| hits.remove(0))
}

/// The snapshot to restore: by id or id prefix, `latest`, or with `at` the newest taken at or
/// before that time; only among snapshots carrying all `tags`.
pub fn pick(snaps: &[SnapInfo], tags: &[String], id: &str, at: Option<i64>) -> Option<SnapInfo> {
    let mut mine: Vec<&SnapInfo> = snaps.iter().filter(|s| tags.iter().all(|t| s.tags.contains(t))).collect();
    mine.sort_by_key(|s| (s.unix_time, s.nanos));
    match at {
        Some(at) => mine.into_iter().rev().find(|s| s.unix_time <= at).cloned(),
        None if id == "latest" => mine.last().map(|s| (*s).clone()),
        None => {
            let hits: Vec<&&SnapInfo> = mine.iter().filter(|s| s.id.starts_with(id)).collect();
            (hits.len() == 1).then(|| (*hits[0]).clone())
        }
    }
}

/// Refuses a tree that could write outside the restore target: names that are empty, `.`, `..`
/// or contain `/` or NUL (rustic_core joins names as they are, so `/etc/x` or `..` would escape),
/// paths given twice, and anything below a symlink of the snapshot. A snapshot hafen wrote never
/// has these; a crafted or damaged one does. In the same walk, each file (in listing order) is
/// given the restore part it goes into: parts of at most `batch` bytes; a listing of at most
/// `keep` entries is kept, so the restore need not walk the trees again for each part.
fn check_tree_safe(items: impl Iterator<Item = RusticResult<(PathBuf, Node)>>, loc: &str, batch: u64, keep: usize) -> Result<Walk, RepoError> {
    use std::path::Component;
    let unsafe_path = |path: &Path, why: String| RepoError::Unsafe { location: loc.to_string(), path: path.display().to_string(), why };
    let mut seen = std::collections::HashSet::new();
    let mut links: Vec<PathBuf> = Vec::new();
    let (mut part_of, mut acc, mut part) = (Vec::new(), 0u64, 0usize);
    let mut listing = Some(Vec::new());
    for item in items {
        let (path, node) = item.map_err(rerr(loc))?;
        let name = node.name();
        let name_b = name.as_encoded_bytes();
        if name_b.is_empty() || name_b == b"." || name_b == b".." || name_b.contains(&b'/') || name_b.contains(&0) {
            return Err(unsafe_path(&path, format!("the entry name {name:?} is not a plain file name")));
        }
        if path.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(unsafe_path(&path, "the path leaves the restore directory".into()));
        }
        if let Some(l) = links.iter().find(|l| path.starts_with(l)) {
            return Err(unsafe_path(&path, format!("it lies below the symlink {}", l.display())));
        }
        if !seen.insert(path.clone()) {
            return Err(unsafe_path(&path, "the path occurs twice".into()));
        }
        if node.is_symlink() {
            links.push(path.clone());
        } else if node.is_file() {
            if acc > 0 && acc.saturating_add(node.meta.size) > batch {
                part += 1;
                acc = 0;
            }
            acc = acc.saturating_add(node.meta.size);
            part_of.push(part);
        }
        if let Some(l) = &mut listing {
            if l.len() < keep {
                let p = if node.is_file() { part } else { usize::MAX };
                l.push((path, node, p));
            } else {
                listing = None;
            }
        }
    }
    Ok(Walk { parts: part_of.last().map_or(1, |p| p + 1), part_of, listing })
}

/// What the safety walk of a snapshot tree found (see `check_tree_safe`).
struct Walk {
    /// How many restore parts the files need.
    parts: usize,
    /// The part of each file, in listing order.
    part_of: Vec<usize>,
    /// The whole listing with each entry's part (files) or `usize::MAX` (other nodes), when it
    /// was small enough to keep.
    listing: Option<Vec<(PathBuf, Node, usize)>>,
}

/// The errors of a check; warnings are logged only.
fn levels<L: std::fmt::Debug, E: std::fmt::Display>(found: &[(L, E)], loc: &str) -> Vec<Message> {
    let mut errors = Vec::new();
    for (lvl, e) in found {
        // CheckErrorLevel is not exported by rustic_core; its Debug form names the level.
        if format!("{lvl:?}") == "Error" {
            errors.push(finding(&redact(e.to_string())));
        } else {
            tracing::info!(location = %loc, "repository check: {e}");
        }
    }
    errors
}

/// A check's finding as one line a person can act on, as a catalogue key (`check.…`) with its
/// arguments, so that alerts and the CLI say it in their reader's language. rustic_core's
/// errors run over many lines (the library's explanation, a link, the nonce, with
/// `RUST_BACKTRACE` a backtrace) and they reach alert mails; only the first line is read, and
/// the kinds of finding are told apart by its words (rustic_core does not export the type).
/// A line of no known kind keeps its first line as it is (`check.other`).
pub fn finding(text: &str) -> Message {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let hex_after = |word: &str| -> Option<String> {
        let rest = &first[first.find(word)? + word.len()..];
        let id: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        (id.len() >= 8).then_some(id)
    };
    let quoted = || first.split('"').nth(1).map(str::to_string);
    let damaged = text.contains("MAC check failed") || text.contains("cryptographic") || first.contains("Hash mismatch") || first.contains("hash mismatch") || first.contains("length mismatch");
    let os_error = text.split("(os error ").nth(1).and_then(|r| r.split(')').next()).and_then(|n| n.parse::<i32>().ok());
    if let Some(pack) = hex_after("pack ") {
        if damaged {
            return Message::new("check.pack_damaged").arg("pack", pack);
        }
        if let Some(code) = os_error {
            // The system's reason: the common ones said in words, others by their number.
            let key = match code {
                libc::EIO => "check.pack_read_eio",
                libc::ENOENT => "check.pack_missing",
                libc::EACCES | libc::EPERM => "check.pack_read_eacces",
                _ => "check.pack_unreadable",
            };
            return Message::new(key).arg("pack", pack).arg("reason", format!("errno {code}"));
        }
        if first.contains("but not present") {
            return Message::new("check.pack_missing").arg("pack", pack);
        }
        if first.contains("size computed by index") || first.contains("header") {
            return Message::new("check.pack_size").arg("pack", pack);
        }
        if first.starts_with("error reading pack") || first.starts_with("error checking pack") {
            return Message::new("check.pack_unreadable").arg("pack", pack).arg("reason", first.rsplit(" : ").next().unwrap_or(first));
        }
    }
    if first.starts_with("Cached file") || first.starts_with("Error reading cached file") {
        if let Some(id) = hex_after("Id: ") {
            return Message::new("check.cache_mismatch").arg("id", id);
        }
    }
    if first.starts_with("file ") && first.contains("missing in index") {
        return Message::new("check.file_blob_missing").arg("file", quoted().unwrap_or_default());
    }
    if first.starts_with("dir ") && (first.contains("subtree") || first.contains("missing in index")) {
        return Message::new("check.tree_missing").arg("dir", quoted().unwrap_or_default());
    }
    Message::new("check.other").arg("detail", first.replace("`rustic_core` experienced an error related to ", ""))
}

/// Removes everything inside `dir` (not `dir` itself).
fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}


fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "hafen".into())
}

/// Unix permission bits (with setuid, setgid, sticky) from a Go file mode as restic stores it.
fn unix_mode(go: u32) -> u32 {
    let mut mode = go & 0o777;
    if go & (1 << 23) != 0 {
        mode |= 0o4000;
    }
    if go & (1 << 22) != 0 {
        mode |= 0o2000;
    }
    if go & (1 << 20) != 0 {
        mode |= 0o1000;
    }
    mode
}

/// The top directory's own metadata, which rustic_core's LocalSource leaves out.
fn root_dir_node(src: &Path, dst: &Path) -> std::io::Result<Node> {
    let m = std::fs::metadata(src)?;
    let ts = |s: i64, ns: i64| rustic_core::jiff::Timestamp::new(s, ns as i32).ok();
    let meta = Metadata {
        mode: Some(super::walk::go_mode(m.mode())),
        mtime: ts(m.mtime(), m.mtime_nsec()),
        atime: ts(m.atime(), m.atime_nsec()),
        ctime: ts(m.ctime(), m.ctime_nsec()),
        uid: Some(m.uid()),
        gid: Some(m.gid()),
        inode: m.ino(),
        device_id: m.dev(),
        links: m.nlink(),
        ..Default::default()
    };
    let name = dst.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "/".into());
    Ok(Node::new_node(&name, NodeType::Dir, meta))
}

fn apply_dir_meta(target: &Path, node: &Node) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let m = &node.meta;
    std::os::unix::fs::chown(target, m.uid, m.gid)?;
    if let Some(go) = m.mode {
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(unix_mode(go)))?;
    }
    if let Some(mt) = m.mtime {
        std::fs::File::open(target)?.set_times(std::fs::FileTimes::new().set_modified(std::time::SystemTime::from(mt)))?;
    }
    Ok(())
}

type Errs = Arc<Mutex<Vec<String>>>;

fn push(errs: &Errs, e: String) {
    let mut v = errs.lock().unwrap_or_else(|p| p.into_inner());
    if !v.contains(&e) {
        v.push(e);
    }
}

/// Reads a stream chunk by chunk from the channel; at its end, fails unless the producer
/// reported success.
struct ChannelReader {
    cancel: Arc<std::sync::atomic::AtomicBool>,
    data: tokio::sync::mpsc::Receiver<Bytes>,
    done: Option<std::sync::mpsc::Receiver<Result<(), String>>>,
    buf: Bytes,
    name: String,
    errs: Errs,
}

fn cancelled(cancel: &std::sync::atomic::AtomicBool, name: &str, errs: &Errs) -> Option<std::io::Error> {
    if !cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let msg = format!("{name}: stopped, the app was quiesced for longer than allowed");
    push(errs, msg.clone());
    Some(std::io::Error::other(msg))
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if let Some(e) = cancelled(&self.cancel, &self.name, &self.errs) {
            return Err(e);
        }
        while self.buf.is_empty() {
            match self.data.blocking_recv() {
                Some(b) => self.buf = b,
                None => {
                    if let Some(done) = self.done.take() {
                        let verdict = done.recv().unwrap_or_else(|_| Err("the producer vanished".into()));
                        if let Err(e) = verdict {
                            let msg = format!("{}: {e}", self.name);
                            push(&self.errs, msg.clone());
                            return Err(std::io::Error::other(msg));
                        }
                    }
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

struct WatchedReader<R> {
    cancel: Arc<std::sync::atomic::AtomicBool>,
    inner: R,
    name: String,
    errs: Errs,
}

impl<R: Read> Read for WatchedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(e) = cancelled(&self.cancel, &self.name, &self.errs) {
            return Err(e);
        }
        self.inner.read(buf).inspect_err(|e| push(&self.errs, format!("{}: {e}", self.name)))
    }
}

enum SourcePart {
    Dir { src: PathBuf, dst: PathBuf },
    Stream { dst: PathBuf, reader: Mutex<Option<ChannelReader>> },
}

struct MultiSource {
    parts: Vec<SourcePart>,
    errs: Errs,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

enum AnyOpen {
    File(PathBuf),
    Stream(ChannelReader),
}

struct Opener(AnyOpen, Errs, Arc<std::sync::atomic::AtomicBool>);

impl ReadSourceOpen for Opener {
    type Reader = Box<dyn Read + Send>;
    fn open(self) -> RusticResult<Self::Reader> {
        let Opener(open, errs, cancel) = self;
        match open {
            AnyOpen::File(path) => match std::fs::File::open(&path) {
                // No buffer: `backup::archive` reads a file whole or 512 KiB at a time.
                Ok(f) => Ok(Box::new(WatchedReader { cancel, inner: f, name: path.display().to_string(), errs })),
                Err(e) => {
                    let msg = format!("{}: {e}", path.display());
                    push(&errs, msg.clone());
                    Err(RusticError::with_source(ErrorKind::InputOutput, "cannot open a file to back up", e).attach_context("path", msg))
                }
            },
            AnyOpen::Stream(s) => Ok(Box::new(s)),
        }
    }
}

type Entry = RusticResult<ReadSourceEntry<Opener>>;

impl MultiSource {
    fn new(parts: Vec<Part>, cancel: Arc<std::sync::atomic::AtomicBool>) -> Result<MultiSource, String> {
        let errs: Errs = Arc::new(Mutex::new(Vec::new()));
        let mut out = Vec::new();
        for p in parts {
            match p {
                Part::Dir { src, dst } => {
                    std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))?;
                    out.push(SourcePart::Dir { src, dst });
                }
                Part::Stream { dst, data, done } => {
                    let reader = ChannelReader { cancel: cancel.clone(), data, done: Some(done), buf: Bytes::new(), name: dst.display().to_string(), errs: errs.clone() };
                    out.push(SourcePart::Stream { dst, reader: Mutex::new(Some(reader)) });
                }
            }
        }
        out.sort_by(|a, b| dst_of(a).cmp(dst_of(b)));
        Ok(MultiSource { parts: out, errs, cancel })
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.parts.iter().map(|p| dst_of(p).clone()).collect()
    }

    /// Errors seen; a stream that was never read is drained and its verdict collected.
    fn finish(&self) -> Vec<String> {
        for p in &self.parts {
            if let SourcePart::Stream { reader, .. } = p {
                if let Some(mut r) = reader.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let _ = std::io::copy(&mut r, &mut std::io::sink());
                    push(&self.errs, format!("{}: was not stored", r.name));
                }
            }
        }
        self.errs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn dst_of(p: &SourcePart) -> &PathBuf {
    match p {
        SourcePart::Dir { dst, .. } | SourcePart::Stream { dst, .. } => dst,
    }
}

impl ReadSource for MultiSource {
    type Open = Opener;
    type Iter = Box<dyn Iterator<Item = Entry> + Send>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let mut it: Box<dyn Iterator<Item = Entry> + Send> = Box::new(std::iter::empty());
        for part in &self.parts {
            let errs = self.errs.clone();
            let cancel = self.cancel.clone();
            match part {
                SourcePart::Dir { src, dst } => {
                    let root: Entry = root_dir_node(src, dst)
                        .map(|node| ReadSourceEntry { path: dst.clone(), node, open: None })
                        .map_err(|e| RusticError::with_source(ErrorKind::InputOutput, "cannot read the top directory of a volume", e));
                    let (src, dst) = (src.clone(), dst.clone());
                    let walk = super::walk::Walk::new(&src).map(move |e| match e {
                        Ok((path, node)) => {
                            let rel = path.strip_prefix(&src).unwrap_or(&path).to_path_buf();
                            let open = node.is_file().then(|| Opener(AnyOpen::File(path), errs.clone(), cancel.clone()));
                            Ok(ReadSourceEntry { path: dst.join(rel), node, open })
                        }
                        Err(err) => {
                            push(&errs, err.to_string());
                            Err(RusticError::with_source(ErrorKind::InputOutput, "cannot read a file to back up", err))
                        }
                    });
                    it = Box::new(it.chain(std::iter::once(root)).chain(walk));
                }
                SourcePart::Stream { dst, reader } => {
                    let Some(r) = reader.lock().unwrap_or_else(|e| e.into_inner()).take() else { continue };
                    let name = dst.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                    let now = rustic_core::jiff::Timestamp::now();
                    let meta = Metadata { mode: Some(0o600), mtime: Some(now), atime: Some(now), ctime: Some(now), uid: Some(0), gid: Some(0), ..Default::default() };
                    let node = Node::new_node(&name, NodeType::File, meta);
                    let e: Entry = Ok(ReadSourceEntry { path: dst.clone(), node, open: Some(Opener(AnyOpen::Stream(r), errs, self.cancel.clone())) });
                    it = Box::new(it.chain(std::iter::once(e)));
                }
            }
        }
        it
    }
}

/// Reads one file of a snapshot blob by blob (4 MiB at a time); a repository error ends the
/// stream and is kept in `err`.
struct RepoReader<'a> {
    repo: &'a Repository<IndexedFullStatus>,
    open: rustic_core::vfs::OpenFile,
    pos: u64,
    size: u64,
    buf: Bytes,
    err: Option<String>,
}

impl Read for RepoReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.pos >= self.size {
                return Ok(0);
            }
            let want = (self.size - self.pos).min(4 << 20) as usize;
            match self.repo.read_file_at(&self.open, self.pos as usize, want) {
                Ok(b) if b.is_empty() => {
                    let msg = format!("the file ends at {} bytes, {} expected", self.pos, self.size);
                    self.err = Some(msg.clone());
                    return Err(std::io::Error::other(msg));
                }
                Ok(b) => self.buf = b,
                Err(e) => {
                    let msg = e.display_log();
                    self.err = Some(msg.clone());
                    return Err(std::io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        self.pos += n as u64;
        Ok(n)
    }
}

struct CountingReader<'a, R> {
    inner: R,
    done: &'a mut u64,
    total: u64,
    progress: &'a dyn Fn(u64, u64),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        *self.done += n as u64;
        (self.progress)(*self.done, self.total);
        Ok(n)
    }
}

#[cfg(test)]
mod pick_tests {
    use super::*;

    /// rustic_core's findings, as its check prints them, become one line each in the reader's
    /// language, the pack or file named; a finding of no known kind keeps its first line.
    #[test]
    fn findings_are_named_in_both_languages() {
        let id = "60f4244b82474475d4b865532f69e2f4096262941bb54a66ac124707c704d3c7";
        let eio = format!("error reading pack {} : `rustic_core` experienced an error related to `the backend`.\n\nMessage:\nFailed to read\n\nCaused by:\nInput/output error (os error 5)\n\nBacktrace:\n", &id[..8]);
        let cases = [
            (eio, "check.pack_read_eio", "input/output error", "Ein-/Ausgabefehler"),
            (format!("error reading pack {id} : decrypting failed\nMAC check failed"), "check.pack_damaged", "damaged", "beschädigt"),
            (format!("pack {id}: Hash mismatch. Computed hash: 00"), "check.pack_damaged", "damaged", "beschädigt"),
            (format!("pack {id} marked to-delete: false is referenced by the index with size 77 but not present! To repair: 'rustic repair index'."), "check.pack_missing", "missing", "nicht vorhanden"),
            (format!("pack {id} marked to delete: false: size computed by index: 7, actual size: 8. To repair: 'rustic repair index'."), "check.pack_size", "size", "Größe"),
            ("file \"/volumes/data/akte.txt\" blob 1234 is missing in index".to_string(), "check.file_blob_missing", "/volumes/data/akte.txt", "/volumes/data/akte.txt"),
            ("dir \"/volumes/data\" subtree blob 12 is missing in index".to_string(), "check.tree_missing", "/volumes/data", "Ordner"),
            ("Cached file Type: Pack, Id: ddab5ba6 is not identical to backend!".to_string(), "check.cache_mismatch", "ddab5ba6", "ddab5ba6"),
            ("something new\nsecond line".to_string(), "check.other", "something new", "englisch"),
        ];
        for (text, code, en, de) in cases {
            let f = finding(&text);
            assert_eq!(f.code, code, "{text}");
            let (e, g) = (hafen_core::i18n::render("en", &f), hafen_core::i18n::render("de", &f));
            assert!(e.contains(en) && g.contains(de) && !e.contains('\n') && !g.contains("Backtrace"), "{code}: {e} / {g}");
            if code.starts_with("check.pack") {
                assert!(e.contains(&id[..8]) && g.contains(&id[..8]) && g.contains("Packdatei"), "{e} / {g}");
            }
        }
    }

    fn snap(id: &str, t: i64, stack: &str) -> SnapInfo {
        SnapInfo { id: id.into(), time: String::new(), unix_time: t, nanos: 0, label: stack.into(), tags: vec![format!("stack:{stack}")], paths: vec![], description: String::new(), files: 0, bytes: 0, added: 0 }
    }

    #[test]
    fn point_in_time_and_prefix_selection() {
        let all = [snap("aa11", 100, "a"), snap("aa22", 200, "a"), snap("bb33", 300, "b"), snap("cc44", 400, "a")];
        let a = vec!["stack:a".to_string()];
        let id = |r: Option<SnapInfo>| r.map(|s| s.id);
        assert_eq!(id(pick(&all, &a, "latest", None)), Some("cc44".into()));
        assert_eq!(id(pick(&all, &a, "latest", Some(399))), Some("aa22".into()));
        assert_eq!(id(pick(&all, &a, "latest", Some(200))), Some("aa22".into()), "a snapshot at exactly that time counts");
        assert_eq!(id(pick(&all, &a, "latest", Some(99))), None, "nothing that old");
        assert_eq!(id(pick(&all, &a, "aa2", None)), Some("aa22".into()));
        assert_eq!(id(pick(&all, &a, "aa", None)), None, "an ambiguous prefix picks nothing");
        assert_eq!(id(pick(&all, &a, "bb33", None)), None, "another stack's snapshot is not offered");
        // Two snapshots in one second: the later one is the latest, whatever their ids.
        let (mut early, mut late) = (snap("ff01", 500, "a"), snap("0a02", 500, "a"));
        (early.nanos, late.nanos) = (100, 900_000_000);
        assert_eq!(id(pick(&[early, late], &a, "latest", None)), Some("0a02".into()));
        assert!(parse_at("2026-11-27T03:00:00+01:00").unwrap() == 1_795_744_800);
        assert!(parse_at("2026-11-27 03:00").is_ok() && parse_at("2026-11-27").is_ok());
        assert!(parse_at("yesterday").unwrap_err().contains("yesterday"));
    }
}

#[cfg(test)]
mod path_safety_tests {
    //! A crafted snapshot (rustic_core keeps node names as given) must not write outside the
    //! restore target: `..`, absolute names, names with `/`, and entries below a symlink.
    use super::*;
    use rustic_core::BackupOptions;
    use std::ffi::OsStr;

    struct Crafted(Vec<(PathBuf, Node, Option<Vec<u8>>)>);

    impl ReadSource for Crafted {
        type Open = std::io::Cursor<Vec<u8>>;
        type Iter = std::vec::IntoIter<RusticResult<ReadSourceEntry<Self::Open>>>;
        fn size(&self) -> RusticResult<Option<u64>> {
            Ok(None)
        }
        fn entries(&self) -> Self::Iter {
            self.0.iter().map(|(p, n, d)| Ok(ReadSourceEntry { path: p.clone(), node: n.clone(), open: d.clone().map(std::io::Cursor::new) })).collect::<Vec<_>>().into_iter()
        }
    }

    fn file(name: &str, data: &[u8]) -> Node {
        Node::new_node(OsStr::new(name), NodeType::File, Metadata { size: data.len() as u64, mode: Some(0o644), ..Default::default() })
    }

    fn dir(name: &str) -> Node {
        Node::new_node(OsStr::new(name), NodeType::Dir, Metadata { mode: Some(crate::walk::go_mode(libc::S_IFDIR | 0o755)), ..Default::default() })
    }

    /// Writes one snapshot with exactly these entries (paths decide the tree, nodes the names).
    fn craft(repo: &Repo, entries: Vec<(PathBuf, Node, Option<Vec<u8>>)>, label: &str) {
        let r = repo.open().unwrap().to_indexed_ids().unwrap();
        let mut opts = BackupOptions::default();
        opts.parent_opts.force = true;
        let snap = SnapshotOptions::default().label(label.to_string()).add_tags(label).unwrap().to_snapshot().unwrap();
        r.archive(&opts, &Crafted(entries), snap, &[PathBuf::from("/")]).unwrap();
    }

    #[test]
    fn crafted_snapshots_never_write_outside_the_target() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repo::open_or_init(Location::local(&d.path().join("repo")), hafen_core::secret::Secret::from_string("k".repeat(64))).unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let abs = outside.join("abs").display().to_string();
        let cases: Vec<(&str, Vec<(PathBuf, Node, Option<Vec<u8>>)>)> = vec![
            ("dotdot", vec![("/d".into(), dir(".."), None), ("/d/f".into(), file("f", b"B"), Some(b"B".to_vec()))]),
            ("absolute", vec![("/x".into(), file(&abs, b"A"), Some(b"A".to_vec()))]),
            ("slash", vec![("/x".into(), file("../outside/slash", b"S"), Some(b"S".to_vec()))]),
            (
                "symlinkparent",
                vec![
                    ("/a".into(), Node::new_node(OsStr::new("a"), NodeType::from_link(&outside), Metadata::default()), None),
                    ("/t".into(), Node::new_node(OsStr::new("a/evil"), NodeType::Fifo, Metadata::default()), None),
                ],
            ),
        ];
        for (label, entries) in cases {
            craft(&repo, entries, label);
            let target = d.path().join(format!("restore-{label}")).join("inner");
            let err = repo.restore("latest", &[label.to_string()], "", &target).expect_err(label);
            assert!(matches!(err, RepoError::Unsafe { .. }), "{label}: {err}");
            assert!(err.to_string().contains("Nothing was written") || err.to_string().contains("Nichts wurde geschrieben"), "{label}: {err}");
            let mut tar = tar::Builder::new(Vec::new());
            assert!(matches!(repo.write_tar("latest", &[label.to_string()], "x", &mut tar, &|_, _| {}), Err(RepoError::Unsafe { .. })), "{label}: export must refuse too");
        }
        let left: Vec<_> = std::fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "written outside: {left:?}");
        assert!(!d.path().join("f").exists() && !d.path().join("restore-dotdot").join("f").exists());

        // A plain snapshot of the same shape restores fine.
        craft(&repo, vec![("/d".into(), dir("d"), None), ("/d/f".into(), file("f", b"ok"), Some(b"ok".to_vec()))], "plain");
        let target = d.path().join("restore-plain");
        repo.restore("latest", &["plain".to_string()], "", &target).unwrap();
        assert_eq!(std::fs::read(target.join("d/f")).unwrap(), b"ok");
    }
}
