//! The hearth wire protocol: MQTT topic names and the versioned JSON messages that the hub and
//! the room terminals exchange.
//!
//! This crate is the API boundary between `hearth-hub` and `hearth-terminal`. It holds data
//! types, their encoding and their validation, and nothing heavy: no async runtime, no MQTT
//! client, no storage. Neither side redefines a wire type.
//!
//! Every payload is a JSON object with a `"v"` field naming the protocol version, see
//! [`PROTOCOL_VERSION`]. Decoding never panics: an oversized, malformed or wrong-version payload
//! becomes a [`DecodeError`] that the receiver logs and, where someone is listening, answers
//! with an [`ErrorReport`].

mod codec;
mod message;
pub mod seal;
mod topic;

pub use codec::{decode, encode, DecodeError, DEFAULT_MAX_PAYLOAD};
pub use message::{
    AudioFeatures, Cancel, CancelReason, ErrorCode, ErrorReport, HubPresence, Presence, ReplyChunk,
    Speech, SpeechReason, Utterance, Voice, WireMessage,
};
pub use topic::{valid_terminal_id, Channel, TopicError, Topics};

/// The protocol version every message carries in its `"v"` field, and the path segment after
/// the topic prefix (`hearth/v1/...`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Additions within [`PROTOCOL_VERSION`] that old peers can ignore: 1 is the first release;
/// 2 adds [`Cancel`] (terminal -> hub), announced by the capability [`CAPABILITY_CANCEL`] in a
/// terminal's presence; 3 adds [sealed](seal) payloads for paired terminals, the hub's
/// presence per terminal on [`Channel::Hub`] with a heartbeat, and the seal counter of a
/// terminal's Last Will in its presence; 4 adds the persona's [`Voice`] to reply chunks and
/// speech. A revision never changes the `"v"` field or an existing topic, so a hub of
/// revision 4 serves unpaired revision-1 terminals unchanged.
pub const PROTOCOL_REVISION: u32 = 4;

/// The presence capability of a terminal that sends [`Cancel`].
pub const CAPABILITY_CANCEL: &str = "cancel";

/// Milliseconds since the Unix epoch, the time unit of every timestamp on the wire.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
