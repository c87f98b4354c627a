//! Short conversation history per room, turned into the chat messages of the next prompt.

use std::collections::{HashMap, VecDeque};

use crate::llm::{ChatMessage, Role};

/// At most this many rooms keep history; the least recently used is forgotten first.
const MAX_ROOMS: usize = 64;

/// Recent exchanges per room.
#[derive(Debug)]
pub struct Conversations {
    turns_per_room: usize,
    rooms: HashMap<String, Room>,
    clock: u64,
}

#[derive(Debug, Default)]
struct Room {
    exchanges: VecDeque<(String, String)>,
    last_used: u64,
}

impl Conversations {
    /// Keeps `turns_per_room` exchanges (user + assistant) per room.
    pub fn new(turns_per_room: usize) -> Conversations {
        Conversations {
            turns_per_room,
            rooms: HashMap::new(),
            clock: 0,
        }
    }

    /// The messages for answering `text` in `room`: system prompt, the room's history, then
    /// the new user message.
    pub fn prompt(&self, room: &str, system: &str, text: &str) -> Vec<ChatMessage> {
        let mut messages = vec![ChatMessage::new(Role::System, system)];
        if let Some(r) = self.rooms.get(room) {
            for (user, assistant) in &r.exchanges {
                messages.push(ChatMessage::new(Role::User, user.clone()));
                messages.push(ChatMessage::new(Role::Assistant, assistant.clone()));
            }
        }
        messages.push(ChatMessage::new(Role::User, text));
        messages
    }

    /// The exchanges (user, assistant) kept for `room`, oldest first.
    pub fn exchanges(&self, room: &str) -> Vec<(String, String)> {
        self.rooms
            .get(room)
            .map(|r| r.exchanges.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// What the assistant last said in `room`, if it said anything.
    pub fn last_reply(&self, room: &str) -> Option<String> {
        self.rooms
            .get(room)
            .and_then(|r| r.exchanges.back())
            .map(|(_, assistant)| assistant.clone())
    }

    /// Remembers a finished exchange.
    pub fn record(&mut self, room: &str, user: &str, assistant: &str) {
        if self.turns_per_room == 0 || assistant.is_empty() {
            return;
        }
        self.clock += 1;
        if !self.rooms.contains_key(room) && self.rooms.len() >= MAX_ROOMS {
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
        r.exchanges
            .push_back((user.to_string(), assistant.to_string()));
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
        let mut c = Conversations::new(2);
        for i in 0..3 {
            c.record("kitchen", &format!("q{i}"), &format!("a{i}"));
        }
        c.record("study", "hello", "hi");
        let p = c.prompt("kitchen", "sys", "q3");
        let texts: Vec<&str> = p.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["sys", "q1", "a1", "q2", "a2", "q3"]);
        assert_eq!(p[1].role, Role::User);
        assert_eq!(p[2].role, Role::Assistant);
        assert_eq!(c.prompt("hall", "sys", "x").len(), 2);
    }

    #[test]
    fn room_count_is_bounded() {
        let mut c = Conversations::new(1);
        for i in 0..(MAX_ROOMS + 5) {
            c.record(&format!("room{i}"), "q", "a");
        }
        assert_eq!(c.rooms.len(), MAX_ROOMS);
        assert!(!c.rooms.contains_key("room0"));
        assert!(c.rooms.contains_key(&format!("room{}", MAX_ROOMS + 4)));
    }
}
