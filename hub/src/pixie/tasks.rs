//! Pixie's persisted task queue: the work the hub does between conversations (the memory
//! sweep, reflection on a conversation that has gone quiet, a follow-up question about an
//! open topic). Kept in sled beside the reminders, so a restart resumes it.
//!
//! At most one task of a kind per room waits: scheduling a reflection for a room that already
//! has one moves it (the conversation went on), so it runs only after the room is quiet.

use serde::{Deserialize, Serialize};

use super::reminders::ReminderError;
use crate::llm::{ChatMessage, Role};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// The memory lifecycle sweep (expiry, decay, consolidation); it schedules the next.
    Sweep,
    /// Think over a room's conversation once it has gone quiet.
    Reflect {
        /// The room.
        room: String,
    },
    /// Ask about an open topic, in the room where it came up.
    FollowUp {
        /// The room.
        room: String,
        /// The topic, in a few words.
        topic: String,
        /// The question to ask.
        question: String,
    },
}

impl Work {
    /// Tasks with the same slot replace each other.
    fn slot(&self) -> String {
        match self {
            Work::Sweep => "sweep".into(),
            Work::Reflect { room } => format!("reflect/{room}"),
            Work::FollowUp { room, .. } => format!("follow-up/{room}"),
        }
    }
}

/// A scheduled task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Unique in the store.
    pub id: u64,
    /// What to do.
    pub work: Work,
    /// When it is due, in ms since the epoch.
    pub due_ms: u64,
    /// When it was scheduled.
    pub created_ms: u64,
}

/// The task queue, in the reminder database's `tasks` tree; flushed after every write.
#[derive(Debug, Clone)]
pub struct Tasks {
    db: sled::Db,
    tree: sled::Tree,
}

impl Tasks {
    /// Opens the queue in `db`.
    pub fn open(db: &sled::Db) -> Result<Tasks, ReminderError> {
        Ok(Tasks {
            db: db.clone(),
            tree: db.open_tree("tasks")?,
        })
    }

    /// Schedules `work` at `due_ms`, replacing a waiting task in the same slot.
    pub fn schedule(&self, work: Work, due_ms: u64, now_ms: u64) -> Result<Task, ReminderError> {
        for old in self.pending()? {
            if old.work.slot() == work.slot() {
                self.tree.remove(old.id.to_be_bytes())?;
            }
        }
        let task = Task {
            id: crate::memory::store::next_id(&self.db)?,
            work,
            due_ms,
            created_ms: now_ms,
        };
        self.put(&task)?;
        Ok(task)
    }

    /// Moves a task to a later time (it could not run now).
    pub fn postpone(&self, task: &Task, due_ms: u64) -> Result<(), ReminderError> {
        self.put(&Task {
            due_ms,
            ..task.clone()
        })
    }

    /// Writes `task` durably.
    fn put(&self, task: &Task) -> Result<(), ReminderError> {
        let value = serde_json::to_vec(task).expect("a task always serialises");
        self.tree.insert(task.id.to_be_bytes(), value)?;
        self.db.flush()?;
        Ok(())
    }

    /// Removes a finished task.
    pub fn done(&self, id: u64) -> Result<(), ReminderError> {
        self.tree.remove(id.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Every waiting task, soonest first; a damaged record is logged and dropped.
    pub fn pending(&self) -> Result<Vec<Task>, ReminderError> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (key, value) = item?;
            match serde_json::from_slice::<Task>(&value) {
                Ok(t) => out.push(t),
                Err(e) => {
                    tracing::error!(error = %e, "dropping a damaged task");
                    self.tree.remove(key)?;
                }
            }
        }
        out.sort_by_key(|t| (t.due_ms, t.id));
        Ok(out)
    }

    /// Tasks due at `now_ms` or before.
    pub fn due(&self, now_ms: u64) -> Result<Vec<Task>, ReminderError> {
        let mut due = self.pending()?;
        due.retain(|t| t.due_ms <= now_ms);
        Ok(due)
    }
}

