//! Emotion as a control signal, computed in code, never by the language model.
//!
//! Two vectors:
//! - the user's, scored per turn from text style (sentence length, capitals, punctuation
//!   spikes, hedges, a topic switch, a small valence/arousal lexicon with negation) and the
//!   prosody the voice terminal measures (loudness, speaking rate): valence (-1 unpleasant to
//!   1 pleasant), arousal (-1 calm to 1 agitated) and engagement (0 terse to 1 talkative);
//! - Hearth's own mood, which moves toward a response to the user's with inertia, and drifts
//!   back to its baseline between conversations.
//!
//! They shape behaviour in three places: a tone line in the user turn (never the system
//! prompt, whose KV cache stays valid), the retrieval weights (curiosity widens recall,
//! concern favours what is recent and important), and the emotional part of a memory's
//! salience. Every value keeps the list of signals that made it (`why`), which the hub logs
//! each turn and `hearth-hub emotion TEXT` prints.

use hearth_shared::AudioFeatures;
use serde::{Deserialize, Serialize};

use crate::memory::retrieval::RetrievalConfig;

/// Emotion settings (`[emotion]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmotionConfig {
    /// Whether emotion shapes the prompt and retrieval (it is still scored and logged).
    pub enabled: bool,
    /// How much of Hearth's mood stays each turn (0: it mirrors at once, 1: it never moves).
    pub inertia: f32,
    /// Hearth's resting valence (a little warm).
    pub baseline_valence: f32,
    /// Minutes for Hearth's mood to drift half-way back to its baseline.
    pub half_life_minutes: f32,
    /// Extra memories recalled when the user is curious or excited.
    pub curiosity_extra_k: usize,
    /// The recency weight is multiplied by this when the user is stressed or low.
    pub concern_recency_factor: f32,
    /// The emotional salience of a neutral turn; stronger feeling raises it toward 1.
    pub neutral_salience: f32,
}

impl Default for EmotionConfig {
    fn default() -> Self {
        EmotionConfig {
            enabled: true,
            inertia: 0.7,
            baseline_valence: 0.2,
            half_life_minutes: 30.0,
            curiosity_extra_k: 2,
            concern_recency_factor: 3.0,
            neutral_salience: 0.3,
        }
    }
}

/// An axis of the user's vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// Pleasant or not.
    Valence,
    /// Agitated or calm.
    Arousal,
    /// Talkative or terse.
    Engagement,
}

/// One signal's share of a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// Which axis it moved.
    pub axis: Axis,
    /// The signal, in words ("lexicon: stressed", "3 exclamation marks").
    pub signal: String,
    /// By how much.
    pub amount: f32,
}

/// Where a vector lies, for the tone line and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Neither strongly pleasant nor unpleasant, not agitated.
    Calm,
    /// Unpleasant and agitated.
    Stressed,
    /// Pleasant and agitated.
    Excited,
    /// Unpleasant and calm.
    Sad,
    /// Very few words.
    Terse,
}

/// The user's emotional state for one turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserEmotion {
    /// -1 (unpleasant) to 1 (pleasant).
    pub valence: f32,
    /// -1 (calm) to 1 (agitated).
    pub arousal: f32,
    /// 0 (terse) to 1 (talkative).
    pub engagement: f32,
    /// Every signal that moved a value.
    pub why: Vec<Contribution>,
}

