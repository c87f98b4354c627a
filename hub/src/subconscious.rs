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
use crate::memory::retrieval::{render_context, retrieve};
use crate::memory::MemoryConfig;
use crate::memory::{Embedding, Memories, MemoriesError, Memory, MemoryId, NewMemory, Speaker};

/// The text a turn is remembered by: with its speaker's name in front when the terminal knew
/// who spoke ("Anna: I'm off to Porto"), so that a question naming her finds her words.
pub fn memory_text(u: &Utterance) -> String {
    crate::memory::record::spoken_by(u.speaker.as_deref(), &u.text)
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
    /// The memories recalled, best first; re-warmed after the reply.
    pub recalled: Vec<Memory>,
    /// The turn's embedding, reused when the turn is stored.
    pub vector: Option<Vec<f32>>,
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
        let vector = match self.embedder.embed_one(text).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot embed the turn; recalling by words only");
                None
            }
        };
        let (memories, config, query, retrieval) = (
            Arc::clone(&self.memories),
            self.config.clone(),
            text.to_string(),
            retrieval.clone(),
        );
        let query_vector = vector.clone();
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

    /// Re-warms the memories a turn recalled (a retrieval counts as a recall). Called after
    /// the reply, whatever its outcome, since they were put in the prompt.
    pub async fn rewarm(&self, recalled: Vec<Memory>, now_ms: u64) {
        if recalled.is_empty() {
            return;
        }
        let (memories, config) = (Arc::clone(&self.memories), self.config.clone());
        let result = tokio::task::spawn_blocking(move || -> Result<(), MemoriesError> {
            for mut m in recalled {
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

    /// Stores what the user said, unless it is chatter; a near-repeat of a stored memory
    /// re-warms that memory instead of adding a copy.
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
        let context = context.filter(|c| self.config.embed_context && !c.trim().is_empty());
        // The turn's own embedding (from recall) fits unless a speaker name or the context
        // goes with it.
        let whole = vector.filter(|_| context.is_none() && u.speaker.is_none());
        let embedding = embed_memory(
            &self.embedder,
            &self.config,
            &memory_text(u),
            context,
            whole,
        )
        .await;
        let (memories, config, u) = (Arc::clone(&self.memories), self.config.clone(), u.clone());
        // With emotion off, every turn gets the neutral emotional share.
        let emotional = if self.emotion.enabled {
            crate::emotion::score(&u.text, u.audio.as_ref(), None).salience(&self.emotion)
        } else {
            self.emotion.neutral_salience
        };
        let (id, text) = (u.id.clone(), u.text.clone());
        let result = tokio::task::spawn_blocking(
            move || -> Result<(&'static str, Option<MemoryId>, f32), MemoriesError> {
                let salience = config.lifecycle.salience(&u.text, emotional);
                if salience < config.min_salience {
                    return Ok(("chatter, not stored", None, salience));
                }
                if let Some(e) = &embedding {
                    if let Some((mut same, cos)) =
                        memories.search_vector(&e.whole, 1)?.into_iter().next()
                    {
                        // Embeddings that include the context are alike for neighbouring
                        // turns; a repeat must also share most of its words, so that a new
                        // turn is never swallowed by the one before it.
                        if cos >= config.recurrence_similarity
                            && crate::words::overlap(&memory_text(&u), &same.text)
                                >= config.recurrence_word_overlap
                        {
                            config.lifecycle.rewarm(&mut same, now_ms);
                            memories.update(&same)?;
                            return Ok(("recurrence, re-warmed", Some(same.id), salience));
                        }
                    }
                }
                let m = memories.remember_embedded(
                    NewMemory {
                        text: memory_text(&u),
                        room: u.room.clone(),
                        speaker: Speaker::User,
                        created_at_ms: now_ms,
                        salience,
                        source: Some(u.id.clone()),
                    },
                    embedding.as_ref(),
                )?;
                Ok(("stored", Some(m.id), salience))
            },
        )
        .await;
        match result {
            Ok(Ok((what, memory, salience))) => {
                tracing::info!(%id, what, memory = ?memory, salience, "memory ingest");
                if let (Some(m), "stored") = (memory, what) {
                    self.extract(m, text, salience, now_ms);
                }
                memory
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

    /// Forgets one memory everywhere (store, full-text and vector index).
    pub async fn forget(&self, id: MemoryId) -> Result<bool, MemoriesError> {
        let memories = Arc::clone(&self.memories);
        tokio::task::spawn_blocking(move || memories.forget(id))
            .await
            .unwrap_or(Ok(false))
    }

    /// Memories that mention `topic` (every word of it), from a full-text search.
    pub async fn mentioning(&self, topic: &str) -> Result<Vec<Memory>, MemoriesError> {
        let (memories, topic) = (Arc::clone(&self.memories), topic.to_lowercase());
        tokio::task::spawn_blocking(move || {
            let words: Vec<&str> = topic.split_whitespace().collect();
            Ok(memories
                .search_text(&topic, 50)?
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| {
                    let text = m.text.to_lowercase();
                    words.iter().all(|w| text.contains(w))
                })
                .collect())
        })
        .await
        .unwrap_or(Ok(Vec::new()))
    }

    /// Replaces the stored fact that `fact` corrects: the most similar live memory, if its
    /// cosine is at least `memory.correction_similarity`. The old memory is superseded and
    /// kept. Returns (old, new), or `None` when nothing stored is close enough.
    pub async fn correct(
        &self,
        u: &Utterance,
        fact: &str,
        now_ms: u64,
    ) -> Result<Option<(Memory, Memory)>, MemoriesError> {
        let vector = match self.embedder.embed_one(fact).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot embed the correction");
                return Ok(None);
            }
        };
        let Some(vector) = vector else {
            return Ok(None);
        };
        let embedding = embed_memory(
            &self.embedder,
            &self.config,
            fact,
            None,
            Some(vector.clone()),
        )
        .await;
        let (memories, config, u, fact) = (
            Arc::clone(&self.memories),
            self.config.clone(),
            u.clone(),
            fact.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let target = memories
                .search_vector(&vector, 10)?
                .into_iter()
                .find(|(m, _)| {
                    m.speaker == Speaker::User
                        && m.tier != crate::memory::Tier::Archived
                        && crate::memory::lifecycle::valid_at(m, now_ms)
                })
                .filter(|(_, cos)| *cos >= config.correction_similarity);
            let Some((old, cos)) = target else {
                return Ok(None);
            };
            tracing::info!(old = old.id, cosine = cos, "correcting a memory");
            memories.correct(
                old.id,
                NewMemory {
                    salience: config.lifecycle.salience(&fact, 0.3),
                    text: fact,
                    room: u.room.clone(),
                    speaker: Speaker::User,
                    created_at_ms: now_ms,
                    source: Some(u.id.clone()),
                },
                embedding.as_ref(),
            )
        })
        .await
        .unwrap_or(Ok(None))
    }
}
