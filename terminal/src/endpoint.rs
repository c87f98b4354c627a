//! Endpointing: decides when an utterance is over, from voice activity (earshot, a small
//! neural VAD in pure Rust) on 16 ms frames.
//!
//! The utterance ends after `silence_ms` without voice once speech was heard, at
//! `max_utterance_ms` in any case, or after `no_speech_ms` if nobody speaks at all. The
//! listener moves the silence wait once it has an early transcript ([`reads_complete`]): a
//! request that reads as finished ends sooner, one that stops on "and" or "the" (or a timer or
//! reminder without its time) waits longer.

use crate::config::ListenConfig;

/// earshot's frame: 256 samples (16 ms) at 16 kHz.
pub const FRAME: usize = 256;
const FRAME_MS: u32 = 16;

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Speech, then enough silence.
    Silence,
    /// The longest utterance allowed.
    MaxLength,
    /// Nobody spoke.
    NoSpeech,
}

/// Voice activity and the end of an utterance, fed 16 kHz samples.
pub struct Endpointer {
    vad: Box<earshot::Detector>,
    threshold: f32,
    pending: Vec<f32>,
    silence_frames: u32,
    /// `silence_ms` as configured, which `reset` goes back to.
    default_silence_frames: u32,
    max_frames: u32,
    no_speech_frames: u32,
    frames: u32,
    voiced_frames: u32,
    quiet_run: u32,
}

impl std::fmt::Debug for Endpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpointer")
            .field("frames", &self.frames)
            .field("voiced_frames", &self.voiced_frames)
            .finish_non_exhaustive()
    }
}

impl Endpointer {
    /// An endpointer with the thresholds in `config`.
    pub fn new(config: &ListenConfig) -> Endpointer {
        Endpointer {
            vad: earshot::Detector::default_boxed(),
            threshold: config.vad_threshold,
            pending: Vec::with_capacity(FRAME),
            silence_frames: (config.silence_ms / FRAME_MS).max(1),
            default_silence_frames: (config.silence_ms / FRAME_MS).max(1),
            max_frames: (config.max_utterance_ms / FRAME_MS).max(1),
            no_speech_frames: (config.no_speech_ms / FRAME_MS).max(1),
            frames: 0,
            voiced_frames: 0,
            quiet_run: 0,
        }
    }

    /// Starts a new utterance.
    pub fn reset(&mut self) {
        self.vad.reset();
        self.pending.clear();
        self.silence_frames = self.default_silence_frames;
        self.frames = 0;
        self.voiced_frames = 0;
        self.quiet_run = 0;
    }

    /// Whether any speech has been heard in this utterance.
    pub fn heard_speech(&self) -> bool {
        self.voiced_frames > 0
    }

    /// Frames of speech heard so far in this utterance (it changes only when speech goes on).
    pub fn voiced_frames(&self) -> u32 {
        self.voiced_frames
    }

    /// The silence that ends this utterance from now on (until `reset`).
    pub fn set_silence_ms(&mut self, ms: u32) {
        self.silence_frames = (ms / FRAME_MS).max(1);
    }

    /// Back to the configured silence wait.
    pub fn default_silence(&mut self) {
        self.silence_frames = self.default_silence_frames;
    }

    /// How long it has been quiet since the last speech, in ms (0 before any speech).
    pub fn quiet_ms(&self) -> u32 {
        if self.voiced_frames > 0 {
            self.quiet_run * FRAME_MS
        } else {
            0
        }
    }

    /// Feeds samples; returns why the utterance ended, if it did within them.
    pub fn push(&mut self, samples: &[f32]) -> Option<End> {
        let mut ended = None;
        for &s in samples {
            self.pending.push(s);
            if self.pending.len() < FRAME {
                continue;
            }
            let voiced = self.vad.predict_f32(&self.pending) >= self.threshold;
            self.pending.clear();
            if ended.is_some() {
                continue;
            }
            self.frames += 1;
            if voiced {
                self.voiced_frames += 1;
                self.quiet_run = 0;
            } else {
                self.quiet_run += 1;
            }
            ended = if self.frames >= self.max_frames {
                Some(End::MaxLength)
            } else if self.voiced_frames > 0 && self.quiet_run >= self.silence_frames {
                Some(End::Silence)
            } else if self.voiced_frames == 0 && self.frames >= self.no_speech_frames {
                Some(End::NoSpeech)
            } else {
                None
            };
        }
        ended
    }
}

