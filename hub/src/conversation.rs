//! Conversation history per room, turned into the chat messages of the next prompt.
//!
//! A room keeps its newest exchanges word for word and, once they pass a token budget, older
//! ones are folded by the preprocessor (`preprocess.rs`) into a summary that stays in the
//! prompt after the system prompt. [`Conversations::fold_due`] hands out the exchanges to fold
//! and [`Conversations::folded`] takes the summary back, unless the room changed meanwhile
//! (cleared, forgotten, trimmed): what was forgotten never comes back through a summary.

use std::collections::{HashMap, VecDeque};

use crate::llm::{ChatMessage, Role};
use serde::{Deserialize, Serialize};

/// Conversation behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationConfig {
    /// The fixed system prompt. Its tokens are evaluated once and kept in the KV cache.
    pub system_prompt: String,
    /// The most past exchanges (user + assistant) per room kept word for word in the prompt;
    /// older ones are folded into the room's summary (or dropped when
    /// `history_budget_tokens` is 0).
    pub history_turns: usize,
    /// When a room's history (summary and exchanges) passes this many tokens (estimated at 3
    /// characters a token, which overestimates English), its older exchanges are folded into
    /// a summary by the preprocessor role; 0: never fold, drop beyond `history_turns`.
    pub history_budget_tokens: usize,
    /// The newest exchanges never folded.
    pub keep_recent_turns: usize,
    /// The most tokens (estimated) of a room's summary; beyond it the model's sentences go
    /// first, then the oldest of the person's statements.
    pub summary_tokens: usize,
    /// The most characters of utterance text the hub accepts.
    pub max_utterance_chars: usize,
    /// When another room is being answered and this one's answer has not started after this
    /// many ms, the hub says `one_moment_text` first; 0 never does.
    pub one_moment_ms: u64,
    /// What it says then.
    pub one_moment_text: String,
    /// Other names the assistant answers as (a persona's; one word each): their labels are
    /// its own to the guard, dropped at the start of a reply and ending it later.
    pub assistant_names: Vec<String>,
    /// At shutdown, replies and background work in flight are cancelled; the hub waits this
    /// many ms for them to stop before it goes offline anyway.
    pub shutdown_wait_ms: u64,
    /// At most this many rooms keep a history; the least recently used is forgotten first.
    pub max_rooms: usize,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        ConversationConfig {
            system_prompt: "You are Hearth, a warm and concise voice assistant for a household. \
                Answer in a few short spoken sentences, without lists or markup."
                .to_string(),
            history_turns: 6,
            history_budget_tokens: 600,
            keep_recent_turns: 2,
            summary_tokens: 200,
            max_utterance_chars: 2000,
            one_moment_ms: 1000,
            one_moment_text: "One moment.".to_string(),
            assistant_names: Vec::new(),
            shutdown_wait_ms: 5000,
            max_rooms: 64,
        }
    }
}

impl ConversationConfig {
    /// When a room's history is folded.
    pub fn budget(&self) -> Budget {
        Budget {
            tokens: self.history_budget_tokens,
            keep_recent: self.keep_recent_turns,
        }
    }
}

/// When a room's older exchanges are folded into its summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// Estimated tokens of history above which older exchanges are folded; 0: never.
    pub tokens: usize,
    /// The newest exchanges never folded.
    pub keep_recent: usize,
}

/// Tokens `text` takes, estimated high (3 characters a token; English runs about 4 with the
/// tokenizers hearth's models use), so that a budget in estimated tokens holds in real ones.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(3)
}

/// The prompt's label for a room's summary.
pub const SUMMARY_LABEL: &str = "[EARLIER IN THIS CONVERSATION]";

/// Recent exchanges per room, and a summary of older ones.
#[derive(Debug)]
pub struct Conversations {
    turns_per_room: usize,
    max_rooms: usize,
    budget: Budget,
    rooms: HashMap<String, Room>,
    clock: u64,
}

#[derive(Debug, Default)]
struct Room {
    exchanges: VecDeque<Exchange>,
    /// The preprocessor's summary of exchanges folded out of `exchanges`.
    summary: String,
    last_used: u64,
    /// Changes when the room's history is cut (trimmed, forgotten): a fold handed out before
    /// then is refused.
    epoch: u64,
    /// How many of the oldest exchanges a fold out now holds (0: none is out).
    folding: usize,
}

