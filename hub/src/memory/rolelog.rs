//! The role log: language-model jobs with their role, room, messages and output, and the
//! outcome signals that came after (the reply heard whole or cut off, a correction or "forget
//! that" that followed, the code keeping or refusing what the model wrote). It is what a
//! role's training examples are drawn from.
//!
//! It lives in the memory store's database (tree `role_log`), so backup, restore and wipe
//! cover it; forgetting drops every entry that says what was forgotten, and "forget
//! everything" drops them all. A job that began before a forget is not logged after it
//! ([`RoleLog::generation`]): its messages may say what was forgotten. It keeps at most the
//! number of entries it is given, the oldest going first. Each entry is flushed as it is
//! written, like a memory.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::store::MemoryStore;
use super::MemoryError;
use crate::llm::{ChatMessage, JobRole};

/// What followed a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The reply was said whole.
    Finished,
    /// The reply was cut short (barge-in, a newer utterance, "stop").
    Interrupted,
    /// The output guard changed or ended the reply (labels, a loop).
    Guarded,
    /// The next turn in the room corrected a fact.
    Corrected,
    /// The next turn in the room asked to forget what was just said.
    Forgotten,
    /// The code kept what the model wrote (a graph proposal, a summary, a reflection).
    Accepted,
    /// The code refused it, or used its own instead.
    Rejected,
    /// The job failed.
    Failed,
    /// The output stopped at the token limit, not where the model ended it (training
    /// learns its words but not its end).
    Truncated,
}

/// One message of a logged job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// One logged job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its id: later entries have higher ones.
    pub id: u64,
    /// When it ran, in ms since the epoch.
    pub at_ms: u64,
    /// The role's name (`consciousness`, `preprocessor`, ...).
    pub role: String,
    /// The room it was for ("" for household-wide work).
    pub room: String,
    /// The messages the model was given.
    pub messages: Vec<Said>,
    /// What it wrote (for an answer: what was said of it).
    pub output: String,
    /// What followed, in order.
    pub outcome: Vec<Signal>,
    /// The persona whose answer it was, if one answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
}

/// How many entries the log keeps until told otherwise (`roles.log_entries`).
pub const DEFAULT_ENTRIES: usize = 5000;

impl Entry {
    /// Whether the job is an example worth learning from: an answer said whole, not
    /// guarded, and not corrected or forgotten after; other work the code kept.
    pub fn good(&self) -> bool {
        let has = |s: Signal| self.outcome.contains(&s);
        let bad = [
            Signal::Interrupted,
            Signal::Guarded,
            Signal::Corrected,
            Signal::Forgotten,
            Signal::Rejected,
            Signal::Failed,
        ];
        let wanted = if self.role == JobRole::Consciousness.name() {
            Signal::Finished
        } else {
            Signal::Accepted
        };
        has(wanted) && !bad.into_iter().any(has) && !self.output.trim().is_empty()
    }

    /// The entry as a chat-format training example: its messages, then what the model
    /// wrote as the assistant's turn, with where it came from.
    pub fn example(&self) -> serde_json::Value {
        let mut messages: Vec<serde_json::Value> = self
            .messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect();
        messages.push(serde_json::json!({"role": "assistant", "content": self.output}));
        let mut example = serde_json::json!({
            "messages": messages,
            "role": self.role,
            "provenance": {
                "log_id": self.id,
                "at_ms": self.at_ms,
                "room": self.room,
                "outcome": self.outcome,
            },
        });
        if let Some(p) = &self.persona {
            example["provenance"]["persona"] = p.as_str().into();
        }
        example
    }
}

/// The role log in a memory store.
#[derive(Debug, Clone)]
pub struct RoleLog {
    store: MemoryStore,
    entries: sled::Tree,
    keep: Arc<AtomicUsize>,
    /// Entries in the tree (sled's `len` walks the whole tree).
    count: Arc<AtomicUsize>,
    /// Counts forgets and clears.
    generation: Arc<AtomicU64>,
    /// Held by every write that changes which entries there are, so that a record, a trim,
    /// a forget and a clear never interleave (and the count stays true).
    writing: Arc<Mutex<()>>,
}

