//! Consolidation: long-term memories condensed into a profile of the user along five character
//! dimensions (the Big Five), computed in code from cue words so that every score can be
//! explained by counting. The profile is written in the hub's own words, from fixed phrases:
//! it never quotes what the user said.

use serde::{Deserialize, Serialize};

use super::record::{Memory, Speaker, Tier};
use super::store::{MemoryError, MemoryStore};

/// One character dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dimension {
    /// Its name ("openness").
    pub name: String,
    /// The lean in [-1, 1]: negative toward the low pole, positive toward the high one.
    pub score: f32,
    /// Memories with at least one cue for this dimension.
    pub evidence: usize,
    /// One sentence in the hub's words.
    pub summary: String,
}

/// The consolidated profile of the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The five dimensions, always in the same order.
    pub dimensions: Vec<Dimension>,
    /// How many memories were considered.
    pub memories: usize,
    /// When it was computed, in ms since the Unix epoch.
    pub updated_at_ms: u64,
}

struct Pole {
    name: &'static str,
    high: &'static [&'static str],
    low: &'static [&'static str],
    high_text: &'static str,
    low_text: &'static str,
}

/// Cue words (stems matched at the start of a word) for each pole.
const POLES: [Pole; 5] = [
    Pole {
        name: "openness",
        high: &[
            "travel",
            "learn",
            "curious",
            "explor",
            "museum",
            "art",
            "music",
            "book",
            "read",
            "language",
            "idea",
            "creativ",
            "paint",
            "violin",
            "piano",
            "guitar",
            "science",
            "new",
            "try",
            "trip",
            "japan",
            "photograph",
        ],
        low: &[
            "routine",
            "usual",
            "familiar",
            "traditional",
            "same old",
            "boring",
        ],
        high_text: "is curious and drawn to new experiences, ideas and culture",
        low_text: "prefers the familiar and values routine",
    },
    Pole {
        name: "conscientiousness",
        high: &[
            "plan",
            "schedul",
            "remind",
            "appointment",
            "deadline",
            "list",
            "organi",
            "budget",
            "prepar",
            "tidy",
            "clean",
            "exercis",
            "train",
            "run",
            "ran",
            "every",
            "always",
            "on time",
            "finish",
        ],
        low: &[
            "forgot",
            "late",
            "missed",
            "lost",
            "procrastinat",
            "mess",
            "later",
            "skip",
        ],
        high_text: "is organised and follows through on plans",
        low_text: "takes things as they come and sometimes lets plans slip",
    },
    Pole {
        name: "extraversion",
        high: &[
            "friend", "party", "people", "visit", "dinner", "together", "team", "meet", "call",
            "chat", "club", "concert", "guest", "festival",
        ],
        low: &[
            "alone",
            "quiet",
            "by myself",
            "stay home",
            "stay in",
            "introvert",
            "crowd",
        ],
        high_text: "draws energy from company and shared plans",
        low_text: "recharges in quiet time and small circles",
    },
    Pole {
        name: "agreeableness",
        high: &[
            "help",
            "care",
            "family",
            "sister",
            "brother",
            "mother",
            "father",
            "son",
            "daughter",
            "kind",
            "thank",
            "love",
            "gift",
            "volunteer",
            "share",
            "grandp",
            "grandm",
            "mum",
            "dad",
        ],
        low: &[
            "hate", "annoy", "argu", "angry", "rude", "complain", "fed up", "idiot",
        ],
        high_text: "is warm and puts care into family and others",
        low_text: "is direct and quick to voice irritation",
    },
    Pole {
        name: "emotional stability",
        high: &[
            "calm", "relax", "fine", "happy", "great", "good", "enjoy", "rested", "peace", "best",
            "proud",
        ],
        low: &[
            "stress",
            "worr",
            "anxious",
            "tired",
            "sad",
            "upset",
            "overwhelm",
            "afraid",
            "can't sleep",
            "exhaust",
            "lonely",
            "nervous",
        ],
        high_text: "seems steady and at ease",
        low_text: "has been carrying stress and worry",
    },
];

/// Below this |score| a dimension shows no lean.
const CLEAR_LEAN: f32 = 0.15;

fn cues(text: &str, stems: &[&str]) -> usize {
    let lower = text.to_lowercase();
    let words = crate::words::words(text);
    stems
        .iter()
        .filter(|stem| {
            if stem.contains(' ') {
                lower.contains(*stem)
            } else {
                words.iter().any(|w| w.starts_with(*stem))
            }
        })
        .count()
}

