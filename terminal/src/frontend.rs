//! The seam between the session and how a person talks to the terminal. Text mode lives in
//! [`text`]; the voice front end (microphone, wake word, speech to text and speech out) slots in
//! beside it by implementing the same trait.

pub mod speech;
pub mod text;
pub mod voice;

use std::future::Future;

use hearth_shared::{AudioFeatures, SpeechReason, Voice};

/// Something the person did.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The person said (or typed) something for the hub.
    Said {
        /// The words.
        text: String,
        /// When they started, in ms since the Unix epoch.
        started_at_ms: u64,
        /// When they stopped.
        ended_at_ms: u64,
        /// Prosody features, from a voice front end.
        audio: Option<AudioFeatures>,
    },
    /// The person cut the reply short (the wake word while it was spoken): the rest of it is
    /// not wanted, and the hub is told.
    Interrupted {
        /// How many chunks of the reply had begun to play; `None` when the front end cannot
        /// tell (the hub then keeps what it sent).
        heard_chunks: Option<u32>,
    },
    /// No more input will come (end of stdin, say).
    Closed,
}

/// Something to present to the person: print it, or speak it.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The hub can be reached again (or for the first time).
    HubReachable,
    /// The hub cannot be reached; the terminal keeps trying.
    HubUnreachable {
        /// Why, for the log.
        reason: String,
    },
    /// A sentence of the reply; `first` for the first of a reply.
    ReplyChunk {
        /// The sentence.
        text: String,
        /// Whether it starts the reply.
        first: bool,
        /// The voice of the persona that answers; `None`: the terminal's own.
        voice: Option<Voice>,
    },
    /// The reply is complete.
    ReplyEnd,
    /// The hub speaks first.
    Speech {
        /// What it says.
        text: String,
        /// Why.
        reason: SpeechReason,
        /// Whether the hub waits for an answer (a voice front end listens without the wake
        /// word).
        expects_answer: bool,
        /// The voice of the room's persona; `None`: the terminal's own.
        voice: Option<Voice>,
    },
    /// Something went wrong; a sentence for the person.
    Problem(String),
}

/// A way for a person to talk to the terminal.
pub trait Frontend {
    /// The next thing the person did. Must be cancel-safe: the session polls it in a
    /// `select!` beside hub events.
    fn next_input(&mut self) -> impl Future<Output = Input> + Send;

    /// Presents one output. Must not block for long: speech is queued, not awaited.
    fn present(&mut self, output: Output);

    /// The session is over; returns once what was presented is done (speech played out).
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
