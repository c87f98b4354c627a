//! The store and its derived indexes, kept in step: every write goes to sled first (durable),
//! then to the index with the store generation it reflects.

use std::path::Path;
use std::sync::RwLock;

use super::fulltext::{FullText, FullTextError};
use super::graph::{Graph, GraphError};
use super::lifecycle::{LifecycleConfig, Sweep};
use super::profile::{consolidate, Profile};
use super::record::{Memory, MemoryId, NewMemory};
use super::rolelog::RoleLog;
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
    /// The memory graph refused a proposal.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A vector of the wrong length for the index.
    #[error("an embedding of {got} dimensions does not fit the index of {want}; is embeddings.model the one the index was built with?")]
    Dimension {
        /// The index's dimension.
        want: usize,
        /// The vector's.
        got: usize,
    },
}

/// What one lifecycle sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Memories left as they were.
    pub kept: usize,
    /// Short-term memories past their TTL, now archived.
    pub expired: usize,
    /// Long-term memories decayed below the floor, now archived.
    pub faded: usize,
    /// Questions older than the question log keeps them, now deleted.
    pub pruned: usize,
}

/// A memory's embeddings: of its whole text (with what it answers, under
/// `memory.embed_context`) and of each of its passages (see [`super::record::passages`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embedding {
    /// The whole text's.
    pub whole: Vec<f32>,
    /// Each passage's; none for a memory searched as a whole only.
    pub passages: Vec<Vec<f32>>,
}

impl Embedding {
    /// An embedding of the whole text only.
    pub fn whole(vector: Vec<f32>) -> Embedding {
        Embedding {
            whole: vector,
            passages: Vec::new(),
        }
    }
}