/// Words a request does not end on: it goes on after them.
const GOES_ON: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "to", "for", "of", "in", "on", "at", "with", "about",
    "from", "into", "my", "your", "our", "their", "his", "her", "its", "this", "that", "these",
    "those", "is", "are", "was", "were", "be", "if", "when", "because", "so", "than", "um", "uh",
    "er", "erm", "remind", "set", "tell", "what's", "whats", "how", "what", "where", "who", "why",
    "can", "could", "would", "will", "should", "please", "also", "like",
];

/// Words that ask for a time: a timer or reminder request without one goes on ("set a
/// timer ... for twenty minutes", "remind me to water the plants ... tomorrow").
const ASKS_FOR_TIME: &[&str] = &["timer", "remind", "reminder", "alarm", "wake"];

/// Words that, before the timer or reminder is named, ask about one or stop one rather than
/// set it ("cancel the timer", "how long is left on the timer").
const NOT_SETTING: &[&str] = &[
    "cancel",
    "stop",
    "delete",
    "remove",
    "clear",
    "off",
    "left",
    "remaining",
    "how",
    "what",
    "what's",
    "whats",
    "which",
    "why",
    "list",
    "pause",
    "resume",
    "snooze",
    "dismiss",
    "silence",
    "disable",
    "reset",
    "restart",
    "check",
    "turn",
    "is",
    "are",
    "was",
    "did",
    "does",
    "reminders",
    "timers",
    "alarms",
];

/// Words that give a time (with any word holding a digit).
const TIME_WORDS: &[&str] = &[
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "ninety",
    "hundred",
    "half",
    "quarter",
    "seconds",
    "minute",
    "minutes",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "today",
    "tonight",
    "tomorrow",
    "morning",
    "afternoon",
    "evening",
    "night",
    "noon",
    "midday",
    "midnight",
    "o'clock",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "weekend",
    "later",
    "soon",
    "next",
    "every",
    "when",
    "before",
    "after",
];

