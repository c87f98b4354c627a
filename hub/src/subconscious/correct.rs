//! Spoken corrections ("actually ...", "not Leeds but York", "I meant 4813") applied to the
//! stored fact they mean: which fact that is (`correction_target`), and the superseding
//! write. Never a question or a request.

use std::sync::Arc;

use hearth_shared::Utterance;

use super::{embed_memory, memory_text, spoken, told_and_current, Subconscious};
use crate::controls::Correction;
use crate::memory::facts;
use crate::memory::kind::classify;
use crate::memory::{MemoriesError, Memory, MemoryId, NewMemory, Speaker};

impl Subconscious {
    /// Applies a spoken correction to the stored fact it means, never to a question or a
    /// request. In order: the fact that holds the wrong value it names ("not Leeds"); the
    /// stored value of the slot it restates; the fact its partial restatement fits into ("the
    /// code is 4813"); for a value alone ("I meant 4813"), the last fact stored in the room
    /// (`last`); else the fact closest in meaning, if at least `memory.correction_similarity`
    /// close and clearly closer than any other. The old fact is superseded and kept.
    pub async fn correct(
        &self,
        u: &Utterance,
        c: &Correction,
        last: Option<MemoryId>,
        now_ms: u64,
    ) -> Result<Corrected, MemoriesError> {
        let vector = match self.embedder.embed_one(&c.said).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot embed the correction; matching by words");
                None
            }
        };
        let this = self.clone();
        let (c, u) = (c.clone(), u.clone());
        let found = tokio::task::spawn_blocking(move || {
            this.correction_target(&c, vector.as_deref(), last, now_ms)
        })
        .await
        .unwrap_or(Ok(Target::Nothing))?;
        let (old, text) = match found {
            Target::Nothing => return Ok(Corrected::Nothing),
            Target::Ambiguous(a, b) => return Ok(Corrected::Ambiguous(a, b)),
            Target::Fact(old, text) => (old, text),
        };
        let text = memory_text(&Utterance {
            text,
            speaker: crate::memory::record::speaker_of(&old.text).map(str::to_string),
            ..u.clone()
        });
        let embedding = embed_memory(&self.embedder, &self.config, &text, None, None).await;
        let (memories, salience) = (
            Arc::clone(&self.memories),
            self.config.lifecycle.salience(&text, 0.3),
        );
        let new = NewMemory {
            salience,
            text,
            room: u.room.clone(),
            speaker: Speaker::User,
            created_at_ms: now_ms,
            source: Some(u.id.clone()),
        };
        tracing::info!(old = old.id, "correcting a memory");
        tracing::debug!(old = old.id, text = %new.text, "the corrected text");
        let done =
            tokio::task::spawn_blocking(move || memories.correct(old.id, new, embedding.as_ref()))
                .await
                .unwrap_or(Ok(None))?;
        Ok(match done {
            Some((old, new)) => Corrected::Done { old, new },
            None => Corrected::Nothing,
        })
    }

    /// Which fact a correction means, and its corrected text (blocking).
    fn correction_target(
        &self,
        c: &Correction,
        vector: Option<&[f32]>,
        last: Option<MemoryId>,
        now_ms: u64,
    ) -> Result<Target, MemoriesError> {
        // Only a live fact someone told can be corrected, never a question or a request.
        let fact = |m: &Memory| told_and_current(m, now_ms) && classify(spoken(&m.text)).stored();
        let newest_first = |mut v: Vec<Memory>| {
            // The last fact stored in the room first, then the newest.
            v.sort_by_key(|m| (Some(m.id) != last, std::cmp::Reverse(m.created_at_ms)));
            v
        };
        if let Some(wrong) = &c.wrong {
            let holding: Vec<Memory> = self
                .memories
                .search_text(wrong, 20)?
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| fact(m) && facts::find_words(spoken(&m.text), wrong).is_some())
                .collect();
            // The last fact stored in the room may say the value in words ("at eight").
            let mut holding = newest_first(holding);
            if let Some(last) = last.map(|id| self.memories.store().get(id)).transpose()? {
                holding.extend(last.filter(|m| fact(m)));
            }
            let value = c.value.as_deref().unwrap_or(&c.said);
            for old in holding {
                if let Some(text) = facts::replace_words(spoken(&old.text), wrong, value) {
                    return Ok(Target::Fact(old, text));
                }
            }
            // A wrong value nobody said: nothing to correct.
            return Ok(Target::Nothing);
        }
        let near: Vec<(Memory, f32)> = match vector {
            Some(v) => self.memories.search_vector(v, 10)?,
            None => Vec::new(),
        };
        let mut candidates: Vec<Memory> = near.iter().map(|(m, _)| m.clone()).collect();
        candidates.extend(
            self.memories
                .search_text(&c.said, 10)?
                .into_iter()
                .map(|(m, _)| m),
        );
        candidates.retain(|m| fact(m));
        let slot: Vec<Memory> = candidates
            .iter()
            .filter(|m| facts::slot_value_at(&c.said, spoken(&m.text)).is_some())
            .cloned()
            .collect();
        if let Some(old) = newest_first(slot).into_iter().next() {
            return Ok(Target::Fact(old, c.said.clone()));
        }
        for m in &candidates {
            if let Some(text) = facts::rebase(spoken(&m.text), &c.said) {
                return Ok(Target::Fact(m.clone(), text));
            }
        }
        if crate::words::words(&c.said).len() <= 3 {
            let last = match last {
                Some(id) => self.memories.store().get(id)?.filter(|m| fact(m)),
                None => None,
            };
            if let Some(old) = last {
                if let Some(text) = facts::replace_like(spoken(&old.text), &c.said) {
                    return Ok(Target::Fact(old, text));
                }
            }
            return Ok(Target::Nothing);
        }
        let close: Vec<&(Memory, f32)> = near
            .iter()
            .filter(|(m, cos)| fact(m) && *cos >= self.config.correction_similarity)
            .collect();
        match close.as_slice() {
            [] => Ok(Target::Nothing),
            [(a, ca), (b, cb), ..]
                if ca - cb < AMBIGUOUS_MARGIN
                    && facts::particulars(spoken(&a.text))
                        != facts::particulars(spoken(&b.text)) =>
            {
                Ok(Target::Ambiguous(a.clone(), b.clone()))
            }
            [(a, _), ..] => Ok(Target::Fact(a.clone(), c.said.clone())),
        }
    }
}

/// Two facts this close to a correction (cosine) could both be meant: ask which.
const AMBIGUOUS_MARGIN: f32 = 0.03;

/// What a correction did.
#[derive(Debug, Clone)]
pub enum Corrected {
    /// `old` is superseded by `new`.
    Done {
        /// The fact as it was, kept as history.
        old: Memory,
        /// The fact as it is now.
        new: Memory,
    },
    /// Either of two facts could be meant; nothing changed.
    Ambiguous(Memory, Memory),
    /// No stored fact is what it corrects; nothing changed.
    Nothing,
}

/// The fact a correction means, and its corrected text.
enum Target {
    Fact(Memory, String),
    Ambiguous(Memory, Memory),
    Nothing,
}
