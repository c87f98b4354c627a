//! hearth's benchmarks, kept out of the product crates: `speed` (the language model against a
//! bare llama.cpp loop, several rooms at once, the memory store at scale) and `locomo`
//! (retrieval quality on LoCoMo conversations). `hearth-bench` is the command line over them;
//! each prints a table and asserts nothing.

pub mod locomo;
pub mod speed;
