//! The walk of a directory into snapshot nodes: depth first, each directory's entries in name
//! order, symlinks not followed — the order and node fields of rustic_core's `LocalSource`
//! (atime recorded as mtime, the device id only for hard links, extended attributes), with owner
//! and group names looked up once per id. rustic_core 0.13 looks them up for every file and keeps
//! only the names it found: the ids of container users, unknown on the host, cost a full NSS
//! lookup (passwd, group, systemd-userdb files) per file — most of a nightly run's time.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::Metadata as FsMeta;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustic_core::repofile::{Metadata, Node, NodeType};

/// One entry of the walk: its path and its node (name and metadata, no content yet).
pub type Walked = std::io::Result<(PathBuf, Node)>;

/// Walks everything below `root` (not `root` itself).
pub struct Walk {
    /// Directories being walked: their entries still to come, in reverse name order.
    stack: Vec<Vec<PathBuf>>,
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
    /// A directory that could not be read, reported as the next item.
    pending: Option<std::io::Error>,
}

impl Walk {
    pub fn new(root: &Path) -> Walk {
        let mut w = Walk { stack: Vec::new(), users: HashMap::new(), groups: HashMap::new(), pending: None };
        w.enter(root);
        w
    }

    fn enter(&mut self, dir: &Path) {
        match std::fs::read_dir(dir).and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect::<std::io::Result<Vec<_>>>()) {
            Ok(mut entries) => {
                entries.sort_unstable_by(|a, b| b.file_name().cmp(&a.file_name()));
                self.stack.push(entries);
            }
            Err(e) => self.pending = Some(std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        }
    }

    fn node(&mut self, path: &Path, m: &FsMeta) -> std::io::Result<Node> {
        let ts = |s: i64, ns: i64| rustic_core::jiff::Timestamp::new(s, ns as i32).ok();
        let mtime = ts(m.mtime(), m.mtime_nsec());
        let hardlink = m.nlink() > 1 && !m.is_dir();
        let extended_attributes = xattrs(path).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), "extended attributes not readable: {e}");
            Vec::new()
        });
        let meta = Metadata {
            mode: Some(go_mode(m.mode())),
            mtime,
            atime: mtime,
            ctime: ts(m.ctime(), m.ctime_nsec()),
            uid: Some(m.uid()),
            gid: Some(m.gid()),
            user: self.users.entry(m.uid()).or_insert_with(|| user_name(m.uid())).clone(),
            group: self.groups.entry(m.gid()).or_insert_with(|| group_name(m.gid())).clone(),
            inode: m.ino(),
            device_id: if hardlink { m.dev() } else { 0 },
            size: if m.is_dir() { 0 } else { m.len() },
            links: if m.is_dir() { 0 } else { m.nlink() },
            extended_attributes,
        };
        let name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let ft = m.file_type();
        let node_type = if ft.is_dir() {
            NodeType::Dir
        } else if ft.is_symlink() {
            NodeType::from_link(&std::fs::read_link(path)?)
        } else if ft.is_block_device() {
            NodeType::Dev { device: m.rdev() }
        } else if ft.is_char_device() {
            NodeType::Chardev { device: m.rdev() }
        } else if ft.is_fifo() {
            NodeType::Fifo
        } else if ft.is_socket() {
            NodeType::Socket
        } else {
            NodeType::File
        };
        Ok(Node::new_node(&name, node_type, meta))
    }
}

impl Iterator for Walk {
    type Item = Walked;

    fn next(&mut self) -> Option<Walked> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        loop {
            let top = self.stack.last_mut()?;
            let Some(path) = top.pop() else {
                self.stack.pop();
                continue;
            };
            let m = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => return Some(Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))),
            };
            let node = match self.node(&path, &m) {
                Ok(n) => n,
                Err(e) => return Some(Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))),
            };
            if m.is_dir() {
                self.enter(&path);
            }
            return Some(Ok((path, node)));
        }
    }
}

/// The extended attributes of `path` in the node's form. rustic_core does not export their type;
/// its serialised form (restic's: the name and the value in base64) builds them.
fn xattrs<T: serde::de::DeserializeOwned + Default>(path: &Path) -> std::io::Result<T> {
    use base64::Engine;
    let mut all = Vec::new();
    for name in xattr::list(path)? {
        let value = xattr::get(path, &name)?.map(|v| base64::engine::general_purpose::STANDARD.encode(v));
        all.push(serde_json::json!({"name": name.to_string_lossy(), "value": value}));
    }
    if all.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_value(serde_json::Value::Array(all)).map_err(std::io::Error::other)
}