/// Older exchanges of one room handed to the preprocessor.
#[derive(Debug, Clone)]
pub struct Fold {
    /// The room.
    pub room: String,
    /// The room's summary so far.
    pub summary: String,
    /// The exchanges to fold (user, assistant), oldest first.
    pub exchanges: Vec<(String, String)>,
    ids: Vec<String>,
    epoch: u64,
}

#[derive(Debug)]
struct Exchange {
    /// The utterance it answered, so that a late cancel can trim its reply.
    id: String,
    user: String,
    assistant: String,
    /// The persona that answered, if one did.
    persona: Option<String>,
}

impl Conversations {
    /// Keeps `turns_per_room` exchanges (user + assistant) per room, for at most `max_rooms`
    /// rooms (the least recently used is forgotten first).
    pub fn new(turns_per_room: usize, max_rooms: usize) -> Conversations {
        Conversations {
            turns_per_room,
            max_rooms: max_rooms.max(1),
            budget: Budget::default(),
            rooms: HashMap::new(),
            clock: 0,
        }
    }

    /// Folds older exchanges into a summary within `budget` (a zero budget drops them).
    pub fn with_budget(self, budget: Budget) -> Conversations {
        Conversations { budget, ..self }
    }

    /// The messages for answering `text` in `room`: the system prompt (with the room's
    /// summary after it), the room's exchanges, then the new user message.
    pub fn prompt(&self, room: &str, system: &str, text: &str) -> Vec<ChatMessage> {
        let r = self.rooms.get(room);
        let system = match r.map(|r| r.summary.as_str()) {
            Some(summary) if !summary.is_empty() => {
                format!("{system}\n\n{SUMMARY_LABEL} {summary}")
            }
            _ => system.to_string(),
        };
        let mut messages = vec![ChatMessage::new(Role::System, system)];
        if let Some(r) = r {
            for e in &r.exchanges {
                messages.push(ChatMessage::new(Role::User, e.user.clone()));
                messages.push(ChatMessage::new(Role::Assistant, e.assistant.clone()));
            }
        }
        messages.push(ChatMessage::new(Role::User, text));
        messages
    }