/// (word, valence, arousal). Small on purpose: every entry is a clear case.
const LEXICON: &[(&str, f32, f32)] = &[
    // pleasant, agitated
    ("amazing", 0.8, 0.7),
    ("awesome", 0.8, 0.6),
    ("fantastic", 0.8, 0.7),
    ("incredible", 0.7, 0.7),
    ("excited", 0.7, 0.8),
    ("thrilled", 0.8, 0.8),
    ("yay", 0.8, 0.8),
    ("wow", 0.5, 0.7),
    ("won", 0.6, 0.6),
    ("great", 0.6, 0.4),
    ("love", 0.7, 0.4),
    ("wonderful", 0.8, 0.5),
    ("brilliant", 0.7, 0.5),
    ("happy", 0.7, 0.4),
    ("fun", 0.6, 0.5),
    ("promoted", 0.6, 0.5),
    ("glad", 0.5, 0.2),
    // pleasant, calm
    ("calm", 0.3, -0.6),
    ("relaxed", 0.5, -0.6),
    ("peaceful", 0.5, -0.6),
    ("cozy", 0.5, -0.4),
    ("rested", 0.4, -0.4),
    ("nice", 0.4, 0.0),
    ("thanks", 0.3, -0.1),
    ("thank", 0.3, -0.1),
    // unpleasant, agitated
    ("stressed", -0.6, 0.7),
    ("stress", -0.5, 0.6),
    ("stressful", -0.6, 0.6),
    ("panic", -0.7, 0.9),
    ("angry", -0.7, 0.8),
    ("furious", -0.8, 0.9),
    ("annoyed", -0.5, 0.5),
    ("frustrated", -0.6, 0.6),
    ("worried", -0.5, 0.5),
    ("anxious", -0.6, 0.6),
    ("overwhelmed", -0.6, 0.6),
    ("deadline", -0.3, 0.5),
    ("hurry", -0.2, 0.6),
    ("urgent", -0.3, 0.7),
    ("asap", -0.2, 0.6),
    ("late", -0.3, 0.4),
    ("terrible", -0.7, 0.5),
    ("hate", -0.7, 0.6),
    ("damn", -0.5, 0.6),
    ("broken", -0.4, 0.4),
    // unpleasant, calm
    ("sad", -0.7, -0.4),
    ("tired", -0.4, -0.6),
    ("exhausted", -0.5, -0.6),
    ("lonely", -0.7, -0.4),
    ("alone", -0.5, -0.4),
    ("miss", -0.5, -0.3),
    ("depressed", -0.8, -0.5),
    ("hopeless", -0.8, -0.5),
    ("empty", -0.5, -0.4),
    ("bored", -0.3, -0.5),
    ("crying", -0.7, -0.1),
    ("cried", -0.7, -0.1),
    ("died", -0.8, -0.1),
    ("funeral", -0.8, -0.2),
    ("grief", -0.8, -0.3),
    ("whatever", -0.3, -0.1),
];

const HEDGES: &[&str] = &[
    "maybe",
    "perhaps",
    "i guess",
    "i think",
    "kind of",
    "sort of",
    "not sure",
    "i don't know",
];

const NEGATIONS: &[&str] = &[
    "not", "never", "no", "don't", "isn't", "wasn't", "can't", "didn't",
];

/// Scores one turn. `previous` is the user's turn before it in the room (for topic switches).
pub fn score(text: &str, audio: Option<&AudioFeatures>, previous: Option<&str>) -> UserEmotion {
    let mut why = Vec::new();
    let mut add = |axis, signal: String, amount: f32| {
        if amount.abs() >= 0.005 {
            why.push(Contribution {
                axis,
                signal,
                amount,
            });
        }
    };
    let raw_words: Vec<&str> = text.split_whitespace().collect();
    let words = crate::words::words(text);
    let n = words.len();
    let lower = format!(" {} ", words.join(" "));

    // Lexicon, with a negation in the two words before flipping half of the valence.
    for (i, w) in words.iter().enumerate() {
        let entry = LEXICON.iter().find(|(word, ..)| word == w);
        let can_t_wait = w == "wait" && i > 0 && words[i - 1] == "can't";
        let (word, v, a) = match (entry, can_t_wait) {
            (Some(&(word, v, a)), _) => (word, v, a),
            (None, true) => ("can't wait", 0.6, 0.7),
            _ => continue,
        };
        let negated = !can_t_wait
            && words[i.saturating_sub(2)..i]
                .iter()
                .any(|p| NEGATIONS.contains(&p.as_str()));
        let v = if negated { -0.5 * v } else { v };
        let label = if negated {
            format!("lexicon: not {word}")
        } else {
            format!("lexicon: {word}")
        };
        add(Axis::Valence, label.clone(), v * 0.8);
        add(Axis::Arousal, label, a * 0.6);
    }

    // Capitals: shouting.
    let caps = raw_words
        .iter()
        .filter(|w| {
            let letters: Vec<char> = w.chars().filter(|c| c.is_alphabetic()).collect();
            letters.len() >= 3 && letters.iter().all(|c| c.is_uppercase())
        })
        .count();
    if caps > 0 {
        add(
            Axis::Arousal,
            format!("{caps} word(s) in capitals"),
            (0.25 * caps as f32).min(0.5),
        );
    }
    // Punctuation.
    let exclaims = text.matches('!').count();
    if exclaims > 0 {
        add(
            Axis::Arousal,
            format!("{exclaims} exclamation mark(s)"),
            (0.15 * exclaims as f32).min(0.45),
        );
    }
    let spikes =
        text.matches("!!").count() + text.matches("?!").count() + text.matches("??").count();
    if spikes > 0 {
        add(Axis::Arousal, "punctuation spike".into(), 0.2);
    }
    if text.contains("...") || text.contains('…') {
        add(Axis::Valence, "trailing off (...)".into(), -0.1);
        add(Axis::Arousal, "trailing off (...)".into(), -0.1);
    }
    // Hedges.
    let hedges = HEDGES
        .iter()
        .filter(|h| lower.contains(&format!(" {h} ")))
        .count();
    if hedges > 0 {
        add(
            Axis::Valence,
            format!("{hedges} hedge(s)"),
            (-0.1 * hedges as f32).max(-0.3),
        );
    }
    // Sentence length: long sentences are calm and engaged, a clipped one is neither.
    let sentences = text
        .split(['.', '!', '?'])
        .filter(|s| !s.trim().is_empty())
        .count()
        .max(1);
    let per_sentence = n as f32 / sentences as f32;
    add(
        Axis::Engagement,
        format!("{n} word(s)"),
        (n as f32 / 12.0).min(1.0),
    );
    if text.contains('?') {
        add(Axis::Engagement, "asks a question".into(), 0.1);
    }
    if n > 0 && per_sentence < 4.0 && sentences > 1 {
        add(
            Axis::Arousal,
            format!("short sentences ({per_sentence:.1} words)"),
            0.1,
        );
    }
    // A topic switch: nothing in common with the turn before.
    if let Some(prev) = previous {
        let content = |t: &str| -> std::collections::HashSet<String> {
            crate::words::words(t)
                .into_iter()
                .filter(|w| w.chars().count() >= 4)
                .collect()
        };
        let (before, now) = (content(prev), content(text));
        if before.len() >= 2 && now.len() >= 2 && before.is_disjoint(&now) {
            add(Axis::Arousal, "topic switch".into(), 0.1);
        }
    }
    // Prosody.
    if let Some(a) = audio {
        if let Some(db) = a.loudness_dbfs {
            add(
                Axis::Arousal,
                format!("loudness {db:.0} dBFS"),
                ((db + 20.0) / 25.0).clamp(-0.3, 0.4),
            );
        }
        if let Some(rate) = a.speaking_rate_wps {
            add(
                Axis::Arousal,
                format!("speaking rate {rate:.1} words/s"),
                ((rate - 2.5) * 0.3).clamp(-0.4, 0.4),
            );
            if rate < 1.8 {
                add(Axis::Valence, "slow, low-energy speech".into(), -0.15);
            }
        }
    }
    let sum = |axis: Axis| {
        why.iter()
            .filter(|c| c.axis == axis)
            .map(|c| c.amount)
            .sum::<f32>()
    };
    UserEmotion {
        valence: sum(Axis::Valence).clamp(-1.0, 1.0),
        arousal: sum(Axis::Arousal).clamp(-1.0, 1.0),
        engagement: sum(Axis::Engagement).clamp(0.0, 1.0),
        why,
    }
}

