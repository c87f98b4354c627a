//! The tantivy full-text (BM25) index over memory texts. Derived from the sled store: each
//! commit records the store generation it reflects, and [`FullText::sync`] rebuilds the index
//! whenever that differs (after a crash between the two writes, say, or a lost index folder).

use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, QueryParser, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    TEXT,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    Token, TokenFilter, TokenStream, Tokenizer,
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
    grams: Field,
}

impl std::fmt::Debug for FullText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullText").finish_non_exhaustive()
    }
}

/// The analyzer of the `stem` field: words, lower case, English stop words out, stemmed.
const STEMMED: &str = "hearth_en";
/// The analyzer of the `grams` field: words, lower case, English stop words out, each word
/// as its character trigrams ([`Trigrams`]).
const GRAMS: &str = "hearth_grams";

fn schema() -> (Schema, [Field; 4]) {
    let mut b = Schema::builder();
    let id = b.add_u64_field("id", INDEXED | STORED | FAST);
    let text = b.add_text_field("text", TEXT);
    let stemmed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(STEMMED)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let stem = b.add_text_field("stem", stemmed);
    let grams = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(GRAMS)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let grams = b.add_text_field("grams", grams);
    (b.build(), [id, text, stem, grams])
}

/// The words before stemming: lower case, without English stop words.
fn words() -> tantivy::tokenizer::TextAnalyzerBuilder<impl Tokenizer> {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy has English stop words"))
}

fn register_analyzers(index: &Index) {
    let stemmed = words().filter(Stemmer::new(Language::English)).build();
    index.tokenizers().register(STEMMED, stemmed);
    index
        .tokenizers()
        .register(GRAMS, words().filter(Trigrams).build());
}

/// A token filter that turns each word into its character trigrams, the word's ends marked:
/// "persue" gives "^pe", "per", "ers", "rsu", "sue", "ue$". A misspelt word ("persue" for
/// "pursue", "reccomend"), another spelling ("de-stress", "destress") or a speech-to-text
/// slip still shares most of its trigrams with the word meant.
#[derive(Clone)]
struct Trigrams;

impl TokenFilter for Trigrams {
    type Tokenizer<T: Tokenizer> = TrigramTokenizer<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> TrigramTokenizer<T> {
        TrigramTokenizer { inner }
    }
}

#[derive(Clone)]
struct TrigramTokenizer<T> {
    inner: T,
}

impl<T: Tokenizer> Tokenizer for TrigramTokenizer<T> {
    type TokenStream<'a> = TrigramStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        TrigramStream {
            words: self.inner.token_stream(text),
            grams: Vec::new(),
        }
    }
}

struct TrigramStream<S> {
    words: S,
    /// The current word's trigrams, last first (the one at the end is the current token).
    grams: Vec<Token>,
}

impl<S: TokenStream> TokenStream for TrigramStream<S> {
    fn advance(&mut self) -> bool {
        self.grams.pop();
        while self.grams.is_empty() {
            if !self.words.advance() {
                return false;
            }
            let word = self.words.token();
            let marked: Vec<char> = std::iter::once('^')
                .chain(word.text.chars())
                .chain(std::iter::once('$'))
                .collect();
            for gram in marked.windows(3).rev() {
                self.grams.push(Token {
                    text: gram.iter().collect(),
                    ..word.clone()
                });
            }
        }
        true
    }

    fn token(&self) -> &Token {
        self.grams.last().expect("advance returned true")
    }

