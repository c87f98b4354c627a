//! The subconscious: before an answer it recalls what matters for the turn; after the answer
//! it re-warms what was recalled and stores the turn as a memory (or re-warms the memory it
//! repeats). Both run off the async workers, and no write delays a reply: each costs a sled
//! flush and a tantivy commit.

use std::sync::Arc;

use hearth_shared::Utterance;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::extract::GraphWriter;
use crate::llm::embed::Embedder;
use crate::llm::{ChatMessage, JobRole};
use crate::memory::facts;
use crate::memory::kind::{classify, Kind};
use crate::memory::retrieval::{render_context, retrieve};
use crate::memory::rolelog::Signal;
use crate::memory::MemoryConfig;
use crate::memory::{Embedding, Memories, MemoriesError, Memory, MemoryId, NewMemory, Speaker};

mod correct;
pub use correct::Corrected;

/// The text a turn is remembered by: with its speaker's name in front when the terminal knew
/// who spoke ("Anna: I'm off to Porto"), so that a question naming her finds her words.
pub fn memory_text(u: &Utterance) -> String {
    crate::memory::record::spoken_by(u.speaker.as_deref(), &u.text)
}

/// Embeds a question for retrieval, in one batch: its own embedding (`.0`, which the turn is
/// stored with) and the one it is asked with (`.1`), moved `unnamed_share` of the way towards
/// the question without the names it mentions
/// ([`RetrievalConfig::unnamed_share`](crate::memory::retrieval::RetrievalConfig)).
/// `None` when the embedder gave no vector.
pub async fn embed_question(
    embedder: &Embedder,
    text: &str,
    unnamed_share: f32,
) -> Result<Option<(Vec<f32>, Vec<f32>)>, crate::llm::LlmError> {
    let unnamed = (unnamed_share > 0.0)
        .then(|| crate::memory::retrieval::without_names(text))
        .flatten();
    let mut texts = vec![text.to_string()];
    texts.extend(unnamed);
    let mut vectors = embedder.embed(texts).await?.into_iter();
    let Some(own) = vectors.next() else {
        return Ok(None);
    };
    let mut asked = own.clone();
    if let Some(unnamed) = vectors.next() {
        crate::memory::retrieval::blend(&mut asked, &unnamed, unnamed_share);
    }
    Ok(Some((own, asked)))
}

/// Embeds a memory's `text`: whole (after `context`, when given, and unless `whole` is
/// that embedding already) and, with `passage_vectors`, each passage on its own.
/// `None` when the embedder failed (logged): the memory is then found by its words.
pub async fn embed_memory(
    embedder: &Embedder,
    config: &MemoryConfig,
    text: &str,
    context: Option<&str>,
    whole: Option<Vec<f32>>,
) -> Option<Embedding> {
    let mut passages = if config.passage_vectors {
        crate::memory::record::passages(text, config.passage_min_words)
    } else {
        Vec::new()
    };
    // A one-passage text embedded whole, with nothing before it, is that passage.
    if context.is_none() && passages.len() == 1 && passages[0] == text {
        passages.clear();
    }
    let mut texts = Vec::with_capacity(passages.len() + 1);
    if whole.is_none() {
        texts.push(match context {
            Some(c) => format!("{c}\n{text}"),
            None => text.to_string(),
        });
    }
    texts.extend(passages);
    let mut vectors = match embedder.embed(texts).await {
        Ok(v) => v.into_iter(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot embed a memory; it is found by its words only");
            return None;
        }
    };
    let whole = whole.or_else(|| vectors.next())?;
    Some(Embedding {
        whole,
        passages: vectors.collect(),
    })
}

