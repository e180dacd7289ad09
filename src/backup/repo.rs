//! Repositories in restic's format (v2, zstd), written and read through `rustic_core` — the only
//! module that imports it. Everything here is blocking (rustic_core uses threads, not async):
//! call it from `spawn_blocking`. A fresh repository handle is opened per operation (an indexed
//! handle does not see what the previous backup wrote). rustic_core takes no repository locks, so
//! callers serialise work per repository.
//!
//! What this module adds to rustic_core, each because stock `restic` must restore what hafen
//! writes, or because a bad capture must never count as a backup:
//! - one snapshot from several parts (volume directories and streamed dumps), each at a stable
//!   path (`/volumes/<name>`, `/dumps/<file>`, `/hafen/…`), with each part's own top directory
//!   metadata (PGDATA is 0700 and owned by 999);
//! - every read error and a non-zero exit of a dump makes the run fail and its snapshot deleted
//!   (rustic_core would only warn and skip);
//! - streamed files get their real size recorded, by re-archiving the snapshot over itself (only
//!   the tree changes), because restic restores a size-0 node as an empty file.

use bytes::Bytes;
use rustic_backend::BackendOptions;
use rustic_core::repofile::{Metadata, Node, NodeType, SnapshotFile, SnapshotId};
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, ErrorKind, IndexedFullStatus, KeyOptions, LocalDestination, LocalSource,
    LocalSourceFilterOptions, LocalSourceSaveOptions, LsOptions, OpenStatus, ReadSource, ReadSourceEntry, ReadSourceOpen, ReadSubsetOption,
    Repository, RepositoryOptions, RestoreOptions, RusticError, RusticResult, SnapshotOptions,
};
use std::io::{BufReader, Read};
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
}

/// A snapshot as hafen shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SnapInfo {
    pub id: String,
    pub time: String,
    /// Seconds since the epoch.
    pub unix_time: i64,
    pub label: String,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
    pub description: String,
    pub files: u64,
    pub bytes: u64,
    pub added: u64,
}

/// One part of a snapshot.
pub enum Part {
    /// A directory tree stored at `dst`.
    Dir { src: PathBuf, dst: PathBuf },
    /// A stream (e.g. `pg_dump` via the engine) stored as the file `dst`. `done` carries the
    /// producer's verdict once the stream has ended: Err when the dump failed.
    Stream { dst: PathBuf, data: tokio::sync::mpsc::Receiver<Bytes>, done: std::sync::mpsc::Receiver<Result<(), String>> },
}

pub struct Repo {
    location: String,
    password: crate::secrets::Secret,
}

fn rerr(location: &str) -> impl Fn(Box<RusticError>) -> RepoError + '_ {
    move |e: Box<RusticError>| {
        if e.is_incorrect_password() {
            RepoError::WrongKey { location: location.to_string() }
        } else {
            RepoError::Repo { location: location.to_string(), detail: e.display_log() }
        }
    }
}

impl Repo {
    fn handle(&self) -> Result<Repository<()>, RepoError> {
        let be = BackendOptions::default().repository(&self.location).to_backends().map_err(rerr(&self.location))?;
        Repository::new(&RepositoryOptions::default().no_cache(true), &be).map_err(rerr(&self.location))
    }

    fn open(&self) -> Result<Repository<OpenStatus>, RepoError> {
        self.handle()?.open(&Credentials::password(self.password.expose())).map_err(rerr(&self.location))
    }

    /// Opens the repository at `location`, creating it (format v2, zstd) when it has no config.
    pub fn open_or_init(location: &str, password: crate::secrets::Secret) -> Result<Repo, RepoError> {
        let r = Repo { location: location.to_string(), password };
        let has_config = Path::new(location).join("config").is_file();
        if !has_config {
            std::fs::create_dir_all(location).map_err(|e| RepoError::Repo { location: location.into(), detail: e.to_string() })?;
            let keys = KeyOptions::default().hostname(Some("hafen".into())).with_created(true);
            r.handle()?
                .init(&Credentials::password(r.password.expose()), &keys, &ConfigOptions::default().set_version(2u32))
                .map_err(rerr(location))?;
        } else {
            r.open()?;
        }
        Ok(r)
    }