    /// The exchanges (user, assistant) kept for `room`, oldest first.
    pub fn exchanges(&self, room: &str) -> Vec<(String, String)> {
        self.rooms
            .get(room)
            .map(|r| {
                r.exchanges
                    .iter()
                    .map(|e| (e.user.clone(), e.assistant.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The summary of `room`'s folded exchanges ("" when none).
    pub fn summary(&self, room: &str) -> &str {
        self.rooms.get(room).map_or("", |r| r.summary.as_str())
    }

    /// The estimated tokens of `room`'s history: its summary and its exchanges.
    pub fn history_tokens(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |r| {
            estimate_tokens(&r.summary)
                + r.exchanges
                    .iter()
                    .map(|e| estimate_tokens(&e.user) + estimate_tokens(&e.assistant))
                    .sum::<usize>()
        })
    }

    /// The older exchanges of `room` to fold, when its history is over the budget (or holds
    /// more than `history_turns` exchanges) and no fold is out: all but the newest
    /// `keep_recent`. The room waits for [`Conversations::folded`] before it hands out another.
    pub fn fold_due(&mut self, room: &str) -> Option<Fold> {
        if self.budget.tokens == 0 {
            return None;
        }
        let tokens = self.history_tokens(room);
        let r = self.rooms.get_mut(room)?;
        let over = tokens > self.budget.tokens || r.exchanges.len() > self.turns_per_room;
        let keep = self.budget.keep_recent.min(self.turns_per_room);
        if r.folding > 0 || !over || r.exchanges.len() <= keep {
            return None;
        }
        let n = r.exchanges.len() - keep;
        r.folding = n;
        let folded = r.exchanges.iter().take(n);
        Some(Fold {
            room: room.to_string(),
            summary: r.summary.clone(),
            exchanges: folded
                .clone()
                .map(|e| (e.user.clone(), e.assistant.clone()))
                .collect(),
            ids: folded.map(|e| e.id.clone()).collect(),
            epoch: r.epoch,
        })
    }

    /// The preprocessor's `summary` of `fold` (which holds the room's summary before it):
    /// the folded exchanges leave the room and the summary takes their place, unless the
    /// room's history was cut meanwhile. False when it was refused.
    pub fn folded(&mut self, fold: &Fold, summary: &str) -> bool {
        let Some(r) = self.rooms.get_mut(&fold.room) else {
            return false;
        };
        if r.epoch != fold.epoch || r.folding == 0 {
            return false;
        }
        r.folding = 0;
        let ids = r.exchanges.iter().take(fold.ids.len()).map(|e| &e.id);
        if !ids.eq(fold.ids.iter()) {
            return false;
        }
        r.exchanges.drain(..fold.ids.len());
        r.summary = summary.trim().to_string();
        true
    }

    /// The fold of `fold.room` ended without a summary: the room may hand out another.
    pub fn fold_failed(&mut self, fold: &Fold) {
        if let Some(r) = self.rooms.get_mut(&fold.room) {
            if r.epoch == fold.epoch {
                r.folding = 0;
            }
        }
    }

    /// What the assistant last said in `room`, if it said anything, with the name of the
    /// persona that said it.
    pub fn last_reply(&self, room: &str) -> Option<(Option<String>, String)> {
        self.rooms
            .get(room)
            .and_then(|r| r.exchanges.back())
            .map(|e| (e.persona.clone(), e.assistant.clone()))
    }

    /// The reply to utterance `id` in `room` was cut short: keep only `heard` of it, or drop
    /// the exchange when nothing was heard. False when it is no longer in the history.
    pub fn trim(&mut self, room: &str, id: &str, heard: &str) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(i) = r.exchanges.iter().position(|e| e.id == id) else {
            return false;
        };
        if heard.trim().is_empty() {
            r.exchanges.remove(i);
        } else {
            r.exchanges[i].assistant = heard.to_string();
        }
        // A fold out now that holds this exchange holds what was not heard: refused.
        if i < r.folding {
            self.clock += 1;
            r.epoch = self.clock;
            r.folding = 0;
        }
        true
    }

    /// Whether a fold of `room` is out (tests wait for it).
    pub fn folding(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|r| r.folding > 0)
    }

    /// Drops every room's history ("forget everything"); returns how many exchanges went.
    pub fn clear(&mut self) -> usize {
        let rooms = std::mem::take(&mut self.rooms);
        rooms.values().map(|r| r.exchanges.len()).sum()
    }

    /// Drops, in every room, the exchanges in which the user (or the reply) said one of
    /// `said` (forgotten memories' texts): what is forgotten is not kept in the prompt
    /// either. Every room's summary goes too, since it may say the same in other words.
    /// Returns how many exchanges went.
    pub fn forget(&mut self, said: &[String]) -> usize {
        let said = crate::words::phrases(said);
        let mut dropped = 0;
        if said.is_empty() {
            return 0;
        }
        for room in self.rooms.values_mut() {
            self.clock += 1;
            room.epoch = self.clock;
            room.folding = 0;
            room.summary.clear();
            let before = room.exchanges.len();
            // The reply may have repeated the fact too.
            room.exchanges.retain(|e| {
                !crate::words::says_any(&e.user, &said)
                    && !crate::words::says_any(&e.assistant, &said)
            });
            dropped += before - room.exchanges.len();
        }
        dropped
    }

    /// Remembers a finished exchange, the answer to utterance `id`, by `persona` when one
    /// answered.
    pub fn record(
        &mut self,
        room: &str,
        id: &str,
        user: &str,
        assistant: &str,
        persona: Option<&str>,
    ) {
        if self.turns_per_room == 0 || assistant.is_empty() {
            return;
        }
        self.clock += 1;
        if !self.rooms.contains_key(room) && self.rooms.len() >= self.max_rooms {
            if let Some(oldest) = self
                .rooms
                .iter()
                .min_by_key(|(_, r)| r.last_used)
                .map(|(k, _)| k.clone())
            {
                self.rooms.remove(&oldest);
            }
        }
        let clock = self.clock;
        let r = self.rooms.entry(room.to_string()).or_insert_with(|| Room {
            epoch: clock,
            ..Room::default()
        });
        r.last_used = self.clock;
        r.exchanges.push_back(Exchange {
            id: id.to_string(),
            user: user.to_string(),
            assistant: assistant.to_string(),
            persona: persona.map(str::to_string),
        });
        // Folding keeps the history short; while a fold is late (the model busy or down) the
        // room keeps up to twice `history_turns`, and past that the oldest go down to
        // `history_turns` at once. Dropped in a block, the prompt's start changes once per
        // `history_turns` turns, and the model's cache of the room's prompt (which reaches
        // up to the first change) holds between; dropped one at a time, every turn would
        // evaluate the whole history again. Without folding, `history_turns` is the most.
        let most = match self.budget.tokens {
            0 => self.turns_per_room,
            _ => self.turns_per_room * 2,
        };
        if r.exchanges.len() > most {
            let dropped = r.exchanges.len() - self.turns_per_room;
            r.exchanges.drain(..dropped);
            if r.folding > 0 {
                // The fold out now starts with the ones just dropped: it will be refused.
                self.clock += 1;
                r.epoch = self.clock;
                r.folding = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_per_room_and_bounded() {
        let mut c = Conversations::new(2, 64);
        for i in 0..3 {
            c.record("kitchen", "id", &format!("q{i}"), &format!("a{i}"), None);
        }
        c.record("study", "id", "hello", "hi", Some("Brick"));
        let p = c.prompt("kitchen", "sys", "q3");
        let texts: Vec<&str> = p.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["sys", "q1", "a1", "q2", "a2", "q3"]);
        assert_eq!(p[1].role, Role::User);
        assert_eq!(p[2].role, Role::Assistant);
        assert_eq!(c.prompt("hall", "sys", "x").len(), 2);
        // Each reply is kept under the name of the persona that said it.
        assert_eq!(c.last_reply("kitchen"), Some((None, "a2".to_string())));
        assert_eq!(
            c.last_reply("study"),
            Some((Some("Brick".to_string()), "hi".to_string()))
        );
    }

    #[test]
    fn a_history_no_fold_shortens_drops_its_oldest_in_a_block() {
        let budget = Budget {
            tokens: 600,
            keep_recent: 2,
        };
        let mut c = Conversations::new(3, 64).with_budget(budget);
        let first_user = |c: &Conversations| c.prompt("hall", "sys", "now")[1].content.clone();
        for i in 0..6 {
            c.record("hall", &format!("{i}"), &format!("q{i}"), "a", None);
        }
        assert_eq!(
            c.exchanges("hall").len(),
            6,
            "twice history_turns while folds are late"
        );
        // The seventh goes past it: down to history_turns at once, not one at a time, so
        // that the prompt's start stays the same for the turns that follow.
        c.record("hall", "6", "q6", "a", None);
        assert_eq!(first_user(&c), "q4");
        for i in 7..10 {
            c.record("hall", &format!("{i}"), &format!("q{i}"), "a", None);
            assert_eq!(first_user(&c), "q4", "after q{i}");
        }
        c.record("hall", "10", "q10", "a", None);
        assert_eq!(first_user(&c), "q8");
        // Without folding, history_turns is the most, as before.
        let mut c = Conversations::new(3, 64);
        for i in 0..5 {
            c.record("hall", &format!("{i}"), &format!("q{i}"), "a", None);
        }
        assert_eq!(first_user(&c), "q2");
    }

    #[test]
    fn room_count_is_bounded() {
        const MAX_ROOMS: usize = 8;
        let mut c = Conversations::new(1, MAX_ROOMS);
        for i in 0..(MAX_ROOMS + 5) {
            c.record(&format!("room{i}"), "id", "q", "a", None);
        }
        assert_eq!(c.rooms.len(), MAX_ROOMS);
        assert!(!c.rooms.contains_key("room0"));
        assert!(c.rooms.contains_key(&format!("room{}", MAX_ROOMS + 4)));
    }
}