/// What was recalled for one turn.
#[derive(Debug, Clone, Default)]
pub struct Recall {
    /// Labelled memory lines for the prompt; empty when nothing relevant was found.
    pub context: String,
    /// The memories recalled, best first.
    pub recalled: Vec<Memory>,
    /// Those of them that cleared the relevance floor (`memory.rewarm_min_cosine`): only
    /// these, and those the reply used, are re-warmed after it.
    pub relevant: Vec<MemoryId>,
    /// The turn's embedding, reused when the turn is stored.
    pub vector: Option<Vec<f32>>,
}

/// Where an ingested turn went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Below the salience floor: not stored.
    Chatter,
    /// A new memory.
    Stored(MemoryId),
    /// Said before: that memory was re-warmed.
    Again(MemoryId),
    /// A new value for a stored slot: `new` supersedes `old`.
    Updated {
        /// The superseded memory, kept as history.
        old: MemoryId,
        /// The memory with the new value.
        new: MemoryId,
    },
}

impl Placed {
    /// In words, for the log.
    pub fn what(&self) -> &'static str {
        match self {
            Placed::Chatter => "chatter, not stored",
            Placed::Stored(_) => "stored",
            Placed::Again(_) => "said again, re-warmed",
            Placed::Updated { .. } => "slot update, the old value superseded",
        }
    }
}

/// Whether `m` is something a person told that holds at `now_ms`: not derived, asked,
/// archived or superseded.
fn told_and_current(m: &Memory, now_ms: u64) -> bool {
    m.speaker == Speaker::User
        && !m.asked
        && m.tier != crate::memory::Tier::Archived
        && crate::memory::lifecycle::valid_at(m, now_ms)
}

/// What forgetting `found` takes, as the user counts it: what they told, or, when they told
/// nothing of it, the questions they asked. Logged questions go with what was told without
/// being counted: "forget what I told you about Tom" is about what was told.
pub fn things(found: &[Memory]) -> Vec<&Memory> {
    let told: Vec<&Memory> = found.iter().filter(|m| !m.asked).collect();
    if told.is_empty() {
        found.iter().collect()
    } else {
        told
    }
}

/// The user's message with the recalled memory lines (`Recall::context`) in front, as the
/// model is given it; the message alone when nothing was recalled.
pub fn with_recall(context: &str, text: &str) -> String {
    if context.is_empty() {
        text.to_string()
    } else {
        format!("{context}[USER SAID THIS TURN] {text}")
    }
}

/// A memory's text without the speaker's name in front (see [`memory_text`]).
pub fn spoken(text: &str) -> &str {
    match crate::memory::record::speaker_of(text) {
        Some(who) => text[who.len()..].trim_start_matches(':').trim_start(),
        None => text,
    }
}

/// Recall and ingestion over the memory store.
#[derive(Clone, Debug)]
pub struct Subconscious {
    memories: Arc<Memories>,
    embedder: Embedder,
    config: MemoryConfig,
    /// For the emotional part of a stored turn's salience.
    emotion: crate::emotion::EmotionConfig,
    /// Writes stored turns into the memory graph, in the background (tasks on the tracker),
    /// until the token is cancelled.
    graph: Option<(GraphWriter, CancellationToken, TaskTracker)>,
}

impl Subconscious {
    /// Over `memories`, embedding with `embedder`.
    pub fn new(memories: Arc<Memories>, embedder: Embedder, config: MemoryConfig) -> Subconscious {
        Subconscious {
            memories,
            embedder,
            config,
            emotion: crate::emotion::EmotionConfig::default(),
            graph: None,
        }
    }

    /// Scores the emotional part of salience with `config` instead of the defaults.
    pub fn with_emotion(mut self, config: crate::emotion::EmotionConfig) -> Subconscious {
        self.emotion = config;
        self
    }

    /// Also writes stored turns into the memory graph with `writer` (background LLM work,
    /// a task on `tasks`), until `stop` is cancelled.
    pub fn with_graph(
        mut self,
        writer: GraphWriter,
        stop: CancellationToken,
        tasks: TaskTracker,
    ) -> Subconscious {
        self.graph = Some((writer, stop, tasks));
        self
    }

