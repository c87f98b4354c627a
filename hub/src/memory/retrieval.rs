//! Hybrid retrieval, as the subconscious runs it before an answer: candidates from BM25 and
//! from the vector index, each scored on five signals, min-max normalised over the candidate
//! set and mixed by configured weights (the Generative Agents paper's retrieval function, plus
//! BM25 and lifecycle strength). Every hit carries its breakdown, so a ranking can be explained.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::lifecycle::{valid_at, LifecycleConfig};
use super::memories::{Memories, MemoriesError};
use super::record::{Memory, MemoryId, Speaker, Tier};

/// Retrieval weights and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Weight of BM25 relevance.
    pub w_bm25: f32,
    /// Weight of embedding cosine similarity.
    pub w_cosine: f32,
    /// Weight of recency (exponential in hours since last access).
    pub w_recency: f32,
    /// Weight of salience.
    pub w_importance: f32,
    /// Weight of lifecycle retention.
    pub w_strength: f32,
    /// Recency decays by this factor per hour (Generative Agents used 0.995).
    pub recency_decay_per_hour: f32,
    /// Candidates taken from each index before scoring.
    pub candidates: usize,
    /// Include archived and superseded memories.
    pub include_archived: bool,
    /// A top hit with a cosine below this is weak evidence: the assistant should rather say
    /// it does not know (reported by `hearth-hub bench locomo`).
    pub confidence_floor: f32,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            w_bm25: 1.0,
            w_cosine: 1.0,
            w_recency: 0.3,
            w_importance: 0.3,
            w_strength: 0.2,
            recency_decay_per_hour: 0.995,
            candidates: 50,
            include_archived: false,
            confidence_floor: 0.5,
        }
    }
}

/// The raw signals of one candidate, before normalisation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    /// BM25 score (0 when only the vector index found it).
    pub bm25: f32,
    /// Cosine similarity (0 when only BM25 found it).
    pub cosine: f32,
    /// `decay^hours` since last access.
    pub recency: f32,
    /// Salience.
    pub importance: f32,
    /// Lifecycle retention (1 for short-term memories).
    pub strength: f32,
}

/// One retrieved memory.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The memory.
    pub memory: Memory,
    /// The combined score.
    pub score: f32,
    /// The raw signals behind it.
    pub signals: Signals,
}

/// Retrieves the best `k` memories for a query (its text and, if available, its normalised
/// embedding) at time `now_ms`.
pub fn retrieve(
    memories: &Memories,
    query: &str,
    query_vector: Option<&[f32]>,
    k: usize,
    now_ms: u64,
    config: &RetrievalConfig,
    lifecycle: &LifecycleConfig,
) -> Result<Vec<Hit>, MemoriesError> {
    let mut candidates: HashMap<MemoryId, (Memory, Signals)> = HashMap::new();
    for (m, score) in memories.search_text(query, config.candidates)? {
        candidates
            .entry(m.id)
            .or_insert((m, Signals::default()))
            .1
            .bm25 = score;
    }
    if let Some(v) = query_vector {
        for (m, score) in memories.search_vector(v, config.candidates)? {
            candidates
                .entry(m.id)
                .or_insert((m, Signals::default()))
                .1
                .cosine = score.max(0.0);
        }
    }
    let mut scored: Vec<(Memory, Signals)> = candidates
        .into_values()
        .filter(|(m, _)| {
            config.include_archived || (m.tier != Tier::Archived && valid_at(m, now_ms))
        })
        .map(|(m, mut s)| {
            let hours = now_ms.saturating_sub(m.last_access_ms) as f32 / 3_600_000.0;
            s.recency = config.recency_decay_per_hour.powf(hours);
            s.importance = m.salience;
            s.strength = match m.tier {
                Tier::LongTerm => lifecycle.retention(&m, now_ms) as f32,
                _ => 1.0,
            };
            (m, s)
        })
        .collect();
    let norm = |f: fn(&Signals) -> f32| {
        let (lo, hi) = scored
            .iter()
            .map(|(_, s)| f(s))
            .fold((f32::MAX, f32::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        move |s: &Signals| {
            if hi > lo {
                (f(s) - lo) / (hi - lo)
            } else if hi > 0.0 {
                1.0
            } else {
                0.0
            }
        }
    };
    let (bm25, cosine, recency, importance, strength) = (
        norm(|s| s.bm25),
        norm(|s| s.cosine),
        norm(|s| s.recency),
        norm(|s| s.importance),
        norm(|s| s.strength),
    );
    let mut hits: Vec<Hit> = scored
        .drain(..)
        .map(|(memory, s)| Hit {
            score: config.w_bm25 * bm25(&s)
                + config.w_cosine * cosine(&s)
                + config.w_recency * recency(&s)
                + config.w_importance * importance(&s)
                + config.w_strength * strength(&s),
            memory,
            signals: s,
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.memory.id.cmp(&b.memory.id))
    });
    hits.truncate(k);
    Ok(hits)
}

/// The provenance label a memory goes into the prompt with.
pub fn label(memory: &Memory) -> &'static str {
    match (memory.speaker, memory.tier) {
        (Speaker::Derived, _) => "[INFERRED, LOW CONFIDENCE]",
        (_, Tier::LongTerm) => "[FACT FROM LONG-TERM MEMORY]",
        (Speaker::Assistant, _) => "[YOU SAID EARLIER]",
        _ => "[USER SAID EARLIER]",
    }
}

