//! hafen's own writer of snapshots in restic's repository format (v2): content-defined chunks
//! (Rabin fingerprints with the repository's polynomial and restic's sizes, the same cut points as
//! rustic_core), SHA-256 blob ids, zstd, AES-256-CTR with Poly1305-AES, pack files, index files, trees
//! and the snapshot file, as restic's design document describes them. rustic_core still creates,
//! opens, reads, checks, restores and prunes repositories; this module only writes new data.
//!
//! Why not rustic_core's archiver: version 0.13 builds the Rabin tables anew for every file
//! (about 90 µs each, 2 s for 20,000 files), a zstd context for every blob and reads 4 KiB per
//! call; a first backup took 1.12–1.15× restic's time. Here the tables are built once and copied,
//! each worker keeps its zstd context, files below the minimum chunk size are read whole without
//! a fingerprint, and packs are hashed and stored by their own thread while the workers go on
//! (filling one shared pack at a time, so a restore reads long runs of a pack).
//!
//! A run is all or nothing: any read error (a file, the walk, a dump that exits non-zero) makes
//! `write` fail and no snapshot file is written. Packs already stored are indexed (so the next run
//! reuses them and `restic check` finds no orphans); `prune` removes them once unused.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aes256ctr_poly1305aes::aead::AeadInPlace;
use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use rand::RngCore;
use rustic_cdc::{Polynom64, Rabin64, RollingHash64};
use rustic_core::repofile::{ConfigFile, IndexFile, MasterKey, Metadata, Node, NodeType, SnapshotFile, SnapshotId, SnapshotSummary, Tree};
use rustic_core::{DataId, FileType, Id, OpenStatus, ReadSource, ReadSourceOpen, Repository, TreeId, WriteBackend};
use sha2::Digest;

/// Target size of a data pack (rustic_core's default).
const DATA_PACK: usize = 32 << 20;
/// Target size of a tree pack.
const TREE_PACK: usize = 4 << 20;
/// Bytes read at once past a chunk's minimum size.
const READ: u64 = 512 << 10;
/// How many entries the walk may be ahead of the files being read (a few hundred bytes each).
const LEAD: usize = 50_000;
/// An index file is written after this many packs (restic's index files hold up to 50,000 blobs).
pub(crate) const INDEX_PACKS: usize = 100;

/// The repository's data key (restic's master key: AES-256 key and Poly1305-AES keys).
pub struct Crypt(Aes256CtrPoly1305Aes);

impl Crypt {
    pub fn new(key: &MasterKey) -> Result<Crypt, String> {
        if key.encrypt.len() != 32 || key.mac.k.len() != 16 || key.mac.r.len() != 16 {
            return Err("the repository's master key has an unexpected length".into());
        }
        let mut k = aes256ctr_poly1305aes::Key::default();
        k[..32].copy_from_slice(&key.encrypt);
        k[32..48].copy_from_slice(&key.mac.k);
        k[48..].copy_from_slice(&key.mac.r);
        Ok(Crypt(Aes256CtrPoly1305Aes::new(&k)))
    }

    /// Appends nonce, ciphertext and MAC of `plain` to `out`.
    fn seal_into(&self, plain: &[u8], out: &mut Vec<u8>) {
        let mut nonce = aes256ctr_poly1305aes::Nonce::default();
        rand::rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plain);
        // Encryption of a buffer in memory cannot fail (the error is for lengths beyond 2^64).
        let tag = self.0.encrypt_in_place_detached(&nonce, &[], &mut out[start..]).expect("in-memory encryption");
        out.extend_from_slice(&tag);
    }

    pub(crate) fn open(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        if data.len() < 32 {
            return Err("an encrypted blob is shorter than its nonce and MAC".into());
        }
        let (nonce, rest) = data.split_at(16);
        let (body, tag) = rest.split_at(rest.len() - 16);
        let mut plain = body.to_vec();
        self.0
            .decrypt_in_place_detached(aes256ctr_poly1305aes::Nonce::from_slice(nonce), &[], &mut plain, aes256ctr_poly1305aes::Tag::from_slice(tag))
            .map_err(|_| "a blob failed its MAC check (damaged repository?)".to_string())?;
        Ok(plain)
    }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Content-defined chunking with restic's parameters (the repository's polynomial, 64-byte
/// window, 512 KiB minimum, 8 MiB maximum, a cut where the low 20 bits of the fingerprint are
/// zero). The cut points equal rustic_core's: the same crate computes the fingerprint, fed
/// the same way (63 bytes before the minimum size, then byte by byte).
#[derive(Clone)]
pub struct Chunker {
    rabin: Rabin64,
    mask: u64,
    min: usize,
    max: usize,
}

impl Chunker {
    pub fn new(config: &ConfigFile) -> Result<Chunker, String> {
        if config.chunker() != rustic_core::repofile::Chunker::Rabin {
            return Err("the repository uses fixed-size chunks; hafen writes only Rabin-chunked repositories".into());
        }
        let poly: Polynom64 = config.poly().map_err(|e| e.display_log())?;
        let (size, min, max) = (config.chunk_size(), config.chunk_min_size(), config.chunk_max_size());
        if !size.is_power_of_two() || min < 64 || min > size || max < size {
            return Err(format!("unusable chunker sizes in the repository's config: {size}, min {min}, max {max}"));
        }
        Ok(Chunker { rabin: Rabin64::new_with_polynom(6, &poly), mask: size as u64 - 1, min, max })
    }

