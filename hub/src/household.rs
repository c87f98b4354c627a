//! What the hub knows about the household between messages, as one owned structure: the
//! terminals and rooms, each room's conversation, Hearth's mood, what is being answered where,
//! and the memory each room stored last.
//!
//! **Locking rule:** [`Home`] is the only lock. It is taken through [`Home::with`], whose
//! closure cannot await, so the lock is never held across an `.await`, a model call or a store
//! write; take what you need, let go, then do the slow part. No other lock is taken inside it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use hearth_shared::{Cancel, CancelReason, Utterance};
use tokio_util::sync::CancellationToken;

use crate::conversation::Conversations;
use crate::emotion::Mood;
use crate::live::Live;
use crate::memory::MemoryId;
use crate::rooms::Rooms;

/// The household state, behind one mutex.
#[derive(Debug)]
pub struct Home {
    inner: Mutex<Household>,
    /// What happens, for watchers (the dashboard). Outside the lock: publishing never waits.
    pub live: Live,
}

impl Home {
    /// A household with nobody heard yet.
    pub fn new(household: Household) -> Home {
        Home {
            inner: Mutex::new(household),
            live: Live::default(),
        }
    }

    /// Runs `f` with the household locked. Keep `f` short: no I/O, no waiting.
    pub fn with<R>(&self, f: impl FnOnce(&mut Household) -> R) -> R {
        // A panic inside `f` leaves plain data behind, still consistent field by field: go on.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

/// Everything the hub remembers between messages that is not in a store.
#[derive(Debug)]
pub struct Household {
    /// Terminals, where the user was heard, where the hub is answering.
    pub rooms: Rooms,
    /// Recent exchanges per room.
    pub conversations: Conversations,
    /// Hearth's mood.
    pub mood: Mood,
    /// Each room's last user turn, for topic switches in emotion scoring.
    pub last_turn: HashMap<String, String>,
    /// The memory last stored from each room and when, for "forget that" and "I meant
    /// 4813".
    pub last_stored: HashMap<String, (MemoryId, u64)>,
    /// Each room's last answer in the role log and when, for what follows it (a
    /// correction, "forget that").
    pub last_answer: HashMap<String, LoggedAnswer>,
    /// Each room's forget request waiting for a yes ("that's 3 memories: ... shall I?").
    pub pending_forget: HashMap<String, PendingForget>,
    /// Pixie tasks being run now.
    pub running: HashSet<u64>,
    /// The reply being answered for each terminal.
    in_flight: HashMap<String, InFlight>,
    /// The last finished reply of each terminal, which a late cancel can still trim.
    finished: HashMap<String, Reply>,
}

/// A forget request that would remove more than one memory, asked about first.
#[derive(Debug, Clone)]
pub struct PendingForget {
    /// The memories that would go.
    pub ids: Vec<MemoryId>,
    /// What they are about, as the user said it ("" for the last thing said, or all).
    pub topic: String,
    /// Whether it is everything.
    pub everything: bool,
    /// When the question was asked, in ms since the epoch.
    pub asked_ms: u64,
}

/// A reply to one utterance, as far as it was sent.
#[derive(Debug)]
struct Reply {
    utterance_id: String,
    room: String,
    /// The chunk texts sent so far, by `seq`.
    sent: Vec<String>,
}

/// A reply in progress.
#[derive(Debug)]
struct InFlight {
    reply: Reply,
    cancel: CancellationToken,
    interrupted: Option<Interrupted>,
}

/// Why a reply stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The terminal says the person spoke the wake word over it.
    BargeIn,
    /// The terminal says the person stopped it another way.
    Stop,
    /// A newer utterance from the same terminal took its place.
    NewerUtterance,
    /// Its token fired without a cancel from the terminal (shutdown).
    Cancelled,
}

impl From<CancelReason> for Why {
    fn from(reason: CancelReason) -> Why {
        match reason {
            CancelReason::BargeIn => Why::BargeIn,
            CancelReason::Stop => Why::Stop,
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::BargeIn => "barge-in",
            Why::Stop => "stop",
            Why::NewerUtterance => "a newer utterance",
            Why::Cancelled => "cancelled",
        })
    }
}