impl UserEmotion {
    /// The region the vector lies in.
    pub fn label(&self) -> Label {
        if self.engagement < 0.3 {
            Label::Terse
        } else if self.valence < -0.15 && self.arousal > 0.15 {
            Label::Stressed
        } else if self.valence < -0.15 {
            Label::Sad
        } else if self.valence > 0.15 && self.arousal > 0.3 {
            Label::Excited
        } else {
            Label::Calm
        }
    }

    /// How strongly felt, 0 to 1.
    pub fn intensity(&self) -> f32 {
        (0.6 * self.valence.abs() + 0.4 * self.arousal.max(0.0)).clamp(0.0, 1.0)
    }

    /// The emotional part of the turn's salience.
    pub fn salience(&self, config: &EmotionConfig) -> f32 {
        let n = config.neutral_salience.clamp(0.0, 1.0);
        n + (1.0 - n) * self.intensity()
    }

    /// "valence -0.52 (lexicon: stressed -0.48, ...), arousal ..." for logs and the CLI.
    pub fn explain(&self) -> String {
        let part = |axis: Axis, name: &str, value: f32| {
            let signals: Vec<String> = self
                .why
                .iter()
                .filter(|c| c.axis == axis)
                .map(|c| format!("{} {:+.2}", c.signal, c.amount))
                .collect();
            if signals.is_empty() {
                format!("{name} {value:+.2}")
            } else {
                format!("{name} {value:+.2} ({})", signals.join(", "))
            }
        };
        format!(
            "{}; {}; {}",
            part(Axis::Valence, "valence", self.valence),
            part(Axis::Arousal, "arousal", self.arousal),
            part(Axis::Engagement, "engagement", self.engagement)
        )
    }
}

/// Hearth's own mood.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mood {
    /// -1 to 1.
    pub valence: f32,
    /// -1 to 1.
    pub arousal: f32,
    /// When it last moved, in ms since the epoch.
    pub at_ms: u64,
}