    /// Reads `r` to its end and hands each chunk to `emit`; returns the bytes read. `hint` is
    /// the expected size (0 when unknown): a small file is read with one call.
    pub fn chunks(&self, r: &mut dyn Read, hint: u64, mut emit: impl FnMut(&[u8]) -> Result<(), String>) -> Result<u64, String> {
        let io = |e: std::io::Error| e.to_string();
        let first = if hint == 0 { self.min } else { (hint as usize).min(self.min) + 1 };
        let mut buf: Vec<u8> = Vec::with_capacity(first);
        let mut rabin: Option<Rabin64> = None;
        let mut eof = false;
        let mut total = 0u64;
        loop {
            if buf.len() < self.min && !eof {
                let want = (self.min - buf.len()) as u64;
                buf.reserve((want as usize).min(first));
                let n = (&mut *r).take(want).read_to_end(&mut buf).map_err(io)?;
                eof = (n as u64) < want;
            }
            if buf.len() < self.min {
                // The end of the input, short of a minimum chunk: the last chunk.
                if !buf.is_empty() {
                    total += buf.len() as u64;
                    emit(&buf)?;
                }
                return Ok(total);
            }
            let rb = rabin.get_or_insert_with(|| self.rabin.clone());
            rb.reset_and_prefill_window(&mut buf[self.min - 64..self.min].iter().copied());
            let mut pos = self.min;
            loop {
                if pos >= self.max || rb.hash & self.mask == 0 {
                    break;
                }
                if pos == buf.len() {
                    if eof {
                        break;
                    }
                    buf.reserve(READ as usize);
                    let n = (&mut *r).take(READ).read_to_end(&mut buf).map_err(io)?;
                    eof = (n as u64) < READ;
                    if pos == buf.len() {
                        break;
                    }
                }
                let end = buf.len().min(self.max);
                while pos < end {
                    rb.slide(buf[pos]);
                    pos += 1;
                    if rb.hash & self.mask == 0 {
                        break;
                    }
                }
            }
            total += pos as u64;
            emit(&buf[..pos])?;
            buf.drain(..pos);
            if eof && buf.is_empty() {
                return Ok(total);
            }
        }
    }
}

/// One blob of a pack as the index lists it.
#[derive(serde::Serialize, Clone)]
pub(crate) struct IxBlob {
    id: Id,
    #[serde(skip)]
    raw: [u8; 32],
    #[serde(rename = "type")]
    tpe: &'static str,
    offset: u32,
    length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    uncompressed_length: Option<u32>,
}

#[derive(serde::Serialize)]
pub(crate) struct IxPack {
    pub(crate) id: Id,
    pub(crate) blobs: Vec<IxBlob>,
}

#[derive(serde::Serialize)]
struct IxFile<'a> {
    packs: &'a [IxPack],
}

/// Compresses (repository v2) and encrypts blobs; one per thread, its zstd context kept.
struct Sealer {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    zbuf: Vec<u8>,
    out: Vec<u8>,
}

impl Sealer {
    fn new(level: Option<i32>) -> Result<Sealer, String> {
        let zstd = level.map(|l| zstd::bulk::Compressor::new(l).map_err(|e| format!("zstd: {e}"))).transpose()?;
        Ok(Sealer { zstd, zbuf: Vec::new(), out: Vec::new() })
    }

    /// The stored form of `data` and its uncompressed length (None when stored uncompressed).
    fn seal(&mut self, crypt: &Crypt, data: &[u8]) -> Result<(&[u8], Option<u32>), String> {
        self.out.clear();
        match &mut self.zstd {
            Some(z) => {
                self.zbuf.clear();
                self.zbuf.reserve(zstd::zstd_safe::compress_bound(data.len()));
                z.compress_to_buffer(data, &mut self.zbuf).map_err(|e| format!("zstd: {e}"))?;
                crypt.seal_into(&self.zbuf, &mut self.out);
                Ok((&self.out, Some(u32::try_from(data.len()).map_err(|_| "a blob larger than 4 GiB".to_string())?)))
            }
            None => {
                crypt.seal_into(data, &mut self.out);
                Ok((&self.out, None))
            }
        }
    }
}

/// Blobs collected into one pack file. The workers share one data packer, so a pack holds the
/// blobs in the order they were read, as with rustic_core and restic (restores read packs in
/// long runs).
pub(crate) struct Packer {
    tree: bool,
    target: usize,
    buf: Vec<u8>,
    blobs: Vec<IxBlob>,
}

/// A pack ready to be stored; the writer thread computes its id.
pub(crate) struct FullPack {
    pub(crate) data: Vec<u8>,
    pub(crate) blobs: Vec<IxBlob>,
    tree: bool,
}

impl Packer {
    pub(crate) fn new(tree: bool) -> Packer {
        Packer { tree, target: if tree { TREE_PACK } else { DATA_PACK }, buf: Vec::new(), blobs: Vec::new() }
    }

    /// Adds one sealed blob; returns its stored length.
    pub(crate) fn push(&mut self, raw: [u8; 32], sealed: &[u8], uncompressed_length: Option<u32>) -> u64 {
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.target + (9 << 20));
        }
        let offset = self.buf.len() as u32;
        self.buf.extend_from_slice(sealed);
        let tpe = if self.tree { "tree" } else { "data" };
        self.blobs.push(IxBlob { id: Id::new(raw), raw, tpe, offset, length: sealed.len() as u32, uncompressed_length });
        sealed.len() as u64
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub(crate) fn full(&self) -> bool {
        self.buf.len() >= self.target
    }

    /// The pack file so far (blobs, encrypted header, header length); None when empty.
    pub(crate) fn take(&mut self, crypt: &Crypt) -> Option<FullPack> {
        if self.blobs.is_empty() {
            return None;
        }
        let mut header = Vec::with_capacity(self.blobs.len() * 41);
        for b in &self.blobs {
            match b.uncompressed_length {
                Some(u) => {
                    header.push(if self.tree { 3 } else { 2 });
                    header.extend_from_slice(&b.length.to_le_bytes());
                    header.extend_from_slice(&u.to_le_bytes());
                }
                None => {
                    header.push(if self.tree { 1 } else { 0 });
                    header.extend_from_slice(&b.length.to_le_bytes());
                }
            }
            header.extend_from_slice(&b.raw);
        }
        let mut data = std::mem::take(&mut self.buf);
        let before = data.len();
        crypt.seal_into(&header, &mut data);
        let hlen = (data.len() - before) as u32;
        data.extend_from_slice(&hlen.to_le_bytes());
        Some(FullPack { data, blobs: std::mem::take(&mut self.blobs), tree: self.tree })
    }
}

