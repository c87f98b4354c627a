//! The sled store of memories: flush after every acknowledged write, a schema version, and a
//! JSONL export/import so that no memory depends on one storage format alone.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::record::{Memory, MemoryId, NewMemory};

/// The on-disk schema this build writes. Older stores are migrated on open.
pub const SCHEMA_VERSION: u32 = 1;

const SCHEMA_KEY: &[u8] = b"schema_version";
const GENERATION_KEY: &[u8] = b"generation";

/// Errors of the memory store.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// sled failed: a full disk, permissions, or a damaged database.
    #[error("memory store {path}: {source}")]
    Storage {
        /// The store's folder.
        path: PathBuf,
        /// What sled said.
        source: sled::Error,
    },
    /// The store was written by a newer hearth.
    #[error("memory store {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade hearth or restore an export")]
    NewerSchema {
        /// The store's folder.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A record could not be decoded.
    #[error("memory store {path}: record {id} is corrupt: {reason}")]
    Corrupt {
        /// The store's folder.
        path: PathBuf,
        /// The record's id.
        id: MemoryId,
        /// What failed.
        reason: String,
    },
    /// An import line is not a memory.
    #[error("import line {line}: {reason}")]
    Import {
        /// 1-based line number.
        line: usize,
        /// What failed.
        reason: String,
    },
    /// Reading or writing an export failed.
    #[error("export/import I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The memory id a tree key encodes (big-endian, so that sled iterates in id order).
fn key_id(key: &[u8]) -> MemoryId {
    key.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

/// Vectors as stored: their little-endian f32s, one after the other.
fn le_bytes(vectors: &[&[f32]]) -> Vec<u8> {
    vectors
        .iter()
        .flat_map(|v| v.iter().flat_map(|x| x.to_le_bytes()))
        .collect()
}

/// The memories, in sled. Cheap to clone; clones share the database.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    db: sled::Db,
    memories: sled::Tree,
    /// Embedding of each memory that has one: id -> little-endian f32s.
    vectors: sled::Tree,
    /// Embeddings of each memory's passages (its sentences, say), where it has them: id ->
    /// the vectors' little-endian f32s, one after the other.
    passages: sled::Tree,
    path: PathBuf,
}

/// Opens the sled database in `path`, waiting up to two seconds for its file lock.
///
/// sled releases the lock when its last background thread lets go of the database, a
/// moment after the last handle is dropped. A hub restarted at once by systemd, or a test
/// that reopens a store, would otherwise fail on a lock nobody really holds any more.
/// A database truly held by another process still fails, after the wait.
/// The folder is created private to the hub's user (0700) when it does not exist yet.
pub(crate) fn open_db(path: &Path) -> sled::Result<sled::Db> {
    crate::files::private_dir(path)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Where ids continue above sled's own counter, when an import or a restore brought in ids
/// that counter has not reached: in the default tree of every hub database.
const NEXT_ID_KEY: &[u8] = b"hearth_next_id";

fn floor_of(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// A fresh id in `db`, never handed out before and above every id an import or a restore
/// brought in ([`reserve_ids`]). sled's counter cannot be moved forward except one id at a
/// time, so ids continue from a stored floor while the counter is below it.
pub(crate) fn next_id(db: &sled::Db) -> sled::Result<u64> {
    let generated = db.generate_id()?;
    loop {
        let current = db.get(NEXT_ID_KEY)?;
        let floor = floor_of(current.as_deref());
        if generated >= floor {
            return Ok(generated);
        }
        let next = floor
            .checked_add(1)
            .ok_or_else(|| sled::Error::Unsupported(format!("every id up to {floor} is taken")))?;
        if db
            .compare_and_swap(NEXT_ID_KEY, current, Some(&next.to_be_bytes()[..]))?
            .is_ok()
        {
            return Ok(floor);
        }
    }
}

/// Makes every id [`next_id`] hands out from now on at least `from`. Not durable until the
/// next flush.
pub(crate) fn reserve_ids(db: &sled::Db, from: u64) -> sled::Result<()> {
    db.fetch_and_update(NEXT_ID_KEY, |old| {
        Some(floor_of(old).max(from).to_be_bytes().to_vec())
    })?;
    Ok(())
}

impl MemoryStore {
    /// Opens (or creates) the store in folder `path`, migrating an older schema.
    pub fn open(path: &Path) -> Result<MemoryStore, MemoryError> {
        let db = open_db(path).map_err(|source| MemoryError::Storage {
            path: path.to_path_buf(),
            source,
        })?;
        MemoryStore::init(db, path.to_path_buf())
    }

    /// A throwaway store that lives in memory and a temporary file (tests, benchmarks).
    pub fn temporary() -> Result<MemoryStore, MemoryError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|source| MemoryError::Storage {
                path: PathBuf::from("<temporary>"),
                source,
            })?;
        MemoryStore::init(db, PathBuf::from("<temporary>"))
    }

    fn init(db: sled::Db, path: PathBuf) -> Result<MemoryStore, MemoryError> {
        let storage = |source| MemoryError::Storage {
            path: path.clone(),
            source,
        };
        let memories = db.open_tree("memories").map_err(storage)?;
        let vectors = db.open_tree("vectors").map_err(storage)?;
        let passages = db.open_tree("passages").map_err(storage)?;
        let version = match db.get(SCHEMA_KEY).map_err(storage)? {
            Some(v) if v.len() == 4 => u32::from_be_bytes(v.as_ref().try_into().expect("4 bytes")),
            Some(_) => {
                return Err(MemoryError::Corrupt {
                    path,
                    id: 0,
                    reason: "the schema version is unreadable".into(),
                })
            }
            // A new store: nothing to migrate.
            None => SCHEMA_VERSION,
        };
        if version > SCHEMA_VERSION {
            return Err(MemoryError::NewerSchema {
                path,
                found: version,
            });
        }
        // Version 1 is the first; migrations from older versions go here, oldest first.
        db.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
            .map_err(storage)?;
        db.flush().map_err(storage)?;
        Ok(MemoryStore {
            db,
            memories,
            vectors,
            passages,
            path,
        })
    }

    /// A named tree beside the memories (the graph, the profile): same database, same flushes.
    pub(crate) fn tree(&self, name: &str) -> Result<sled::Tree, MemoryError> {
        self.db.open_tree(name).map_err(|e| self.storage(e))
    }

    /// A fresh id, unique in this database and never reused.
    pub(crate) fn next_id(&self) -> Result<u64, MemoryError> {
        next_id(&self.db).map_err(|e| self.storage(e))
    }

    pub(crate) fn storage(&self, source: sled::Error) -> MemoryError {
        MemoryError::Storage {
            path: self.path.clone(),
            source,
        }
    }

    fn decode(&self, id: MemoryId, bytes: &[u8]) -> Result<Memory, MemoryError> {
        serde_json::from_slice(bytes).map_err(|e| MemoryError::Corrupt {
            path: self.path.clone(),
            id,
            reason: e.to_string(),
        })
    }

    pub(crate) fn flush(&self) -> Result<(), MemoryError> {
        self.db.flush().map(|_| ()).map_err(|e| self.storage(e))
    }

    /// A counter that every write raises. Derived indexes record the generation they reflect;
    /// a different one means they are stale.
    pub fn generation(&self) -> Result<u64, MemoryError> {
        Ok(self
            .db
            .get(GENERATION_KEY)
            .map_err(|e| self.storage(e))?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Raises the generation. Called before the write it stands for: sled recovers a prefix of
    /// its log, so after a crash the generation is never older than the records.
    fn bump(&self) -> Result<u64, MemoryError> {
        let next = self.generation()? + 1;
        self.db
            .insert(GENERATION_KEY, &next.to_be_bytes())
            .map_err(|e| self.storage(e))?;
        Ok(next)
    }

    /// Stores a new memory and returns it with its id. Durable when this returns.
    pub fn insert(&self, new: NewMemory) -> Result<Memory, MemoryError> {
        self.insert_as(new, false)
    }

    /// [`MemoryStore::insert`], as a question for the question log when `asked` (see
    /// [`Memory::asked`]).
    pub fn insert_as(&self, new: NewMemory, asked: bool) -> Result<Memory, MemoryError> {
        let id = self.next_id()?;
        let memory = Memory {
            asked,
            ..Memory::from_new(id, new)
        };
        self.put(&memory)?;
        Ok(memory)
    }

    /// Stores many new memories (each with an optional vector) with one flush. Durable when
    /// this returns. For bulk loads: the live path writes one at a time.
    pub fn insert_batch(
        &self,
        items: Vec<(NewMemory, Option<Vec<f32>>)>,
    ) -> Result<Vec<Memory>, MemoryError> {
        self.bump()?;
        let mut records = sled::Batch::default();
        let mut vectors = sled::Batch::default();
        let mut out = Vec::with_capacity(items.len());
        for (new, vector) in items {
            let id = self.next_id()?;
            let memory = Memory::from_new(id, new);
            records.insert(
                &id.to_be_bytes(),
                serde_json::to_vec(&memory).expect("memories always serialize"),
            );
            if let Some(v) = vector {
                vectors.insert(&id.to_be_bytes(), le_bytes(&[v.as_slice()]));
            }
            out.push(memory);
        }
        self.memories
            .apply_batch(records)
            .map_err(|e| self.storage(e))?;
        self.vectors
            .apply_batch(vectors)
            .map_err(|e| self.storage(e))?;
        self.flush()?;
        Ok(out)
    }

    /// Writes a memory (new or updated) under its id. Durable when this returns.
    pub fn put(&self, memory: &Memory) -> Result<(), MemoryError> {
        self.bump()?;
        let bytes = serde_json::to_vec(memory).expect("memories always serialize");
        self.memories
            .insert(memory.id.to_be_bytes(), bytes)
            .map_err(|e| self.storage(e))?;
        self.flush()
    }

    /// The memory with this id, if there is one.
    pub fn get(&self, id: MemoryId) -> Result<Option<Memory>, MemoryError> {
        match self
            .memories
            .get(id.to_be_bytes())
            .map_err(|e| self.storage(e))?
        {
            Some(bytes) => Ok(Some(self.decode(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Deletes a memory for good. Returns whether it existed. Durable when this returns.
    pub fn forget(&self, id: MemoryId) -> Result<bool, MemoryError> {
        self.bump()?;
        let existed = self
            .memories
            .remove(id.to_be_bytes())
            .map_err(|e| self.storage(e))?
            .is_some();
        for tree in [&self.vectors, &self.passages] {
            tree.remove(id.to_be_bytes()).map_err(|e| self.storage(e))?;
        }
        self.flush()?;
        Ok(existed)
    }

    /// Stores the embedding of memory `id`, and of its passages (none: it has no passages).
    /// Durable when this returns.
    pub fn put_vectors(
        &self,
        id: MemoryId,
        vector: &[f32],
        passages: &[Vec<f32>],
    ) -> Result<(), MemoryError> {
        self.bump()?;
        // Passages first: they count only beside a vector of the right size (see
        // `Memories::open`), so a crash between the writes leaves nothing half-indexed.
        let key = id.to_be_bytes();
        let result = if passages.is_empty() {
            self.passages.remove(key).map(drop)
        } else {
            let rows: Vec<&[f32]> = passages.iter().map(Vec::as_slice).collect();
            self.passages.insert(key, le_bytes(&rows)).map(drop)
        };
        result.map_err(|e| self.storage(e))?;
        self.vectors
            .insert(key, le_bytes(&[vector]))
            .map_err(|e| self.storage(e))?;
        self.flush()
    }

    /// Every stored embedding, in id order.
    pub fn vectors(&self) -> impl Iterator<Item = Result<(MemoryId, Vec<f32>), MemoryError>> + '_ {
        self.floats(&self.vectors, "its vector")
    }

    /// Every memory's passage embeddings, in id order, one after the other in one list.
    pub fn passages(&self) -> impl Iterator<Item = Result<(MemoryId, Vec<f32>), MemoryError>> + '_ {
        self.floats(&self.passages, "its passage vectors")
    }

    fn floats<'a>(
        &'a self,
        tree: &'a sled::Tree,
        what: &'static str,
    ) -> impl Iterator<Item = Result<(MemoryId, Vec<f32>), MemoryError>> + 'a {
        tree.iter().map(move |entry| {
            let (key, value) = entry.map_err(|e| self.storage(e))?;
            let id = key_id(&key);
            if value.len() % 4 != 0 {
                return Err(MemoryError::Corrupt {
                    path: self.path.clone(),
                    id,
                    reason: format!("{what}: {} bytes, not a multiple of 4", value.len()),
                });
            }
            let v = value
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            Ok((id, v))
        })
    }

    /// How many memories there are.
    pub fn len(&self) -> usize {
        self.memories.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.memories.is_empty()
    }

    /// Every memory, in id order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Memory, MemoryError>> + '_ {
        self.memories.iter().map(move |entry| {
            let (key, value) = entry.map_err(|e| self.storage(e))?;
            let id = key_id(&key);
            self.decode(id, &value)
        })
    }

    /// Writes every memory as one JSON object per line. Returns how many.
    pub fn export_jsonl(&self, mut out: impl Write) -> Result<usize, MemoryError> {
        let mut n = 0;
        for memory in self.iter() {
            serde_json::to_writer(&mut out, &memory?).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        out.flush()?;
        Ok(n)
    }

    /// Reads an export, keeping ids (a memory with the same id is replaced). Every line is
    /// checked before anything is written, so a bad file changes nothing. Returns how many.
    pub fn import_jsonl(&self, input: impl BufRead) -> Result<usize, MemoryError> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        let mut max_id = 0;
        for (i, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let memory: Memory = serde_json::from_str(&line).map_err(|e| MemoryError::Import {
                line: i + 1,
                reason: e.to_string(),
            })?;
            // Ids continue above the largest imported one, so u64::MAX cannot be imported.
            if memory.id == u64::MAX {
                return Err(MemoryError::Import {
                    line: i + 1,
                    reason: format!("id {} is too large: ids must be below it", memory.id),
                });
            }
            max_id = max_id.max(memory.id);
            batch.insert(
                &memory.id.to_be_bytes(),
                serde_json::to_vec(&memory).expect("memories always serialize"),
            );
            n += 1;
        }
        self.bump()?;
        self.memories
            .apply_batch(batch)
            .map_err(|e| self.storage(e))?;
        // New ids must not collide with imported ones (max_id < u64::MAX, checked above).
        if n > 0 {
            reserve_ids(&self.db, max_id + 1).map_err(|e| self.storage(e))?;
        }
        self.flush()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::record::{Speaker, Tier};

    pub(crate) fn new_memory(text: &str) -> NewMemory {
        NewMemory {
            text: text.to_string(),
            room: "kitchen".into(),
            speaker: Speaker::User,
            created_at_ms: 1_700_000_000_000,
            salience: 0.5,
            source: None,
        }
    }

    #[test]
    fn insert_get_update_forget() {
        let store = MemoryStore::temporary().unwrap();
        let a = store
            .insert(new_memory("my sister Anna lives in Porto"))
            .unwrap();
        let b = store.insert(new_memory("water the plants")).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(store.get(a.id).unwrap(), Some(a.clone()));
        let mut a2 = a.clone();
        a2.tier = Tier::LongTerm;
        a2.recalls = 3;
        store.put(&a2).unwrap();
        assert_eq!(store.get(a.id).unwrap(), Some(a2));
        assert!(store.forget(b.id).unwrap());
        assert!(!store.forget(b.id).unwrap());
        assert_eq!(store.get(b.id).unwrap(), None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn export_then_import_restores_everything_and_bad_lines_change_nothing() {
        let store = MemoryStore::temporary().unwrap();
        for i in 0..20 {
            store
                .insert(new_memory(&format!("fact {i} \"quoted\" ünïcødé")))
                .unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(store.export_jsonl(&mut out).unwrap(), 20);

        let other = MemoryStore::temporary().unwrap();
        assert_eq!(other.import_jsonl(&out[..]).unwrap(), 20);
        let a: Vec<Memory> = store.iter().map(Result::unwrap).collect();
        let b: Vec<Memory> = other.iter().map(Result::unwrap).collect();
        assert_eq!(a, b);
        let fresh = other.insert(new_memory("new")).unwrap();
        assert!(a.iter().all(|m| m.id != fresh.id), "new ids do not collide");

        let empty = MemoryStore::temporary().unwrap();
        let mut bad = out.clone();
        bad.extend_from_slice(b"{\"id\": \"not a memory\"}\n");
        let err = empty.import_jsonl(&bad[..]).unwrap_err();
        assert!(matches!(err, MemoryError::Import { line: 21, .. }), "{err}");
        assert!(empty.is_empty(), "nothing was half-imported");
    }

    /// `memory import` used to draw sled ids one at a time until they passed the largest
    /// imported id: for an id near `u64::MAX` that loop never ended.
    #[test]
    fn import_of_an_id_near_u64_max_ends_and_new_ids_continue_above_it() {
        let store = MemoryStore::temporary().unwrap();
        let mut big = Memory::from_new(u64::MAX - 5, new_memory("the boiler code is 4410"));
        let line = serde_json::to_string(&big).unwrap();
        assert_eq!(store.import_jsonl(line.as_bytes()).unwrap(), 1);
        let next = store
            .insert(new_memory("the bins go out on Monday"))
            .unwrap();
        assert_eq!(next.id, u64::MAX - 4);
        for want in [u64::MAX - 3, u64::MAX - 2, u64::MAX - 1] {
            assert_eq!(store.next_id().unwrap(), want);
        }
        let err = store.next_id().unwrap_err();
        assert!(err.to_string().contains("is taken"), "{err}");

        // u64::MAX itself is refused with its line, and nothing is written.
        let empty = MemoryStore::temporary().unwrap();
        big.id = u64::MAX;
        let lines = format!(
            "{}\n{}\n",
            serde_json::to_string(&Memory::from_new(3, new_memory("a"))).unwrap(),
            serde_json::to_string(&big).unwrap()
        );
        let err = empty.import_jsonl(lines.as_bytes()).unwrap_err();
        assert!(matches!(err, MemoryError::Import { line: 2, .. }), "{err}");
        assert!(empty.is_empty());
    }

    #[test]
    fn ids_reserved_by_an_import_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mem");
        {
            let store = MemoryStore::open(&path).unwrap();
            let m = Memory::from_new(1_000_000_000_000, new_memory("imported"));
            let line = serde_json::to_string(&m).unwrap();
            store.import_jsonl(line.as_bytes()).unwrap();
        }
        let store = MemoryStore::open(&path).unwrap();
        let m = store.insert(new_memory("new")).unwrap();
        assert_eq!(m.id, 1_000_000_000_001);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mem");
        {
            let store = MemoryStore::open(&path).unwrap();
            store.db.insert(SCHEMA_KEY, &99u32.to_be_bytes()).unwrap();
            store.db.flush().unwrap();
        }
        let err = MemoryStore::open(&path).unwrap_err();
        assert!(
            matches!(err, MemoryError::NewerSchema { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("mem"));
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        let store = MemoryStore::temporary().unwrap();
        store
            .memories
            .insert(7u64.to_be_bytes(), &b"{garbage"[..])
            .unwrap();
        assert!(matches!(
            store.get(7),
            Err(MemoryError::Corrupt { id: 7, .. })
        ));
        assert!(store.iter().any(|r| r.is_err()));
    }
}
