//! Memory: what the hub remembers about the household, across months.
//!
//! sled is the source of truth ([`store`]); every acknowledged write is flushed. The full-text
//! and vector indexes, the lifecycle (salience, promotion, decay) and retrieval build on it in
//! later steps and are always derivable from it.

pub mod fulltext;
pub mod graph;
pub mod lifecycle;
pub mod memories;
pub mod profile;
pub mod record;
pub mod retrieval;
pub mod store;
pub mod vectors;
pub mod when;

pub use memories::{Embedding, Memories, MemoriesError, SweepReport};
pub use record::{Memory, MemoryId, NewMemory, Speaker, Tier};
pub use store::{MemoryError, MemoryStore, SCHEMA_VERSION};