/// Writes an unpacked repository file (index, snapshot): version byte and zstd for v2, encrypted;
/// its id is the hash of what is stored.
pub(crate) fn save_file(be: &dyn WriteBackend, crypt: &Crypt, level: Option<i32>, tpe: FileType, json: &[u8]) -> Result<Id, String> {
    let mut out = Vec::with_capacity(json.len() / 2 + 64);
    match level {
        Some(l) => {
            let mut plain = vec![2u8];
            plain.extend_from_slice(&zstd::bulk::compress(json, l).map_err(|e| format!("zstd: {e}"))?);
            crypt.seal_into(&plain, &mut out);
        }
        None => crypt.seal_into(json, &mut out),
    }
    let id = Id::new(sha256(&out));
    be.write_bytes(tpe, &id, true, out.into()).map_err(|e| e.display_log())?;
    Ok(id)
}

/// The thread that stores packs and the index files naming them.
struct Writer {
    be: Arc<dyn WriteBackend>,
    crypt: Arc<Crypt>,
    level: Option<i32>,
    pending: Vec<IxPack>,
    packs: u64,
    stored: u64,
}

impl Writer {
    fn run(mut self, rx: crossbeam_channel::Receiver<FullPack>, failed: &AtomicBool, errors: &Mutex<Vec<String>>) -> (u64, u64) {
        for p in rx {
            if failed.load(Ordering::Relaxed) {
                continue;
            }
            let len = p.data.len() as u64;
            let id = Id::new(sha256(&p.data));
            match self.be.write_bytes(FileType::Pack, &id, p.tree, p.data.into()) {
                Ok(()) => {
                    self.packs += 1;
                    self.stored += len;
                    self.pending.push(IxPack { id, blobs: p.blobs });
                    if self.pending.len() >= INDEX_PACKS {
                        if let Err(e) = self.flush() {
                            fail(failed, errors, e);
                        }
                    }
                }
                Err(e) => fail(failed, errors, format!("storing a pack: {}", e.display_log())),
            }
        }
        // Also after a failure: what was stored is indexed, so it is reused and not orphaned.
        if let Err(e) = self.flush() {
            fail(failed, errors, e);
        }
        (self.packs, self.stored)
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec(&IxFile { packs: &self.pending }).map_err(|e| e.to_string())?;
        save_file(self.be.as_ref(), &self.crypt, self.level, FileType::Index, &json).map_err(|e| format!("storing an index file: {e}"))?;
        self.pending.clear();
        Ok(())
    }
}

fn fail(failed: &AtomicBool, errors: &Mutex<Vec<String>>, e: String) {
    failed.store(true, Ordering::Relaxed);
    let mut v = errors.lock().unwrap_or_else(|p| p.into_inner());
    if !v.contains(&e) {
        v.push(e);
    }
}

/// Where a tree blob of an earlier snapshot is stored.
#[derive(Clone, Copy)]
struct TreeLoc {
    pack: Id,
    offset: u32,
    length: u32,
    uncompressed: Option<u32>,
}

/// The previous snapshot's trees, read as the walk needs them (whole tree packs at once: one
/// request per pack on a remote target); only the trees on the current path are kept.
struct ParentTrees<'a> {
    be: &'a dyn WriteBackend,
    crypt: &'a Crypt,
    locs: &'a HashMap<Id, TreeLoc>,
    packs: HashMap<Id, bytes::Bytes>,
    dirs: HashMap<PathBuf, Option<Arc<(Tree, HashMap<String, usize>)>>>,
    root: Option<TreeId>,
}

impl ParentTrees<'_> {
    fn load(&mut self, id: &TreeId) -> Result<Arc<(Tree, HashMap<String, usize>)>, String> {
        let loc = *self.locs.get(id).ok_or_else(|| format!("tree {id} of the previous snapshot is not in the index"))?;
        if !self.packs.contains_key(&loc.pack) {
            // Trees of neighbouring directories share packs; a few packs (4 MiB each) are kept.
            if self.packs.len() >= 8 {
                self.packs.clear();
            }
            let data = self.be.read_full(FileType::Pack, &loc.pack).map_err(|e| e.display_log())?;
            self.packs.insert(loc.pack, data);
        }
        let pack = &self.packs[&loc.pack];
        let raw = pack.get(loc.offset as usize..(loc.offset + loc.length) as usize).ok_or("a tree blob lies outside its pack")?;
        let plain = self.crypt.open(raw)?;
        let plain = match loc.uncompressed {
            Some(n) => zstd::bulk::decompress(&plain, n as usize).map_err(|e| format!("zstd: {e}"))?,
            None => plain,
        };
        let tree: Tree = serde_json::from_slice(&plain).map_err(|e| format!("tree {id}: {e}"))?;
        let names = tree.nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        Ok(Arc::new((tree, names)))
    }

    /// The previous snapshot's tree of directory `dir` (an absolute snapshot path).
    fn dir(&mut self, dir: &Path) -> Option<Arc<(Tree, HashMap<String, usize>)>> {
        if let Some(t) = self.dirs.get(dir) {
            return t.clone();
        }
        // The walk is depth first: only the trees on the way to `dir` are needed again.
        self.dirs.retain(|p, _| dir.starts_with(p));
        let found = match dir.parent() {
            None => self.root.and_then(|r| self.load(&r).map_err(|e| tracing::warn!("previous snapshot not usable: {e}")).ok()),
            Some(up) => {
                let name = dir.file_name().map(|n| Node::new_node(n, NodeType::Dir, Metadata::default()).name).unwrap_or_default();
                let subtree = self.dir(up).and_then(|t| t.1.get(&name).and_then(|&i| t.0.nodes[i].subtree));
                subtree.and_then(|id| self.load(&id).map_err(|e| tracing::warn!("previous snapshot not usable: {e}")).ok())
            }
        };
        self.dirs.insert(dir.to_path_buf(), found.clone());
        found
    }

    /// The content of `node` at `path` when the previous snapshot has the same unchanged file
    /// (restic's test: size, mtime, ctime, inode) and all its blobs are stored.
    fn unchanged(&mut self, path: &Path, node: &Node, known: &Mutex<HashSet<Id>>) -> Option<Vec<DataId>> {
        let tree = self.dir(path.parent()?)?;
        let p = &tree.0.nodes[*tree.1.get(&node.name)?];
        let (a, b) = (&p.meta, &node.meta);
        let same = p.node_type == node.node_type
            && a.size == b.size
            && a.mtime == b.mtime
            && a.ctime.zip(b.ctime).is_none_or(|(x, y)| x == y)
            && (a.inode == 0 || b.inode == 0 || a.inode == b.inode);
        if !same {
            return None;
        }
        let content = p.content.clone()?;
        let known = known.lock().unwrap_or_else(|e| e.into_inner());
        content.iter().all(|id| known.contains(&**id)).then_some(content)
    }
}