/// Condenses what the user said into a profile. Long-term memories count fully, short-term
/// ones half, archived and superseded ones not at all; each is weighted by its salience.
pub fn consolidate<'a>(memories: impl IntoIterator<Item = &'a Memory>, now_ms: u64) -> Profile {
    let mut high = [0.0f32; 5];
    let mut low = [0.0f32; 5];
    let mut evidence = [0usize; 5];
    let mut considered = 0;
    for m in memories {
        let tier_weight = match m.tier {
            Tier::LongTerm => 1.0,
            Tier::ShortTerm => 0.5,
            Tier::Archived => continue,
        };
        // What was asked (the question log) tells nothing of the user's leanings.
        if m.speaker != Speaker::User || m.superseded_by.is_some() || m.asked {
            continue;
        }
        considered += 1;
        let w = tier_weight * (0.5 + m.salience);
        for (i, pole) in POLES.iter().enumerate() {
            let (h, l) = (cues(&m.text, pole.high), cues(&m.text, pole.low));
            high[i] += w * h as f32;
            low[i] += w * l as f32;
            evidence[i] += usize::from(h + l > 0);
        }
    }
    let dimensions = POLES
        .iter()
        .enumerate()
        .map(|(i, pole)| {
            // Damped: one cue is a hint, not a character.
            let score = (high[i] - low[i]) / (high[i] + low[i] + 2.0);
            let summary = if evidence[i] == 0 {
                format!("No signs about {} yet.", pole.name)
            } else if score >= CLEAR_LEAN {
                format!("The user {} ({} memories).", pole.high_text, evidence[i])
            } else if score <= -CLEAR_LEAN {
                format!("The user {} ({} memories).", pole.low_text, evidence[i])
            } else {
                format!("No clear lean in {} ({} memories).", pole.name, evidence[i])
            };
            Dimension {
                name: pole.name.to_string(),
                score,
                evidence: evidence[i],
                summary,
            }
        })
        .collect();
    Profile {
        dimensions,
        memories: considered,
        updated_at_ms: now_ms,
    }
}

impl Profile {
    /// The dimensions with a clear lean, as one line for a prompt; empty when there are none.
    pub fn prompt_line(&self) -> String {
        self.dimensions
            .iter()
            .filter(|d| d.evidence > 0 && d.score.abs() >= CLEAR_LEAN)
            .map(|d| d.summary.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every dimension, one per line, with its score.
    pub fn render(&self) -> String {
        let mut out = format!("profile from {} memories\n", self.memories);
        for d in &self.dimensions {
            out.push_str(&format!("{:<20} {:+.2}  {}\n", d.name, d.score, d.summary));
        }
        out
    }

    const KEY: &'static [u8] = b"current";

    /// The stored profile, if one was computed.
    pub fn load(store: &MemoryStore) -> Result<Option<Profile>, MemoryError> {
        let tree = store.tree("profile")?;
        match tree.get(Profile::KEY).map_err(|e| store.storage(e))? {
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| MemoryError::Corrupt {
                        path: "profile".into(),
                        id: 0,
                        reason: e.to_string(),
                    })
            }
            None => Ok(None),
        }
    }

    /// Stores the profile. Durable when this returns.
    pub fn save(&self, store: &MemoryStore) -> Result<(), MemoryError> {
        let tree = store.tree("profile")?;
        let bytes = serde_json::to_vec(self).expect("profiles always serialize");
        tree.insert(Profile::KEY, bytes)
            .map_err(|e| store.storage(e))?;
        store.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: u64, text: &str, tier: Tier) -> Memory {
        let mut m = Memory::from_new(
            id,
            crate::memory::NewMemory {
                text: text.into(),
                room: "kitchen".into(),
                speaker: Speaker::User,
                created_at_ms: 0,
                salience: 0.6,
                source: None,
            },
        );
        m.tier = tier;
        m
    }

    #[test]
    fn profile_leans_with_the_memories_and_never_quotes_them() {
        let texts = [
            "I'm so stressed about the deadline at work, I can't sleep.",
            "Worried about my mother's operation on Friday.",
            "I feel tired and overwhelmed this week.",
            "We are planning a trip to Japan and I want to learn some Japanese.",
            "I started reading a book about the history of art.",
            "My sister Anna and I help at the food bank every Saturday.",
            "I made a list and a schedule for the move.",
        ];
        let ms: Vec<Memory> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| memory(i as u64, t, Tier::LongTerm))
            .chain([memory(99, "I am calm and happy", Tier::Archived)])
            .collect();
        let p = consolidate(&ms, 5);
        assert_eq!(p.memories, texts.len(), "archived memories are left out");
        assert_eq!(p.dimensions.len(), 5);
        let dim = |name: &str| p.dimensions.iter().find(|d| d.name == name).unwrap();
        assert!(dim("emotional stability").score <= -CLEAR_LEAN, "{p:?}");
        assert!(dim("openness").score >= CLEAR_LEAN, "{p:?}");
        assert!(dim("conscientiousness").score >= CLEAR_LEAN, "{p:?}");
        assert!(dim("agreeableness").score >= CLEAR_LEAN, "{p:?}");
        assert!(p.prompt_line().contains("stress"));

        // No run of three words of any memory appears in the profile.
        let profile = p.render().to_lowercase() + &p.prompt_line().to_lowercase();
        for t in texts {
            let words = crate::words::words(t);
            for run in words.windows(3) {
                assert!(!profile.contains(&run.join(" ")), "quoted {run:?}");
            }
        }

        let empty = consolidate(&[], 1);
        assert!(empty.prompt_line().is_empty());
        assert!(empty.dimensions.iter().all(|d| d.score == 0.0));
    }

    #[test]
    fn profile_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = consolidate(&[memory(1, "I love my family", Tier::LongTerm)], 7);
        {
            let store = MemoryStore::open(dir.path()).unwrap();
            assert_eq!(Profile::load(&store).unwrap(), None);
            p.save(&store).unwrap();
        }
        let store = MemoryStore::open(dir.path()).unwrap();
        assert_eq!(Profile::load(&store).unwrap(), Some(p));
    }
}