impl Mood {
    /// At rest.
    pub fn resting(config: &EmotionConfig, now_ms: u64) -> Mood {
        Mood {
            valence: config.baseline_valence,
            arousal: 0.0,
            at_ms: now_ms,
        }
    }

    /// Drifts back toward the baseline for the time since the last turn, then moves toward
    /// its response to the user with inertia: warmth that follows the user's valence, and
    /// calm in answer to stress. Returns the target, for the log.
    pub fn respond(
        &mut self,
        user: &UserEmotion,
        now_ms: u64,
        config: &EmotionConfig,
    ) -> (f32, f32) {
        let minutes = now_ms.saturating_sub(self.at_ms) as f32 / 60_000.0;
        let keep = 0.5f32.powf(minutes / config.half_life_minutes.max(0.01));
        self.valence = config.baseline_valence + (self.valence - config.baseline_valence) * keep;
        self.arousal *= keep;
        let target_v = (config.baseline_valence + 0.5 * user.valence).clamp(-1.0, 1.0);
        let target_a = if user.label() == Label::Stressed {
            -0.3
        } else {
            0.5 * user.arousal
        };
        let k = config.inertia.clamp(0.0, 1.0);
        self.valence = k * self.valence + (1.0 - k) * target_v;
        self.arousal = k * self.arousal + (1.0 - k) * target_a;
        self.at_ms = now_ms;
        (target_v, target_a)
    }
}

/// The tone line for the user turn, or `None` when the user is calm and Hearth at ease (no
/// line: the prompt stays as it would be without emotion).
pub fn tone_line(user: &UserEmotion, mood: &Mood) -> Option<String> {
    let (how, what) = match user.label() {
        Label::Calm => return None,
        Label::Stressed => (
            "sounds stressed",
            "Be calm, brief and practical: one step at a time.",
        ),
        Label::Sad => ("sounds low", "Be gentle and warm, and do not be cheerful."),
        Label::Excited => ("sounds excited", "Share the joy briefly."),
        Label::Terse => ("is terse", "Answer in one short sentence."),
    };
    let own = if mood.arousal < -0.1 {
        " Speak slowly and softly."
    } else {
        ""
    };
    Some(format!(
        "[TONE] The user {how} (valence {:+.2}, arousal {:+.2}). {what}{own}\n",
        user.valence, user.arousal
    ))
}