/// What the language model writes when it reflects on a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Reflection {
    /// One sentence on how the user seems and what mattered.
    pub reflection: String,
    /// An open topic worth asking about later, or empty.
    pub topic: String,
    /// A short, caring question about it, or empty.
    pub question: String,
}

/// The JSON schema of a [`Reflection`], for the grammar.
pub fn reflection_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "reflection": { "type": "string", "maxLength": 200 },
            "topic": { "type": "string", "maxLength": 60 },
            "question": { "type": "string", "maxLength": 120 }
        },
        "required": ["reflection", "topic", "question"],
        "additionalProperties": false
    })
}

/// The prompt for reflecting on `exchanges` (user, assistant), oldest first.
pub fn reflection_prompt(exchanges: &[(String, String)]) -> Vec<ChatMessage> {
    let transcript: Vec<String> = exchanges
        .iter()
        .map(|(user, hearth)| format!("User: {user}\nHearth: {hearth}"))
        .collect();
    vec![
        ChatMessage::new(
            Role::System,
            "You are Hearth, thinking quietly after a conversation. Write JSON with: \
             reflection: one sentence on how the user seems and what mattered to them; \
             topic: an open topic worth asking about later in a few words, or empty; \
             question: a short, caring question to ask about it later, or empty.",
        ),
        ChatMessage::new(Role::User, transcript.join("\n")),
    ]
}

/// Parses what the model wrote; `None` for anything but a complete reflection.
pub fn parse_reflection(text: &str) -> Option<Reflection> {
    let r: Reflection = serde_json::from_str(text.trim()).ok()?;
    // The question is spoken later, and the reflection recalled into prompts: neither may
    // carry the prompt's labels or role markers.
    let r = Reflection {
        reflection: crate::guard::clean(&r.reflection),
        topic: crate::guard::clean(&r.topic),
        question: crate::guard::clean(&r.question),
    };
    (!r.reflection.is_empty()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_survive_a_reopen_and_a_slot_holds_one() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = crate::memory::store::open_db(dir.path()).unwrap();
            let tasks = Tasks::open(&db).unwrap();
            tasks.schedule(Work::Sweep, 5_000, 0).unwrap();
            let room = |r: &str| Work::Reflect { room: r.into() };
            tasks.schedule(room("kitchen"), 1_000, 0).unwrap();
            tasks.schedule(room("study"), 2_000, 0).unwrap();
            // The kitchen talked again: its reflection moves, it is not doubled.
            tasks.schedule(room("kitchen"), 3_000, 500).unwrap();
        }
        let db = crate::memory::store::open_db(dir.path()).unwrap();
        let tasks = Tasks::open(&db).unwrap();
        let pending = tasks.pending().unwrap();
        let order: Vec<(u64, String)> = pending.iter().map(|t| (t.due_ms, t.work.slot())).collect();
        assert_eq!(
            order,
            [
                (2_000, "reflect/study".to_string()),
                (3_000, "reflect/kitchen".to_string()),
                (5_000, "sweep".to_string())
            ]
        );
        assert_eq!(tasks.due(2_500).unwrap().len(), 1);
        tasks.postpone(&pending[0], 4_000).unwrap();
        assert!(tasks.due(2_500).unwrap().is_empty());
        tasks.done(pending[1].id).unwrap();
        assert_eq!(tasks.pending().unwrap().len(), 2);
    }

    #[test]
    fn reflections_parse_only_when_complete() {
        let r = parse_reflection(
            r#"{"reflection":"The user is worried about the exam.","topic":"the exam","question":"How did the exam go?"}"#,
        )
        .unwrap();
        assert_eq!(r.topic, "the exam");
        assert_eq!(
            parse_reflection(r#"{"reflection":"  ","topic":"","question":""}"#),
            None
        );
        assert_eq!(parse_reflection(r#"{"reflection":"cut off"#), None);
        let prompt = reflection_prompt(&[("I have an exam".into(), "Good luck!".into())]);
        assert!(prompt[1]
            .content
            .contains("User: I have an exam\nHearth: Good luck!"));
    }
}
