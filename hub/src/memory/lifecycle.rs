//! The memory lifecycle, all arithmetic in code (never in the LLM), every parameter in config,
//! and time always passed in (`now_ms`), so that tests control the clock.
//!
//! - **Salience** in [0, 1]: a rational score from what a turn says (facts with numbers and
//!   dates, plans, people, names, preferences) mixed with an emotional score.
//! - **Short-term** memories live for a TTL that grows with salience. A recurrence or a recall
//!   **re-warms** them; enough re-warming **promotes** them to long-term.
//! - **Long-term** memories decay along the Ebbinghaus curve `R = exp(-t / S)`, with `t` the days
//!   since the last recall and `S` a strength in days that grows with salience and with each
//!   recall (MemoryBank's fixed one-day S forgets far too fast). Below a floor they are
//!   **archived**, never deleted.
//! - A contradicted fact is **superseded**: it gets a `valid_until` and a pointer to its
//!   successor, and stays.

use serde::{Deserialize, Serialize};

use super::record::{Memory, MemoryId, Tier};
use super::when::{MONTHS, WEEKDAYS};

const DAY_MS: f64 = 86_400_000.0;
const HOUR_MS: f64 = 3_600_000.0;

/// Every lifecycle parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Short-term TTL of a memory of salience 0, in hours.
    pub short_term_ttl_hours: f64,
    /// The TTL is multiplied by `1 + ttl_salience_gain * salience`.
    pub ttl_salience_gain: f64,
    /// Re-warmings that promote a short-term memory to long-term.
    pub promote_after_rewarms: u32,
    /// Long-term strength S of a memory of salience 0 that was never recalled, in days.
    pub base_strength_days: f64,
    /// S is multiplied by `1 + strength_salience_gain * salience`...
    pub strength_salience_gain: f64,
    /// ...and by this for every recall.
    pub recall_strength_factor: f64,
    /// Long-term memories whose retention R falls below this are archived.
    pub archive_floor: f64,
    /// Weight of the rational score in salience (the emotional score gets the rest).
    pub rational_weight: f32,
    /// Questions the user asks are kept this many days in the question log
    /// ([`Memory::asked`]), then deleted; 0 keeps none.
    pub question_log_days: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            short_term_ttl_hours: 12.0,
            ttl_salience_gain: 13.0,
            promote_after_rewarms: 2,
            base_strength_days: 7.0,
            strength_salience_gain: 3.0,
            recall_strength_factor: 2.0,
            archive_floor: 0.05,
            rational_weight: 0.75,
            question_log_days: 90,
        }
    }
}

/// What a sweep decided for one memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sweep {
    /// Nothing changes.
    Keep,
    /// A short-term memory outlived its TTL.
    Expired,
    /// A long-term memory decayed below the floor; `retention` is its R.
    Faded {
        /// R at the time of the sweep.
        retention: f64,
    },
    /// A question in the question log is older than `question_log_days`: it is deleted.
    Pruned,
}

impl LifecycleConfig {
    /// The salience of a turn from its text and an emotional score in [0, 1].
    pub fn salience(&self, text: &str, emotional: f32) -> f32 {
        let w = self.rational_weight.clamp(0.0, 1.0);
        (w * rational_score(text) + (1.0 - w) * emotional.clamp(0.0, 1.0)).clamp(0.0, 1.0)
    }

    /// How long a short-term memory of this salience lives, in ms.
    pub fn ttl_ms(&self, salience: f32) -> u64 {
        (self.short_term_ttl_hours * HOUR_MS * (1.0 + self.ttl_salience_gain * f64::from(salience)))
            as u64
    }

    /// The strength S of a memory, in days.
    pub fn strength_days(&self, m: &Memory) -> f64 {
        self.base_strength_days
            * (1.0 + self.strength_salience_gain * f64::from(m.salience))
            * self.recall_strength_factor.powi(m.recalls as i32)
    }

    /// Retention R = exp(-t/S) in (0, 1], with t the days since the last access.
    pub fn retention(&self, m: &Memory, now_ms: u64) -> f64 {
        let t_days = now_ms.saturating_sub(m.last_access_ms) as f64 / DAY_MS;
        (-t_days / self.strength_days(m)).exp()
    }

    /// A recurrence or a recall: counts it, resets the clock, and promotes a short-term
    /// memory re-warmed often enough. Returns whether it was promoted.
    pub fn rewarm(&self, m: &mut Memory, now_ms: u64) -> bool {
        m.recalls = m.recalls.saturating_add(1);
        m.last_access_ms = m.last_access_ms.max(now_ms);
        if m.tier == Tier::ShortTerm && m.recalls >= self.promote_after_rewarms {
            m.tier = Tier::LongTerm;
            return true;
        }
        false
    }