/// Retrieval for this turn: curiosity widens recall, concern favours the recent and the
/// important. Returns k, the weights, and why.
pub fn shape_recall(
    user: &UserEmotion,
    k: usize,
    r: &RetrievalConfig,
    config: &EmotionConfig,
) -> (usize, RetrievalConfig, &'static str) {
    let mut r = r.clone();
    match user.label() {
        Label::Excited => {
            r.w_recency *= 0.5;
            (k + config.curiosity_extra_k, r, "curiosity: wider recall")
        }
        Label::Calm
            if user.engagement >= 0.8 && user.why.iter().any(|c| c.signal == "asks a question") =>
        {
            r.w_recency *= 0.5;
            (k + config.curiosity_extra_k, r, "curiosity: wider recall")
        }
        Label::Stressed | Label::Sad => {
            r.w_recency *= config.concern_recency_factor;
            r.w_importance *= 1.5;
            (k, r, "concern: recent and important first")
        }
        _ => (k, r, "as configured"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_turns_land_in_their_regions() {
        let table: &[(&str, Label)] = &[
            (
                "Could you tell me what the weather will be like this afternoon? I was thinking of a walk.",
                Label::Calm,
            ),
            (
                "We had a relaxed dinner and now I'm reading a book on the sofa.",
                Label::Calm,
            ),
            (
                "I'm so stressed, the deadline is in an hour and NOTHING works!!",
                Label::Stressed,
            ),
            (
                "Hurry, I'm late for the train and I can't find my keys anywhere!",
                Label::Stressed,
            ),
            (
                "I am worried and anxious about the exam tomorrow, what if I fail it?",
                Label::Stressed,
            ),
            (
                "We won the match! This is amazing, I can't wait to tell everyone!",
                Label::Excited,
            ),
            ("WOW, I got the job! I'm so happy, this is fantastic!", Label::Excited),
            (
                "I feel so lonely since my cat died... I miss her every evening.",
                Label::Sad,
            ),
            ("I'm tired and sad today, nothing seems to matter much.", Label::Sad),
            ("Fine.", Label::Terse),
            ("Whatever.", Label::Terse),
            ("No.", Label::Terse),
        ];
        for (text, want) in table {
            let e = score(text, None, None);
            assert_eq!(e.label(), *want, "{text:?}: {}", e.explain());
        }
    }

    #[test]
    fn every_value_is_the_sum_of_its_explained_signals() {
        let e = score("I'm not happy, this is TERRIBLE!", None, None);
        let sum: f32 = e
            .why
            .iter()
            .filter(|c| c.axis == Axis::Valence)
            .map(|c| c.amount)
            .sum();
        assert!((e.valence - sum.clamp(-1.0, 1.0)).abs() < 1e-6);
        let explained = e.explain();
        assert!(explained.contains("lexicon: not happy"), "{explained}");
        assert!(explained.contains("1 word(s) in capitals"), "{explained}");
        assert!(e.valence < 0.0, "negation flips: {explained}");
    }

    #[test]
    fn prosody_and_topic_switches_move_arousal() {
        let text = "Where did I leave the car keys";
        let plain = score(text, None, None);
        let loud = score(
            text,
            Some(&AudioFeatures {
                loudness_dbfs: Some(-8.0),
                speaking_rate_wps: Some(4.2),
                pitch_hz: None,
            }),
            None,
        );
        assert!(loud.arousal > plain.arousal + 0.5, "{}", loud.explain());
        let slow = score(
            text,
            Some(&AudioFeatures {
                loudness_dbfs: Some(-32.0),
                speaking_rate_wps: Some(1.2),
                pitch_hz: None,
            }),
            None,
        );
        assert!(slow.arousal < plain.arousal && slow.valence < plain.valence);
        let switched = score(text, None, Some("the soup needs more salt tonight"));
        assert!(switched.arousal > plain.arousal);
    }

    #[test]
    fn hearths_mood_moves_with_inertia_and_drifts_back() {
        let c = EmotionConfig::default();
        let mut mood = Mood::resting(&c, 0);
        let stressed = score(
            "I'm so stressed, the deadline is in an hour and NOTHING works!!",
            None,
            None,
        );
        mood.respond(&stressed, 1_000, &c);
        let after_one = mood;
        assert!(after_one.arousal < 0.0, "it answers stress with calm");
        assert!(after_one.valence < c.baseline_valence);
        assert!(
            after_one.valence > c.baseline_valence + 0.5 * stressed.valence,
            "inertia"
        );
        mood.respond(&stressed, 2_000, &c);
        assert!(
            mood.valence < after_one.valence,
            "a second turn moves it further"
        );
        // Hours later, with a calm turn, it is nearly back at rest.
        let calm = score(
            "Could you tell me what the weather will be like tomorrow?",
            None,
            None,
        );
        mood.respond(&calm, 4 * 3_600_000, &c);
        assert!((mood.valence - c.baseline_valence).abs() < 0.05, "{mood:?}");
    }

    #[test]
    fn the_prompt_and_retrieval_change_with_the_user() {
        let c = EmotionConfig::default();
        let r = RetrievalConfig::default();
        let mood = Mood::resting(&c, 0);
        let calm = score(
            "We had a relaxed dinner and now I'm reading a book on the sofa.",
            None,
            None,
        );
        assert_eq!(tone_line(&calm, &mood), None);
        assert_eq!(shape_recall(&calm, 5, &r, &c).0, 5);

        let stressed = score(
            "I'm so stressed, the deadline is in an hour and NOTHING works!!",
            None,
            None,
        );
        let line = tone_line(&stressed, &mood).unwrap();
        assert!(
            line.contains("sounds stressed") && line.contains("calm, brief"),
            "{line}"
        );
        let (k, shaped, why) = shape_recall(&stressed, 5, &r, &c);
        assert_eq!(k, 5);
        assert!(
            shaped.w_recency > r.w_recency && shaped.w_importance > r.w_importance,
            "{why}"
        );

        let excited = score(
            "We won the match! This is amazing, I can't wait to tell everyone!",
            None,
            None,
        );
        assert!(tone_line(&excited, &mood).unwrap().contains("excited"));
        let (k, shaped, _) = shape_recall(&excited, 5, &r, &c);
        assert_eq!(k, 7);
        assert!(shaped.w_recency < r.w_recency);

        let sad = score(
            "I feel so lonely since my cat died... I miss her every evening.",
            None,
            None,
        );
        assert!(tone_line(&sad, &mood).unwrap().contains("gentle"));
        let terse = score("Fine.", None, None);
        assert!(tone_line(&terse, &mood)
            .unwrap()
            .contains("one short sentence"));

        // Salience: feeling raises it above the neutral level.
        assert!(stressed.salience(&c) > calm.salience(&c));
        assert!(
            (score("The boiler is in the cellar.", None, None).salience(&c) - c.neutral_salience)
                .abs()
                < 0.01
        );
    }
}
