//! One memory record, as stored in sled and in JSONL exports.

use serde::{Deserialize, Serialize};

/// A memory's id: unique within one store, never reused.
pub type MemoryId = u64;

/// Who the memory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// Something a person said.
    User,
    /// Something the assistant said.
    Assistant,
    /// Derived by the hub (a consolidated fact, a profile line).
    Derived,
}

/// Where a memory is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Fresh; expires after a salience-dependent TTL unless re-warmed.
    ShortTerm,
    /// Promoted; decays along a forgetting curve.
    LongTerm,
    /// Decayed below the floor or superseded: kept, but not retrieved by default.
    Archived,
}

impl Tier {
    /// The more established of two tiers, never archived: long-term over short-term.
    pub fn max_live(self, other: Tier) -> Tier {
        if self == Tier::LongTerm || other == Tier::LongTerm {
            Tier::LongTerm
        } else {
            Tier::ShortTerm
        }
    }
}

/// A memory to insert; the store assigns the id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMemory {
    /// The text.
    pub text: String,
    /// The room it was heard in.
    pub room: String,
    /// Who said it.
    pub speaker: Speaker,
    /// When it was said, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Importance in [0, 1].
    pub salience: f32,
    /// Where it came from (an utterance id, say).
    pub source: Option<String>,
}

/// A stored memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Unique id.
    pub id: MemoryId,
    /// The text.
    pub text: String,
    /// The room it was heard in.
    pub room: String,
    /// Who said it.
    pub speaker: Speaker,
    /// When it was said, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Importance in [0, 1].
    pub salience: f32,
    /// Lifecycle tier.
    pub tier: Tier,
    /// How often it was recalled or re-warmed.
    pub recalls: u32,
    /// When it was last recalled (or created), in ms since the Unix epoch.
    pub last_access_ms: u64,
    /// When the fact became true.
    pub valid_from_ms: u64,
    /// When the fact stopped being true (superseded), if it did.
    #[serde(default)]
    pub valid_until_ms: Option<u64>,
    /// The memory that superseded this one.
    #[serde(default)]
    pub superseded_by: Option<MemoryId>,
    /// Where it came from.
    #[serde(default)]
    pub source: Option<String>,
}

impl Memory {
    /// A new short-term memory with id `id`.
    pub fn from_new(id: MemoryId, new: NewMemory) -> Memory {
        Memory {
            id,
            text: new.text,
            room: new.room,
            speaker: new.speaker,
            created_at_ms: new.created_at_ms,
            salience: new.salience.clamp(0.0, 1.0),
            tier: Tier::ShortTerm,
            recalls: 0,
            last_access_ms: new.created_at_ms,
            valid_from_ms: new.created_at_ms,
            valid_until_ms: None,
            superseded_by: None,
            source: new.source,
        }
    }
}

/// The text a memory keeps of something `speaker` said: their name in front ("Anna: I'm off
/// to Porto"), so that both indexes see who said it.
pub fn spoken_by(speaker: Option<&str>, text: &str) -> String {
    match speaker.map(str::trim) {
        Some(who) if !who.is_empty() && !who.contains(':') => format!("{who}: {text}"),
        _ => text.to_string(),
    }
}

/// The speaker a memory's text names in front (see [`spoken_by`]), if any.
pub fn speaker_of(text: &str) -> Option<&str> {
    let (who, _) = text.split_once(": ")?;
    (!who.is_empty() && who.len() <= 40 && who.split_whitespace().count() <= 3).then_some(who)
}