/// Memories with their full-text and vector indexes.
pub struct Memories {
    store: MemoryStore,
    fulltext: FullText,
    /// One vector per memory: its whole text.
    vectors: RwLock<BruteForce>,
    /// A memory's passages; it scores as its best one.
    passages: RwLock<BruteForce>,
    graph: Graph,
    role_log: RoleLog,
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
        // Passages count only beside a whole vector of this model.
        let mut passages = BruteForce::new(dim);
        for entry in store.passages() {
            let (id, v) = entry?;
            if vectors.contains(id) && v.len() % dim == 0 {
                let rows: Vec<&[f32]> = v.chunks_exact(dim).collect();
                passages.set(id, &rows);
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, dim, "memories embedded with another model were left out of vector search; re-embed them");
        }
        Ok(Memories {
            graph: Graph::open(&store)?,
            role_log: RoleLog::open(&store)?,
            store,
            fulltext,
            vectors: RwLock::new(vectors),
            passages: RwLock::new(passages),
        })
    }

    /// The language-model jobs logged per role, in the same store.
    pub fn role_log(&self) -> &RoleLog {
        &self.role_log
    }

    /// The sled store.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// The full-text index.
    pub fn fulltext(&self) -> &FullText {
        &self.fulltext
    }

    /// The memory graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Stores and indexes a new memory. Durable in sled when this returns.
    pub fn remember(&self, new: NewMemory) -> Result<Memory, MemoriesError> {
        self.insert_indexed(new, false)
    }

    /// [`Memories::remember`], then [`Memories::set_embedding`] when there is one.
    pub fn remember_embedded(
        &self,
        new: NewMemory,
        embedding: Option<&Embedding>,
    ) -> Result<Memory, MemoriesError> {
        self.insert_embedded(new, embedding, false)
    }

    /// Keeps a question the user asked in the question log ([`Memory::asked`]), indexed
    /// and embedded like a memory so that retrieval finds it and lends its score to the
    /// answer after it. Durable in sled when this returns.
    pub fn log_question(
        &self,
        new: NewMemory,
        embedding: Option<&Embedding>,
    ) -> Result<Memory, MemoriesError> {
        self.insert_embedded(new, embedding, true)
    }

    fn insert_embedded(
        &self,
        new: NewMemory,
        embedding: Option<&Embedding>,
        asked: bool,
    ) -> Result<Memory, MemoriesError> {
        let memory = self.insert_indexed(new, asked)?;
        if let Some(e) = embedding {
            self.set_embedding(memory.id, e)?;
        }
        Ok(memory)
    }

    fn insert_indexed(&self, new: NewMemory, asked: bool) -> Result<Memory, MemoriesError> {
        let memory = self.store.insert_as(new, asked)?;
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

    /// Writes a changed memory. The full-text index holds only a memory's text, so it is
    /// indexed again only when its text changed; otherwise only the store generation is
    /// committed. A re-index is a delete and an add that puts the memory behind its equals:
    /// re-warming, promotion or `answers` reordered ties, and the process that wrote a store
    /// ranked otherwise than one that opened it later (LoCoMo R@5 0.799 against 0.800).
    pub fn update(&self, memory: &Memory) -> Result<(), MemoriesError> {
        let same_text = self
            .store
            .get(memory.id)?
            .is_some_and(|old| old.text == memory.text);
        self.store.put(memory)?;
        let generation = self.store.generation()?;
        if same_text {
            self.fulltext.record(generation)?;
        } else {
            self.fulltext.upsert(memory, generation)?;
        }
        Ok(())
    }

    /// Deletes a memory from the store, both indexes, and the graph nodes learnt only from
    /// it. Returns whether it existed.
    pub fn forget(&self, id: MemoryId) -> Result<bool, MemoriesError> {
        let existed = self.store.forget(id)?;
        self.fulltext.remove(id, self.store.generation()?)?;
        self.vectors.write().expect("lock").remove(id);
        self.passages.write().expect("lock").remove(id);
        let nodes = self.graph.forget_source(id)?;
        if nodes > 0 {
            tracing::info!(
                memory = id,
                nodes,
                "forgot graph nodes learnt from the memory"
            );
        }
        Ok(existed)
    }

    /// Stores and indexes the embedding of memory `id` (its whole text only).
    pub fn set_vector(&self, id: MemoryId, vector: &[f32]) -> Result<(), MemoriesError> {
        self.set_embedding(id, &Embedding::whole(vector.to_vec()))
    }

    /// Stores and indexes the embeddings of memory `id`, replacing any it had.
    pub fn set_embedding(&self, id: MemoryId, embedding: &Embedding) -> Result<(), MemoriesError> {
        let mut index = self.vectors.write().expect("lock");
        let mut passages = self.passages.write().expect("lock");
        if let Some(bad) = std::iter::once(&embedding.whole)
            .chain(&embedding.passages)
            .find(|v| v.len() != index.dim())
        {
            return Err(MemoriesError::Dimension {
                want: index.dim(),
                got: bad.len(),
            });
        }
        self.store
            .put_vectors(id, &embedding.whole, &embedding.passages)?;
        index.upsert(id, &embedding.whole);
        let rows: Vec<&[f32]> = embedding.passages.iter().map(Vec::as_slice).collect();
        passages.set(id, &rows);
        Ok(())
    }

    /// The `k` memories most similar to the (normalised) `query` vector, best first.
    pub fn search_vector(
        &self,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(Memory, f32)>, MemoriesError> {
        let hits = self.vectors.read().expect("lock").search(query, k);
        self.with_memories(hits)
    }

    /// The `k` memories with a passage most similar to `query`, best first, each scored by
    /// its best passage.
    pub fn search_passages(
        &self,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(Memory, f32)>, MemoriesError> {
        let hits = self.passages.read().expect("lock").search(query, k);
        self.with_memories(hits)
    }

    /// How similar memory `id` is to `query`: its whole text, and its best passage (`None`
    /// where it has no vector, or no passages).
    pub fn similarity(&self, id: MemoryId, query: &[f32]) -> (Option<f32>, Option<f32>) {
        (
            self.vectors.read().expect("lock").similarity(id, query),
            self.passages.read().expect("lock").similarity(id, query),
        )
    }

    fn with_memories(
        &self,
        hits: Vec<(MemoryId, f32)>,
    ) -> Result<Vec<(Memory, f32)>, MemoriesError> {
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

    /// The lifecycle sweep at `now_ms`: archives expired and faded memories, deletes the
    /// questions the question log no longer keeps, then consolidates what the user told
    /// into the user profile and stores it.
    pub fn sweep(
        &self,
        lifecycle: &LifecycleConfig,
        now_ms: u64,
    ) -> Result<(SweepReport, Profile), MemoriesError> {
        let mut report = SweepReport::default();
        let mut all = Vec::with_capacity(self.store.len());
        for m in self.store.iter() {
            let mut m = m?;
            let decision = lifecycle.sweep(&m, now_ms);
            match decision {
                Sweep::Keep => report.kept += 1,
                Sweep::Expired => report.expired += 1,
                Sweep::Faded { .. } => report.faded += 1,
                Sweep::Pruned => {
                    self.forget(m.id)?;
                    report.pruned += 1;
                    continue;
                }
            }
            if lifecycle.apply(&mut m, decision) {
                self.update(&m)?;
            }
            all.push(m);
        }
        let profile = consolidate(&all, now_ms);
        profile.save(&self.store)?;
        Ok((report, profile))
    }

    /// Consolidates the profile again from what is stored, if there is one: after a
    /// forget, no evidence of a forgotten memory is left in it.
    pub fn reprofile(&self, now_ms: u64) -> Result<(), MemoriesError> {
        if self.profile()?.is_none() {
            return Ok(());
        }
        let all = self.store.iter().collect::<Result<Vec<_>, _>>()?;
        super::profile::consolidate(&all, now_ms).save(&self.store)?;
        Ok(())
    }

    /// Replaces memory `old` by a corrected one: the new memory is stored (with its vector)
    /// and the old one is superseded from `now_ms`, kept as history. Returns both.
    pub fn correct(
        &self,
        old: MemoryId,
        new: NewMemory,
        embedding: Option<&Embedding>,
    ) -> Result<Option<(Memory, Memory)>, MemoriesError> {
        let Some(mut previous) = self.store.get(old)? else {
            return Ok(None);
        };
        let now_ms = new.created_at_ms;
        let mut corrected = self.remember_embedded(new, embedding)?;
        // The correction inherits what the old memory had earned.
        corrected.tier = previous.tier.max_live(corrected.tier);
        corrected.salience = corrected.salience.max(previous.salience);
        corrected.recalls = previous.recalls;
        self.update(&corrected)?;
        super::lifecycle::supersede(&mut previous, corrected.id, now_ms);
        self.update(&previous)?;
        Ok(Some((previous, corrected)))
    }

    /// The stored user profile, if a sweep has made one.
    pub fn profile(&self) -> Result<Option<Profile>, MemoriesError> {
        Ok(Profile::load(&self.store)?)
    }
}
