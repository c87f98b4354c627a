//! Hybrid retrieval, as the subconscious runs it before an answer: candidates from BM25 and
//! from the vector index, each scored on five signals, min-max normalised over the candidate
//! set and mixed by configured weights (the Generative Agents paper's retrieval function, plus
//! BM25 and lifecycle strength). Windows of neighbouring turns come next, then a re-ranking
//! pass by each memory's best passage (sentence) and, for "when" questions, by whether it says
//! when. Every hit carries its breakdown, so a ranking can be explained. Questions in the
//! question log are scored like memories and lend their score to the turn after them (the
//! answer), but are never hits themselves.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::lifecycle::{valid_at, LifecycleConfig};
use super::memories::{Memories, MemoriesError};
use super::record::{speaker_of, Memory, MemoryId, Speaker, Tier};
use super::when::{asks_when, period_in, tells_when};

/// Retrieval weights and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Weight of BM25 relevance.
    pub w_bm25: f32,
    /// The normalised BM25 score is raised to this power before weighting: above 1, a
    /// memory that matches the question's rarest words clearly leads one that shares a
    /// common word or two with it.
    pub bm25_power: f32,
    /// Weight of embedding cosine similarity (the memory's whole text, with its context).
    pub w_cosine: f32,
    /// Weight of BM25 over the words' character trigrams, which matches close spellings
    /// ("persue" and "pursue", "de-stress" and "destress").
    pub w_grams: f32,
    /// Weight of the best cosine among the memory's passages (`memory.passage_vectors`),
    /// added in the re-ranking pass.
    pub w_passage: f32,
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
    /// it does not know (reported by `hearth-bench locomo`).
    pub confidence_floor: f32,
    /// BM25 over stemmed words without stop words ("lose" finds "lost"), rather than exact
    /// words.
    pub stemming: bool,
    /// How BM25 and cosine are combined: `weighted` (min-max normalised scores) or `rrf`
    /// (reciprocal rank fusion, `1 / (rrf_k + rank)`).
    pub fusion: Fusion,
    /// The rank offset of reciprocal rank fusion.
    pub rrf_k: f32,
    /// Added when the question names the memory's speaker ("what did Anna say...").
    pub w_speaker: f32,
    /// A memory also gets this share of the best score among its neighbouring turns (same
    /// room, within `neighbour_minutes`); neighbours of the best candidates join the ranking.
    pub neighbour_weight: f32,
    /// Turns on each side that count as neighbours.
    pub neighbour_turns: usize,
    /// The most minutes between neighbouring turns.
    pub neighbour_minutes: u64,
    /// A memory that is a question ("what did you get?") is asked, not known: its score is
    /// multiplied by this...
    pub question_weight: f32,
    /// ...and the turn right after it (the answer) gets this share of the question's score,
    /// instead of `neighbour_weight`.
    pub answer_carry: f32,
    /// A fact whose own time has run out ("I'm in Leeds until Friday", asked on Saturday)
    /// is recalled with its score multiplied by this: what holds now comes first.
    pub expired_weight: f32,
    /// Added when the question names a date or month ("on 1 May, 2022", "in July") and the
    /// memory was made then, or within `time_grace_days` after ("last Friday I...").
    pub w_time: f32,
    /// Days after a named period in which memories may still be about it.
    pub time_grace_days: u64,
    /// The household's time zone, in which a question's named day or month is read. Not a
    /// key of its own: the hub sets it from `pixie.time_zone` (UTC by default, and in the
    /// LoCoMo benchmark, whose dates carry no zone).
    #[serde(skip)]
    pub zone: jiff::tz::TimeZone,
    /// Added in the re-ranking pass in proportion to how much a memory says, up to
    /// `substance_words` words: a turn that tells something ("I went camping in the
    /// mountains with the kids last week") holds an answer more often than a reaction
    /// ("Wow, that's great!"), which BM25's length normalisation favours.
    pub w_substance: f32,
    /// The word count at which a memory gets all of `w_substance`.
    pub substance_words: usize,
    /// Taken off in the re-ranking pass when the question names someone and a memory with no
    /// speaker's name only speaks to them ("Thanks, Tom!"): whoever said it was not Tom, and
    /// it tells of Tom less often than BM25's match on the name says.
    pub w_addressed: f32,

    /// Added in the re-ranking pass when the question asks when ("When did...") and the
    /// memory says when ("yesterday", "last Friday", "two weeks ago", "in 2019").
    pub w_when: f32,
    /// When the question names someone, its embedding moves this share of the way towards
    /// the embedding of the question without the names ([`without_names`]): whoever tells
    /// of their own move says "I moved to York", not "Tom moved to York", so the meaning of
    /// "where did Tom move?" finds it better than the name does. BM25 still matches the
    /// name. 0 embeds the question alone.
    pub unnamed_share: f32,
}