/// Renders hits as labelled lines for the prompt, best first, within `budget_chars`
/// (a hit that does not fit whole is left out). The current turn is labelled
/// `[USER SAID THIS TURN]` by the caller.
pub fn render_context(hits: &[Hit], budget_chars: usize) -> String {
    let mut out = String::new();
    for hit in hits {
        let line = format!("{} {}\n", label(&hit.memory), hit.memory.text.trim());
        if out.len() + line.len() > budget_chars {
            continue;
        }
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::record::NewMemory;

    const NOW: u64 = 1_800_000_000_000;
    const HOUR: u64 = 3_600_000;

    fn remember(m: &Memories, text: &str, hours_ago: u64, salience: f32, v: [f32; 3]) -> Memory {
        let at = NOW - hours_ago * HOUR;
        let memory = m
            .remember(NewMemory {
                text: text.into(),
                room: "kitchen".into(),
                speaker: Speaker::User,
                created_at_ms: at,
                salience,
                source: None,
            })
            .unwrap();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        m.set_vector(memory.id, &v.map(|x| x / n)).unwrap();
        memory
    }

    fn texts(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.memory.text.as_str()).collect()
    }

    #[test]
    fn bm25_and_vectors_both_contribute_and_weights_matter() {
        let m = Memories::temporary(3).unwrap();
        remember(&m, "Anna lives in Porto", 100, 0.5, [1.0, 0.0, 0.0]);
        remember(
            &m,
            "my sibling moved to the coast",
            100,
            0.5,
            [0.9, 0.1, 0.0],
        );
        remember(&m, "the boiler needs a service", 1, 0.5, [0.0, 0.0, 1.0]);
        let l = LifecycleConfig::default();
        let c = RetrievalConfig::default();
        // Words find the first, meaning (the vector) finds the second too.
        let hits = retrieve(
            &m,
            "Where does Anna live",
            Some(&[1.0, 0.0, 0.0]),
            2,
            NOW,
            &c,
            &l,
        )
        .unwrap();
        assert_eq!(
            texts(&hits),
            ["Anna lives in Porto", "my sibling moved to the coast"]
        );
        assert!(hits[0].signals.bm25 > 0.0 && hits[0].signals.cosine > 0.99);
        assert_eq!(hits[1].signals.bm25, 0.0, "found by the vector alone");
        // Recency alone favours the boiler.
        let recent = RetrievalConfig {
            w_bm25: 0.0,
            w_cosine: 0.0,
            w_recency: 1.0,
            w_importance: 0.0,
            w_strength: 0.0,
            ..c.clone()
        };
        let hits = retrieve(&m, "Anna", Some(&[0.0, 0.0, 1.0]), 1, NOW, &recent, &l).unwrap();
        assert_eq!(texts(&hits), ["the boiler needs a service"]);
    }

    #[test]
    fn archived_and_superseded_memories_are_left_out_unless_asked() {
        let m = Memories::temporary(3).unwrap();
        let mut old = remember(&m, "Anna lives in Lisbon", 200, 0.6, [1.0, 0.0, 0.0]);
        let new = remember(&m, "Anna lives in Porto", 1, 0.6, [1.0, 0.1, 0.0]);
        crate::memory::lifecycle::supersede(&mut old, new.id, NOW - 2 * HOUR);
        m.update(&old).unwrap();
        let mut faded = remember(&m, "Anna liked the old café", 900, 0.1, [1.0, 0.0, 0.1]);
        faded.tier = Tier::Archived;
        m.update(&faded).unwrap();
        let l = LifecycleConfig::default();
        let c = RetrievalConfig::default();
        let hits = retrieve(&m, "Anna", Some(&[1.0, 0.0, 0.0]), 5, NOW, &c, &l).unwrap();
        assert_eq!(texts(&hits), ["Anna lives in Porto"]);
        let all = RetrievalConfig {
            include_archived: true,
            ..c
        };
        let hits = retrieve(&m, "Anna", Some(&[1.0, 0.0, 0.0]), 5, NOW, &all, &l).unwrap();
        assert_eq!(hits.len(), 3);
    }

    #[test]
    fn context_is_labelled_and_fits_the_budget() {
        let m = Memories::temporary(3).unwrap();
        let fact = remember(&m, "Anna lives in Porto", 1, 0.6, [1.0, 0.0, 0.0]);
        let mut long = fact.clone();
        long.tier = Tier::LongTerm;
        m.update(&long).unwrap();
        remember(&m, "Anna called about the weekend", 1, 0.6, [1.0, 0.0, 0.0]);
        let hits = retrieve(
            &m,
            "Anna",
            None,
            5,
            NOW,
            &RetrievalConfig::default(),
            &LifecycleConfig::default(),
        )
        .unwrap();
        let all = render_context(&hits, 1000);
        assert!(
            all.contains("[FACT FROM LONG-TERM MEMORY] Anna lives in Porto\n"),
            "{all}"
        );
        assert!(
            all.contains("[USER SAID EARLIER] Anna called about the weekend\n"),
            "{all}"
        );
        let small = render_context(&hits, 50);
        assert!(small.len() <= 50 && small.lines().count() == 1, "{small:?}");
        assert!(render_context(&hits, 5).is_empty());
    }
}
