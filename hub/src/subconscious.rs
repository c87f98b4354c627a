//! The subconscious: before an answer it recalls what matters for the turn; after the answer
//! it re-warms what was recalled and stores the turn as a memory (or re-warms the memory it
//! repeats). Both run off the async workers, and no write delays a reply: each costs a sled
//! flush and a tantivy commit.

use std::sync::Arc;

use hearth_shared::Utterance;

use crate::config::MemoryConfig;
use crate::llm::embed::Embedder;
use crate::memory::retrieval::{render_context, retrieve};
use crate::memory::{Memories, MemoriesError, Memory, MemoryId, NewMemory, Speaker};

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
}

impl Subconscious {
    /// Over `memories`, embedding with `embedder`.
    pub fn new(memories: Arc<Memories>, embedder: Embedder, config: MemoryConfig) -> Subconscious {
        Subconscious {
            memories,
            embedder,
            config,
        }
    }

    /// The memories behind it.
    pub fn memories(&self) -> &Arc<Memories> {
        &self.memories
    }

    /// Recalls memories for `text`; nothing is written here (see [`Subconscious::rewarm`]).
    /// Failures are logged and give an empty recall: an answer without memories beats no
    /// answer.
    pub async fn recall(&self, text: &str, now_ms: u64) -> Recall {
        let vector = match self.embedder.embed(vec![text.to_string()]).await {
            Ok(mut v) => v.pop(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot embed the turn; recalling by words only");
                None
            }
        };
        let (memories, config, query) = (
            Arc::clone(&self.memories),
            self.config.clone(),
            text.to_string(),
        );
        let query_vector = vector.clone();
        let recalled = tokio::task::spawn_blocking(move || -> Result<_, MemoriesError> {
            let hits = retrieve(
                &memories,
                &query,
                query_vector.as_deref(),
                config.recall_k,
                now_ms,
                &config.retrieval,
                &config.lifecycle,
            )?;
            Ok((render_context(&hits, config.context_chars), hits))
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
    pub async fn ingest(
        &self,
        u: &Utterance,
        vector: Option<Vec<f32>>,
        now_ms: u64,
    ) -> Option<MemoryId> {
        let vector = match vector {
            Some(v) => Some(v),
            None => self
                .embedder
                .embed(vec![u.text.clone()])
                .await
                .ok()
                .and_then(|mut v| v.pop()),
        };
        let (memories, config, u) = (Arc::clone(&self.memories), self.config.clone(), u.clone());
        let id = u.id.clone();
        let result = tokio::task::spawn_blocking(
            move || -> Result<(&'static str, Option<MemoryId>), MemoriesError> {
                // Emotional scoring arrives with the emotion work; a neutral placeholder until then.
                let salience = config.lifecycle.salience(&u.text, 0.3);
                if salience < config.min_salience {
                    return Ok(("chatter, not stored", None));
                }
                if let Some(v) = &vector {
                    if let Some((mut same, cos)) = memories.search_vector(v, 1)?.into_iter().next()
                    {
                        if cos >= config.recurrence_similarity {
                            config.lifecycle.rewarm(&mut same, now_ms);
                            memories.update(&same)?;
                            return Ok(("recurrence, re-warmed", Some(same.id)));
                        }
                    }
                }
                let m = memories.remember(NewMemory {
                    text: u.text.clone(),
                    room: u.room.clone(),
                    speaker: Speaker::User,
                    created_at_ms: now_ms,
                    salience,
                    source: Some(u.id.clone()),
                })?;
                if let Some(v) = &vector {
                    memories.set_vector(m.id, v)?;
                }
                Ok(("stored", Some(m.id)))
            },
        )
        .await;
        match result {
            Ok(Ok((what, memory))) => {
                tracing::info!(%id, what, memory = ?memory, "memory ingest");
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
}
