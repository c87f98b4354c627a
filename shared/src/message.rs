//! The messages. Each is a plain serde struct; [`crate::encode`] adds the `"v"` version field
//! and [`crate::decode`] checks it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A type that travels on the wire. `KIND` names it in logs and errors.
pub trait WireMessage: Serialize + DeserializeOwned {
    /// A short name of the message type, such as `"utterance"`.
    const KIND: &'static str;
}

/// A terminal's presence, published retained on its presence topic. The terminal's Last Will
/// publishes the same message with `online: false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// The terminal id, the same as in its topics.
    pub terminal: String,
    /// The room the terminal stands in, such as `"kitchen"`.
    pub room: String,
    /// Whether the terminal is connected.
    pub online: bool,
    /// When this was true, in ms since the Unix epoch (0 in a Last Will, which is written
    /// before it is needed).
    pub at_ms: u64,
    /// What the terminal can do: `"text"`, later `"voice"`, `"speaker"`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// A paired terminal's online presence names the seal counter of its connection's Last
    /// Will, the one sealed offline presence the hub accepts out of order (revision 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will: Option<u64>,
}

impl WireMessage for Presence {
    const KIND: &'static str = "presence";
}

/// The hub's presence, retained on the hub presence topic, with a Last Will marking it offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubPresence {
    /// Whether the hub is up and answering.
    pub online: bool,
    /// When this was true, in ms since the Unix epoch (0 in a Last Will).
    pub at_ms: u64,
    /// On [`crate::Channel::Hub`]: the hub repeats its presence this often, in ms; a
    /// terminal that hears nothing for three times as long takes the hub as gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

impl WireMessage for HubPresence {
    const KIND: &'static str = "hub presence";
}

/// Simple prosody features the voice terminal measures, for emotion scoring on the hub.
/// Every field is optional: a text terminal sends none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioFeatures {
    /// Mean loudness of the speech, in dBFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness_dbfs: Option<f32>,
    /// Speaking rate, in words per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaking_rate_wps: Option<f32>,
    /// Median pitch, in Hz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitch_hz: Option<f32>,
}

/// Something the user said (or typed) at a terminal. Terminal -> hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    /// Unique per terminal; replies and errors refer to it.
    pub id: String,
    /// The terminal id.
    pub terminal: String,
    /// The room the terminal stands in.
    pub room: String,
    /// What was said.
    pub text: String,
    /// When the user started speaking (or typing), in ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When the user stopped, in ms since the Unix epoch.
    pub ended_at_ms: u64,
    /// Prosody features from the voice front end, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioFeatures>,
    /// Who spoke, when the terminal knows (a named user, a recognised voice). Memories keep
    /// it, so that "what did Anna say about..." finds Anna's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

impl WireMessage for Utterance {
    const KIND: &'static str = "utterance";
}

impl Utterance {
    /// Checks an utterance that came on `terminal`'s topic: it must name that terminal, have
    /// an id of 1 to 128 bytes, a room of 1 to 64 bytes, and 1 to `max_chars` characters of
    /// text. The error is what to tell the terminal.
    pub fn check(&self, terminal: &str, max_chars: usize) -> Result<(), ErrorReport> {
        let invalid = |code, message: String| ErrorReport {
            utterance_id: Some(self.id.clone()),
            code,
            message,
        };
        if self.terminal != terminal {
            return Err(invalid(
                ErrorCode::Invalid,
                format!(
                    "utterance names terminal {:?} but came on the topic of {terminal:?}",
                    self.terminal
                ),
            ));
        }
        if self.id.is_empty() || self.id.len() > 128 {
            return Err(invalid(
                ErrorCode::Invalid,
                "utterance id must be 1 to 128 bytes".into(),
            ));
        }
        if self.room.trim().is_empty() || self.room.len() > 64 {
            return Err(invalid(
                ErrorCode::Invalid,
                "room must be 1 to 64 bytes".into(),
            ));
        }
        if self.text.trim().is_empty() {
            return Err(invalid(
                ErrorCode::Invalid,
                "utterance text is empty".into(),
            ));
        }
        let chars = self.text.chars().count();
        if chars > max_chars {
            return Err(invalid(
                ErrorCode::TooLarge,
                format!("utterance text has {chars} characters, the limit is {max_chars}"),
            ));
        }
        Ok(())
    }
}

/// One piece of the hub's streamed reply, normally one sentence. Hub -> terminal.
///
/// Chunks of one reply carry the same `utterance_id` and consecutive `seq` numbers from 0. The
/// last one has `is_final` set; its text may be empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyChunk {
    /// The id of the utterance this answers.
    pub utterance_id: String,
    /// 0, 1, 2, ... within the reply.
    pub seq: u32,
    /// The text of this chunk.
    pub text: String,
    /// Whether this is the last chunk of the reply.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The voice to speak it with: the persona's that answers (revision 4). `None`: the
    /// terminal's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
}