    /// What a sweep at `now_ms` does to `m` (archived memories are kept as they are).
    pub fn sweep(&self, m: &Memory, now_ms: u64) -> Sweep {
        if m.asked {
            let kept_ms = self.question_log_days.saturating_mul(86_400_000);
            return if now_ms > m.created_at_ms.saturating_add(kept_ms) {
                Sweep::Pruned
            } else {
                Sweep::Keep
            };
        }
        match m.tier {
            Tier::ShortTerm => {
                if now_ms > m.last_access_ms.saturating_add(self.ttl_ms(m.salience)) {
                    Sweep::Expired
                } else {
                    Sweep::Keep
                }
            }
            Tier::LongTerm => {
                let retention = self.retention(m, now_ms);
                if retention < self.archive_floor {
                    Sweep::Faded { retention }
                } else {
                    Sweep::Keep
                }
            }
            Tier::Archived => Sweep::Keep,
        }
    }

    /// Applies a sweep decision: expired and faded memories are archived, never deleted
    /// (a pruned question is deleted by the caller). Returns whether `m` changed.
    pub fn apply(&self, m: &mut Memory, sweep: Sweep) -> bool {
        match sweep {
            Sweep::Keep | Sweep::Pruned => false,
            Sweep::Expired | Sweep::Faded { .. } => {
                m.tier = Tier::Archived;
                true
            }
        }
    }
}

/// Marks `old` as no longer true from `now_ms`, replaced by `new_id`. Both stay.
pub fn supersede(old: &mut Memory, new_id: MemoryId, now_ms: u64) {
    old.valid_until_ms = Some(now_ms.max(old.valid_from_ms));
    old.superseded_by = Some(new_id);
}

/// Whether a memory holds at `at_ms` (not yet superseded then).
pub fn valid_at(m: &Memory, at_ms: u64) -> bool {
    m.valid_from_ms <= at_ms && m.valid_until_ms.is_none_or(|until| at_ms < until)
}

const PLAN_WORDS: &[&str] = &[
    "will",
    "going",
    "plan",
    "planning",
    "remind",
    "need",
    "must",
    "should",
    "appointment",
    "meeting",
    "tomorrow",
    "tonight",
    "next",
    "deadline",
    "birthday",
    "anniversary",
    "trip",
];
const PEOPLE_WORDS: &[&str] = &[
    "sister",
    "brother",
    "mother",
    "mom",
    "mum",
    "father",
    "dad",
    "wife",
    "husband",
    "partner",
    "son",
    "daughter",
    "friend",
    "boss",
    "colleague",
    "grandma",
    "grandpa",
    "aunt",
    "uncle",
    "cousin",
    "neighbour",
    "neighbor",
    "doctor",
];
const PREFERENCE_WORDS: &[&str] = &[
    "love",
    "hate",
    "favourite",
    "favorite",
    "prefer",
    "like",
    "dislike",
    "allergic",
    "afraid",
];
/// Besides the weekday and month names.
const TIME_WORDS: &[&str] = &[
    "today",
    "yesterday",
    "week",
    "month",
    "year",
    "morning",
    "evening",
];
const FILLER: &[&str] = &[
    "ok", "okay", "yes", "no", "thanks", "thank", "hi", "hello", "hmm", "sure", "cool", "bye",
];