/// How BM25 and cosine are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Min-max normalised scores, weighted.
    Weighted,
    /// Reciprocal rank fusion.
    Rrf,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            zone: jiff::tz::TimeZone::UTC,
            w_bm25: 1.0,
            bm25_power: 1.5,
            w_cosine: 0.3,
            w_grams: 0.3,
            w_passage: 0.8,
            w_recency: 0.05,
            w_importance: 0.1,
            w_strength: 0.05,
            recency_decay_per_hour: 0.995,
            candidates: 50,
            include_archived: false,
            confidence_floor: 0.5,
            stemming: true,
            fusion: Fusion::Weighted,
            rrf_k: 60.0,
            w_speaker: 0.1,
            neighbour_weight: 0.3,
            neighbour_turns: 2,
            neighbour_minutes: 10,
            question_weight: 0.6,
            expired_weight: 0.5,
            answer_carry: 0.8,
            w_time: 0.5,
            time_grace_days: 7,
            w_substance: 0.2,
            substance_words: 40,
            w_addressed: 0.3,
            w_when: 0.4,
            unnamed_share: 0.5,
        }
    }
}

/// The raw signals of one candidate, before normalisation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    /// BM25 score (0 when only the vector index found it).
    pub bm25: f32,
    /// Cosine similarity of the whole text (0 without a vector).
    pub cosine: f32,
    /// BM25 over character trigrams (0 when that search did not find it).
    pub grams: f32,
    /// The best cosine similarity among its passages (0 without passages), from the
    /// re-ranking pass.
    pub passage: f32,
    /// `decay^hours` since last access.
    pub recency: f32,
    /// Salience.
    pub importance: f32,
    /// Lifecycle retention (1 for short-term memories).
    pub strength: f32,
    /// Whether the query names the memory's speaker.
    pub speaker: bool,
    /// Whether the query names a period the memory was made in.
    pub period: bool,
    /// Whether the question asks when and the memory says when.
    pub tells_when: bool,
    /// What its neighbouring turns added (their best score times their share).
    pub neighbour: f32,
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
    for (id, score) in memories
        .fulltext()
        .search_in(query, config.candidates, config.stemming)?
    {
        if let Some(m) = memories.store().get(id)? {
            candidates
                .entry(m.id)
                .or_insert((m, Signals::default()))
                .1
                .bm25 = score;
        }
    }
    if let Some(v) = query_vector {
        for (m, score) in memories.search_vector(v, config.candidates)? {
            candidates
                .entry(m.id)
                .or_insert((m, Signals::default()))
                .1
                .cosine = score.max(0.0);
        }
        // Memories with a passage close to the question join the candidates; their passage
        // similarity counts in the re-ranking pass.
        if config.w_passage > 0.0 {
            for (m, _) in memories.search_passages(v, config.candidates)? {
                candidates.entry(m.id).or_insert((m, Signals::default()));
            }
        }
    }
    // Close spellings score the candidates found so far; they bring in none of their own.
    if config.w_grams > 0.0 {
        let ids: Vec<MemoryId> = candidates.keys().copied().collect();
        for (id, score) in memories.fulltext().search_grams(query, &ids)? {
            if let Some((_, s)) = candidates.get_mut(&id) {
                s.grams = score;
            }
        }
    }
    // Superseded and archived memories are history; a fact whose own time ran out ("until
    // Friday") is still recalled, behind what holds now (`expired_weight`).
    let live = |m: &Memory| {
        config.include_archived
            || (m.tier != Tier::Archived && (m.superseded_by.is_none() || valid_at(m, now_ms)))
    };
    let query_words = crate::words::words(query);
    let period = if config.w_time > 0.0 {
        period_in(query, &config.zone)
    } else {
        None
    };
    let names_speaker = |m: &Memory| {
        speaker_of(&m.text).is_some_and(|who| {
            let who = who.to_lowercase();
            who.split_whitespace()
                .all(|w| query_words.iter().any(|q| q == w))
        })
    };
    let mut scored: Vec<(Memory, Signals)> = candidates
        .into_values()
        .filter(|(m, _)| live(m))
        .map(|(m, mut s)| {
            let hours = now_ms.saturating_sub(m.last_access_ms) as f32 / 3_600_000.0;
            s.recency = config.recency_decay_per_hour.powf(hours);
            s.importance = m.salience;
            s.strength = match m.tier {
                Tier::LongTerm => lifecycle.retention(&m, now_ms) as f32,
                _ => 1.0,
            };
            s.speaker = names_speaker(&m);
            s.period = period
                .is_some_and(|p| p.covers(m.created_at_ms, config.time_grace_days, &config.zone));
            (m, s)
        })
        .collect();
    let norm = |scored: &[(Memory, Signals)], f: fn(&Signals) -> f32| {
        let (lo, hi) = min_max(scored.iter().map(|(_, s)| f(s)));
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
    // Reciprocal ranks by BM25 and by cosine (0 where the index did not find the memory).
    let rrf: HashMap<MemoryId, f32> = if config.fusion == Fusion::Rrf {
        let mut out: HashMap<MemoryId, f32> = HashMap::new();
        for (f, w) in [
            ((|s: &Signals| s.bm25) as fn(&Signals) -> f32, config.w_bm25),
            (|s: &Signals| s.cosine, config.w_cosine),
        ] {
            let mut ranked: Vec<(MemoryId, f32)> = scored
                .iter()
                .filter(|(_, s)| f(s) > 0.0)
                .map(|(m, s)| (m.id, f(s)))
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (rank, (id, _)) in ranked.into_iter().enumerate() {
                *out.entry(id).or_default() += w / (config.rrf_k + rank as f32 + 1.0);
            }
        }
        out
    } else {
        HashMap::new()
    };
    let base = {
        let (bm25, cosine, grams, recency, importance, strength) = (
            norm(&scored, |s| s.bm25),
            norm(&scored, |s| s.cosine),
            norm(&scored, |s| s.grams),
            norm(&scored, |s| s.recency),
            norm(&scored, |s| s.importance),
            norm(&scored, |s| s.strength),
        );
        let rrf_max = rrf.values().copied().fold(0.0f32, f32::max);
        move |m: &Memory, s: &Signals| {
            let relevance = match config.fusion {
                Fusion::Weighted => {
                    config.w_bm25 * bm25(s).powf(config.bm25_power)
                        + config.w_cosine * cosine(s)
                        + config.w_grams * grams(s)
                }
                // Scaled so that the best fused memory gets what a memory best on both
                // scores would get from the weighted sum.
                Fusion::Rrf if rrf_max > 0.0 => {
                    rrf.get(&m.id).copied().unwrap_or(0.0) / rrf_max
                        * (config.w_bm25 + config.w_cosine)
                }
                Fusion::Rrf => 0.0,
            };
            relevance
                + config.w_recency * recency(s)
                + config.w_importance * importance(s)
                + config.w_strength * strength(s)
                + if s.speaker { config.w_speaker } else { 0.0 }
                + if s.period { config.w_time } else { 0.0 }
        }
    };
    let mut hits: Vec<Hit> = scored
        .drain(..)
        .map(|(memory, s)| Hit {
            score: base(&memory, &s),
            memory,
            signals: s,
        })
        .collect();
    let questions: Vec<bool> = hits.iter().map(|h| is_question(&h.memory)).collect();
    for (hit, question) in hits.iter_mut().zip(questions) {
        if question {
            hit.score *= config.question_weight;
        }
        if !valid_at(&hit.memory, now_ms) {
            hit.score *= config.expired_weight;
        }
    }
    if (config.neighbour_weight > 0.0 || config.answer_carry > 0.0) && config.neighbour_turns > 0 {
        add_neighbours(memories, &mut hits, config, k, &live)?;
    }
    rerank(memories, query, query_vector, &mut hits, config);
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.memory.id.cmp(&b.memory.id))
    });
    // What was asked is not known: a logged question only lent its score to its answer.
    hits.retain(|h| !h.memory.asked);
    hits.truncate(k);
    Ok(hits)
}