    /// Starts the graph write for a stored memory, if it is salient enough; it runs after the
    /// reply, as background LLM work, and never delays a conversation.
    fn extract(&self, id: MemoryId, text: String, salience: f32, now_ms: u64) {
        let Some((writer, stop, tasks)) = &self.graph else {
            return;
        };
        let config = writer.config();
        if !config.enabled || salience < config.min_salience {
            return;
        }
        let (writer, stop) = (writer.clone(), stop.clone());
        tasks.spawn(async move {
            let facts = [text];
            tokio::select! {
                _ = stop.cancelled() => {}
                result = writer.write(&facts, Some(id), now_ms) => {
                    if let Err(e) = result {
                        tracing::warn!(memory = id, error = %e, "memory graph extraction failed");
                    }
                }
            }
        });
    }

    /// The memories behind it.
    pub fn memories(&self) -> &Arc<Memories> {
        &self.memories
    }

    /// Recalls memories for `text`; nothing is written here (see [`Subconscious::rewarm`]).
    /// Failures are logged and give an empty recall: an answer without memories beats no
    /// answer.
    pub async fn recall(&self, text: &str, now_ms: u64) -> Recall {
        self.recall_shaped(text, now_ms, self.config.recall_k, &self.config.retrieval)
            .await
    }

    /// [`Subconscious::recall`] with `k` memories and `retrieval` weights for this turn (the
    /// emotion shapes them).
    pub async fn recall_shaped(
        &self,
        text: &str,
        now_ms: u64,
        k: usize,
        retrieval: &crate::memory::retrieval::RetrievalConfig,
    ) -> Recall {
        let (vector, query_vector) =
            match embed_question(&self.embedder, text, retrieval.unnamed_share).await {
                Ok(v) => v.unzip(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot embed the turn; recalling by words only");
                    (None, None)
                }
            };
        let (memories, config, query, retrieval) = (
            Arc::clone(&self.memories),
            self.config.clone(),
            text.to_string(),
            retrieval.clone(),
        );
        let recalled = tokio::task::spawn_blocking(move || -> Result<_, MemoriesError> {
            let hits = retrieve(
                &memories,
                &query,
                query_vector.as_deref(),
                k,
                now_ms,
                &retrieval,
                &config.lifecycle,
            )?;
            let mut context = render_context(&hits, config.context_chars);
            if let Some(profile) = memories.profile()? {
                let line = profile.prompt_line();
                if !line.is_empty() {
                    context = format!("[PROFILE, CONSOLIDATED FROM MEMORY] {line}\n{context}");
                }
            }
            Ok((context, hits))
        })
        .await;
        match recalled {
            Ok(Ok((context, hits))) => Recall {
                context,
                relevant: hits
                    .iter()
                    .filter(|h| {
                        h.signals.cosine.max(h.signals.passage) >= self.config.rewarm_min_cosine
                    })
                    .map(|h| h.memory.id)
                    .collect(),
                recalled: hits.into_iter().map(|h| h.memory).collect(),
                vector,
            },
            Ok(Err(e)) => {
                tracing::error!(error = %e, "memory recall failed");
                Recall {
                    vector,
                    ..Recall::default()
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "memory recall panicked");
                Recall {
                    vector,
                    ..Recall::default()
                }
            }
        }
    }