/// The rational part of salience, from the words alone: facts with numbers and dates, plans,
/// people and names, preferences; filler and very short turns score low.
pub fn rational_score(text: &str) -> f32 {
    let words = crate::words::words(text);
    if words.is_empty() {
        return 0.0;
    }
    let has = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
    let mut score: f32 = 0.1;
    if words.iter().any(|w| w.chars().any(|c| c.is_ascii_digit()))
        || has(&WEEKDAYS)
        || has(&MONTHS)
        || has(TIME_WORDS)
    {
        score += 0.2;
    }
    if has(PLAN_WORDS) {
        score += 0.2;
    }
    if has(PEOPLE_WORDS) {
        score += 0.2;
    }
    if has(PREFERENCE_WORDS) {
        score += 0.15;
    }
    // Capitalised words after the first: names and places.
    let names = text
        .split_whitespace()
        .skip(1)
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase) && *w != "I")
        .count();
    if names > 0 {
        score += 0.15;
    }
    if words.len() >= 6 {
        score += 0.1;
    }
    if words.iter().all(|w| FILLER.contains(&w.as_str())) {
        score = 0.0;
    }
    score.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::record::{NewMemory, Speaker};

    const T0: u64 = 1_700_000_000_000;
    const DAY: u64 = 86_400_000;

    fn memory(salience: f32) -> Memory {
        Memory::from_new(
            1,
            NewMemory {
                text: "x".into(),
                room: "kitchen".into(),
                speaker: Speaker::User,
                created_at_ms: T0,
                salience,
                source: None,
            },
        )
    }

    #[test]
    fn salience_ranks_facts_above_chatter() {
        let c = LifecycleConfig::default();
        let fact = c.salience("My sister Anna moves to Porto on 3 March", 0.2);
        let plan = c.salience("I need to call the doctor tomorrow", 0.2);
        let chatter = c.salience("ok thanks", 0.2);
        let weather = c.salience("it is a bit grey outside", 0.2);
        assert!(fact > weather && plan > weather, "{fact} {plan} {weather}");
        assert!(weather > chatter, "{weather} {chatter}");
        assert!(
            c.salience("ok thanks", 1.0) > chatter,
            "emotion raises salience"
        );
        for s in [fact, plan, chatter, weather] {
            assert!((0.0..=1.0).contains(&s));
        }
    }

    #[test]
    fn a_low_salience_memory_expires_and_a_salient_one_lives_longer() {
        let c = LifecycleConfig::default();
        let trivia = memory(0.05);
        let important = memory(0.9);
        let ttl = c.ttl_ms(0.05);
        assert_eq!(c.sweep(&trivia, T0 + ttl / 2), Sweep::Keep);
        assert_eq!(c.sweep(&trivia, T0 + ttl + 1), Sweep::Expired);
        assert_eq!(c.sweep(&important, T0 + ttl + 1), Sweep::Keep);
        assert!(c.ttl_ms(0.9) > 5 * c.ttl_ms(0.05));
        let mut m = trivia.clone();
        assert!(c.apply(&mut m, Sweep::Expired));
        assert_eq!(m.tier, Tier::Archived, "archived, not deleted");
    }

    #[test]
    fn rewarming_delays_expiry_and_promotes() {
        let c = LifecycleConfig::default();
        let mut m = memory(0.1);
        let ttl = c.ttl_ms(0.1);
        assert!(!c.rewarm(&mut m, T0 + ttl - 1));
        assert_eq!(
            c.sweep(&m, T0 + ttl + 1),
            Sweep::Keep,
            "the clock restarted"
        );
        assert!(c.rewarm(&mut m, T0 + ttl + 2), "second re-warm promotes");
        assert_eq!(m.tier, Tier::LongTerm);
        assert_eq!(m.recalls, 2);
        assert!(!c.rewarm(&mut m, T0 + ttl + 3), "promoted once");
    }

    #[test]
    fn decay_follows_the_formula_and_recalls_strengthen() {
        let c = LifecycleConfig::default();
        let mut m = memory(0.5);
        m.tier = Tier::LongTerm;
        let s = c.base_strength_days * (1.0 + c.strength_salience_gain * 0.5);
        assert!((c.strength_days(&m) - s).abs() < 1e-9);
        for days in [0u64, 1, 5, 30, 90] {
            let r = c.retention(&m, T0 + days * DAY);
            assert!((r - (-(days as f64) / s).exp()).abs() < 1e-9, "day {days}");
        }
        // Archived exactly when R < floor: t > -S ln(floor).
        let t_floor = -s * c.archive_floor.ln();
        let before = T0 + ((t_floor - 0.01) * DAY as f64) as u64;
        let after = T0 + ((t_floor + 0.01) * DAY as f64) as u64;
        assert_eq!(c.sweep(&m, before), Sweep::Keep);
        assert!(
            matches!(c.sweep(&m, after), Sweep::Faded { retention } if retention < c.archive_floor)
        );
        // A recall doubles S and restarts t.
        let mut recalled = m.clone();
        c.rewarm(&mut recalled, T0 + 10 * DAY);
        assert!((c.strength_days(&recalled) - 2.0 * s).abs() < 1e-9);
        assert!(c.retention(&recalled, T0 + 20 * DAY) > c.retention(&m, T0 + 20 * DAY));
        // MemoryBank's fixed S = 1 day would keep 37% after one day; a salient memory here
        // keeps far more.
        assert!(c.retention(&m, T0 + DAY) > 0.9);
    }

    #[test]
    fn a_contradicted_fact_is_superseded_and_kept() {
        let mut old = memory(0.6);
        supersede(&mut old, 2, T0 + 5 * DAY);
        assert_eq!(old.superseded_by, Some(2));
        assert!(valid_at(&old, T0 + DAY));
        assert!(!valid_at(&old, T0 + 6 * DAY));
        assert_ne!(old.tier, Tier::Archived, "kept as history, not archived");
    }
}
