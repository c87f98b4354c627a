//! Encoding and decoding of versioned JSON payloads.

use serde::{Deserialize, Serialize};

use crate::message::{ErrorCode, WireMessage};
use crate::PROTOCOL_VERSION;

/// The default largest payload a receiver accepts, in bytes.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// Why a payload could not be decoded. Decoding never panics; every bad input lands here.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is larger than the receiver's limit.
    #[error("{kind} payload of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The message type that was expected.
        kind: &'static str,
        /// The payload size.
        size: usize,
        /// The receiver's limit.
        limit: usize,
    },
    /// The payload is not a JSON object with a numeric `"v"` field.
    #[error("{kind} payload has no protocol version: {reason}")]
    NoVersion {
        /// The message type that was expected.
        kind: &'static str,
        /// What the JSON parser said, or that `"v"` is missing.
        reason: String,
    },
    /// The payload names a protocol version this build does not speak.
    #[error("{kind} payload has protocol version {found}, this build speaks version {supported}")]
    UnsupportedVersion {
        /// The message type that was expected.
        kind: &'static str,
        /// The version in the payload.
        found: u64,
        /// [`PROTOCOL_VERSION`].
        supported: u32,
    },
    /// The payload has the right version but does not match the message type.
    #[error("malformed {kind} payload: {source}")]
    Malformed {
        /// The message type that was expected.
        kind: &'static str,
        /// What serde said.
        source: serde_json::Error,
    },
}

impl DecodeError {
    /// The wire error code to answer this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
            DecodeError::NoVersion { .. } | DecodeError::Malformed { .. } => ErrorCode::Malformed,
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
        }
    }
}

#[derive(Serialize)]
struct OutEnvelope<'a, M> {
    v: u32,
    #[serde(flatten)]
    body: &'a M,
}

#[derive(Deserialize)]
struct InEnvelope<M> {
    #[allow(dead_code)] // checked before, kept so that `"v"` is not an unknown field
    v: u64,
    #[serde(flatten)]
    body: M,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: Option<serde_json::Value>,
}

/// Encodes a message as a versioned JSON payload.
pub fn encode<M: WireMessage>(msg: &M) -> Vec<u8> {
    // Serializing these plain structs into a Vec cannot fail: no maps with non-string keys,
    // no custom Serialize impls that error.
    serde_json::to_vec(&OutEnvelope {
        v: PROTOCOL_VERSION,
        body: msg,
    })
    .expect("wire messages always serialize")
}