/// Why a reply stopped before its end, and how much of it the person heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// The first chunks heard, by `seq`; `None`: all that was sent.
    pub heard_chunks: Option<u32>,
    /// Why.
    pub why: Why,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The reply was still being written; it stops now.
    InFlight,
    /// The reply had ended; the room's history now keeps only this much of it.
    Trimmed(String),
    /// No reply of that id is known (too old, or never seen).
    Unknown,
}

/// A room's last answer in the role log.
#[derive(Debug, Clone)]
pub struct LoggedAnswer {
    /// Its role-log entry.
    pub id: u64,
    /// When it was logged, in ms since the epoch.
    pub at_ms: u64,
    /// The utterance it answered.
    pub utterance: String,
}

/// What an admitted utterance needs to be answered.
#[derive(Debug)]
pub struct Admitted {
    /// Fires when the reply is cancelled (by the terminal, a newer utterance, or shutdown).
    pub cancel: CancellationToken,
    /// Whether another room was being answered already.
    pub others_first: bool,
}

impl Household {
    /// An empty household with `conversations` and Hearth's `mood`.
    pub fn new(conversations: Conversations, mood: Mood) -> Household {
        Household {
            rooms: Rooms::default(),
            conversations,
            mood,
            last_turn: HashMap::new(),
            last_stored: HashMap::new(),
            last_answer: HashMap::new(),
            pending_forget: HashMap::new(),
            running: HashSet::new(),
            in_flight: HashMap::new(),
            finished: HashMap::new(),
        }
    }

    /// A new utterance from its terminal, heard at `now_ms`: a reply still in flight for that
    /// terminal is cancelled (the person moved on), and the room counts as answering until
    /// [`Household::finish`]. `parent` is the shutdown token.
    pub fn admit(&mut self, u: &Utterance, parent: &CancellationToken, now_ms: u64) -> Admitted {
        // The older turn sees its token, and at its finish that it is no longer in flight.
        if let Some(old) = self.in_flight.get(&u.terminal) {
            old.cancel.cancel();
        }
        // A question typed on the dashboard does not say where the person is.
        if !crate::live::is_dashboard(&u.terminal) {
            self.rooms.heard(&u.room, now_ms);
        }
        let others_first = self.rooms.answering_elsewhere(&u.room);
        self.rooms.answering(&u.room);
        let cancel = parent.child_token();
        self.in_flight.insert(
            u.terminal.clone(),
            InFlight {
                reply: Reply {
                    utterance_id: u.id.clone(),
                    room: u.room.clone(),
                    sent: Vec::new(),
                },
                cancel: cancel.clone(),
                interrupted: None,
            },
        );
        Admitted {
            cancel,
            others_first,
        }
    }

    /// Chunk text `text` of `utterance_id` went to its terminal.
    pub fn sent(&mut self, terminal: &str, utterance_id: &str, text: &str) {
        if let Some(f) = self.in_flight.get_mut(terminal) {
            if f.reply.utterance_id == utterance_id {
                f.reply.sent.push(text.to_string());
            }
        }
    }

    /// A terminal cancels a reply.
    pub fn cancel(&mut self, c: &Cancel) -> Cancelled {
        if let Some(f) = self.in_flight.get_mut(&c.terminal) {
            if f.reply.utterance_id == c.utterance_id {
                f.interrupted = Some(Interrupted {
                    heard_chunks: c.heard_chunks,
                    why: c.reason.into(),
                });
                f.cancel.cancel();
                return Cancelled::InFlight;
            }
        }
        let Some(done) = self.finished.get(&c.terminal) else {
            return Cancelled::Unknown;
        };
        if done.utterance_id != c.utterance_id {
            return Cancelled::Unknown;
        }
        let kept = heard(&done.sent, c.heard_chunks);
        let room = done.room.clone();
        self.conversations.trim(&room, &c.utterance_id, &kept);
        self.finished.remove(&c.terminal);
        Cancelled::Trimmed(kept)
    }

    /// The turn for `u` is over at `now_ms`. Returns how it was interrupted, if it was, and
    /// the text the person heard of it (all that was sent, unless a cancel said less).
    pub fn finish(&mut self, u: &Utterance, now_ms: u64) -> (Option<Interrupted>, String) {
        self.rooms.answered(&u.room, now_ms);
        let current = self
            .in_flight
            .get(&u.terminal)
            .is_some_and(|f| f.reply.utterance_id == u.id);
        if !current {
            // A newer utterance took its place; nothing it sent after that was listened to.
            let newer = Interrupted {
                heard_chunks: None,
                why: Why::NewerUtterance,
            };
            return (Some(newer), String::new());
        }
        let f = self.in_flight.remove(&u.terminal).expect("checked above");
        let kept = heard(
            &f.reply.sent,
            f.interrupted.as_ref().and_then(|i| i.heard_chunks),
        );
        // A question typed on the dashboard (its own terminal id, never cancelled later)
        // leaves nothing for a late cancel to trim.
        if f.interrupted.is_none() && !crate::live::is_dashboard(&u.terminal) {
            self.finished.insert(u.terminal.clone(), f.reply);
        }
        (f.interrupted, kept)
    }
}