    /// Opens an existing repository (restore on a new host).
    pub fn open_existing(location: &str, password: crate::secrets::Secret) -> Result<Repo, RepoError> {
        let r = Repo { location: location.to_string(), password };
        r.open()?;
        Ok(r)
    }

    /// Writes one snapshot from `parts` (sorted by `dst`, none inside another). Any read error
    /// or failed stream deletes the snapshot and returns `Capture`.
    pub fn backup(&self, parts: Vec<Part>, label: &str, tags: &[String], description: &str) -> Result<SnapInfo, RepoError> {
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
        let has_streams = parts.iter().any(|p| matches!(p, Part::Stream { .. }));
        let source = MultiSource::new(parts).map_err(|e| RepoError::Capture { label: label.into(), errors: vec![e] })?;
        let paths = source.paths();
        let repo = self.open()?.to_indexed_ids().map_err(rerr(loc))?;
        let result = repo.archive(&BackupOptions::default(), &source, snap, &paths);
        let errors = source.finish();
        let saved = match result {
            Ok(s) => s,
            Err(e) => {
                let mut all = errors;
                all.push(e.display_log());
                return Err(RepoError::Capture { label: label.into(), errors: all });
            }
        };
        if !errors.is_empty() {
            repo.delete_snapshots(&[saved.id]).map_err(rerr(loc))?;
            return Err(RepoError::Capture { label: label.into(), errors });
        }
        drop(repo);
        if !has_streams {
            return Ok(info(&saved));
        }
        let fixed = self.record_stream_sizes(&saved)?;
        Ok(info(&fixed))
    }

    /// Re-archives `snap` over itself so that streamed files carry their size; unchanged files
    /// come from the parent, only the streams are read back.
    fn record_stream_sizes(&self, snap: &SnapshotFile) -> Result<SnapshotFile, RepoError> {
        let loc = &self.location;
        let repo = Arc::new(self.open()?.to_indexed().map_err(rerr(loc))?);
        let root = repo.node_from_snapshot_and_path(snap, "").map_err(rerr(loc))?;
        let mut entries = Vec::new();
        let mut fixed = 0;
        for item in repo.ls(&root, &LsOptions::default()).map_err(rerr(loc))? {
            let (path, mut node) = item.map_err(rerr(loc))?;
            let open = if node.is_file() {
                if node.meta.size == 0 && node.content.as_ref().is_some_and(|c| !c.is_empty()) {
                    let mut size = 0u64;
                    for id in node.content.iter().flatten() {
                        size += u64::from(repo.get_index_entry(id).map_err(rerr(loc))?.data_length());
                    }
                    node.meta.size = size;
                    fixed += 1;
                }
                Some(RepoFileOpen { repo: repo.clone(), node: node.clone() })
            } else {
                None
            };
            entries.push(ReadSourceEntry { path: Path::new("/").join(path), node, open });
        }
        if fixed == 0 {
            return Ok(snap.clone());
        }
        let paths: Vec<PathBuf> = snap.paths.iter().map(PathBuf::from).collect();
        let mut new = snap.clone();
        new.id = SnapshotId::default();
        new.original = None;
        new.summary = None;
        let mut opts = BackupOptions::default();
        opts.parent_opts.parents = vec![snap.id.to_string()];
        let src = Replay { entries: Mutex::new(Some(entries)) };
        let new = repo.archive(&opts, &src, new, &paths).map_err(rerr(loc))?;
        repo.delete_snapshots(&[snap.id]).map_err(rerr(loc))?;
        Ok(new)
    }

    pub fn snapshots(&self) -> Result<Vec<SnapInfo>, RepoError> {
        let mut s = self.open()?.get_all_snapshots().map_err(rerr(&self.location))?;
        s.sort_unstable();
        Ok(s.iter().map(info).collect())
    }