/// The re-ranking pass, over every candidate and the neighbours that joined them: each gets
/// `w_passage` times its best passage's cosine (min-max normalised over the candidates), and
/// when the question asks when, each memory that says when gets `w_when`. It comes after the
/// neighbour windows, so that a question turn's passages lend its answer nothing.
fn rerank(
    memories: &Memories,
    query: &str,
    query_vector: Option<&[f32]>,
    hits: &mut [Hit],
    config: &RetrievalConfig,
) {
    if let (Some(v), true) = (query_vector, config.w_passage > 0.0) {
        for h in hits.iter_mut() {
            h.signals.passage = memories
                .similarity(h.memory.id, v)
                .1
                .unwrap_or(0.0)
                .max(0.0);
        }
        let (lo, hi) = min_max(hits.iter().map(|h| h.signals.passage));
        if hi > lo {
            for h in hits.iter_mut() {
                h.score += config.w_passage * (h.signals.passage - lo) / (hi - lo);
            }
        }
    }
    if config.w_substance > 0.0 && config.substance_words > 0 {
        for h in hits.iter_mut() {
            let words = h
                .memory
                .text
                .split_whitespace()
                .count()
                .min(config.substance_words);
            h.score += config.w_substance * words as f32 / config.substance_words as f32;
        }
    }
    if config.w_addressed > 0.0 {
        let names = named(query);
        for h in hits.iter_mut() {
            if speaker_of(&h.memory.text).is_none()
                && names.iter().any(|n| addresses(&h.memory.text, n))
            {
                h.score -= config.w_addressed;
            }
        }
    }
    if config.w_when > 0.0 && asks_when(query) {
        for h in hits.iter_mut() {
            h.signals.tells_when = tells_when(&h.memory.text);
            if h.signals.tells_when {
                h.score += config.w_when;
            }
        }
    }
}