/// What a worker is given: a file's place in the listing and how to open it.
struct Job<O> {
    idx: usize,
    open: O,
    size: u64,
    name: String,
}

struct Done {
    idx: usize,
    content: Vec<DataId>,
    size: u64,
}

/// Counters for the snapshot's summary.
#[derive(Default)]
struct Counts {
    data_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
}

/// Everything of one run that the workers share.
struct Shared {
    crypt: Arc<Crypt>,
    chunker: Chunker,
    level: Option<i32>,
    known: Mutex<HashSet<Id>>,
    packer: Mutex<Packer>,
    failed: AtomicBool,
    errors: Mutex<Vec<String>>,
    counts: Counts,
}

impl Shared {
    fn worker<O: ReadSourceOpen>(&self, jobs: crossbeam_channel::Receiver<Job<O>>, done: crossbeam_channel::Sender<Done>, packs: crossbeam_channel::Sender<FullPack>) {
        let mut sealer = match Sealer::new(self.level) {
            Ok(s) => s,
            Err(e) => return fail(&self.failed, &self.errors, e),
        };
        for job in jobs {
            if self.failed.load(Ordering::Relaxed) {
                continue;
            }
            match self.file(job.open, job.size, &mut sealer, &packs) {
                Ok((content, size)) => {
                    let _ = done.send(Done { idx: job.idx, content, size });
                }
                Err(e) => fail(&self.failed, &self.errors, format!("{}: {e}", job.name)),
            }
        }
    }

    fn file<O: ReadSourceOpen>(&self, open: O, hint: u64, sealer: &mut Sealer, packs: &crossbeam_channel::Sender<FullPack>) -> Result<(Vec<DataId>, u64), String> {
        let mut r = open.open().map_err(|e| e.display_log())?;
        let mut content = Vec::new();
        let size = self.chunker.chunks(&mut r, hint, |chunk| {
            let raw = sha256(chunk);
            let id = Id::new(raw);
            content.push(DataId::from(id));
            self.counts.data_blobs.fetch_add(1, Ordering::Relaxed);
            if !self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
                return Ok(());
            }
            let (sealed, ulen) = sealer.seal(&self.crypt, chunk)?;
            let (stored, full) = {
                let mut p = self.packer.lock().unwrap_or_else(|e| e.into_inner());
                let n = p.push(raw, sealed, ulen);
                (n, if p.full() { p.take(&self.crypt) } else { None })
            };
            self.counts.data_added.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.counts.data_added_packed.fetch_add(stored, Ordering::Relaxed);
            if let Some(p) = full {
                packs.send(p).map_err(|_| "the pack writer stopped".to_string())?;
            }
            Ok(())
        })?;
        Ok((content, size))
    }
}

/// One directory of the snapshot being assembled.
struct Frame {
    path: PathBuf,
    node: Option<Node>,
    nodes: Vec<Node>,
}

/// Writes the data and trees of a snapshot of `source` (stored under `paths`) and returns the
/// snapshot, not yet saved (see `save_snapshot`): the caller first checks its sources' verdicts.
/// `snap` carries time, host, label, tags and description. The previous snapshot with the same
/// host, label and paths is the parent: unchanged files are not read again.
pub fn write<S: ReadSource>(repo: &Repository<OpenStatus>, be: Arc<dyn WriteBackend>, source: &S, snap: SnapshotFile, paths: &[PathBuf]) -> Result<SnapshotFile, Vec<String>>
where
    S::Open: Send,
{
    write_with_lead(repo, be, source, snap, paths, LEAD)
}

