//! The store and its derived indexes, kept in step: every write goes to sled first (durable),
//! then to the index with the store generation it reflects.

use std::path::Path;

use super::fulltext::{FullText, FullTextError};
use super::record::{Memory, MemoryId, NewMemory};
use super::store::{MemoryError, MemoryStore};

/// Errors of the memory subsystem as a whole.
#[derive(Debug, thiserror::Error)]
pub enum MemoriesError {
    /// The sled store failed.
    #[error(transparent)]
    Store(#[from] MemoryError),
    /// The full-text index failed.
    #[error(transparent)]
    FullText(#[from] FullTextError),
}

/// Memories with their full-text index.
#[derive(Debug)]
pub struct Memories {
    store: MemoryStore,
    fulltext: FullText,
}

impl Memories {
    /// Opens `dir/store` (sled) and `dir/fulltext` (tantivy), rebuilding the index from the
    /// store if it is missing or stale.
    pub fn open(dir: &Path) -> Result<Memories, MemoriesError> {
        let store = MemoryStore::open(&dir.join("store"))?;
        let fulltext = FullText::open(&dir.join("fulltext"))?;
        fulltext.sync(&store)?;
        Ok(Memories { store, fulltext })
    }

    /// Throwaway memories (tests, benchmarks).
    pub fn temporary() -> Result<Memories, MemoriesError> {
        let store = MemoryStore::temporary()?;
        let fulltext = FullText::in_ram()?;
        fulltext.sync(&store)?;
        Ok(Memories { store, fulltext })
    }

    /// The sled store.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// The full-text index.
    pub fn fulltext(&self) -> &FullText {
        &self.fulltext
    }

    /// Stores and indexes a new memory. Durable in sled when this returns.
    pub fn remember(&self, new: NewMemory) -> Result<Memory, MemoriesError> {
        let memory = self.store.insert(new)?;
        self.fulltext.upsert(&memory, self.store.generation()?)?;
        Ok(memory)
    }

    /// Writes a changed memory and re-indexes it.
    pub fn update(&self, memory: &Memory) -> Result<(), MemoriesError> {
        self.store.put(memory)?;
        self.fulltext.upsert(memory, self.store.generation()?)?;
        Ok(())
    }

    /// Deletes a memory from the store and the index. Returns whether it existed.
    pub fn forget(&self, id: MemoryId) -> Result<bool, MemoriesError> {
        let existed = self.store.forget(id)?;
        self.fulltext.remove(id, self.store.generation()?)?;
        Ok(existed)
    }

    /// The best `k` memories for `query` by BM25, best first.
    pub fn search_text(&self, query: &str, k: usize) -> Result<Vec<(Memory, f32)>, MemoriesError> {
        let mut out = Vec::new();
        for (id, score) in self.fulltext.search(query, k)? {
            if let Some(memory) = self.store.get(id)? {
                out.push((memory, score));
            }
        }
        Ok(out)
    }
}