/// The first `chunks` texts (all without a count), joined as spoken.
fn heard(sent: &[String], chunks: Option<u32>) -> String {
    let n = chunks.map_or(sent.len(), |n| (n as usize).min(sent.len()));
    sent[..n]
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utterance(terminal: &str, id: &str) -> Utterance {
        Utterance {
            id: id.into(),
            terminal: terminal.into(),
            room: "kitchen".into(),
            text: "hello".into(),
            started_at_ms: 0,
            ended_at_ms: 0,
            audio: None,
            speaker: None,
        }
    }

    fn household() -> Household {
        Household::new(
            Conversations::new(4, 8),
            Mood::resting(&Default::default(), 0),
        )
    }

    #[test]
    fn a_cancel_in_flight_stops_the_reply_and_keeps_what_was_heard() {
        let mut h = household();
        let root = CancellationToken::new();
        let u = utterance("k1", "u1");
        let a = h.admit(&u, &root, 1);
        h.sent("k1", "u1", "One.");
        h.sent("k1", "u1", "Two.");
        let c = Cancel {
            utterance_id: "u1".into(),
            terminal: "k1".into(),
            heard_chunks: Some(1),
            reason: CancelReason::BargeIn,
        };
        assert_eq!(h.cancel(&c), Cancelled::InFlight);
        assert!(a.cancel.is_cancelled());
        let (interrupted, kept) = h.finish(&u, 2);
        assert_eq!(interrupted.unwrap().why, Why::BargeIn);
        assert_eq!(kept, "One.");
        assert!(!h.rooms.answering_anywhere());
        // Once over, the same cancel finds nothing to trim: it was not kept as finished.
        assert_eq!(h.cancel(&c), Cancelled::Unknown);
    }

    #[test]
    fn a_newer_utterance_cancels_the_older_one() {
        let mut h = household();
        let root = CancellationToken::new();
        let (u1, u2) = (utterance("k1", "u1"), utterance("k1", "u2"));
        let a1 = h.admit(&u1, &root, 1);
        h.sent("k1", "u1", "One.");
        let a2 = h.admit(&u2, &root, 2);
        assert!(a1.cancel.is_cancelled() && !a2.cancel.is_cancelled());
        // The old turn's late chunk is not counted for the new one.
        h.sent("k1", "u1", "Late.");
        let (interrupted, kept) = h.finish(&u1, 3);
        assert_eq!(interrupted.unwrap().why, Why::NewerUtterance);
        assert_eq!(kept, "");
        let (interrupted, _) = h.finish(&u2, 4);
        assert!(interrupted.is_none());
        // Another terminal is not touched.
        let a3 = h.admit(&utterance("s1", "u3"), &root, 5);
        let _ = h.admit(&utterance("k1", "u4"), &root, 6);
        assert!(!a3.cancel.is_cancelled());
    }

    #[test]
    fn a_late_cancel_trims_the_finished_reply_in_history() {
        let mut h = household();
        let root = CancellationToken::new();
        let u = utterance("k1", "u1");
        h.admit(&u, &root, 1);
        for s in ["One.", "Two.", "Three."] {
            h.sent("k1", "u1", s);
        }
        let (interrupted, kept) = h.finish(&u, 2);
        assert!(interrupted.is_none());
        h.conversations
            .record("kitchen", "u1", "hello", &kept, None);
        let c = Cancel {
            utterance_id: "u1".into(),
            terminal: "k1".into(),
            heard_chunks: Some(2),
            reason: CancelReason::BargeIn,
        };
        assert_eq!(h.cancel(&c), Cancelled::Trimmed("One. Two.".into()));
        assert_eq!(
            h.conversations.exchanges("kitchen"),
            [("hello".to_string(), "One. Two.".to_string())]
        );
    }
}
