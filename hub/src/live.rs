//! What happens in the household as it happens, for watchers (the dashboard): terminals
//! coming and going, what was heard, every message the hub sends, and each turn's emotion.
//!
//! One broadcast channel: publishing never waits and never fails, and a watcher that falls
//! behind loses the oldest events, never the hub's time. The emotion points are also kept,
//! a bounded window of them, so that a plot opened later has a past.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

/// How the terminal ids of turns typed on the dashboard begin (`@dashboard-1`, one per
/// question, so that two never cancel each other): never a real terminal's (topics refuse
/// `@`), so their replies reach the watchers and no MQTT topic.
pub const DASHBOARD: &str = "@dashboard";

/// Whether `terminal` is a question typed on the dashboard rather than a real terminal.
pub fn is_dashboard(terminal: &str) -> bool {
    terminal.starts_with(DASHBOARD)
}

/// How many events a slow watcher may fall behind before it loses some.
const BACKLOG: usize = 1024;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A terminal came online or went away.
    Presence {
        terminal: String,
        room: String,
        online: bool,
        at_ms: u64,
    },
    /// Someone spoke (or typed) in a room.
    Heard {
        terminal: String,
        room: String,
        utterance_id: String,
        text: String,
        at_ms: u64,
    },
    /// A chunk of a reply went to a terminal.
    Reply {
        terminal: String,
        room: String,
        utterance_id: String,
        seq: u32,
        text: String,
        last: bool,
    },
    /// The hub spoke first (Pixie, a reminder, an announcement).
    Speech {
        terminal: String,
        room: String,
        text: String,
    },
    /// An error went to a terminal.
    Error {
        terminal: String,
        room: String,
        message: String,
    },
    /// A turn's emotion was scored.
    Emotion(EmotionPoint),
}

/// The emotion of one turn, and Hearth's mood after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmotionPoint {
    /// When the turn began, in ms since the epoch.
    pub at_ms: u64,
    /// Where it was said.
    pub room: String,
    /// The user's valence, -1 to 1.
    pub valence: f32,
    /// The user's arousal, -1 to 1.
    pub arousal: f32,
    /// The user's engagement, 0 to 1.
    pub engagement: f32,
    /// The label ("Calm", "Stressed", ...).
    pub label: String,
    /// The signals behind the point, in words.
    pub why: String,
    /// Hearth's mood valence after the turn.
    pub mood_valence: f32,
    /// Hearth's mood arousal after the turn.
    pub mood_arousal: f32,
}

/// The household's live feed. Cheap to clone: every clone publishes to the same watchers.
#[derive(Debug, Clone)]
pub struct Live {
    tx: broadcast::Sender<Event>,
    emotions: Arc<Mutex<VecDeque<EmotionPoint>>>,
    keep: usize,
}

impl Default for Live {
    fn default() -> Self {
        Live::new(2000)
    }
}

impl Live {
    /// A feed that keeps the last `keep` emotion points.
    pub fn new(keep: usize) -> Live {
        Live {
            tx: broadcast::channel(BACKLOG).0,
            emotions: Arc::new(Mutex::new(VecDeque::new())),
            keep: keep.max(1),
        }
    }

    /// Tells every watcher; nobody watching is fine.
    pub fn send(&self, event: Event) {
        if let Event::Emotion(point) = &event {
            let mut kept = self.emotions.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() == self.keep {
                kept.pop_front();
            }
            kept.push_back(point.clone());
        }
        let _ = self.tx.send(event);
    }

    /// A new watcher: it gets what happens from now on.
    pub fn watch(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// The emotion points kept, oldest first.
    pub fn emotions(&self) -> Vec<EmotionPoint> {
        let kept = self.emotions.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_ms: u64) -> EmotionPoint {
        EmotionPoint {
            at_ms,
            room: "kitchen".into(),
            valence: 0.1,
            arousal: 0.0,
            engagement: 0.5,
            label: "Calm".into(),
            why: String::new(),
            mood_valence: 0.2,
            mood_arousal: 0.0,
        }
    }

    #[tokio::test]
    async fn watchers_get_what_happens_after_they_start_and_points_are_kept_bounded() {
        let live = Live::new(2);
        live.send(Event::Emotion(point(1)));
        let mut watcher = live.watch();
        live.send(Event::Emotion(point(2)));
        live.send(Event::Emotion(point(3)));
        assert_eq!(watcher.recv().await.unwrap(), Event::Emotion(point(2)));
        assert_eq!(watcher.recv().await.unwrap(), Event::Emotion(point(3)));
        let kept: Vec<u64> = live.emotions().iter().map(|p| p.at_ms).collect();
        assert_eq!(kept, [2, 3]);
        let json = serde_json::to_value(Event::Emotion(point(4))).unwrap();
        assert_eq!(json["kind"], "emotion");
        assert_eq!(json["room"], "kitchen");
    }
}
