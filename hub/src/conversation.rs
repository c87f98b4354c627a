//! Short conversation history per room, turned into the chat messages of the next prompt.

use std::collections::{HashMap, VecDeque};

use crate::llm::{ChatMessage, Role};
use serde::{Deserialize, Serialize};

/// Conversation behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationConfig {
    /// The fixed system prompt. Its tokens are evaluated once and kept in the KV cache.
    pub system_prompt: String,
    /// How many past exchanges (user + assistant) per room go into the prompt.
    pub history_turns: usize,
    /// The most characters of utterance text the hub accepts.
    pub max_utterance_chars: usize,
    /// When another room is being answered and this one's answer has not started after this
    /// many ms, the hub says `one_moment_text` first; 0 never does.
    pub one_moment_ms: u64,
    /// What it says then.
    pub one_moment_text: String,
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
            max_utterance_chars: 2000,
            one_moment_ms: 1000,
            one_moment_text: "One moment.".to_string(),
            shutdown_wait_ms: 5000,
            max_rooms: 64,
        }
    }
}

/// Recent exchanges per room.
#[derive(Debug)]
pub struct Conversations {
    turns_per_room: usize,
    max_rooms: usize,
    rooms: HashMap<String, Room>,
    clock: u64,
}

#[derive(Debug, Default)]
struct Room {
    exchanges: VecDeque<Exchange>,
    last_used: u64,
}

#[derive(Debug)]
struct Exchange {
    /// The utterance it answered, so that a late cancel can trim its reply.
    id: String,
    user: String,
    assistant: String,
}

impl Conversations {
    /// Keeps `turns_per_room` exchanges (user + assistant) per room, for at most `max_rooms`
    /// rooms (the least recently used is forgotten first).
    pub fn new(turns_per_room: usize, max_rooms: usize) -> Conversations {
        Conversations {
            turns_per_room,
            max_rooms: max_rooms.max(1),
            rooms: HashMap::new(),
            clock: 0,
        }
    }

    /// The messages for answering `text` in `room`: system prompt, the room's history, then
    /// the new user message.
    pub fn prompt(&self, room: &str, system: &str, text: &str) -> Vec<ChatMessage> {
        let mut messages = vec![ChatMessage::new(Role::System, system)];
        if let Some(r) = self.rooms.get(room) {
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

    /// What the assistant last said in `room`, if it said anything.
    pub fn last_reply(&self, room: &str) -> Option<String> {
        self.rooms
            .get(room)
            .and_then(|r| r.exchanges.back())
            .map(|e| e.assistant.clone())
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
        true
    }

    /// Drops every room's history ("forget everything"); returns how many exchanges went.
    pub fn clear(&mut self) -> usize {
        let rooms = std::mem::take(&mut self.rooms);
        rooms.values().map(|r| r.exchanges.len()).sum()
    }

    /// Drops, in every room, the exchanges in which the user (or the reply) said one of
    /// `said` (forgotten memories' texts): what is forgotten is not kept in the prompt
    /// either. Returns how many went.
    pub fn forget(&mut self, said: &[String]) -> usize {
        let said: Vec<String> = said
            .iter()
            .map(|s| crate::words::words(s).join(" "))
            .filter(|s| !s.is_empty())
            .collect();
        let mut dropped = 0;
        for room in self.rooms.values_mut() {
            let before = room.exchanges.len();
            // The reply may have repeated the fact too.
            room.exchanges.retain(|e| {
                let user = crate::words::words(&e.user).join(" ");
                let reply = crate::words::words(&e.assistant).join(" ");
                !said
                    .iter()
                    .any(|s| user.contains(s.as_str()) || reply.contains(s.as_str()))
            });
            dropped += before - room.exchanges.len();
        }
        dropped
    }

    /// Remembers a finished exchange, the answer to utterance `id`.
    pub fn record(&mut self, room: &str, id: &str, user: &str, assistant: &str) {
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
        let r = self.rooms.entry(room.to_string()).or_default();
        r.last_used = self.clock;
        r.exchanges.push_back(Exchange {
            id: id.to_string(),
            user: user.to_string(),
            assistant: assistant.to_string(),
        });
        while r.exchanges.len() > self.turns_per_room {
            r.exchanges.pop_front();
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
            c.record("kitchen", "id", &format!("q{i}"), &format!("a{i}"));
        }
        c.record("study", "id", "hello", "hi");
        let p = c.prompt("kitchen", "sys", "q3");
        let texts: Vec<&str> = p.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["sys", "q1", "a1", "q2", "a2", "q3"]);
        assert_eq!(p[1].role, Role::User);
        assert_eq!(p[2].role, Role::Assistant);
        assert_eq!(c.prompt("hall", "sys", "x").len(), 2);
    }

    #[test]
    fn room_count_is_bounded() {
        const MAX_ROOMS: usize = 8;
        let mut c = Conversations::new(1, MAX_ROOMS);
        for i in 0..(MAX_ROOMS + 5) {
            c.record(&format!("room{i}"), "id", "q", "a");
        }
        assert_eq!(c.rooms.len(), MAX_ROOMS);
        assert!(!c.rooms.contains_key("room0"));
        assert!(c.rooms.contains_key(&format!("room{}", MAX_ROOMS + 4)));
    }
}