/// Whether a transcript reads as a finished request: some words, not stopping on a comma, a
/// dash or a word that another must follow ("remind me to", "the"), and not a timer or
/// reminder without a time. `None` when it has no words.
pub fn reads_complete(text: &str) -> Option<bool> {
    let text = text.trim();
    let last = text
        .split_whitespace()
        .last()?
        .trim_end_matches(['.', '?', '!'])
        .to_lowercase();
    if last.is_empty() || text.ends_with([',', '-', ';', ':']) || text.ends_with("...") {
        return Some(false);
    }
    let words = crate::stt::words(text);
    // A question about one ("is the timer done?") is finished as it is.
    let named = words
        .iter()
        .position(|w| ASKS_FOR_TIME.contains(&w.as_str()))
        .filter(|_| !text.ends_with('?'));
    let asks_for_time = named.is_some_and(|at| {
        !words[..at]
            .iter()
            .any(|w| NOT_SETTING.contains(&w.as_str()))
    });
    let has_time = words
        .iter()
        .any(|w| w.contains(|c: char| c.is_ascii_digit()) || TIME_WORDS.contains(&w.as_str()));
    if asks_for_time && !has_time {
        return Some(false);
    }
    let word = last.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
    Some(!GOES_ON.contains(&word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ListenConfig {
        ListenConfig {
            silence_ms: 480,
            max_utterance_ms: 4000,
            no_speech_ms: 1000,
            ..ListenConfig::default()
        }
    }

    #[test]
    fn a_request_reads_complete_unless_it_stops_on_a_word_that_needs_more() {
        assert_eq!(reads_complete("What time is it?"), Some(true));
        assert_eq!(reads_complete("Set a timer for 20 minutes."), Some(true));
        assert_eq!(reads_complete("Yes."), Some(true));
        assert_eq!(reads_complete("Remind me to"), Some(false));
        assert_eq!(reads_complete("Add eggs and"), Some(false));
        assert_eq!(reads_complete("Turn on the..."), Some(false));
        assert_eq!(reads_complete("So, um,"), Some(false));
        assert_eq!(reads_complete("What's the weather like in"), Some(false));
        assert_eq!(reads_complete("  "), None);
        // A timer or a reminder goes on until it has a time.
        assert_eq!(reads_complete("Set a timer."), Some(false));
        assert_eq!(reads_complete("Santa timer"), Some(false));
        assert_eq!(reads_complete("Remind me to water the plants"), Some(false));
        assert_eq!(reads_complete("Wake me up"), Some(false));
        assert_eq!(reads_complete("Santa timer 420 minutes"), Some(true));
        assert_eq!(reads_complete("Set a timer for half an hour."), Some(true));
        assert_eq!(
            reads_complete("Remind me to water the plants tomorrow morning"),
            Some(true)
        );
        assert_eq!(reads_complete("Remind me at 7 to call Mum."), Some(true));
        // Asking about one, or stopping one, needs no time.
        assert_eq!(reads_complete("Cancel the timer."), Some(true));
        assert_eq!(reads_complete("How long is left on the timer?"), Some(true));
        assert_eq!(reads_complete("What reminders do I have?"), Some(true));
        assert_eq!(reads_complete("Is the timer done?"), Some(true));
        assert_eq!(reads_complete("Snooze the alarm."), Some(true));
        // What the reminder is about may hold such words; it still needs its time.
        assert_eq!(
            reads_complete("Remind me to turn off the oven."),
            Some(false)
        );
        assert_eq!(reads_complete("Set an alarm."), Some(false));
        assert_eq!(reads_complete("Remind me that I am out."), Some(false));
    }

    #[test]
    fn the_silence_wait_moves_and_a_reset_restores_it() {
        let mut e = Endpointer::new(&config());
        e.set_silence_ms(1600);
        e.reset();
        let mut e2 = Endpointer::new(&config());
        let dir = tempfile::tempdir().unwrap();
        let speech =
            crate::bench::espeak("Set a timer for twenty minutes.", &dir.path().join("s.wav"))
                .unwrap()
                .at_rate(crate::audio::SPEECH_RATE)
                .samples;
        let ends = |e: &mut Endpointer| {
            let mut chunks = speech
                .chunks(1280)
                .chain(std::iter::repeat([0.0f32; 1280].as_slice()));
            (0..100).find(|_| e.push(chunks.next().unwrap()).is_some())
        };
        assert_eq!(ends(&mut e), ends(&mut e2));
        let mut short = Endpointer::new(&config());
        short.set_silence_ms(160);
        let mut long = Endpointer::new(&config());
        long.set_silence_ms(960);
        assert!(ends(&mut short) < ends(&mut long));
    }

    #[test]
    fn silence_alone_ends_as_no_speech_and_limits_hold() {
        let mut e = Endpointer::new(&config());
        assert_eq!(e.push(&vec![0.0; 8_000]), None);
        assert_eq!(e.push(&vec![0.0; 8_000]), Some(End::NoSpeech));
        assert!(!e.heard_speech());
        // Noise that never stops is cut at the longest utterance, whatever the VAD says.
        let mut e = Endpointer::new(&ListenConfig {
            no_speech_ms: 60_000,
            ..config()
        });
        let mut seed = 1u32;
        let noise: Vec<f32> = (0..16_000 * 5)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        let ended = noise.chunks(1280).find_map(|c| e.push(c));
        assert!(
            matches!(ended, Some(End::MaxLength | End::Silence)),
            "{ended:?}"
        );
    }
}
