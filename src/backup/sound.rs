//! The target's storage as rustic_core sees it for reading, with index files that fail their
//! check left out of the listing: rustic_core loads the index as a whole and stops at the first
//! index file it cannot read, so one damaged file would stop every restore, export and check of
//! the target. Left out, it hides only its own packs — the snapshots that need them fail to
//! restore, named; every other snapshot restores. `repair` (which sees the raw storage) removes
//! the file and indexes its packs again.
//!
//! An index file is checked once per process: its name is the SHA-256 of its content, and
//! files in a repository never change, so an id that matched once is remembered.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustic_core::{BytesList, FileType, Id, ReadBackend, RusticResult, WriteBackend};

/// Index files (by storage location and id) whose content matched their name.
static SOUND: Mutex<Option<HashSet<(String, Id)>>> = Mutex::new(None);

#[derive(Debug)]
pub struct Sound {
    inner: Arc<dyn WriteBackend>,
}

impl Sound {
    pub fn wrap(inner: Arc<dyn WriteBackend>) -> Arc<dyn WriteBackend> {
        Arc::new(Sound { inner })
    }

    /// Whether index file `id` is whole (read and hashed the first time it is asked about).
    fn index_is_sound(&self, id: &Id) -> bool {
        let key = (self.inner.location(), *id);
        if SOUND.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashSet::new).contains(&key) {
            return true;
        }
        let ok = match self.inner.read_full(FileType::Index, id) {
            Ok(data) => Id::new(crate::archive::sha256(&data)) == *id,
            Err(e) => {
                tracing::info!(index = %id, error = %e.display_log(), "an index file cannot be read");
                false
            }
        };
        if ok {
            SOUND.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashSet::new).insert(key);
        } else {
            tracing::warn!(index = %id, "index file {id} is damaged: its packs are left out until `hafen backup repair` indexes them again");
        }
        ok
    }
}

impl ReadBackend for Sound {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        let all = self.inner.list_with_size(tpe)?;
        if tpe != FileType::Index {
            return Ok(all);
        }
        Ok(all.into_iter().filter(|(id, _)| self.index_is_sound(id)).collect())
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.inner.read_full(tpe, id)
    }

    fn read_partial(&self, tpe: FileType, id: &Id, cacheable: bool, offset: u32, length: u32) -> RusticResult<Bytes> {
        self.inner.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.inner.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.inner.warm_up(tpe, id)
    }
}

impl WriteBackend for Sound {
    fn create(&self) -> RusticResult<()> {
        self.inner.create()
    }

    fn write_bytes(&self, tpe: FileType, id: &Id, cacheable: bool, content: BytesList) -> RusticResult<()> {
        self.inner.write_bytes(tpe, id, cacheable, content)
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        self.inner.remove(tpe, id, cacheable)
    }
}