/// `write`, the walk at most `lead` entries ahead of the files being read.
fn write_with_lead<S: ReadSource>(repo: &Repository<OpenStatus>, be: Arc<dyn WriteBackend>, source: &S, mut snap: SnapshotFile, paths: &[PathBuf], lead: usize) -> Result<SnapshotFile, Vec<String>>
where
    S::Open: Send,
{
    let one = |e: String| vec![e];
    let started = rustic_core::jiff::Zoned::now();
    let config = repo.config();
    let (crypt, level) = sealing(repo).map_err(one)?;
    let crypt = Arc::new(crypt);
    let chunker = Chunker::new(config).map_err(one)?;

    for p in paths {
        snap.paths.add(p.display().to_string());
    }
    let snap_time = snap.time.timestamp();
    // What the repository holds: every blob id, and where the trees are.
    let mut known = HashSet::new();
    let mut trees_at = HashMap::new();
    for f in repo.stream_files::<IndexFile>().map_err(|e| one(e.display_log()))? {
        // An index file that cannot be read hides its packs: their data is stored again (the
        // repository stays valid; `repair` removes the damaged file and the duplicates go with
        // the next prune).
        let index = match f {
            Ok((_, index)) => index,
            Err(e) => {
                tracing::info!(error = %e.display_log(), "an index file cannot be read; its data is stored again");
                continue;
            }
        };
        for pack in index.packs {
            for b in pack.blobs {
                if b.tpe == rustic_core::repofile::BlobType::Tree {
                    let l = &b.location;
                    trees_at.insert(*b.id, TreeLoc { pack: *pack.id, offset: l.offset, length: l.length, uncompressed: l.uncompressed_length.map(|n| n.get()) });
                }
                known.insert(*b.id);
            }
        }
    }
    // A damaged snapshot file is never a parent: the new snapshot reads every file again.
    let parent = super::snapshots::read(repo, "")
        .map_err(|e| one(e.display_log()))?
        .0
        .into_iter()
        .filter(|s| s.hostname == snap.hostname && s.label == snap.label && s.paths == snap.paths)
        .max_by_key(|s| s.time.timestamp());
    snap.parent = parent.as_ref().map(|p| p.id);

    let shared = Arc::new(Shared { crypt: crypt.clone(), chunker, level, known: Mutex::new(known), packer: Mutex::new(Packer::new(false)), failed: AtomicBool::new(false), errors: Mutex::new(Vec::new()), counts: Counts::default() });
    let (pack_tx, pack_rx) = crossbeam_channel::bounded::<FullPack>(2);
    let writer = Writer { be: be.clone(), crypt: crypt.clone(), level, pending: Vec::new(), packs: 0, stored: 0 };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);

    let (mut files, mut unmodified, mut bytes) = (0u64, 0u64, 0u64);
    let (packs, stored) = std::thread::scope(|s| {
        let w = {
            let (shared, pack_rx) = (&shared, pack_rx);
            s.spawn(move || writer.run(pack_rx, &shared.failed, &shared.errors))
        };
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job<S::Open>>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        for _ in 0..workers {
            let (shared, jobs, done, packs) = (&shared, job_rx.clone(), done_tx.clone(), pack_tx.clone());
            s.spawn(move || shared.worker(jobs, done, packs));
        }
        drop((job_rx, done_tx));
        let mut tree_packer = Packer::new(true);
        let mut tree_sealer = match Sealer::new(level) {
            Ok(s) => s,
            Err(e) => {
                fail(&shared.failed, &shared.errors, e);
                drop((job_tx, pack_tx));
                return w.join().unwrap_or((0, 0));
            }
        };
        let failed = || shared.failed.load(Ordering::Relaxed);
        {
            let mut store = |tree: Tree| -> Result<TreeId, String> {
                let (data, id) = tree.serialize().map_err(|e| e.to_string())?;
                if shared.known.lock().unwrap_or_else(|e| e.into_inner()).insert(*id) {
                    let (sealed, ulen) = tree_sealer.seal(&crypt, &data)?;
                    let stored = tree_packer.push(sha256(&data), sealed, ulen);
                    shared.counts.data_added.fetch_add(data.len() as u64, Ordering::Relaxed);
                    shared.counts.data_added_packed.fetch_add(stored, Ordering::Relaxed);
                    if tree_packer.full() {
                        if let Some(p) = tree_packer.take(&crypt) {
                            pack_tx.send(p).map_err(|_| "the pack writer stopped".to_string())?;
                        }
                    }
                }
                Ok(id)
            };
            let mut trees = Trees::new(&mut store, Some(snap_time));
            // The listing from the walk on, in order; a file's node waits here until a worker
            // has read it, then goes into its tree (a directory's tree is stored once complete).
            let mut pending: std::collections::VecDeque<(PathBuf, Node, bool)> = std::collections::VecDeque::new();
            let mut base = 0usize;
            // Returns the bytes read.
            let apply = |d: Done, pending: &mut std::collections::VecDeque<(PathBuf, Node, bool)>, base: usize| -> u64 {
                let Some((_, node, ready)) = pending.get_mut(d.idx - base) else { return 0 };
                // A stream's size is known only now; a file's is what was read.
                node.meta.size = d.size;
                node.content = Some(d.content);
                *ready = true;
                d.size
            };
            let drain = |pending: &mut std::collections::VecDeque<(PathBuf, Node, bool)>, base: &mut usize, trees: &mut Trees| {
                while pending.front().is_some_and(|p| p.2) {
                    let Some((path, node, _)) = pending.pop_front() else { break };
                    *base += 1;
                    if let Err(e) = trees.add(&path, node) {
                        fail(&shared.failed, &shared.errors, e);
                    }
                }
            };
            let mut previous = ParentTrees { be: be.as_ref(), crypt: &crypt, locs: &trees_at, packs: HashMap::new(), dirs: HashMap::new(), root: parent.as_ref().map(|p| p.tree) };
            for entry in source.entries() {
                if failed() {
                    break;
                }
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        fail(&shared.failed, &shared.errors, e.display_log());
                        break;
                    }
                };
                let mut node = entry.node;
                let mut ready = true;
                if node.is_file() {
                    files += 1;
                    if let Some(content) = previous.unchanged(&entry.path, &node, &shared.known) {
                        bytes += node.meta.size;
                        unmodified += 1;
                        node.content = Some(content);
                    } else if let Some(open) = entry.open {
                        let _ = job_tx.send(Job { idx: base + pending.len(), open, size: node.meta.size, name: entry.path.display().to_string() });
                        ready = false;
                    } else {
                        node.content = Some(Vec::new());
                    }
                }
                pending.push_back((entry.path, node, ready));
                while let Ok(d) = done_rx.try_recv() {
                    bytes += apply(d, &mut pending, base);
                }
                drain(&mut pending, &mut base, &mut trees);
                // The walk stays at most `lead` entries ahead of the files being read.
                while pending.len() > lead && !failed() {
                    if let Ok(d) = done_rx.recv_timeout(std::time::Duration::from_millis(200)) {
                        bytes += apply(d, &mut pending, base);
                        drain(&mut pending, &mut base, &mut trees);
                    }
                }
            }
            drop(previous);
            drop(job_tx);
            for d in done_rx {
                bytes += apply(d, &mut pending, base);
                drain(&mut pending, &mut base, &mut trees);
            }
            if !failed() {
                match trees.finish() {
                    Ok(root) => snap.tree = root,
                    Err(e) => fail(&shared.failed, &shared.errors, e),
                }
            }
        }
        // Every worker has stopped (their results are all in): the last packs.
        let last = shared.packer.lock().unwrap_or_else(|e| e.into_inner()).take(&crypt);
        for p in [last, tree_packer.take(&crypt)].into_iter().flatten().filter(|_| !failed()) {
            let _ = pack_tx.send(p);
        }
        drop(pack_tx);
        w.join().unwrap_or((0, 0))
    });
    let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|e| e.into_inner()));
    if !errors.is_empty() {
        return Err(errors);
    }
    let c = &shared.counts;
    let mut sum = SnapshotSummary::default();
    sum.files_unmodified = unmodified;
    sum.files_new = files - unmodified;
    sum.total_files_processed = files;
    sum.total_bytes_processed = bytes;
    sum.data_blobs = c.data_blobs.load(Ordering::Relaxed);
    sum.data_added = c.data_added.load(Ordering::Relaxed);
    sum.data_added_packed = c.data_added_packed.load(Ordering::Relaxed);
    sum.command = format!("hafen {}", env!("CARGO_PKG_VERSION"));
    sum.backup_start = started.clone();
    sum.backup_end = rustic_core::jiff::Zoned::now();
    sum.backup_duration = (sum.backup_end.timestamp() - started.timestamp()).total(rustic_core::jiff::Unit::Second).unwrap_or(0.0);
    sum.total_duration = sum.backup_duration;
    snap.summary = Some(sum);
    tracing::debug!(packs, stored, files, unmodified, "snapshot data written");
    Ok(snap)
}

