//! Memory: what the hub remembers about the household, across months.
//!
//! sled is the source of truth ([`store`]); every acknowledged write is flushed. The full-text
//! and vector indexes, the lifecycle (salience, promotion, decay) and retrieval build on it in
//! later steps and are always derivable from it.

pub mod facts;
pub mod fulltext;
pub mod graph;
pub mod kind;
pub mod lifecycle;
pub mod memories;
pub mod profile;
pub mod record;
pub mod retrieval;
pub mod rolelog;
pub mod store;
pub mod vectors;
pub mod when;

pub use memories::{Embedding, Memories, MemoriesError, SweepReport};
pub use record::{Memory, MemoryId, NewMemory, Speaker, Tier};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
pub use store::{MemoryError, MemoryStore, SCHEMA_VERSION};

/// Where memories are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// The memory folder: `store/` (sled, the source of truth) and `fulltext/` (tantivy,
    /// derived). `~/` is expanded. Back it up with `hearth-hub backup`.
    pub path: PathBuf,
    /// Salience, TTL, promotion, decay and archiving.
    pub lifecycle: crate::memory::lifecycle::LifecycleConfig,
    /// Hybrid retrieval weights.
    pub retrieval: crate::memory::retrieval::RetrievalConfig,
    /// Memories recalled into each prompt.
    pub recall_k: usize,
    /// The most characters of recalled memories in a prompt.
    pub context_chars: usize,
    /// Turns below this salience are not stored.
    pub min_salience: f32,
    /// A new turn this similar (cosine) to a stored memory re-warms it instead of being stored.
    pub recurrence_similarity: f32,
    /// ...and shares at least this share of its words with it (Jaccard).
    pub recurrence_word_overlap: f32,
    /// A spoken correction ("actually, ...") replaces the stored memory most similar to it,
    /// if at least this similar (cosine); otherwise it is stored as a new fact.
    pub correction_similarity: f32,
    /// A correction that names only a value ("I meant 4813", "change that to York") applies
    /// to the room's last stored fact if it was stored at most this many seconds before.
    pub correction_window_s: u64,
    /// A question the hub asked before forgetting several memories ("shall I?") waits this
    /// many seconds for a yes or a no.
    pub confirm_within_s: u64,
    /// A recalled memory is re-warmed (its recall counted) only if its cosine with the turn
    /// is at least this...
    pub rewarm_min_cosine: f32,
    /// ...or the reply repeats at least this many of its content words: filling the top k
    /// promotes nothing.
    pub rewarm_reply_words: usize,
    /// Embed each memory together with what was said just before it in the room, so that an
    /// answer is found by the words of its question.
    pub embed_context: bool,
    /// Also embed each passage (sentence) of a memory on its own, and of a one-sentence
    /// memory its text without the context: retrieval scores a memory by its best passage
    /// too (`memory.retrieval.w_passage`).
    pub passage_vectors: bool,
    /// A sentence of fewer words joins the next one in a passage.
    pub passage_min_words: usize,
    /// Minutes between lifecycle sweeps (expiry, decay, consolidation); 0 turns them off.
    pub sweep_interval_minutes: u64,
    /// The memory graph.
    pub graph: graph::GraphConfig,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            path: PathBuf::from("~/.local/share/hearth/memory"),
            lifecycle: crate::memory::lifecycle::LifecycleConfig::default(),
            retrieval: crate::memory::retrieval::RetrievalConfig::default(),
            recall_k: 5,
            context_chars: 1200,
            min_salience: 0.1,
            recurrence_similarity: 0.92,
            recurrence_word_overlap: 0.5,
            correction_similarity: 0.5,
            confirm_within_s: 120,
            correction_window_s: 300,
            rewarm_min_cosine: 0.5,
            rewarm_reply_words: 2,
            embed_context: true,
            passage_vectors: true,
            passage_min_words: 4,
            sweep_interval_minutes: 60,
            graph: graph::GraphConfig::default(),
        }
    }
}
