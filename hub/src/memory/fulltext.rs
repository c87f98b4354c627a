//! The tantivy full-text (BM25) index over memory texts. Derived from the sled store: each
//! commit records the store generation it reflects, and [`FullText::sync`] rebuilds the index
//! whenever that differs (after a crash between the two writes, say, or a lost index folder).

use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::QueryParser;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    TEXT,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::record::{Memory, MemoryId};
use super::store::{MemoryError, MemoryStore};

/// Errors of the full-text index.
#[derive(Debug, thiserror::Error)]
pub enum FullTextError {
    /// tantivy failed.
    #[error("full-text index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The index folder could not be opened or replaced.
    #[error("full-text index folder {path}: {reason}")]
    Folder {
        /// The folder.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Reading the store to rebuild failed.
    #[error(transparent)]
    Store(#[from] MemoryError),
}

/// A BM25 index of memory texts, keyed by memory id.
pub struct FullText {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    id: Field,
    text: Field,
    stem: Field,
}

impl std::fmt::Debug for FullText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullText").finish_non_exhaustive()
    }
}

/// The analyzer of the `stem` field: words, lower case, English stop words out, stemmed.
const STEMMED: &str = "hearth_en";

fn schema() -> (Schema, Field, Field, Field) {
    let mut b = Schema::builder();
    let id = b.add_u64_field("id", INDEXED | STORED | FAST);
    let text = b.add_text_field("text", TEXT);
    let stemmed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(STEMMED)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let stem = b.add_text_field("stem", stemmed);
    (b.build(), id, text, stem)
}

fn register_analyzers(index: &Index) {
    let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy has English stop words"))
        .filter(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register(STEMMED, analyzer);
}

/// 15 MB is tantivy's minimum per indexing thread; one thread suits a 2-core hub.
const WRITER_MEMORY: usize = 15_000_000;

impl FullText {
    /// Opens the index in `dir`, creating it; an unreadable or incompatible index is
    /// discarded and recreated (it is derived data: call [`FullText::sync`] next).
    pub fn open(dir: &Path) -> Result<FullText, FullTextError> {
        let folder = |reason: String| FullTextError::Folder {
            path: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| folder(e.to_string()))?;
        let (schema, ..) = schema();
        let open = || -> tantivy::Result<Index> {
            Index::open_or_create(MmapDirectory::open(dir)?, schema.clone())
        };
        let index = match open() {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "full-text index unreadable; recreating it from the store");
                std::fs::remove_dir_all(dir).map_err(|e| folder(e.to_string()))?;
                std::fs::create_dir_all(dir).map_err(|e| folder(e.to_string()))?;
                open()?
            }
        };
        FullText::with_index(index)
    }

    /// An index in memory (tests, benchmarks).
    pub fn in_ram() -> Result<FullText, FullTextError> {
        let (schema, ..) = schema();
        FullText::with_index(Index::create_in_ram(schema))
    }

    fn with_index(index: Index) -> Result<FullText, FullTextError> {
        let (_, id, text, stem) = schema();
        register_analyzers(&index);
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(FullText {
            index,
            reader,
            writer: Mutex::new(writer),
            id,
            text,
            stem,
        })
    }

    /// The store generation of the last commit, if any.
    pub fn generation(&self) -> Result<Option<u64>, FullTextError> {
        Ok(self
            .index
            .load_metas()?
            .payload
            .and_then(|p| p.parse().ok()))
    }

    fn commit(&self, writer: &mut IndexWriter, generation: u64) -> Result<(), FullTextError> {
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&generation.to_string());
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Brings the index in line with the store: rebuilds it from every memory when the
    /// recorded generation differs. Returns whether it rebuilt.
    pub fn sync(&self, store: &MemoryStore) -> Result<bool, FullTextError> {
        let generation = store.generation()?;
        if self.generation()? == Some(generation) {
            return Ok(false);
        }
        let mut writer = self.writer.lock().expect("lock");
        writer.delete_all_documents()?;
        let mut n = 0;
        for memory in store.iter() {
            let memory = memory?;
            writer.add_document(doc!(self.id => memory.id, self.text => memory.text.clone(), self.stem => memory.text))?;
            n += 1;
        }
        self.commit(&mut writer, generation)?;
        tracing::info!(
            memories = n,
            generation,
            "full-text index rebuilt from the store"
        );
        Ok(true)
    }

    /// Indexes (or re-indexes) one memory and commits, recording `generation`.
    pub fn upsert(&self, memory: &Memory, generation: u64) -> Result<(), FullTextError> {
        let mut writer = self.writer.lock().expect("lock");
        writer.delete_term(Term::from_field_u64(self.id, memory.id));
        writer.add_document(doc!(self.id => memory.id, self.text => memory.text.clone(), self.stem => memory.text.clone()))?;
        self.commit(&mut writer, generation)
    }

    /// Indexes many new memories with one commit, recording `generation`.
    pub fn add_many(&self, memories: &[Memory], generation: u64) -> Result<(), FullTextError> {
        let mut writer = self.writer.lock().expect("lock");
        for m in memories {
            writer.add_document(
                doc!(self.id => m.id, self.text => m.text.clone(), self.stem => m.text.clone()),
            )?;
        }
        self.commit(&mut writer, generation)
    }

    /// Removes one memory and commits, recording `generation`.
    pub fn remove(&self, id: MemoryId, generation: u64) -> Result<(), FullTextError> {
        let mut writer = self.writer.lock().expect("lock");
        writer.delete_term(Term::from_field_u64(self.id, id));
        self.commit(&mut writer, generation)
    }

    /// The best `k` memories for `query` by BM25, best first. Query syntax errors are
    /// tolerated: the parseable part is searched.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<(MemoryId, f32)>, FullTextError> {
        self.search_in(query, k, false)
    }

    /// [`FullText::search`] over exact words, or (`stemmed`) over stemmed words without stop
    /// words, so that "lose" finds "lost" and "the" finds nothing.
    pub fn search_in(
        &self,
        query: &str,
        k: usize,
        stemmed: bool,
    ) -> Result<Vec<(MemoryId, f32)>, FullTextError> {
        let field = if stemmed { self.stem } else { self.text };
        let parser = QueryParser::for_index(&self.index, vec![field]);
        let (query, _) = parser.parse_query_lenient(query);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(k.max(1)).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(self.id).and_then(|v| v.as_u64()) {
                out.push((id, score));
            }
        }
        Ok(out)
    }

    /// How many memories are indexed.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