/// The trees of a depth-first listing in name order (absolute paths), each stored through
/// `store` as soon as its directory is complete; directories the listing does not name (`/`,
/// `/volumes`) get mode 0755, as rustic_core gives them.
struct Trees<'s> {
    stack: Vec<Frame>,
    store: &'s mut dyn FnMut(Tree) -> Result<TreeId, String>,
    /// The times of the directories the snapshot makes up (`/dumps`, `/hafen`, `/volumes`):
    /// the snapshot's own time, so a restore dates them to the backup, not to 1901 or 1970.
    time: Option<rustic_core::jiff::Timestamp>,
}

impl<'s> Trees<'s> {
    fn new(store: &'s mut dyn FnMut(Tree) -> Result<TreeId, String>, time: Option<rustic_core::jiff::Timestamp>) -> Trees<'s> {
        Trees { stack: vec![Frame { path: PathBuf::from("/"), node: None, nodes: Vec::new() }], store, time }
    }

    /// Stores the innermost open directory's tree; returns the root tree's id once it is closed.
    fn close(&mut self) -> Result<Option<TreeId>, String> {
        // The listing is in name order already (as rustic_core and restic store trees).
        let f = self.stack.pop().ok_or("the listing left its root")?;
        if let Some(w) = f.nodes.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(format!("{} holds `{}` twice", f.path.display(), w[0].name));
        }
        let id = (self.store)(Tree { nodes: f.nodes })?;
        match (f.node, self.stack.last_mut()) {
            (Some(mut n), Some(up)) => {
                n.subtree = Some(id);
                up.nodes.push(n);
                Ok(None)
            }
            _ => Ok(Some(id)),
        }
    }

    fn add(&mut self, path: &Path, node: Node) -> Result<(), String> {
        let dir = path.parent().ok_or_else(|| format!("`{}` is not a path below the snapshot's root", path.display()))?;
        while !dir.starts_with(&self.stack.last().ok_or("the listing left its root")?.path) {
            self.close()?;
        }
        let top = self.stack.last().map(|f| f.path.clone()).unwrap_or_default();
        for comp in dir.strip_prefix(&top).map_err(|e| e.to_string())?.components() {
            let name = comp.as_os_str();
            let path = self.stack.last().map(|f| f.path.join(name)).unwrap_or_default();
            let meta = Metadata { mode: Some(0o755), mtime: self.time, atime: self.time, ctime: self.time, ..Default::default() };
            self.stack.push(Frame { path, node: Some(Node::new_node(name, NodeType::Dir, meta)), nodes: Vec::new() });
        }
        if node.is_dir() {
            self.stack.push(Frame { path: path.to_path_buf(), node: Some(node), nodes: Vec::new() });
        } else {
            self.stack.last_mut().ok_or("the listing left its root")?.nodes.push(node);
        }
        Ok(())
    }

    /// Closes every open directory; the root tree's id.
    fn finish(mut self) -> Result<TreeId, String> {
        loop {
            if let Some(root) = self.close()? {
                return Ok(root);
            }
        }
    }
}

/// The repository's data key and zstd level (None: format v1, stored uncompressed).
pub(crate) fn sealing(repo: &Repository<OpenStatus>) -> Result<(Crypt, Option<i32>), String> {
    Ok((Crypt::new(&repo.key())?, repo.config().zstd().map_err(|e| e.display_log())?))
}

