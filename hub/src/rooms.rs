//! Which terminals are where, which room last heard the user, and where a conversation is
//! going on: what the hub needs to speak first in the right room.

use std::collections::{BTreeMap, HashMap};

use hearth_shared::Presence;

/// The household's rooms as the hub sees them. Plain data; the service keeps it behind a
/// mutex and updates it from presence messages and utterances.
#[derive(Debug, Default, Clone)]
pub struct Rooms {
    /// The latest presence of each terminal, by terminal id.
    terminals: BTreeMap<String, Presence>,
    /// When the user was last heard in each room.
    heard: HashMap<String, u64>,
    /// Answers in flight per room.
    answering: HashMap<String, usize>,
    /// When the last answer in each room ended.
    answered: HashMap<String, u64>,
    /// Whether the user sounded stressed in their last turn, and when that was.
    stressed: Option<(bool, u64)>,
}

/// Where to say something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// (terminal, room) pairs, each an online terminal.
    pub targets: Vec<(String, String)>,
    /// Whether these are not the rooms wanted (those had no online terminal).
    pub fallback: bool,
}

impl Rooms {
    /// Records a terminal's presence (online or its Last Will).
    pub fn presence(&mut self, p: Presence) {
        self.terminals.insert(p.terminal.clone(), p);
    }

    /// Forgets a terminal (its retained presence was cleared).
    pub fn remove(&mut self, terminal: &str) {
        self.terminals.remove(terminal);
    }

    /// The user spoke in `room` at `at_ms`.
    pub fn heard(&mut self, room: &str, at_ms: u64) {
        let t = self.heard.entry(room.to_string()).or_default();
        *t = (*t).max(at_ms);
    }

    /// An answer in `room` starts.
    pub fn answering(&mut self, room: &str) {
        *self.answering.entry(room.to_string()).or_default() += 1;
    }

    /// An answer in `room` ended at `at_ms`.
    pub fn answered(&mut self, room: &str, at_ms: u64) {
        if let Some(n) = self.answering.get_mut(room) {
            *n = n.saturating_sub(1);
        }
        self.answered.insert(room.to_string(), at_ms);
    }

    /// Records how the user sounded in their latest turn.
    pub fn felt(&mut self, stressed: bool, at_ms: u64) {
        self.stressed = Some((stressed, at_ms));
    }

    /// Whether the user sounded stressed in their last turn, within the last `window_ms`.
    pub fn user_stressed(&self, now_ms: u64, window_ms: u64) -> bool {
        self.stressed
            .is_some_and(|(s, at)| s && now_ms.saturating_sub(at) < window_ms)
    }

    /// Whether the hub is answering anywhere.
    pub fn answering_anywhere(&self) -> bool {
        self.answering.values().any(|n| *n > 0)
    }

    /// Whether the hub is answering in a room other than `room`.
    pub fn answering_elsewhere(&self, room: &str) -> bool {
        self.answering.iter().any(|(r, n)| r != room && *n > 0)
    }

    /// The room that heard the user last, and when.
    pub fn last_heard(&self) -> Option<(&str, u64)> {
        self.heard
            .iter()
            .max_by_key(|(room, at)| (**at, std::cmp::Reverse(room.as_str())))
            .map(|(room, at)| (room.as_str(), *at))
    }

    /// Each terminal's latest presence, by terminal id.
    pub fn terminals(&self) -> impl Iterator<Item = &Presence> {
        self.terminals.values()
    }

    /// The room of terminal `terminal`, when it has announced one.
    pub fn room_of(&self, terminal: &str) -> Option<&str> {
        self.terminals.get(terminal).map(|p| p.room.as_str())
    }

    /// When the user was last heard in `room`.
    pub fn heard_at(&self, room: &str) -> Option<u64> {
        self.heard.get(room).copied()
    }

    /// Every room a terminal has announced, online or not, sorted.
    pub fn known(&self) -> Vec<String> {
        let mut rooms: Vec<String> = self.terminals.values().map(|p| p.room.clone()).collect();
        rooms.sort();
        rooms.dedup();
        rooms
    }