    /// Restores `sub` ("" = everything) of snapshot `id` (or `latest` among those with all
    /// `tags`) into `target`, which must be empty or absent. Returns the snapshot restored.
    pub fn restore(&self, id: &str, tags: &[String], sub: &str, target: &Path) -> Result<SnapInfo, RepoError> {
        let loc = &self.location;
        let repo = self.open()?.to_indexed().map_err(rerr(loc))?;
        let snap = repo
            .get_snapshot_from_str(id, |s| tags.iter().all(|t| s.tags.contains(t)))
            .map_err(|_| RepoError::NoSnapshot(id.to_string()))?;
        let node = repo.node_from_snapshot_and_path(&snap, sub).map_err(|e| RepoError::Restore { target: target.display().to_string(), detail: e.display_log() })?;
        std::fs::create_dir_all(target).map_err(|e| RepoError::Restore { target: target.display().to_string(), detail: e.to_string() })?;
        // A single file goes into the target directory under its own name.
        let dest_path = if node.is_dir() { target.to_path_buf() } else { target.join(node.name()) };
        let dest = LocalDestination::new(&dest_path.display().to_string(), true, !node.is_dir()).map_err(rerr(loc))?;
        let opts = RestoreOptions::default().numeric_id(true);
        let ls = LsOptions::default();
        let plan = repo.prepare_restore(&opts, repo.ls(&node, &ls).map_err(rerr(loc))?, &dest, false).map_err(rerr(loc))?;
        // rustic_core's restore unwraps write errors (a full disk panics); catch that here.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| repo.restore(plan, &opts, repo.ls(&node, &ls)?, &dest)));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RepoError::Restore { target: target.display().to_string(), detail: e.display_log() }),
            Err(_) => return Err(RepoError::Restore { target: target.display().to_string(), detail: "writing failed (disk full?)".into() }),
        }
        if node.is_dir() {
            apply_dir_meta(target, &node).map_err(|e| RepoError::Restore { target: target.display().to_string(), detail: e.to_string() })?;
        }
        Ok(info(&snap))
    }

    /// Structure check, or with `read_data` every pack read and verified (a subset like `1/28`).
    pub fn check(&self, read_data: bool, subset: Option<&str>) -> Result<Vec<String>, RepoError> {
        let loc = &self.location;
        let mut opts = CheckOptions::default().read_data(read_data);
        if let Some(s) = subset {
            let sub: ReadSubsetOption = s.parse().map_err(|e: Box<RusticError>| RepoError::Repo { location: loc.clone(), detail: e.display_log() })?;
            opts = opts.read_data_subset(sub);
        }
        let res = self.open()?.check(opts).map_err(rerr(loc))?;
        Ok(res.0.iter().map(|(lvl, e)| format!("{lvl:?}: {e}")).collect())
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

fn info(s: &SnapshotFile) -> SnapInfo {
    let sum = s.summary.as_ref();
    SnapInfo {
        id: s.id.to_string(),
        time: s.time.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        unix_time: s.time.timestamp().as_second(),
        label: s.label.clone(),
        tags: s.tags.iter().map(|t| t.to_string()).collect(),
        paths: s.paths.iter().map(|p| p.to_string()).collect(),
        description: s.description.clone().unwrap_or_default(),
        files: sum.map_or(0, |x| x.total_files_processed),
        bytes: sum.map_or(0, |x| x.total_bytes_processed),
        added: sum.map_or(0, |x| x.data_added),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "hafen".into())
}

fn go_dir_mode(unix_mode: u32) -> u32 {
    let mut m = unix_mode & 0o777 | 1 << 31;
    if unix_mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if unix_mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if unix_mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m
}

/// The top directory's own metadata, which rustic_core's LocalSource leaves out.
fn root_dir_node(src: &Path, dst: &Path) -> std::io::Result<Node> {
    let m = std::fs::metadata(src)?;
    let ts = |s: i64, ns: i64| rustic_core::jiff::Timestamp::new(s, ns as i32).ok();
    let meta = Metadata {
        mode: Some(go_dir_mode(m.mode())),
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
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))?;
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
    data: tokio::sync::mpsc::Receiver<Bytes>,
    done: Option<std::sync::mpsc::Receiver<Result<(), String>>>,
    buf: Bytes,
    name: String,
    errs: Errs,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
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
    inner: R,
    name: String,
    errs: Errs,
}

impl<R: Read> Read for WatchedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| push(&self.errs, format!("{}: {e}", self.name)))
    }
}

enum SourcePart {
    Dir { src: PathBuf, dst: PathBuf, local: LocalSource },
    Stream { dst: PathBuf, reader: Mutex<Option<ChannelReader>> },
}

struct MultiSource {
    parts: Vec<SourcePart>,
    errs: Errs,
}

enum AnyOpen {
    File(<LocalSource as ReadSource>::Open, String),
    Stream(ChannelReader),
}