    fn token_mut(&mut self) -> &mut Token {
        self.grams.last_mut().expect("advance returned true")
    }
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
        crate::files::private_dir(dir).map_err(|e| folder(e.to_string()))?;
        let (schema, ..) = schema();
        let open = || -> tantivy::Result<Index> {
            Index::open_or_create(MmapDirectory::open(dir)?, schema.clone())
        };
        let index = match open() {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "full-text index unreadable; recreating it from the store");
                std::fs::remove_dir_all(dir).map_err(|e| folder(e.to_string()))?;
                crate::files::private_dir(dir).map_err(|e| folder(e.to_string()))?;
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
        let (_, [id, text, stem, grams]) = schema();
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
            grams,
        })
    }

    /// A memory as an index document: its id and its text in each field.
    fn document(&self, m: &Memory) -> TantivyDocument {
        doc!(
            self.id => m.id,
            self.text => m.text.clone(),
            self.stem => m.text.clone(),
            self.grams => m.text.clone(),
        )
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
            writer.add_document(self.document(&memory))?;
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
        writer.add_document(self.document(memory))?;
        self.commit(&mut writer, generation)
    }

    /// Commits no change but `generation`: the store changed in what the index does not hold.
    pub fn record(&self, generation: u64) -> Result<(), FullTextError> {
        let mut writer = self.writer.lock().expect("lock");
        self.commit(&mut writer, generation)
    }

    /// Indexes many new memories with one commit, recording `generation`.
    pub fn add_many(&self, memories: &[Memory], generation: u64) -> Result<(), FullTextError> {
        let mut writer = self.writer.lock().expect("lock");
        for m in memories {
            writer.add_document(self.document(m))?;
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
        self.top(&query, k)
    }

    /// BM25 over the words' character trigrams (the `grams` field) of the memories `among`
    /// that match any: close spellings of a word match each other. Only those memories are
    /// scored, so that the many posting lists of a question's trigrams are sought, not read
    /// through, in a large store.
    pub fn search_grams(
        &self,
        query: &str,
        among: &[MemoryId],
    ) -> Result<Vec<(MemoryId, f32)>, FullTextError> {
        let mut query_words = Vec::new();
        words()
            .build()
            .token_stream(query)
            .process(&mut |t| query_words.push(t.text.clone()));
        let mut grams = words().filter(Trigrams).build();
        let mut seen = std::collections::HashSet::new();
        let mut terms = Vec::new();
        for word in query_words {
            grams.token_stream(&word).process(&mut |t| {
                if seen.insert(t.text.clone()) {
                    terms.push(Term::from_field_text(self.grams, &t.text));
                }
            });
        }
        if terms.is_empty() || among.is_empty() {
            return Ok(Vec::new());
        }
        // The id filter adds nothing to the score.
        let ids = TermSetQuery::new(among.iter().map(|id| Term::from_field_u64(self.id, *id)));
        let query = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(BoostQuery::new(Box::new(ids), 0.0)) as Box<dyn Query>,
            ),
            (
                Occur::Must,
                Box::new(BooleanQuery::new_multiterms_query(terms)),
            ),
        ]);
        self.top(&query, among.len())
    }

    fn top(
        &self,
        query: &dyn tantivy::query::Query,
        k: usize,
    ) -> Result<Vec<(MemoryId, f32)>, FullTextError> {
        let searcher = self.reader.searcher();
        let top = searcher.search(query, &TopDocs::with_limit(k.max(1)).order_by_score())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::record::{NewMemory, Speaker};

    #[test]
    fn words_become_marked_trigrams() {
        let mut analyzer = words().filter(Trigrams).build();
        let mut grams = Vec::new();
        analyzer
            .token_stream("The CAT, de-stress")
            .process(&mut |t| grams.push(t.text.clone()));
        // "the" is a stop word; "de" is a word of its own.
        assert_eq!(
            grams,
            ["^ca", "cat", "at$", "^de", "de$", "^st", "str", "tre", "res", "ess", "ss$"]
        );
    }

    #[test]
    fn trigrams_find_a_misspelt_word_that_words_miss() {
        let store = MemoryStore::temporary().unwrap();
        let text = FullText::in_ram().unwrap();
        for t in ["Anna wants to pursue nursing", "Anna likes green tea"] {
            store
                .insert(NewMemory {
                    text: t.into(),
                    room: "kitchen".into(),
                    speaker: Speaker::User,
                    created_at_ms: 0,
                    salience: 0.5,
                    source: None,
                })
                .unwrap();
        }
        text.sync(&store).unwrap();
        assert!(text.search_in("persue", 5, true).unwrap().is_empty());
        let found = text.search_grams("What will she persue?", &[0, 1]).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            store.get(found[0].0).unwrap().unwrap().text,
            "Anna wants to pursue nursing"
        );
    }
}