/// Decodes a versioned JSON payload of at most `limit` bytes.
pub fn decode<M: WireMessage>(payload: &[u8], limit: usize) -> Result<M, DecodeError> {
    let kind = M::KIND;
    if payload.len() > limit {
        return Err(DecodeError::TooLarge {
            kind,
            size: payload.len(),
            limit,
        });
    }
    let probe: VersionOnly =
        serde_json::from_slice(payload).map_err(|e| DecodeError::NoVersion {
            kind,
            reason: e.to_string(),
        })?;
    let version = match probe.v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    match version {
        None => {
            return Err(DecodeError::NoVersion {
                kind,
                reason: "field \"v\" is missing or not a whole number".to_string(),
            })
        }
        Some(found) if found != u64::from(PROTOCOL_VERSION) => {
            return Err(DecodeError::UnsupportedVersion {
                kind,
                found,
                supported: PROTOCOL_VERSION,
            })
        }
        Some(_) => {}
    }
    serde_json::from_slice::<InEnvelope<M>>(payload)
        .map(|env| env.body)
        .map_err(|source| DecodeError::Malformed { kind, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;

    fn utterance() -> Utterance {
        Utterance {
            id: "u-1".into(),
            terminal: "kitchen".into(),
            room: "kitchen".into(),
            text: "Remind me to water the plants. \"Now\" ünïcødé 🌱".into(),
            started_at_ms: 1_700_000_000_000,
            ended_at_ms: 1_700_000_001_500,
            audio: Some(AudioFeatures {
                loudness_dbfs: Some(-23.5),
                speaking_rate_wps: Some(2.5),
                pitch_hz: None,
            }),
            speaker: Some("Anna".into()),
        }
    }

    fn round_trip<M: WireMessage + PartialEq + std::fmt::Debug>(msg: M) {
        let bytes = encode(&msg);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["v"], 1, "{M} carries the version", M = M::KIND);
        assert_eq!(decode::<M>(&bytes, DEFAULT_MAX_PAYLOAD).unwrap(), msg);
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(utterance());
        round_trip(Utterance {
            audio: None,
            speaker: None,
            ..utterance()
        });
        round_trip(Presence {
            terminal: "kitchen".into(),
            room: "kitchen".into(),
            online: true,
            at_ms: 5,
            capabilities: vec!["text".into()],
            will: None,
        });
        round_trip(HubPresence {
            online: false,
            at_ms: 0,
            heartbeat_ms: None,
        });
        round_trip(ReplyChunk {
            utterance_id: "u-1".into(),
            seq: 3,
            text: "Sure.".into(),
            is_final: true,
            voice: None,
        });
        round_trip(ReplyChunk {
            utterance_id: "u-2".into(),
            seq: 0,
            text: "Hm.".into(),
            is_final: false,
            voice: Some(Voice {
                persona: "Brick".into(),
                length_scale: Some(1.5),
                ..Voice::default()
            }),
        });
        round_trip(Speech {
            id: "s-1".into(),
            text: "Time to water the plants.".into(),
            reason: SpeechReason::Reminder,
            expects_answer: true,
            voice: None,
        });
        round_trip(Cancel {
            utterance_id: "u-1".into(),
            terminal: "kitchen".into(),
            heard_chunks: Some(1),
            reason: CancelReason::BargeIn,
        });
        round_trip(ErrorReport {
            utterance_id: None,
            code: ErrorCode::Busy,
            message: "busy".into(),
        });
    }

    #[test]
    fn a_voice_is_checked_against_the_synthesizers_ranges() {
        let voice = Voice {
            persona: "Brick".into(),
            model: Some("en_US-joe-medium".into()),
            speaker: Some(0),
            length_scale: Some(1.6),
            noise_scale: Some(0.5),
            noise_w: Some(0.8),
        };
        assert_eq!(voice.check(), Ok(()));
        let bad = [
            Voice {
                persona: " ".into(),
                ..voice.clone()
            },
            Voice {
                model: Some("../x".into()),
                ..voice.clone()
            },
            Voice {
                length_scale: Some(9.0),
                ..voice.clone()
            },
            Voice {
                noise_w: Some(f32::NAN),
                ..voice.clone()
            },
        ];
        for (v, field) in bad
            .iter()
            .zip(["persona", "model", "length_scale", "noise_w"])
        {
            let err = v.check().unwrap_err();
            assert!(err.contains(field), "{err}");
        }
        // A chunk from a revision-3 hub has no voice.
        let old: ReplyChunk = crate::decode(
            br#"{"v":1,"utterance_id":"u","seq":0,"text":"Hi.","final":true}"#,
            1024,
        )
        .unwrap();
        assert_eq!(old.voice, None);
    }

    #[test]
    fn reply_chunk_uses_final_on_the_wire() {
        let bytes = encode(&ReplyChunk {
            utterance_id: "u".into(),
            seq: 0,
            text: "Hi.".into(),
            is_final: false,
            voice: None,
        });
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["final"], false);
    }

    #[test]
    fn bad_input_table() {
        let good = String::from_utf8(encode(&utterance())).unwrap();
        let huge = format!(
            r#"{{"v":1,"id":"u","terminal":"t","room":"r","text":"{}","started_at_ms":0,"ended_at_ms":0}}"#,
            "a".repeat(70_000)
        );
        let cases: Vec<(&str, Vec<u8>, ErrorCode, &str)> = vec![
            (
                "empty",
                b"".to_vec(),
                ErrorCode::Malformed,
                "no protocol version",
            ),
            (
                "not json",
                b"hello".to_vec(),
                ErrorCode::Malformed,
                "no protocol version",
            ),
            (
                "invalid utf-8",
                vec![0xff, 0xfe, b'{'],
                ErrorCode::Malformed,
                "no protocol version",
            ),
            (
                "array",
                b"[1,2]".to_vec(),
                ErrorCode::Malformed,
                "no protocol version",
            ),
            (
                "truncated",
                good.as_bytes()[..20].to_vec(),
                ErrorCode::Malformed,
                "no protocol version",
            ),
            (
                "no version",
                br#"{"id":"u"}"#.to_vec(),
                ErrorCode::Malformed,
                "missing",
            ),
            (
                "string version",
                br#"{"v":"1"}"#.to_vec(),
                ErrorCode::Malformed,
                "missing",
            ),
            (
                "float version",
                br#"{"v":1.5}"#.to_vec(),
                ErrorCode::Malformed,
                "missing",
            ),
            (
                "negative version",
                br#"{"v":-1}"#.to_vec(),
                ErrorCode::Malformed,
                "missing",
            ),
            (
                "future version",
                good.replace(r#""v":1"#, r#""v":2"#).into_bytes(),
                ErrorCode::UnsupportedVersion,
                "version 2",
            ),
            (
                "version zero",
                good.replace(r#""v":1"#, r#""v":0"#).into_bytes(),
                ErrorCode::UnsupportedVersion,
                "version 0",
            ),
            (
                "missing field",
                br#"{"v":1,"id":"u"}"#.to_vec(),
                ErrorCode::Malformed,
                "missing field",
            ),
            (
                "wrong type",
                good.replace(
                    r#""started_at_ms":1700000000000"#,
                    r#""started_at_ms":"soon""#,
                )
                .into_bytes(),
                ErrorCode::Malformed,
                "invalid type",
            ),
            (
                "deep nesting",
                format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
                ErrorCode::Malformed,
                "no protocol version",
            ),
            (
                "oversized",
                huge.into_bytes(),
                ErrorCode::TooLarge,
                "over the limit",
            ),
        ];
        for (name, payload, code, needle) in cases {
            let err = decode::<Utterance>(&payload, DEFAULT_MAX_PAYLOAD).expect_err(name);
            assert_eq!(err.code(), code, "{name}: {err}");
            assert!(err.to_string().contains(needle), "{name}: {err}");
            assert!(
                err.to_string().contains("utterance"),
                "{name} names the kind: {err}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_tolerated_for_forward_compatibility() {
        let mut json: serde_json::Value = serde_json::from_slice(&encode(&utterance())).unwrap();
        json["mood"] = serde_json::json!("cheerful");
        let bytes = serde_json::to_vec(&json).unwrap();
        assert_eq!(
            decode::<Utterance>(&bytes, DEFAULT_MAX_PAYLOAD).unwrap(),
            utterance()
        );
    }
}

#[cfg(test)]
mod props;