/// The names a question mentions: its capitalised words after the first ("What did Tom's
/// sister say?" names "Tom").
fn named(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .skip(1)
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase) && *w != "I")
        .map(|w| w.trim_end_matches("'s").to_string())
        .collect()
}

/// The question without the names it mentions ([`named`]; the names of days and months
/// stay, they say when), or `None` when it names no one.
pub fn without_names(query: &str) -> Option<String> {
    let names: Vec<String> = named(query)
        .into_iter()
        .filter(|n| !crate::memory::when::calendar_word(n))
        .collect();
    if names.is_empty() {
        return None;
    }
    let kept: Vec<&str> = query
        .split_whitespace()
        .filter(|w| {
            let bare = w
                .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                .trim_end_matches("'s");
            !names.iter().any(|n| n == bare)
        })
        .collect();
    Some(kept.join(" "))
}

/// `vector` moved `share` of the way towards `other`, and normalised again.
pub fn blend(vector: &mut [f32], other: &[f32], share: f32) {
    for (x, y) in vector.iter_mut().zip(other) {
        *x = (1.0 - share) * *x + share * y;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Whether `text` speaks to `name` ("Thanks, Tom!", "Hey Tom, ...", "Tom, ...") and names
/// them in no other way: then whoever said it was not Tom.
fn addresses(text: &str, name: &str) -> bool {
    let mut spoken_to = false;
    for (at, _) in text.match_indices(name) {
        let before = text[..at].trim_end();
        let after = text[at + name.len()..].chars().next();
        let greeting = ["Hey", "Hi", "Hello", "Thanks"].iter().any(|g| {
            before
                .strip_suffix(g)
                .is_some_and(|b| !b.ends_with(char::is_alphanumeric))
        });
        let vocative = (before.is_empty() || before.ends_with(',') || greeting)
            && matches!(after, Some(',' | '!' | '.' | '?') | None);
        if !vocative {
            return false;
        }
        spoken_to = true;
    }
    spoken_to
}

/// The lowest and highest of `values` (`(f32::MAX, f32::MIN)` when there are none).
fn min_max(values: impl Iterator<Item = f32>) -> (f32, f32) {
    values.fold((f32::MAX, f32::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

/// Whether a memory is a question: from the question log, or its text ends as one.
fn is_question(m: &Memory) -> bool {
    m.asked
        || m.text
            .trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == ')')
            .ends_with('?')
}

/// Windows of neighbouring turns: an answer often sits next to the turn that matches the
/// question ("what did you do then?" / "I went to Porto"). Each hit gets a share of the best
/// base score among its neighbours, and the neighbours of the best hits join the ranking.
fn add_neighbours(
    memories: &Memories,
    hits: &mut Vec<Hit>,
    config: &RetrievalConfig,
    k: usize,
    live: &dyn Fn(&Memory) -> bool,
) -> Result<(), MemoriesError> {
    let window_ms = config.neighbour_minutes * 60_000;
    let n = config.neighbour_turns as u64;
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut index: HashMap<MemoryId, usize> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| (h.memory.id, i))
        .collect();
    // Neighbours of the best hits that neither index found.
    let best: Vec<(Memory, f32)> = hits
        .iter()
        .take(k.max(10))
        .map(|h| (h.memory.clone(), h.score))
        .collect();
    for (m, _) in &best {
        for id in (m.id.saturating_sub(n)..=m.id + n).filter(|id| *id != m.id) {
            if index.contains_key(&id) {
                continue;
            }
            if let Some(other) = memories.store().get(id)? {
                if other.room == m.room
                    && other.created_at_ms.abs_diff(m.created_at_ms) <= window_ms
                    && live(&other)
                {
                    index.insert(id, hits.len());
                    hits.push(Hit {
                        memory: other,
                        score: 0.0,
                        signals: Signals::default(),
                    });
                }
            }
        }
    }
    // (score before question weighting, room, time, whether it is a logged question)
    let base: Vec<(f32, String, u64, bool)> = hits
        .iter()
        .map(|h| {
            let unweighted = if is_question(&h.memory) && config.question_weight > 0.0 {
                h.score / config.question_weight
            } else {
                h.score
            };
            (
                unweighted,
                h.memory.room.clone(),
                h.memory.created_at_ms,
                h.memory.asked,
            )
        })
        .collect();
    for hit in hits.iter_mut() {
        let m = &hit.memory;
        let mut best = 0.0f32;
        for id in (m.id.saturating_sub(n)..=m.id + n).filter(|id| *id != m.id) {
            if let Some((score, room, at, asked)) = index.get(&id).map(|&j| &base[j]) {
                if *room == m.room && at.abs_diff(m.created_at_ms) <= window_ms {
                    // A turn said in answer to what the one before it asked
                    // (`Memory::answers`, judged at ingest: "Congrats! What made you run
                    // again?" / "I saw the impact I could make") gets the answer's share.
                    // A logged question lends to nothing else.
                    let share = if id + 1 == m.id && m.answers {
                        config.answer_carry
                    } else if *asked {
                        0.0
                    } else {
                        config.neighbour_weight
                    };
                    best = best.max(share * score);
                }
            }
        }
        hit.signals.neighbour = best;
        hit.score += best;
    }
    Ok(())
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
mod tests;