struct Opener(AnyOpen, Errs);

impl ReadSourceOpen for Opener {
    type Reader = Box<dyn Read + Send>;
    fn open(self) -> RusticResult<Self::Reader> {
        let Opener(open, errs) = self;
        match open {
            AnyOpen::File(f, name) => match f.open() {
                Ok(r) => Ok(Box::new(BufReader::with_capacity(1 << 20, WatchedReader { inner: r, name, errs }))),
                Err(e) => {
                    push(&errs, format!("{name}: {}", e.display_log()));
                    Err(e)
                }
            },
            AnyOpen::Stream(s) => Ok(Box::new(BufReader::with_capacity(1 << 20, s))),
        }
    }
}

type Entry = RusticResult<ReadSourceEntry<Opener>>;

impl MultiSource {
    fn new(parts: Vec<Part>) -> Result<MultiSource, String> {
        let errs: Errs = Arc::new(Mutex::new(Vec::new()));
        let mut out = Vec::new();
        for p in parts {
            match p {
                Part::Dir { src, dst } => {
                    let local = LocalSource::new(LocalSourceSaveOptions::default(), &Default::default(), &LocalSourceFilterOptions::default(), &[&src])
                        .map_err(|e| format!("{}: {}", src.display(), e.display_log()))?;
                    out.push(SourcePart::Dir { src, dst, local });
                }
                Part::Stream { dst, data, done } => {
                    let reader = ChannelReader { data, done: Some(done), buf: Bytes::new(), name: dst.display().to_string(), errs: errs.clone() };
                    out.push(SourcePart::Stream { dst, reader: Mutex::new(Some(reader)) });
                }
            }
        }
        out.sort_by(|a, b| dst_of(a).cmp(dst_of(b)));
        Ok(MultiSource { parts: out, errs })
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
            match part {
                SourcePart::Dir { src, dst, local } => {
                    let root: Entry = root_dir_node(src, dst)
                        .map(|node| ReadSourceEntry { path: dst.clone(), node, open: None })
                        .map_err(|e| RusticError::with_source(ErrorKind::InputOutput, "cannot read the top directory of a volume", e));
                    let (src, dst) = (src.clone(), dst.clone());
                    let walk = local.entries().map(move |e| match e {
                        Ok(ReadSourceEntry { path, node, open }) => {
                            let rel = path.strip_prefix(&src).unwrap_or(&path).to_path_buf();
                            let name = path.display().to_string();
                            Ok(ReadSourceEntry { path: dst.join(rel), node, open: open.map(|o| Opener(AnyOpen::File(o, name), errs.clone())) })
                        }
                        Err(err) => {
                            push(&errs, err.display_log());
                            Err(err)
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
                    let e: Entry = Ok(ReadSourceEntry { path: dst.clone(), node, open: Some(Opener(AnyOpen::Stream(r), errs)) });
                    it = Box::new(it.chain(std::iter::once(e)));
                }
            }
        }
        it
    }
}

/// Streams one file back out of the repository (for `record_stream_sizes`).
struct RepoFileOpen {
    repo: Arc<Repository<IndexedFullStatus>>,
    node: Node,
}

impl ReadSourceOpen for RepoFileOpen {
    type Reader = BufReader<std::io::PipeReader>;
    fn open(self) -> RusticResult<Self::Reader> {
        let (r, mut w) = std::io::pipe().map_err(|e| RusticError::with_source(ErrorKind::InputOutput, "pipe", e))?;
        std::thread::spawn(move || {
            if let Err(e) = self.repo.dump(&self.node, &mut w) {
                tracing::error!(error = %e.display_log(), "reading a stream back failed");
            }
        });
        Ok(BufReader::with_capacity(1 << 20, r))
    }
}

struct Replay {
    entries: Mutex<Option<Vec<ReadSourceEntry<RepoFileOpen>>>>,
}

impl ReadSource for Replay {
    type Open = RepoFileOpen;
    type Iter = std::iter::Map<std::vec::IntoIter<ReadSourceEntry<RepoFileOpen>>, fn(ReadSourceEntry<RepoFileOpen>) -> RusticResult<ReadSourceEntry<RepoFileOpen>>>;
    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }
    fn entries(&self) -> Self::Iter {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default().into_iter().map(Ok)
    }
}
