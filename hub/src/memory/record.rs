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
    /// A question the user asked, kept in the question log (`memory.question_log_days`),
    /// not something they told: it is never recalled, corrected, promoted or consolidated
    /// as a fact. Retrieval lets it lend its score to the turn after it, its answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asked: bool,
    /// Said in answer to the memory just before it: that memory is what was said just before
    /// it in the room, and asked something ("Congrats! What made you run again?"), as the
    /// other person in a conversation does. It gets `answer_carry` of that memory's score;
    /// a logged question lends to nothing else. In a live room what was said just before is
    /// the assistant's reply, never a memory: a household's next words after a question the
    /// assistant answered are about something else.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub answers: bool,
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
            asked: false,
            answers: false,
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

/// The passages of a memory's text that are also searched on their own: its sentences, each
/// with the speaker's name in front like the text (see [`spoken_by`]). A sentence of fewer
/// than `min_words` words joins the next ("Wow, Anna!" is no passage of its own), and the
/// last joins the one before. A long turn's embedding blurs its sentences together; "I just
/// signed up for a pottery class" is found by its own.
pub fn passages(text: &str, min_words: usize) -> Vec<String> {
    let (who, body) = match speaker_of(text) {
        Some(who) => (format!("{who}: "), &text[who.len() + 2..]),
        None => (String::new(), text),
    };
    let mut sentences: Vec<&str> = Vec::new();
    let mut start = 0;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at_end = chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        let ends = match c {
            '\n' => true,
            '!' | '?' | '…' => at_end,
            // Not after an abbreviation such as "Dr." or "e.g.".
            '.' => at_end && !is_abbreviation(&body[start..i]),
            _ => false,
        };
        if ends {
            let end = i + c.len_utf8();
            sentences.push(body[start..end].trim());
            start = end;
        }
    }
    sentences.push(body[start..].trim());
    let mut out: Vec<String> = Vec::new();
    let mut pending = String::new();
    for s in sentences.into_iter().filter(|s| !s.is_empty()) {
        if !pending.is_empty() {
            pending.push(' ');
        }
        pending.push_str(s);
        if pending.split_whitespace().count() >= min_words {
            out.push(std::mem::take(&mut pending));
        }
    }
    match out.last_mut() {
        Some(last) if !pending.is_empty() => {
            last.push(' ');
            last.push_str(&pending);
        }
        None if !pending.is_empty() => out.push(pending),
        _ => {}
    }
    out.into_iter().map(|p| format!("{who}{p}")).collect()
}

/// Whether `sentence` (up to a full stop) ends in an abbreviation: "Dr", "e.g", "St".
fn is_abbreviation(sentence: &str) -> bool {
    let word = sentence.rsplit(char::is_whitespace).next().unwrap_or("");
    word.contains('.')
        || (word.len() <= 3
            && word.starts_with(|c: char| c.is_uppercase())
            && word.chars().all(char::is_alphabetic)
            && !matches!(word, "I" | "OK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_are_sentences_with_the_speaker_in_front() {
        assert_eq!(
            passages(
                "Mel: Wow, Anna! I just signed up for a pottery class. Dr. Lee says it helps, \
                 e.g. with stress! Fun?",
                4
            ),
            [
                "Mel: Wow, Anna! I just signed up for a pottery class.",
                "Mel: Dr. Lee says it helps, e.g. with stress! Fun?",
            ]
        );
        assert_eq!(
            passages("the boiler needs a service", 4),
            ["the boiler needs a service"]
        );
        assert_eq!(passages("Anna: Ok.", 4), ["Anna: Ok."]);
        assert_eq!(
            passages("Tom: first line here\nand the second line here", 3),
            ["Tom: first line here", "Tom: and the second line here"]
        );
        assert!(passages("", 4).is_empty());
        assert!(passages("Anna:  ", 4).is_empty());
    }
}