/// `st_mode` in Go's `io/fs.FileMode` bits, as restic stores it.
pub fn go_mode(mode: u32) -> u32 {
    let mut go = mode & 0o777;
    go |= match mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFCHR => 1 << 26 | 1 << 21,
        libc::S_IFREG => 0,
        _ => 1 << 19,
    };
    for (unix, bit) in [(libc::S_ISUID, 23), (libc::S_ISGID, 22), (libc::S_ISVTX, 20)] {
        if mode & unix != 0 {
            go |= 1 << bit;
        }
    }
    go
}

fn user_name(uid: u32) -> Option<String> {
    lookup(|buf, out| {
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the call; the name is copied out before `buf` is reused.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
        if rc == 0 && !res.is_null() {
            *out = Some(unsafe { CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned());
        }
        rc
    })
}

fn group_name(gid: u32) -> Option<String> {
    lookup(|buf, out| {
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `user_name`.
        let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr(), buf.len(), &mut res) };
        if rc == 0 && !res.is_null() {
            *out = Some(unsafe { CStr::from_ptr(gr.gr_name) }.to_string_lossy().into_owned());
        }
        rc
    })
}

/// Calls a `get*_r` function with a buffer that grows while it is too small.
fn lookup(mut call: impl FnMut(&mut [libc::c_char], &mut Option<String>) -> libc::c_int) -> Option<String> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        let mut out = None;
        let rc = call(&mut buf, &mut out);
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        return out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustic_core::{LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, ReadSource};

    /// The walk gives the same paths, order and nodes as rustic_core's LocalSource.
    #[test]
    fn same_nodes_as_rustic_core() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        std::fs::create_dir_all(root.join("b/inner")).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/z.txt"), b"zz").unwrap();
        std::fs::write(root.join("a/y.txt"), b"y").unwrap();
        std::fs::write(root.join("b/inner/deep"), vec![7u8; 5000]).unwrap();
        std::fs::write(root.join("top"), b"t").unwrap();
        std::fs::hard_link(root.join("top"), root.join("top-link")).unwrap();
        std::os::unix::fs::symlink("../top", root.join("b/sym")).unwrap();
        std::os::unix::fs::chown(root.join("a/y.txt"), Some(54321), Some(54321)).unwrap();
        xattr::set(root.join("a/z.txt"), "user.hafen", b"v").ok();
        let c = std::ffi::CString::new(root.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o640) }, 0);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("b"), std::fs::Permissions::from_mode(0o2750)).unwrap();

        let ours: Vec<(PathBuf, Node)> = Walk::new(&root).map(|e| e.unwrap()).collect();
        let local = LocalSource::new(LocalSourceSaveOptions::default(), &Default::default(), &LocalSourceFilterOptions::default(), &[&root]).unwrap();
        let theirs: Vec<(PathBuf, Node)> = local.entries().map(|e| e.unwrap()).map(|e| (e.path, e.node)).collect();
        assert_eq!(ours.len(), 10, "{ours:?}");
        assert_eq!(ours.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), theirs.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
        for ((p, a), (_, b)) in ours.iter().zip(&theirs) {
            assert_eq!(a.name(), b.name(), "{}", p.display());
            assert_eq!(a.node_type, b.node_type, "{}", p.display());
            assert_eq!(a.meta, b.meta, "{}", p.display());
        }
        let y = ours.iter().find(|(p, _)| p.ends_with("a/y.txt")).unwrap();
        assert_eq!((y.1.meta.uid, y.1.meta.user.clone()), (Some(54321), None));
    }

    #[test]
    fn an_entry_that_vanished_is_an_error_and_the_walk_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        std::fs::create_dir_all(root.join("gone")).unwrap();
        std::fs::write(root.join("later"), b"x").unwrap();
        let mut w = Walk::new(&root);
        std::fs::remove_dir(root.join("gone")).unwrap();
        let items: Vec<_> = w.by_ref().collect();
        assert!(items.iter().any(|i| i.as_ref().is_err_and(|e| e.to_string().contains("gone"))), "{items:?}");
        assert!(items.iter().any(|i| i.as_ref().is_ok_and(|(p, _)| p.ends_with("later"))));
    }
}
