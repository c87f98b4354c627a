//! hearth's benchmarks, kept out of the product crates: `speed` (the language model against a
//! bare llama.cpp loop, the memory store at scale), `rooms` (several rooms at once), `adapters` (what
//! switching LoRA adapters between roles costs), `locomo`
//! (retrieval quality on LoCoMo conversations), `facts` (facts that override earlier ones,
//! on FactConsolidation, through the live ingest path), `writes` (what is stored: store/skip
//! precision and recall on labelled turns) and `voice` (a spoken turn end to end through the
//! real hub and terminal binaries). `hearth-bench` is the command line over them; each prints
//! a table and asserts nothing.

pub mod adapters;
pub mod facts;
pub mod locomo;
pub mod rooms;
pub mod speed;
pub mod voice;
pub mod writes;