impl RoleLog {
    /// The log in `store`, keeping [`DEFAULT_ENTRIES`].
    pub fn open(store: &MemoryStore) -> Result<RoleLog, MemoryError> {
        let entries = store.tree("role_log")?;
        let count = entries.len();
        Ok(RoleLog {
            store: store.clone(),
            entries,
            keep: Arc::new(AtomicUsize::new(DEFAULT_ENTRIES)),
            count: Arc::new(AtomicUsize::new(count)),
            generation: Arc::new(AtomicU64::new(0)),
            writing: Arc::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps at most `keep` entries (the oldest go first, now and from then on); 0 keeps
    /// none and logs nothing.
    pub fn keep(&self, keep: usize) -> Result<(), MemoryError> {
        self.keep.store(keep, Ordering::Relaxed);
        let _writing = self.lock();
        self.trim(keep)
    }

    /// Changes with every forget and clear. A job reads it as it begins and hands it to
    /// [`RoleLog::record`], which logs nothing if a forget came in between.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Logs a job that began at `generation` (an answer with the `persona` that gave it).
    /// Returns the entry's id: `None` when the log keeps nothing, or something was forgotten
    /// since the job began.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        role: JobRole,
        room: &str,
        persona: Option<&str>,
        messages: &[ChatMessage],
        output: &str,
        outcome: &[Signal],
        at_ms: u64,
        generation: u64,
    ) -> Result<Option<u64>, MemoryError> {
        let keep = self.keep.load(Ordering::Relaxed);
        let _writing = self.lock();
        if keep == 0 || generation != self.generation() {
            return Ok(None);
        }
        let id = self.store.next_id()?;
        let entry = Entry {
            id,
            at_ms,
            role: role.name().to_string(),
            room: room.to_string(),
            messages: messages
                .iter()
                .map(|m| Said {
                    role: m.role.as_str().to_string(),
                    content: m.content.clone(),
                })
                .collect(),
            output: output.to_string(),
            outcome: outcome.to_vec(),
            persona: persona.map(str::to_string),
        };
        let bytes = serde_json::to_vec(&entry).expect("an entry serialises");
        let before = self
            .entries
            .insert(id.to_be_bytes(), bytes)
            .map_err(|e| self.store.storage(e))?;
        if before.is_none() {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
        self.trim(keep)?;
        self.store.flush()?;
        Ok(Some(id))
    }

    /// Drops the oldest entries beyond `keep` (the caller holds the lock).
    fn trim(&self, keep: usize) -> Result<(), MemoryError> {
        while self.count.load(Ordering::SeqCst) > keep {
            match self.entries.pop_min().map_err(|e| self.store.storage(e))? {
                Some(_) => self.uncount(),
                None => {
                    self.count.store(0, Ordering::SeqCst);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Adds `signal` to entry `id`'s outcome, in one step (an entry forgotten meanwhile
    /// stays gone). False when the entry is gone.
    pub fn mark(&self, id: u64, signal: Signal) -> Result<bool, MemoryError> {
        let mut found = false;
        self.entries
            .fetch_and_update(id.to_be_bytes(), |old| {
                found = old.is_some();
                let old = old?;
                let Ok(mut entry) = serde_json::from_slice::<Entry>(old) else {
                    return Some(old.to_vec());
                };
                if !entry.outcome.contains(&signal) {
                    entry.outcome.push(signal);
                }
                Some(serde_json::to_vec(&entry).expect("an entry serialises"))
            })
            .map_err(|e| self.store.storage(e))?;
        self.store.flush()?;
        Ok(found)
    }

    /// Entry `id`.
    pub fn get(&self, id: u64) -> Result<Option<Entry>, MemoryError> {
        match self
            .entries
            .get(id.to_be_bytes())
            .map_err(|e| self.store.storage(e))?
        {
            Some(bytes) => Ok(Some(self.decode(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every entry, oldest first; with `role`, that role's only.
    pub fn entries(&self, role: Option<JobRole>) -> Result<Vec<Entry>, MemoryError> {
        let mut out = Vec::new();
        for item in self.entries.iter() {
            let (key, value) = item.map_err(|e| self.store.storage(e))?;
            let id = key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            let entry = self.decode(id, &value)?;
            if role.is_none_or(|r| r.name() == entry.role) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Writes `role`'s good examples ([`Entry::good`]) to `out`, one JSON object per line
    /// ([`Entry::example`]); with `starting_with`, only those whose output starts with it
    /// (the examples that show a behaviour being taught). Returns how many were written and
    /// how many were left out.
    pub fn export_jsonl(
        &self,
        role: JobRole,
        starting_with: Option<&str>,
        out: impl std::io::Write,
    ) -> Result<(usize, usize), ExportError> {
        let shows = |e: &Entry| starting_with.is_none_or(|s| e.output.starts_with(s));
        self.export_jsonl_where(role, shows, out)
    }

    /// [`RoleLog::export_jsonl`] of the good examples that `shows` keeps.
    pub fn export_jsonl_where(
        &self,
        role: JobRole,
        shows: impl Fn(&Entry) -> bool,
        mut out: impl std::io::Write,
    ) -> Result<(usize, usize), ExportError> {
        let (mut written, mut left) = (0, 0);
        for entry in self.entries(Some(role))? {
            if !entry.good() || !shows(&entry) {
                left += 1;
                continue;
            }
            serde_json::to_writer(&mut out, &entry.example()).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        out.flush()?;
        Ok((written, left))
    }

    /// Drops every entry whose messages or output say one of `said` (forgotten memories'
    /// texts, compared word by word, case and punctuation aside). Returns how many went.
    pub fn forget(&self, said: &[String]) -> Result<usize, MemoryError> {
        let said = crate::words::phrases(said);
        if said.is_empty() {
            return Ok(0);
        }
        let _writing = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut dropped = 0;
        for entry in self.entries(None)? {
            let mut texts = entry
                .messages
                .iter()
                .map(|m| m.content.as_str())
                .chain([entry.output.as_str()]);
            let says = texts.any(|t| crate::words::says_any(t, &said));
            let removed = says
                && self
                    .entries
                    .remove(entry.id.to_be_bytes())
                    .map_err(|e| self.store.storage(e))?
                    .is_some();
            if removed {
                self.uncount();
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.store.flush()?;
        }
        Ok(dropped)
    }

    /// Drops every entry ("forget everything"). Returns how many there were.
    pub fn clear(&self) -> Result<usize, MemoryError> {
        let _writing = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let n = self.count.swap(0, Ordering::SeqCst);
        self.entries.clear().map_err(|e| self.store.storage(e))?;
        self.store.flush()?;
        Ok(n)
    }

    fn uncount(&self) {
        let _ = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn decode(&self, id: u64, bytes: &[u8]) -> Result<Entry, MemoryError> {
        serde_json::from_slice(bytes).map_err(|e| MemoryError::Corrupt {
            path: "role_log".into(),
            id,
            reason: e.to_string(),
        })
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] MemoryError),
    /// The output could not be written.
    #[error("cannot write the examples: {0}")]
    Write(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;

    fn messages(user: &str) -> Vec<ChatMessage> {
        vec![
            ChatMessage::new(Role::System, "You are Hearth."),
            ChatMessage::new(Role::User, user),
        ]
    }

    fn record(log: &RoleLog, role: JobRole, text: &str, generation: u64) -> Option<u64> {
        let signals = [Signal::Finished];
        log.record(
            role,
            "kitchen",
            None,
            &messages(text),
            "Sure.",
            &signals,
            1,
            generation,
        )
        .unwrap()
    }

    #[test]
    fn entries_are_kept_bounded_marked_and_forgotten() {
        let store = MemoryStore::temporary().unwrap();
        let log = RoleLog::open(&store).unwrap();
        let c = JobRole::Consciousness;
        log.keep(0).unwrap();
        assert_eq!(record(&log, c, "hi", 0), None, "keep 0 logs nothing");
        log.keep(3).unwrap();
        let texts = [
            "hello",
            "my locker code is 4471",
            "what time is it",
            "thanks",
        ];
        let ids: Vec<u64> = texts
            .iter()
            .map(|t| record(&log, c, t, 0).unwrap())
            .collect();
        record(&log, JobRole::Preprocessor, "fold", 0).unwrap();
        let all = log.entries(None).unwrap();
        assert_eq!(all.len(), 3, "the oldest went first");
        assert_eq!(log.len(), 3);
        assert!(all.iter().all(|e| e.id != ids[0] && e.id != ids[1]));
        assert_eq!(log.entries(Some(JobRole::Preprocessor)).unwrap().len(), 1);

        assert!(log.mark(ids[2], Signal::Corrected).unwrap());
        assert!(log.mark(ids[2], Signal::Corrected).unwrap());
        assert_eq!(
            log.get(ids[2]).unwrap().unwrap().outcome,
            [Signal::Finished, Signal::Corrected],
            "a signal is added once"
        );
        assert!(!log.mark(ids[0], Signal::Forgotten).unwrap(), "gone");
        assert!(
            log.get(ids[0]).unwrap().is_none(),
            "marking brings nothing back"
        );

        let before = log.generation();
        assert_eq!(log.forget(&["What time is it?".into()]).unwrap(), 1);
        assert_eq!(log.len(), 2);
        assert_eq!(
            record(&log, c, "my locker code is 4471", before),
            None,
            "a job begun before a forget is not logged after it"
        );
        assert!(record(&log, c, "hello again", log.generation()).is_some());
        log.keep(1).unwrap();
        assert_eq!(
            log.entries(None).unwrap().len(),
            1,
            "a lower bound trims at once"
        );
        assert_eq!(log.clear().unwrap(), 1);
        assert!(log.is_empty());

        // Export: good examples only, as chat messages ending in the model's turn.
        log.keep(100).unwrap();
        let g = log.generation();
        let said = |outcome: &[Signal], role| {
            log.record(role, "hall", None, &messages("hi"), "Hello!", outcome, 5, g)
                .unwrap()
                .unwrap()
        };
        let good = said(&[Signal::Finished], c);
        said(&[Signal::Finished, Signal::Corrected], c);
        said(&[Signal::Interrupted], c);
        said(&[Signal::Rejected], JobRole::Preprocessor);
        said(&[Signal::Accepted], JobRole::Preprocessor);
        let mut out = Vec::new();
        assert_eq!(log.export_jsonl(c, None, &mut out).unwrap(), (1, 2));
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            line["messages"][2],
            serde_json::json!({"role": "assistant", "content": "Hello!"})
        );
        assert_eq!(line["messages"][0]["role"], "system");
        assert_eq!(line["provenance"]["log_id"], good);
        assert_eq!(
            line["provenance"]["outcome"],
            serde_json::json!(["finished"])
        );
        let mut out = Vec::new();
        assert_eq!(
            log.export_jsonl(JobRole::Preprocessor, None, &mut out)
                .unwrap(),
            (1, 1)
        );
        let mut out = Vec::new();
        assert_eq!(
            log.export_jsonl(c, Some("Hello"), &mut out).unwrap(),
            (1, 2)
        );
        assert_eq!(
            log.export_jsonl(c, Some("Howdy"), &mut out).unwrap(),
            (0, 3)
        );
        // An answer keeps the persona that gave it, and its example says so.
        let signals = [Signal::Finished];
        let brick = (log.record(
            c,
            "hall",
            Some("Brick"),
            &messages("hi"),
            "Hm.",
            &signals,
            6,
            log.generation(),
        ))
        .unwrap()
        .unwrap();
        let entry = log.entries(Some(c)).unwrap().pop().unwrap();
        assert_eq!((entry.id, entry.persona.as_deref()), (brick, Some("Brick")));
        assert_eq!(entry.example()["provenance"]["persona"], "Brick");
        // An entry written before personas reads back without one.
        let mut old = serde_json::to_value(&entry).unwrap();
        old.as_object_mut().unwrap().remove("persona");
        let old: Entry = serde_json::from_value(old).unwrap();
        assert_eq!(old.persona, None);
        assert!(old.example()["provenance"].get("persona").is_none());
        log.clear().unwrap();

        // The count survives a restart.
        record(&log, c, "one", log.generation());
        drop(log);
        assert_eq!(RoleLog::open(&store).unwrap().len(), 1);
    }
}