    /// When `room` is free of conversation: `None` when it is free now, `u64::MAX` while an
    /// answer is in flight, otherwise `grace_ms` after the user or the hub last spoke there.
    pub fn busy_until(&self, room: &str, now_ms: u64, grace_ms: u64) -> Option<u64> {
        if self.answering.get(room).copied().unwrap_or(0) > 0 {
            return Some(u64::MAX);
        }
        let last = self
            .heard
            .get(room)
            .copied()
            .max(self.answered.get(room).copied())?;
        let free = last + grace_ms;
        (free > now_ms).then_some(free)
    }

    /// The online terminals in `wanted` rooms, or, when `wanted` is empty, in the room that
    /// heard the user last. When none of those is online: the online terminals of the room
    /// most recently heard among the others, or of the first room by name.
    pub fn route(&self, wanted: &[String]) -> Route {
        let online: Vec<(&str, &str)> = self
            .terminals
            .values()
            .filter(|p| p.online)
            .map(|p| (p.terminal.as_str(), p.room.as_str()))
            .collect();
        let pick = |rooms: &[&str]| -> Vec<(String, String)> {
            online
                .iter()
                .filter(|(_, r)| rooms.iter().any(|w| w.eq_ignore_ascii_case(r)))
                .map(|(t, r)| (t.to_string(), r.to_string()))
                .collect()
        };
        let wanted: Vec<&str> = if wanted.is_empty() {
            self.last_heard().map(|(r, _)| vec![r]).unwrap_or_default()
        } else {
            wanted.iter().map(String::as_str).collect()
        };
        let targets = pick(&wanted);
        if !targets.is_empty() {
            return Route {
                targets,
                fallback: false,
            };
        }
        let mut rooms: Vec<&str> = online.iter().map(|(_, r)| *r).collect();
        rooms.sort();
        rooms.dedup();
        let best = rooms
            .iter()
            .max_by_key(|r| (self.heard.get(**r).copied(), std::cmp::Reverse(**r)))
            .copied();
        Route {
            targets: best.map(|r| pick(&[r])).unwrap_or_default(),
            // With no wish and nobody heard yet, any room is the right one.
            fallback: !wanted.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(terminal: &str, room: &str, online: bool) -> Presence {
        Presence {
            terminal: terminal.into(),
            room: room.into(),
            online,
            at_ms: 0,
            capabilities: vec![],
            will: None,
        }
    }

    #[test]
    fn speech_goes_where_the_user_was_heard_and_falls_back_when_that_is_offline() {
        let mut rooms = Rooms::default();
        rooms.presence(presence("k1", "kitchen", true));
        rooms.presence(presence("s1", "study", true));
        rooms.presence(presence("b1", "bedroom", true));
        // Nobody heard yet: some online room, and that is not a fallback.
        assert_eq!(rooms.route(&[]).targets.len(), 1);
        assert!(!rooms.route(&[]).fallback);
        rooms.heard("kitchen", 10);
        rooms.heard("study", 20);
        assert_eq!(rooms.last_heard(), Some(("study", 20)));
        let route = rooms.route(&[]);
        assert_eq!(route.targets, [("s1".to_string(), "study".to_string())]);
        assert!(!route.fallback);
        // Named rooms win over where the user is.
        let route = rooms.route(&["kitchen".into(), "bedroom".into()]);
        assert_eq!(route.targets.len(), 2);
        // The study goes offline: the kitchen, heard next most recently, takes it.
        rooms.presence(presence("s1", "study", false));
        let route = rooms.route(&[]);
        assert_eq!(route.targets, [("k1".to_string(), "kitchen".to_string())]);
        assert!(route.fallback);
        // Nobody online: nowhere to say it; it waits.
        rooms.presence(presence("k1", "kitchen", false));
        rooms.presence(presence("b1", "bedroom", false));
        assert!(rooms.route(&[]).targets.is_empty());
        assert_eq!(rooms.known(), ["bedroom", "kitchen", "study"]);
    }

    #[test]
    fn a_room_is_busy_while_answering_and_for_a_grace_after() {
        let mut rooms = Rooms::default();
        assert_eq!(rooms.busy_until("kitchen", 0, 10), None);
        rooms.heard("kitchen", 100);
        rooms.answering("kitchen");
        assert_eq!(rooms.busy_until("kitchen", 105, 10), Some(u64::MAX));
        rooms.answered("kitchen", 120);
        assert_eq!(rooms.busy_until("kitchen", 125, 10), Some(130));
        assert_eq!(rooms.busy_until("kitchen", 130, 10), None);
        assert_eq!(rooms.busy_until("study", 125, 10), None);
    }
}
