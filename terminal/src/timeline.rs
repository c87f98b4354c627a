//! Marks on one clock for the end-to-end latency benchmark (`hearth-bench voice`): each is a
//! debug line of this module's target with the event and its time in ms since the process's
//! first mark, so that one log gives every stage of a turn.
//!
//! The stages: the microphone clock's start (a paced file: sample 0 is heard then), the
//! endpoint decision, the transcript, the utterance sent, the reply's first chunk, and the
//! reply's first sample taken for the speaker.

use std::sync::OnceLock;
use std::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Starts the clock (at the latest, at the first mark).
pub fn start() {
    let _ = epoch();
}

/// Marks `event` as happening at `at`.
pub fn mark_at(event: &'static str, at: Instant) {
    let t_ms = at.saturating_duration_since(epoch()).as_secs_f64() * 1000.0;
    tracing::debug!(event, t_ms = format!("{t_ms:.1}"), "timeline");
}

/// Marks `event` as happening now.
pub fn mark(event: &'static str) {
    mark_at(event, Instant::now());
}