    /// Re-warms the memories a turn used: those recalled that cleared the relevance floor,
    /// and those the reply drew on (it repeats at least `memory.rewarm_reply_words` of their
    /// words). Filling the prompt's top k promotes nothing. Called after the reply, whatever
    /// its outcome.
    pub async fn rewarm(&self, recall: &Recall, reply: &str, now_ms: u64) {
        let used: Vec<Memory> = recall
            .recalled
            .iter()
            .filter(|m| {
                recall.relevant.contains(&m.id)
                    || crate::words::shared_content_words(&m.text, reply)
                        >= self.config.rewarm_reply_words
            })
            .cloned()
            .collect();
        tracing::debug!(
            recalled = recall.recalled.len(),
            used = used.len(),
            "re-warming"
        );
        if used.is_empty() {
            return;
        }
        let (memories, config) = (Arc::clone(&self.memories), self.config.clone());
        let result = tokio::task::spawn_blocking(move || -> Result<(), MemoriesError> {
            for mut m in used {
                config.lifecycle.rewarm(&mut m, now_ms);
                memories.update(&m)?;
            }
            Ok(())
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "re-warming recalled memories failed"),
            Err(e) => tracing::error!(error = %e, "re-warming recalled memories panicked"),
        }
    }

    /// Stores what the user said if it is worth remembering ([`classify`]: a fact,
    /// preference, event or plan; never a question, a command or small talk), and decides
    /// how it relates to what is stored ([`Subconscious::place`]): said again (re-warmed), a
    /// new value for a stored slot (which it supersedes), or a new fact. A question goes to
    /// the question log instead ([`Memory::asked`]); `None` says that nothing was stored.
    ///
    /// `context` is what was said just before in the room (the assistant's last reply, say).
    /// With `memory.embed_context` the memory's embedding covers it too, so that an answer
    /// ("Porto, since May") is found by the words of the question it answers.
    pub async fn ingest(
        &self,
        u: &Utterance,
        vector: Option<Vec<f32>>,
        context: Option<&str>,
        now_ms: u64,
    ) -> Option<MemoryId> {
        let kind = classify(&u.text);
        if kind == Kind::Question && self.config.lifecycle.question_log_days > 0 {
            self.log_question(u, vector, context, now_ms).await;
            return None;
        }
        if !kind.stored() {
            tracing::info!(id = %u.id, kind = kind.name(), "memory ingest: not stored");
            return None;
        }
        // "Can you remember that my PIN is 2468": the fact is what follows the cue.
        let told = Utterance {
            text: crate::memory::kind::told(&u.text).to_string(),
            ..u.clone()
        };
        let u = &told;
        let embedding = self.embed_turn(u, vector, context).await;
        // With emotion off, every turn gets the neutral emotional share.
        let emotional = if self.emotion.enabled {
            crate::emotion::score(&u.text, u.audio.as_ref(), None).salience(&self.emotion)
        } else {
            self.emotion.neutral_salience
        };
        // What was said just before asked something ("Congrats! What made you run again?"):
        // this turn answers it, if that was the memory before it (below).
        let asked = context
            .filter(|c| crate::memory::kind::asks_anything(c))
            .map(str::to_string);
        let this = self.clone();
        let (id, text, u) = (u.id.clone(), u.text.clone(), u.clone());
        let result = tokio::task::spawn_blocking(move || -> Result<_, MemoriesError> {
            let salience = this.config.lifecycle.salience(&u.text, emotional);
            if salience < this.config.min_salience {
                return Ok((Placed::Chatter, salience));
            }
            let new = NewMemory {
                text: memory_text(&u),
                room: u.room.clone(),
                speaker: Speaker::User,
                created_at_ms: now_ms,
                salience,
                source: Some(u.id.clone()),
            };
            let placed = this.place(new, embedding.as_ref(), now_ms)?;
            if let (Some(asked), Placed::Stored(m) | Placed::Updated { new: m, .. }) =
                (asked, &placed)
            {
                this.mark_answer(*m, &asked)?;
            }
            Ok((placed, salience))
        })
        .await;
        match result {
            Ok(Ok((placed, salience))) => {
                tracing::info!(%id, kind = kind.name(), what = placed.what(), salience, "memory ingest");
                tracing::debug!(%id, placed = ?placed, "memory ingest: the memory");
                match placed {
                    Placed::Stored(m) | Placed::Updated { new: m, .. } => {
                        self.extract(m, text, salience, now_ms);
                        Some(m)
                    }
                    Placed::Again(m) => Some(m),
                    Placed::Chatter => None,
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "memory ingest failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "memory ingest panicked");
                None
            }
        }
    }

    /// The embedding of a turn as a memory keeps it: with what was said before it in the
    /// room (`context`, under `memory.embed_context`). The turn's own embedding from recall
    /// (`vector`) serves unless a speaker's name or the context goes with it.
    async fn embed_turn(
        &self,
        u: &Utterance,
        vector: Option<Vec<f32>>,
        context: Option<&str>,
    ) -> Option<Embedding> {
        let context = context.filter(|c| self.config.embed_context && !c.trim().is_empty());
        let whole = vector.filter(|_| context.is_none() && u.speaker.is_none());
        embed_memory(
            &self.embedder,
            &self.config,
            &memory_text(u),
            context,
            whole,
        )
        .await
    }

    /// Keeps a question in the question log, embedded with what was said before it as a
    /// memory would be: retrieval lends its score to the turn after it (its answer), and
    /// it is never recalled as a fact. Pruned after `memory.lifecycle.question_log_days`.
    async fn log_question(
        &self,
        u: &Utterance,
        vector: Option<Vec<f32>>,
        context: Option<&str>,
        now_ms: u64,
    ) {
        let embedding = self.embed_turn(u, vector, context).await;
        let new = NewMemory {
            text: memory_text(u),
            room: u.room.clone(),
            speaker: Speaker::User,
            created_at_ms: now_ms,
            salience: 0.0,
            source: Some(u.id.clone()),
        };
        let memories = Arc::clone(&self.memories);
        let logged =
            tokio::task::spawn_blocking(move || memories.log_question(new, embedding.as_ref()))
                .await;
        match logged {
            Ok(Ok(m)) => {
                tracing::info!(id = %u.id, kind = Kind::Question.name(), memory = m.id,
                    "memory ingest: a question, logged")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "logging a question failed"),
            Err(e) => tracing::error!(error = %e, "logging a question panicked"),
        }
    }

    /// Marks memory `id` as said in answer to the memory just before it (`Memory::answers`),
    /// when that one is what was said just before it, `asked` (blocking). Between two people
    /// (LoCoMo's friends) it is the other's turn. In a live room what was said just before is
    /// the assistant's reply, never a memory, so the person's next words are not lent the
    /// score of their own turn before.
    fn mark_answer(&self, id: MemoryId, asked: &str) -> Result<(), MemoriesError> {
        let store = self.memories.store();
        let (Some(mut m), Some(before)) = (store.get(id)?, store.get(id.saturating_sub(1))?) else {
            return Ok(());
        };
        if before.id + 1 == m.id && before.room == m.room && before.text.trim() == asked.trim() {
            m.answers = true;
            self.memories.update(&m)?;
        }
        Ok(())
    }

    /// Where a new fact goes (blocking: sled and tantivy). Said again: the same particulars
    /// (numbers, names) and most of the same words as a stored memory, close in meaning, and
    /// that one is re-warmed. A new value for a stored slot ("Tom lives in York" after "...
    /// in Leeds"): the old value is superseded, with valid-until, and kept as history.
    /// Anything else is a new memory: distinct facts stay distinct.
    fn place(
        &self,
        new: NewMemory,
        embedding: Option<&Embedding>,
        now_ms: u64,
    ) -> Result<Placed, MemoriesError> {
        let config = &self.config;
        let said = spoken(&new.text).to_string();
        let live = |m: &Memory| told_and_current(m, now_ms);
        let mut near = Vec::new();
        if let Some(e) = embedding {
            near = self.memories.search_vector(&e.whole, 5)?;
        }
        // Said again: close in meaning or in words (embeddings that include the context
        // differ for the same words said after different replies), with the same content.
        let by_words = self.memories.search_text(&said, 10)?;
        let again = near
            .iter()
            .filter(|(_, cos)| *cos >= config.recurrence_similarity)
            .chain(by_words.iter())
            .map(|(m, _)| m)
            .find(|m| {
                live(m) && facts::same_fact(&said, spoken(&m.text), config.recurrence_word_overlap)
            });
        if let Some(same) = again {
            let mut same = same.clone();
            config.lifecycle.rewarm(&mut same, now_ms);
            self.memories.update(&same)?;
            return Ok(Placed::Again(same.id));
        }
        // A slot's old value: among what the new fact's words and meaning find, the newest
        // live memory that shares its subject and predicate.
        let mut candidates: Vec<Memory> = near.into_iter().map(|(m, _)| m).collect();
        candidates.extend(by_words.into_iter().map(|(m, _)| m));
        candidates.retain(|m| live(m) && facts::slot_value_at(&said, spoken(&m.text)).is_some());
        candidates.sort_by_key(|m| std::cmp::Reverse(m.created_at_ms));
        if let Some(old) = candidates.first() {
            if let Some((old, new)) = self.memories.correct(old.id, new.clone(), embedding)? {
                self.timed(new.clone())?;
                return Ok(Placed::Updated {
                    old: old.id,
                    new: new.id,
                });
            }
        }
        let stored = self.memories.remember_embedded(new, embedding)?;
        Ok(Placed::Stored(self.timed(stored)?))
    }

    /// Sets when a new memory holds from the time words in it ("since 2019", "until
    /// Friday"; see [`crate::memory::when::validity`]). Returns its id.
    fn timed(&self, mut m: Memory) -> Result<MemoryId, MemoriesError> {
        let zone = &self.config.retrieval.zone;
        let (from, until) = crate::memory::when::validity(spoken(&m.text), m.created_at_ms, zone);
        if from.is_some() || until.is_some() {
            m.valid_from_ms = from.unwrap_or(m.valid_from_ms);
            m.valid_until_ms = until.or(m.valid_until_ms);
            tracing::info!(memory = m.id, valid_from_ms = m.valid_from_ms,
                valid_until_ms = ?m.valid_until_ms, "the fact says when it holds");
            self.memories.update(&m)?;
        }
        Ok(m.id)
    }

    /// Stores something the hub concluded itself (a reflection), embedded like any memory.
    pub async fn remember_derived(
        &self,
        text: &str,
        room: &str,
        salience: f32,
        now_ms: u64,
    ) -> Result<MemoryId, MemoriesError> {
        let embedding = embed_memory(&self.embedder, &self.config, text, None, None).await;
        let memories = Arc::clone(&self.memories);
        let new = NewMemory {
            text: text.to_string(),
            room: room.to_string(),
            speaker: Speaker::Derived,
            created_at_ms: now_ms,
            salience,
            source: Some("pixie".into()),
        };
        tokio::task::spawn_blocking(move || {
            Ok(memories.remember_embedded(new, embedding.as_ref())?.id)
        })
        .await
        .expect("the memory write does not panic")
    }

    /// The best `k` memories for `text`, each with its signals, read only (nothing is
    /// re-warmed or counted): the dashboard's search.
    pub async fn search(
        &self,
        text: &str,
        k: usize,
        now_ms: u64,
    ) -> Result<Vec<crate::memory::retrieval::Hit>, MemoriesError> {
        let vector = embed_question(&self.embedder, text, self.config.retrieval.unnamed_share)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot embed the search; searching by words only");
                None
            })
            .map(|(_, asked)| asked);
        let (memories, config, query) = (
            Arc::clone(&self.memories),
            self.config.clone(),
            text.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            retrieve(
                &memories,
                &query,
                vector.as_deref(),
                k,
                now_ms,
                &config.retrieval,
                &config.lifecycle,
            )
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "memory search panicked");
            Ok(Vec::new())
        })
    }

    /// Stores `text` in place of memory `id`, which is kept as superseded (the CLI's and the
    /// dashboard's correction, of a memory named by id). `None` when there is no such memory.
    pub async fn correct_id(
        &self,
        id: MemoryId,
        text: &str,
        source: &str,
        now_ms: u64,
    ) -> Result<Option<(Memory, Memory)>, MemoriesError> {
        let embedding = embed_memory(&self.embedder, &self.config, text, None, None).await;
        let mut new = NewMemory {
            text: text.to_string(),
            room: String::new(),
            speaker: Speaker::User,
            created_at_ms: now_ms,
            salience: self.config.lifecycle.salience(text, 0.3),
            source: Some(source.to_string()),
        };
        let memories = Arc::clone(&self.memories);
        tokio::task::spawn_blocking(move || {
            // The corrected fact belongs where the old one was said.
            let Some(old) = memories.store().get(id)? else {
                return Ok(None);
            };
            new.room = old.room;
            memories.correct(id, new, embedding.as_ref())
        })
        .await
        .unwrap_or(Ok(None))
    }

    /// Forgets one memory everywhere (store, full-text and vector index).
    pub async fn forget(&self, id: MemoryId) -> Result<bool, MemoriesError> {
        let memories = Arc::clone(&self.memories);
        tokio::task::spawn_blocking(move || memories.forget(id))
            .await
            .unwrap_or(Ok(false))
    }

    /// Forgets `ids` everywhere (store, both indexes, the graph) and consolidates the
    /// profile again without them. Returns how many things were forgotten (see
    /// [`things`]) and their texts (spoken).
    pub async fn forget_all(
        &self,
        ids: Vec<MemoryId>,
        now_ms: u64,
    ) -> Result<(usize, Vec<String>), MemoriesError> {
        let memories = Arc::clone(&self.memories);
        let done = tokio::task::spawn_blocking(move || {
            let mut said = Vec::new();
            let mut forgotten = Vec::new();
            for id in ids {
                if let Some(m) = memories.store().get(id)? {
                    said.push(spoken(&m.text).to_string());
                    if memories.forget(id)? {
                        forgotten.push(m);
                    }
                }
            }
            let forgotten = things(&forgotten).len();
            memories.reprofile(now_ms)?;
            // What was forgotten leaves the training log too; a failure there is logged and
            // does not stop the rest of the forgetting.
            match memories.role_log().forget(&said) {
                Ok(0) => {}
                Ok(dropped) => tracing::info!(dropped, "forgotten text left the role log"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot drop forgotten text from the role log")
                }
            }
            Ok((forgotten, said))
        })
        .await;
        done.unwrap_or_else(|e| {
            tracing::error!(error = %e, "forgetting panicked");
            Ok((0, Vec::new()))
        })
    }

    /// Where the role log stands, read as a job begins (see [`Subconscious::log_job`]).
    pub fn log_generation(&self) -> u64 {
        self.memories.role_log().generation()
    }

    /// Logs a language-model job of `role` (an answer: with its `persona`) that began at
    /// `generation` in the role log; its id, unless the log keeps nothing, something was
    /// forgotten since the job began, or it could not write (a warning: the log never stops
    /// a turn).
    #[allow(clippy::too_many_arguments)]
    pub async fn log_job(
        &self,
        role: JobRole,
        room: &str,
        persona: Option<&str>,
        messages: Vec<ChatMessage>,
        output: String,
        outcome: Vec<Signal>,
        generation: u64,
    ) -> Option<u64> {
        let (memories, room) = (Arc::clone(&self.memories), room.to_string());
        let persona = persona.map(str::to_string);
        let now = hearth_shared::now_ms();
        let logged = tokio::task::spawn_blocking(move || {
            let persona = persona.as_deref();
            (memories.role_log()).record(
                role, &room, persona, &messages, &output, &outcome, now, generation,
            )
        })
        .await;
        match logged {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %role, "cannot write the role log");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, %role, "writing the role log panicked");
                None
            }
        }
    }

    /// Adds `signal` to what followed role-log entry `id`.
    pub async fn signal(&self, id: u64, signal: Signal) {
        let memories = Arc::clone(&self.memories);
        let marked =
            tokio::task::spawn_blocking(move || memories.role_log().mark(id, signal)).await;
        if let Ok(Err(e)) = marked {
            tracing::warn!(error = %e, id, ?signal, "cannot mark the role log");
        }
    }

    /// The memory with id `id`, if it is stored.
    pub async fn get(&self, id: MemoryId) -> Result<Option<Memory>, MemoriesError> {
        let memories = Arc::clone(&self.memories);
        tokio::task::spawn_blocking(move || Ok(memories.store().get(id)?))
            .await
            .unwrap_or(Ok(None))
    }

    /// Memories about `topic` as the user says it: every content word of it ("my locker
    /// code", "where I park"), or a person it names by relation ("my brother" → memories
    /// about Tom, when one says "my brother Tom"). With `history`, superseded and archived
    /// ones and the questions in the question log too (forgetting takes them all); without,
    /// the live facts.
    pub async fn about(
        &self,
        topic: &str,
        history: bool,
        now_ms: u64,
    ) -> Result<Vec<Memory>, MemoriesError> {
        let (memories, topic) = (Arc::clone(&self.memories), topic.to_string());
        tokio::task::spawn_blocking(move || {
            let now = now_ms;
            let wanted = facts::topic_words(&topic);
            if wanted.is_empty() {
                return Ok(Vec::new());
            }
            let mut found: Vec<Memory> = memories
                .search_text(&wanted.join(" "), 100)?
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| facts::mentions(&m.text, &wanted))
                .collect();
            // "My brother" is Tom wherever a memory says so.
            let relations: Vec<&String> =
                wanted.iter().filter(|w| facts::is_relation(w)).collect();
            // The rest of the topic must be there too: "my brother's birthday" is the
            // memories about Tom that say "birthday".
            let rest: Vec<String> = wanted
                .iter()
                .filter(|w| !facts::is_relation(w))
                .cloned()
                .collect();
            for relation in relations {
                let told: Vec<Memory> = memories
                    .search_text(relation, 100)?
                    .into_iter()
                    .map(|(m, _)| m)
                    .collect();
                let names: std::collections::BTreeSet<String> = told
                    .iter()
                    .filter_map(|m| facts::name_of(&m.text, relation))
                    .collect();
                for name in names {
                    tracing::info!(relation = %relation, name = %name, "a relation resolved to a name");
                    let mut name_words = vec![name.to_lowercase()];
                    name_words.extend(rest.iter().cloned());
                    found.extend(
                        memories
                            .search_text(&name, 100)?
                            .into_iter()
                            .map(|(m, _)| m)
                            .filter(|m| facts::mentions(&m.text, &name_words)),
                    );
                }
            }
            found.sort_by_key(|m| m.id);
            found.dedup_by_key(|m| m.id);
            if !history {
                found.retain(|m| {
                    !m.asked
                        && m.tier != crate::memory::Tier::Archived
                        && crate::memory::lifecycle::valid_at(m, now)
                });
            }
            Ok(found)
        })
        .await
        .unwrap_or(Ok(Vec::new()))
    }

    /// The ids of every stored memory and logged question, and how many things that is
    /// to the user (see [`things`]).
    pub async fn all_ids(&self) -> Result<(Vec<MemoryId>, usize), MemoriesError> {
        let memories = Arc::clone(&self.memories);
        tokio::task::spawn_blocking(move || {
            let all = memories.store().iter().collect::<Result<Vec<_>, _>>()?;
            let n = things(&all).len();
            Ok((all.into_iter().map(|m| m.id).collect(), n))
        })
        .await
        .unwrap_or(Ok((Vec::new(), 0)))
    }
}

#[cfg(test)]
mod tests;