/// Stores the snapshot file written by `write`; returns it with its id.
pub fn save_snapshot(repo: &Repository<OpenStatus>, be: &dyn WriteBackend, mut snap: SnapshotFile) -> Result<SnapshotFile, String> {
    let (crypt, level) = sealing(repo)?;
    snap.id = SnapshotId::default();
    let json = serde_json::to_vec(&snap).map_err(|e| e.to_string())?;
    let id = save_file(be, &crypt, level, FileType::Snapshot, &json)?;
    snap.id = SnapshotId::from(id);
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustic_core::{
        BackupOptions, CheckOptions, ConfigOptions, Credentials, KeyOptions, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, LsOptions, ReadSourceEntry, RepositoryOptions, RusticResult, SnapshotOptions,
    };

    fn repo(dir: &Path) -> (Repository<OpenStatus>, Arc<dyn WriteBackend>) {
        let be = rustic_backend::BackendOptions::default().repository(dir.to_str().unwrap()).to_backends().unwrap();
        let opts = RepositoryOptions::default().no_cache(true);
        let creds = Credentials::password("archive-test");
        if !dir.join("config").exists() {
            Repository::new(&opts, &be).unwrap().init(&creds, &KeyOptions::default(), &ConfigOptions::default().set_version(2u32).set_compression(1)).unwrap();
        }
        (Repository::new(&opts, &be).unwrap().open(&creds).unwrap(), be.repository())
    }

    /// Pseudo-random bytes (xorshift), the same for the same seed.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn listing(dir: &Path, snap: &SnapshotFile) -> Vec<(PathBuf, Node)> {
        let r = repo(dir).0.to_indexed().unwrap();
        let root = r.node_from_snapshot_and_path(snap, "").unwrap();
        r.ls(&root, &LsOptions::default()).unwrap().map(|e| e.unwrap()).collect()
    }

    /// On the same files, hafen's writer cuts the same chunks and writes the same trees as
    /// rustic_core's archiver — except that the directories above the backed-up paths, which
    /// the snapshot makes up, carry the snapshot's time (rustic_core leaves them without one,
    /// and restic then dates them 1901); the repository passes rustic_core's full check.
    #[test]
    fn same_chunks_and_trees_as_rustic_core() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(data.join("sub/deeper")).unwrap();
        std::fs::write(data.join("empty"), b"").unwrap();
        std::fs::write(data.join("small.txt"), b"hello\n".repeat(100)).unwrap();
        // Random data: cuts fall between the minimum (512 KiB) and the maximum (8 MiB).
        std::fs::write(data.join("sub/random.bin"), noise(7, 9 << 20)).unwrap();
        // Zeros: the fingerprint of a zero window is zero, so every chunk is exactly the minimum.
        std::fs::write(data.join("sub/zeros"), vec![0u8; (2 << 20) + 123]).unwrap();
        // Exactly the minimum size, and one byte more.
        std::fs::write(data.join("sub/deeper/min"), noise(8, 512 << 10)).unwrap();
        std::fs::write(data.join("sub/deeper/min1"), noise(9, (512 << 10) + 1)).unwrap();
        std::os::unix::fs::symlink("../small.txt", data.join("sub/link")).unwrap();

        let rdir = d.path().join("repo");
        let (repo, be) = repo(&rdir);
        let local = || LocalSource::new(LocalSourceSaveOptions::default(), &Default::default(), &LocalSourceFilterOptions::default(), &[&data]).unwrap();
        let theirs = self::repo(&rdir).0.to_indexed_ids().unwrap().archive(&BackupOptions::default(), &local(), SnapshotOptions::default().to_snapshot().unwrap(), &[data.clone()]).unwrap();
        let snap = SnapshotOptions::default().label("ours".to_string()).to_snapshot().unwrap();
        let ours = write(&repo, be.clone(), &local(), snap, &[data.clone()]).unwrap();
        let ours = save_snapshot(&repo, be.as_ref(), ours).unwrap();

        let (a, b) = (listing(&rdir, &ours), listing(&rdir, &theirs));
        assert_eq!(a.len(), 12, "{a:?}");
        assert_eq!(a.iter().map(|x| &x.0).collect::<Vec<_>>(), b.iter().map(|x| &x.0).collect::<Vec<_>>());
        let made_up = |p: &Path| data.starts_with(Path::new("/").join(p));
        for ((p, x), (_, y)) in a.iter().zip(&b) {
            assert_eq!(x.content, y.content, "chunks of {}", p.display());
            if made_up(p) {
                let t = Some(ours.time.timestamp());
                assert_eq!((x.meta.mtime, x.meta.atime, x.meta.ctime), (t, t, t), "{} carries the snapshot's time", p.display());
                assert_eq!(Metadata { mtime: None, atime: None, ctime: None, ..x.meta.clone() }, y.meta, "{}", p.display());
            } else {
                assert_eq!(x.meta, y.meta, "{}", p.display());
                assert_eq!(x.subtree, y.subtree, "the trees of {} differ", p.display());
            }
        }
        assert!(a.iter().any(|(p, _)| made_up(p)), "{a:?}");
        let zeros = a.iter().find(|(p, _)| p.ends_with("zeros")).unwrap();
        assert_eq!(zeros.1.content.as_ref().unwrap().len(), 5, "2 MiB + 123 bytes of zeros: four minimum chunks and the rest");
        let random = a.iter().find(|(p, _)| p.ends_with("random.bin")).unwrap();
        assert!(random.1.content.as_ref().unwrap().len() >= 3, "{random:?}");
        assert_eq!(ours.summary.as_ref().unwrap().total_files_processed, 6);

        // A second run finds everything in the first: no file is read again, and only the small
        // trees of the made-up directories (with the new snapshot's time) are added.
        let again = write(&repo, be.clone(), &local(), SnapshotOptions::default().label("ours".to_string()).to_snapshot().unwrap(), &[data.clone()]).unwrap();
        let sum = again.summary.clone().unwrap();
        assert!(sum.files_unmodified == 6 && sum.data_added < 4096, "{sum:?}");
        assert_eq!(again.parent, Some(ours.id));
        // The same data trees; only the made-up directories above them carry the new time.
        let c = listing(&rdir, &again);
        for ((p, x), (_, y)) in c.iter().zip(&a) {
            if !made_up(p) {
                assert_eq!((&x.meta, &x.subtree), (&y.meta, &y.subtree), "{}", p.display());
            }
        }
        save_snapshot(&repo, be.as_ref(), again).unwrap();

        let check = repo.check(CheckOptions::default().read_data(true)).unwrap();
        check.is_ok().unwrap();
    }

    /// With the walk held close behind the readers (two entries ahead instead of 50,000), the
    /// snapshot is the same as rustic_core's: no entry lost, reordered or waited for forever.
    #[test]
    fn a_walk_held_back_gives_the_same_snapshot() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        for dir in ["a", "b/c", "d"] {
            std::fs::create_dir_all(data.join(dir)).unwrap();
            for i in 0..12u64 {
                let len = if i % 5 == 0 { (600 << 10) + i as usize } else { 100 + i as usize * 37 };
                std::fs::write(data.join(dir).join(format!("f{i:02}")), noise(i + dir.len() as u64, len)).unwrap();
            }
        }
        let rdir = d.path().join("repo");
        let (repo, be) = repo(&rdir);
        let local = || LocalSource::new(LocalSourceSaveOptions::default(), &Default::default(), &LocalSourceFilterOptions::default(), &[&data]).unwrap();
        // The same snapshot time for both: the directories it makes up carry it.
        let snap = SnapshotOptions::default().label("held".to_string()).to_snapshot().unwrap();
        let free = write(&repo, be.clone(), &local(), snap.clone(), &[data.clone()]).unwrap();
        let ours = write_with_lead(&repo, be, &local(), snap, &[data.clone()], 2).unwrap();
        assert_eq!(ours.summary.as_ref().unwrap().total_files_processed, 36);
        assert_eq!(ours.tree, free.tree);
    }

    struct Failing {
        dir: PathBuf,
    }

    struct Opens(Option<PathBuf>);

    impl ReadSourceOpen for Opens {
        type Reader = Box<dyn Read + Send>;
        fn open(self) -> RusticResult<Self::Reader> {
            Ok(match self.0 {
                Some(p) => Box::new(std::fs::File::open(p).unwrap()),
                None => Box::new(std::io::Read::chain(&b"printed before the failure"[..], BrokenReader)),
            })
        }
    }

    struct BrokenReader;
    impl Read for BrokenReader {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("pg_dump exited with status 1"))
        }
    }

    impl ReadSource for Failing {
        type Open = Opens;
        type Iter = std::vec::IntoIter<RusticResult<ReadSourceEntry<Opens>>>;
        fn size(&self) -> RusticResult<Option<u64>> {
            Ok(None)
        }
        fn entries(&self) -> Self::Iter {
            let file = |name: &str, open| {
                let meta = Metadata { mode: Some(0o600), ..Default::default() };
                Ok(ReadSourceEntry { path: PathBuf::from("/dumps").join(name), node: Node::new_node(name.as_ref(), NodeType::File, meta), open: Some(open) })
            };
            vec![file("a.sql", Opens(Some(self.dir.join("big")))), file("b.sql", Opens(None))].into_iter()
        }
    }

    /// A source that fails mid-way gives an error naming it; no snapshot is written, and the
    /// repository holds nothing unindexed.
    #[test]
    fn a_failing_source_writes_no_snapshot() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("big"), noise(3, 3 << 20)).unwrap();
        let (repo, be) = repo(&d.path().join("repo"));
        let src = Failing { dir: d.path().to_path_buf() };
        let errs = write(&repo, be, &src, SnapshotOptions::default().to_snapshot().unwrap(), &[PathBuf::from("/dumps")]).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("/dumps/b.sql") && e.contains("pg_dump exited with status 1")), "{errs:?}");
        assert!(repo.get_all_snapshots().unwrap().is_empty());
        let check = repo.check(CheckOptions::default().read_data(true)).unwrap();
        check.is_ok().unwrap();
    }

    /// Directories the listing does not name are made (mode 0755); a name twice is refused.
    #[test]
    fn trees_name_missing_directories_and_refuse_duplicates() {
        let file = |n: &str| Node::new_node(n.as_ref(), NodeType::File, Metadata::default());
        let mut stored = Vec::new();
        let mut store = |t: Tree| -> Result<TreeId, String> {
            let (_, id) = t.serialize().map_err(|e| e.to_string())?;
            stored.push(t);
            Ok(id)
        };
        let mut trees = Trees::new(&mut store, None);
        trees.add(Path::new("/a/b/x"), file("x")).unwrap();
        trees.add(Path::new("/c/y"), file("y")).unwrap();
        trees.finish().unwrap();
        let names: Vec<Vec<String>> = stored.iter().map(|t| t.nodes.iter().map(|n| n.name.clone()).collect()).collect();
        assert_eq!(names, vec![vec!["x"], vec!["b"], vec!["y"], vec!["a", "c"]]);
        assert_eq!(stored[1].nodes[0].meta.mode, Some(0o755));
        let mut store = |t: Tree| Ok(t.serialize().unwrap().1);
        let mut trees = Trees::new(&mut store, None);
        trees.add(Path::new("/a/x"), file("x")).unwrap();
        trees.add(Path::new("/a/x"), file("x")).unwrap();
        let err = trees.finish().unwrap_err();
        assert!(err.contains("`x` twice"), "{err}");
    }
}
