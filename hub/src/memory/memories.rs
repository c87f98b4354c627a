//! The store and its derived indexes, kept in step: every write goes to sled first (durable),
//! then to the index with the store generation it reflects.

use std::path::Path;
use std::sync::RwLock;

use super::fulltext::{FullText, FullTextError};
use super::record::{Memory, MemoryId, NewMemory};
use super::store::{MemoryError, MemoryStore};
use super::vectors::{BruteForce, VectorIndex};

/// Errors of the memory subsystem as a whole.
#[derive(Debug, thiserror::Error)]
pub enum MemoriesError {
    /// The sled store failed.
    #[error(transparent)]
    Store(#[from] MemoryError),
    /// The full-text index failed.
    #[error(transparent)]
    FullText(#[from] FullTextError),
    /// A vector of the wrong length for the index.
    #[error("an embedding of {got} dimensions does not fit the index of {want}; is embeddings.model the one the index was built with?")]
    Dimension {
        /// The index's dimension.
        want: usize,
        /// The vector's.
        got: usize,
    },
}

/// Memories with their full-text and vector indexes.
pub struct Memories {
    store: MemoryStore,
    fulltext: FullText,
    vectors: RwLock<BruteForce>,
}

impl std::fmt::Debug for Memories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memories")
            .field("memories", &self.store.len())
            .finish_non_exhaustive()
    }
}

impl Memories {
    /// Opens `dir/store` (sled) and `dir/fulltext` (tantivy), rebuilding the full-text index
    /// from the store if it is missing or stale, and loading the `dim`-dimensional vectors.
    pub fn open(dir: &Path, dim: usize) -> Result<Memories, MemoriesError> {
        let store = MemoryStore::open(&dir.join("store"))?;
        let fulltext = FullText::open(&dir.join("fulltext"))?;
        Memories::assemble(store, fulltext, dim)
    }

    /// Throwaway memories (tests, benchmarks).
    pub fn temporary(dim: usize) -> Result<Memories, MemoriesError> {
        Memories::assemble(MemoryStore::temporary()?, FullText::in_ram()?, dim)
    }

    fn assemble(
        store: MemoryStore,
        fulltext: FullText,
        dim: usize,
    ) -> Result<Memories, MemoriesError> {
        fulltext.sync(&store)?;
        let mut vectors = BruteForce::new(dim);
        let mut skipped = 0;
        for entry in store.vectors() {
            let (id, v) = entry?;
            if v.len() == dim {
                vectors.upsert(id, &v);
            } else {
                skipped += 1;
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, dim, "memories embedded with another model were left out of vector search; re-embed them");
        }
        Ok(Memories {
            store,
            fulltext,
            vectors: RwLock::new(vectors),
        })
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

    /// Stores and indexes many new memories at once (one flush, one index commit): for bulk
    /// loads such as imports and benchmarks.
    pub fn remember_batch(
        &self,
        items: Vec<(NewMemory, Option<Vec<f32>>)>,
    ) -> Result<Vec<Memory>, MemoriesError> {
        let dim = self.vectors.read().expect("lock").dim();
        if let Some(bad) = items
            .iter()
            .filter_map(|(_, v)| v.as_ref())
            .find(|v| v.len() != dim)
        {
            return Err(MemoriesError::Dimension {
                want: dim,
                got: bad.len(),
            });
        }
        let vectors: Vec<Option<Vec<f32>>> = items.iter().map(|(_, v)| v.clone()).collect();
        let stored = self.store.insert_batch(items)?;
        self.fulltext.add_many(&stored, self.store.generation()?)?;
        let mut index = self.vectors.write().expect("lock");
        for (m, v) in stored.iter().zip(vectors) {
            if let Some(v) = v {
                index.upsert(m.id, &v);
            }
        }
        Ok(stored)
    }

    /// Writes a changed memory and re-indexes it.
    pub fn update(&self, memory: &Memory) -> Result<(), MemoriesError> {
        self.store.put(memory)?;
        self.fulltext.upsert(memory, self.store.generation()?)?;
        Ok(())
    }

    /// Deletes a memory from the store and both indexes. Returns whether it existed.
    pub fn forget(&self, id: MemoryId) -> Result<bool, MemoriesError> {
        let existed = self.store.forget(id)?;
        self.fulltext.remove(id, self.store.generation()?)?;
        self.vectors.write().expect("lock").remove(id);
        Ok(existed)
    }

    /// Stores and indexes the embedding of memory `id`.
    pub fn set_vector(&self, id: MemoryId, vector: &[f32]) -> Result<(), MemoriesError> {
        let mut index = self.vectors.write().expect("lock");
        if vector.len() != index.dim() {
            return Err(MemoriesError::Dimension {
                want: index.dim(),
                got: vector.len(),
            });
        }
        self.store.put_vector(id, vector)?;
        index.upsert(id, vector);
        Ok(())
    }

    /// The `k` memories most similar to the (normalised) `query` vector, best first.
    pub fn search_vector(
        &self,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(Memory, f32)>, MemoriesError> {
        let hits = self.vectors.read().expect("lock").search(query, k);
        let mut out = Vec::with_capacity(hits.len());
        for (id, score) in hits {
            if let Some(memory) = self.store.get(id)? {
                out.push((memory, score));
            }
        }
        Ok(out)
    }

    /// How many memories have a vector.
    pub fn vector_count(&self) -> usize {
        self.vectors.read().expect("lock").len()
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
