//! Topic names. Every topic is rooted at a configurable prefix and carries the protocol version:
//! `{prefix}/v1/hub/presence` for the hub and `{prefix}/v1/terminal/{id}/{channel}` for each
//! terminal.

use std::fmt;

use crate::PROTOCOL_VERSION;

/// What a terminal topic carries. The direction is fixed per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Terminal -> everyone: retained [`crate::Presence`], with a Last Will marking it offline.
    Presence,
    /// Terminal -> hub: an [`crate::Utterance`].
    Utterance,
    /// Hub -> terminal: streamed [`crate::ReplyChunk`]s.
    Reply,
    /// Hub -> terminal: hub-initiated [`crate::Speech`].
    Speech,
    /// Hub -> terminal: an [`crate::ErrorReport`].
    Error,
    /// Terminal -> hub: a [`crate::Cancel`] (capability `"cancel"`, protocol revision 2).
    Cancel,
    /// Hub -> terminal: the hub's [`crate::HubPresence`] for this terminal alone, sealed,
    /// repeated as a heartbeat (protocol revision 3, paired terminals).
    Hub,
}

impl Channel {
    /// Every channel, in a fixed order.
    pub const ALL: [Channel; 7] = [
        Channel::Presence,
        Channel::Utterance,
        Channel::Reply,
        Channel::Speech,
        Channel::Error,
        Channel::Cancel,
        Channel::Hub,
    ];

    /// The last topic segment of this channel.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Presence => "presence",
            Channel::Utterance => "utterance",
            Channel::Reply => "reply",
            Channel::Speech => "speech",
            Channel::Error => "error",
            Channel::Cancel => "cancel",
            Channel::Hub => "hub",
        }
    }

    fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A topic prefix or terminal id that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    /// The prefix is empty, has an MQTT wildcard, or starts or ends with '/'.
    #[error("invalid topic prefix {0:?}: use one or more '/'-separated segments without '+', '#' or empty segments")]
    InvalidPrefix(String),
    /// The terminal id has characters other than ASCII letters, digits, '-' and '_', or is empty
    /// or longer than 64 bytes.
    #[error("invalid terminal id {0:?}: use 1 to 64 ASCII letters, digits, '-' or '_'")]
    InvalidTerminalId(String),
}

/// Whether `id` is usable as a terminal id (and so as one topic segment).
pub fn valid_terminal_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Builds and parses the topic names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `{prefix}/v{PROTOCOL_VERSION}`, precomputed.
    root: String,
}

impl Topics {
    /// Topics under `prefix`, for example `"hearth"` or `"home/hearth"`.
    pub fn new(prefix: &str) -> Result<Topics, TopicError> {
        let valid = !prefix.is_empty()
            && prefix
                .split('/')
                .all(|seg| !seg.is_empty() && !seg.contains(['+', '#']));
        if !valid {
            return Err(TopicError::InvalidPrefix(prefix.to_string()));
        }
        Ok(Topics {
            root: format!("{prefix}/v{PROTOCOL_VERSION}"),
        })
    }

    /// The hub's own retained presence topic.
    pub fn hub_presence(&self) -> String {
        format!("{}/hub/presence", self.root)
    }

    /// The topic of one channel of one terminal.
    pub fn terminal(&self, terminal_id: &str, channel: Channel) -> Result<String, TopicError> {
        if !valid_terminal_id(terminal_id) {
            return Err(TopicError::InvalidTerminalId(terminal_id.to_string()));
        }
        Ok(format!("{}/terminal/{terminal_id}/{channel}", self.root))
    }

    /// The subscription filter matching one channel of every terminal.
    pub fn every_terminal(&self, channel: Channel) -> String {
        format!("{}/terminal/+/{channel}", self.root)
    }

    /// Splits a terminal topic into its terminal id and channel. `None` for any other topic,
    /// including ones with an invalid terminal id.
    pub fn parse<'t>(&self, topic: &'t str) -> Option<(&'t str, Channel)> {
        let rest = topic.strip_prefix(&self.root)?.strip_prefix("/terminal/")?;
        let (id, channel) = rest.split_once('/')?;
        if !valid_terminal_id(id) {
            return None;
        }
        Some((id, Channel::parse(channel)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_terminal_topics() {
        let t = Topics::new("home/hearth").unwrap();
        for channel in Channel::ALL {
            let topic = t.terminal("kitchen-1", channel).unwrap();
            assert_eq!(
                topic,
                format!("home/hearth/v1/terminal/kitchen-1/{channel}")
            );
            assert_eq!(t.parse(&topic), Some(("kitchen-1", channel)));
        }
        assert_eq!(t.hub_presence(), "home/hearth/v1/hub/presence");
        assert_eq!(
            t.every_terminal(Channel::Utterance),
            "home/hearth/v1/terminal/+/utterance"
        );
    }

    #[test]
    fn rejects_bad_prefixes_and_ids() {
        for bad in ["", "/hearth", "hearth/", "a//b", "a/+/b", "#"] {
            assert_eq!(
                Topics::new(bad),
                Err(TopicError::InvalidPrefix(bad.to_string()))
            );
        }
        let t = Topics::new("hearth").unwrap();
        for bad in ["", "a/b", "a+", "kitchen#", &"x".repeat(65), "küche"] {
            assert!(t.terminal(bad, Channel::Reply).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parse_ignores_foreign_topics() {
        let t = Topics::new("hearth").unwrap();
        for other in [
            "hearth/v2/terminal/a/reply",
            "hearth/v1/terminal/a/unknown",
            "hearth/v1/terminal/a/reply/extra",
            "hearth/v1/hub/presence",
            "other/v1/terminal/a/reply",
            "hearth/v1/terminal//reply",
        ] {
            assert_eq!(t.parse(other), None, "{other}");
        }
    }
}