impl WireMessage for ReplyChunk {
    const KIND: &'static str = "reply chunk";
}

/// How a persona sounds, in a reply chunk or speech (revision 4): a Piper voice the terminal
/// knows by name, or settings of the terminal's own voice. Each unset field keeps the
/// terminal's setting, so a terminal that lacks the named voice still speaks, in its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Voice {
    /// The persona that speaks, for logs and a text terminal's label ("Brick").
    pub persona: String,
    /// A Piper voice by the name the terminal's `tts.voices` gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The speaker of a voice with several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<u32>,
    /// Piper's length scale: above 1 speaks slower, below 1 faster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_scale: Option<f32>,
    /// Piper's noise scale (how much the voice varies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_scale: Option<f32>,
    /// Piper's noise width (how much phoneme lengths vary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_w: Option<f32>,
}

impl Voice {
    /// Checks the values a terminal would pass to its synthesizer: a persona name of 1 to 64
    /// bytes without control characters, a model name of letters, digits, `-`, `_` and `.`
    /// up to 64 bytes, a length scale of 0.25 to 4 and noise settings of 0 to 2 (the
    /// terminal's own ranges). The error names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.persona.trim().is_empty()
            || self.persona.len() > 64
            || self.persona.chars().any(char::is_control)
        {
            return Err("voice.persona must be 1 to 64 bytes with no control characters".into());
        }
        if let Some(m) = &self.model {
            let named = m
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if m.is_empty() || m.len() > 64 || !named {
                return Err(format!(
                    "voice.model {m:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
                ));
            }
        }
        let within = |v: Option<f32>, lo: f32, hi: f32| v.is_none_or(|v| v >= lo && v <= hi);
        let shown = |v: Option<f32>| v.map_or("unset".to_string(), |v| v.to_string());
        if !within(self.length_scale, 0.25, 4.0) {
            return Err(format!(
                "voice.length_scale ({}) must be 0.25 to 4",
                shown(self.length_scale)
            ));
        }
        if !within(self.noise_scale, 0.0, 2.0) || !within(self.noise_w, 0.0, 2.0) {
            return Err(format!(
                "voice.noise_scale ({}) and voice.noise_w ({}) must be 0 to 2",
                shown(self.noise_scale),
                shown(self.noise_w)
            ));
        }
        Ok(())
    }
}

/// Why the hub speaks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechReason {
    /// A reminder or timer fell due.
    Reminder,
    /// Pixie, the background process, has something worth saying.
    Pixie,
    /// A notice about the hub itself.
    System,
}

/// Speech the hub starts on its own (reminders, Pixie). Hub -> terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speech {
    /// Unique per hub.
    pub id: String,
    /// What to say.
    pub text: String,
    /// Why the hub speaks.
    pub reason: SpeechReason,
    /// Whether the terminal should listen for an answer without the wake word.
    #[serde(default)]
    pub expects_answer: bool,
    /// The voice to speak it with: the room's persona's (revision 4). `None`: the
    /// terminal's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
}

impl WireMessage for Speech {
    const KIND: &'static str = "speech";
}

/// What went wrong, as a stable code the terminal can map to a spoken sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload was not valid JSON for its message type.
    Malformed,
    /// The payload's protocol version is not one the receiver speaks.
    UnsupportedVersion,
    /// The payload was larger than the receiver accepts.
    TooLarge,
    /// The message contradicts its topic or has an invalid field.
    Invalid,
    /// The hub has too much work queued; try again shortly.
    Busy,
    /// The language model failed while answering.
    Inference,
    /// Anything else inside the hub.
    Internal,
}

/// An error the hub reports to a terminal. Hub -> terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// The utterance this is about, when the hub could read its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utterance_id: Option<String>,
    /// The kind of error.
    pub code: ErrorCode,
    /// A sentence for logs and for a person.
    pub message: String,
}

impl WireMessage for ErrorReport {
    const KIND: &'static str = "error report";
}

/// Why a terminal cancels a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The person spoke the wake word over the reply.
    BargeIn,
    /// The person stopped it another way (a button, "stop").
    Stop,
}

/// The person cut a reply short: the hub stops generating it and remembers only what was
/// heard. Terminal -> hub, protocol revision 2. A cancel for a reply that has already ended
/// still trims what the hub keeps of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancel {
    /// The utterance whose reply is cancelled.
    pub utterance_id: String,
    /// The terminal id, the same as in the topic.
    pub terminal: String,
    /// How many reply chunks the person heard in full or in part (the first `n` by `seq`);
    /// `None` when the terminal cannot tell, and the hub keeps what it sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_chunks: Option<u32>,
    /// Why.
    pub reason: CancelReason,
}

impl WireMessage for Cancel {
    const KIND: &'static str = "cancel";
}
