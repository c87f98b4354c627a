//! Speech to text on the terminal: one `Stt` over two engines, chosen by `stt.engine`.
//!
//! - `whisper` ([`whisper`]): whisper.cpp through whisper-rs, the default.
//! - `moonshine` ([`moonshine`]): Moonshine's ONNX Runtime models through `ort`, several times
//!   less CPU on short requests (see README.md's word-error-rate table).
//!
//! Either way a missing, truncated or foreign model file is a clear [`SttError`] before the
//! native code reads it, and decoding is blocking: call [`Stt::transcribe`] from a dedicated
//! thread or `spawn_blocking`.

mod moonshine;
mod whisper;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{SttConfig, SttEngine};

pub use whisper::check_model;

/// Why speech could not be turned into text.
#[derive(Debug, thiserror::Error)]
pub enum SttError {
    /// The model file is missing or unreadable.
    #[error("cannot read the speech-to-text model {path}: {source}; set stt.model to a whisper ggml file (scripts/fetch-models whisper-tiny-en fetches one)")]
    Read {
        /// The model path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a whisper ggml model, or is damaged.
    #[error("{path} is not a usable whisper ggml model: {reason}")]
    Invalid {
        /// The model path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// whisper.cpp refused the model or failed while decoding.
    #[error("whisper failed on {what}: {source}")]
    Whisper {
        /// What it was doing.
        what: &'static str,
        /// whisper-rs's error.
        source: whisper_rs::WhisperError,
    },
    /// onnxruntime's library could not be loaded (the Moonshine engine runs on it).
    #[error("cannot load onnxruntime from {path} for Moonshine: {reason}; set stt.onnxruntime (scripts/fetch-models onnxruntime fetches it)")]
    Runtime {
        /// The library path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A Moonshine model file is missing, damaged, or not the model the engine expects.
    #[error("cannot load the Moonshine model file {path}: {reason}; set stt.moonshine_model to a folder holding encoder_model.ort, decoder_model_merged.ort and tokenizer.bin (scripts/fetch-models fetches tiny-en and base-en)")]
    Moonshine {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Moonshine's models failed while decoding.
    #[error("Moonshine failed on {what}: {reason}")]
    MoonshineRun {
        /// What it was doing.
        what: &'static str,
        /// What onnxruntime said.
        reason: String,
    },
}

/// What was heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The words, trimmed; empty when nothing was said.
    pub text: String,
    /// How long decoding took.
    pub took: Duration,
    /// whisper's own estimate that the audio held no speech, 0 to 1 (always 0 with Moonshine,
    /// which gives none).
    pub no_speech: f32,
}

impl Transcript {
    /// The number of words.
    pub fn words(&self) -> usize {
        self.text.split_whitespace().count()
    }
}

/// A loaded speech-to-text model. Decoding is blocking: call it from a dedicated thread or
/// `spawn_blocking`.
#[derive(Debug)]
pub struct Stt {
    engine: Engine,
}

#[derive(Debug)]
enum Engine {
    Whisper(whisper::Whisper),
    Moonshine(moonshine::Moonshine),
}

impl Stt {
    /// Checks and loads the model of the engine named in `config`.
    pub fn load(config: &SttConfig) -> Result<Stt, SttError> {
        let engine = match config.engine {
            SttEngine::Whisper => Engine::Whisper(whisper::Whisper::load(config)?),
            SttEngine::Moonshine => Engine::Moonshine(moonshine::Moonshine::load(config)?),
        };
        Ok(Stt { engine })
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcript, SttError> {
        self.decode(samples, None)
    }

    /// Transcribes samples that start with the wake phrase. Whisper gets the phrase as its
    /// prompt: a small model spells a name it was told far more reliably ("Hey, nervous"
    /// becomes "Hey Jarvis"). Moonshine takes no prompt.
    pub fn transcribe_after(&self, samples: &[f32], phrase: &str) -> Result<Transcript, SttError> {
        self.decode(samples, Some(phrase))
    }

    fn decode(&self, samples: &[f32], prompt: Option<&str>) -> Result<Transcript, SttError> {
        match &self.engine {
            Engine::Whisper(w) => w.transcribe(samples, prompt),
            Engine::Moonshine(m) => m.transcribe(samples),
        }
    }

    /// Which engine this is.
    pub fn engine(&self) -> SttEngine {
        match self.engine {
            Engine::Whisper(_) => SttEngine::Whisper,
            Engine::Moonshine(_) => SttEngine::Moonshine,
        }
    }
}

/// Trims a model's output, drops what whisper writes for non-speech ("[BLANK_AUDIO]",
/// "(wind blowing)", "[Music]"), and keeps a sentence the model wrote over and over once
/// (see [`without_repeats`]).
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    without_repeats(&out.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The lower-cased words of a transcript: runs of letters, digits and apostrophes.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A small decoder that loses its place in the audio writes the request again and again
/// ("Turn off the lights. Turn off the lights. Turn off the"), until its token limit: a
/// sentence said before is dropped, and so is an unfinished tail that only restarts one, or a
/// sentence that a later one says again after a few words.
/// Nobody asks the same thing twice in one breath, and a repeat would not change the request.
fn without_repeats(text: &str) -> String {
    // A sentence's words, one space apart.
    let key = |s: &str| words(s).join(" ");
    let mut kept: Vec<&str> = Vec::new();
    let mut said: Vec<String> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .find(['.', '?', '!'])
            .map(|i| {
                let after = &rest[i..];
                i + after
                    .find(|c: char| !matches!(c, '.' | '?' | '!'))
                    .unwrap_or(after.len())
            })
            .unwrap_or(rest.len());
        let (sentence, after) = rest.split_at(end);
        rest = after.trim_start();
        let words = key(sentence);
        let finished = sentence.ends_with(['.', '?', '!']);
        let again = !words.is_empty() && said.contains(&words);
        // An unfinished tail that starts a sentence said before: one more repeat, cut off.
        let restart = !finished && said.iter().any(|s| s.starts_with(&words));
        if !again && !restart {
            kept.push(sentence.trim());
            said.push(words);
        }
    }
    // A sentence written again at the end of a later one, after a few words ("Remind me to
    // go. Hey Jarvis remind me to go."): the decoder started over, and the later one says it
    // all. ("What time is it? What time is it in Tokyo?" asks two things.)
    let inside = |i: usize| {
        let tail = format!(" {}", said[i]);
        said[i].split(' ').count() >= 3
            && said[i + 1..].iter().any(|later| {
                later.ends_with(&tail)
                    && (1..=3).contains(&later[..later.len() - tail.len()].split(' ').count())
            })
    };
    let kept: Vec<&str> = (0..kept.len())
        .filter(|&i| !inside(i))
        .map(|i| kept[i])
        .collect();
    looped_tail_cut(&kept.join(" "))
}

/// The same loop without sentence ends ("remind me to go hey jarvis remind me to go hey
/// jarvis remind me"): where the words end in two or more copies of one run of at least
/// three words (the last copy may be cut short), the text stops after the first copy.
fn looped_tail_cut(text: &str) -> String {
    // Each word's key and the byte where it (with what follows up to the next word) ends.
    let mut words: Vec<(String, usize)> = Vec::new();
    for (start, word) in text.split(' ').scan(0, |at, w| {
        let start = *at;
        *at += w.len() + 1;
        Some((start, w))
    }) {
        let key: String = word
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        words.push((key, start + word.len()));
    }
    let n = words.len();
    let mut cut = n;
    for period in 3..=n / 2 {
        // The loop's start: the tail where every word repeats the one `period` before it.
        let mut start = n;
        while start > period && words[start - 1].0 == words[start - 1 - period].0 {
            start -= 1;
        }
        let first_copy = start - period;
        if n - first_copy >= 2 * period {
            cut = cut.min(first_copy + period);
        }
    }
    match cut {
        0 => String::new(),
        _ if cut == n => text.to_string(),
        _ => text[..words[cut - 1].1].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_speech_markers_are_dropped() {
        assert_eq!(clean(" [BLANK_AUDIO]"), "");
        assert_eq!(
            clean(" Remind me (laughs) to water   the plants."),
            "Remind me to water the plants."
        );
    }

    #[test]
    fn a_sentence_written_over_and_over_is_kept_once() {
        assert_eq!(
            clean("Turn off the lights. Turn off the lights. turn off the lights! Turn off the"),
            "Turn off the lights."
        );
        assert_eq!(
            clean("Remind me to water the plants tomorrow at 8. Remind me to water the plants tomorrow at 8. Remind me to"),
            "Remind me to water the plants tomorrow at 8."
        );
        // Different sentences, an unfinished last one, and "Dr." stay as said.
        assert_eq!(
            clean("What time is it? Tell me. Tell me a story"),
            "What time is it? Tell me. Tell me a story"
        );
        assert_eq!(
            clean("Ask Dr. Smith. Then call Mum... Thanks!"),
            "Ask Dr. Smith. Then call Mum... Thanks!"
        );
        assert_eq!(
            clean("What did I say about my sister's birthday? What did I say about my sister"),
            "What did I say about my sister's birthday?"
        );
        assert_eq!(
            clean("hey jarvis remind me to go hey jarvis remind me to go hey jarvis remind"),
            "hey jarvis remind me to go"
        );
        // A word or two said over and over is how people talk.
        assert_eq!(
            clean("no no no it is very very very good"),
            "no no no it is very very very good"
        );
        assert_eq!(clean("No. No. No."), "No.");
        // The request, then the request again after the wake phrase.
        assert_eq!(
            clean("remind me to water the plants tomorrow morning. Hey Jarvis remind me to water the plants tomorrow morning."),
            "Hey Jarvis remind me to water the plants tomorrow morning."
        );
        assert_eq!(
            clean("Turn off the lights. Please turn off the lights. Thanks."),
            "Please turn off the lights. Thanks."
        );
        // A longer request that only starts like the first is a second request.
        assert_eq!(
            clean("What time is it? What time is it in Tokyo?"),
            "What time is it? What time is it in Tokyo?"
        );
        assert_eq!(
            clean("Set an alarm for 7. Set an alarm for 7:30 too."),
            "Set an alarm for 7. Set an alarm for 7:30 too."
        );
        // A short sentence inside a longer one is not a copy of it.
        assert_eq!(
            clean("Tell me. Tell me a story about it."),
            "Tell me. Tell me a story about it."
        );
        assert_eq!(clean(""), "");
        assert_eq!(clean("..."), "...");
    }
}
