//! Speech out: a Piper voice through `piper-rs` (espeak-ng turns text into phonemes, the voice's
//! VITS model turns phonemes into audio on onnxruntime, loaded at run time like the wake word's).
//!
//! Synthesis blocks for a fraction of the audio's length (a real-time factor of about 0.3 here),
//! so the voice front end runs it on a thread of its own and feeds it one piece of text at a
//! time: the first clause of a reply alone, so that the first audio comes early, then whole
//! sentences, each synthesized while the one before it plays.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::session::Session;
use piper_rs::{ModelConfig, Piper};

use hearth_shared::Voice;

use crate::audio::Clip;
use crate::config::{expand_home, TtsConfig};

/// Why speech cannot be synthesized.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// onnxruntime's library could not be loaded.
    #[error(transparent)]
    Runtime(#[from] crate::wake::WakeError),
    /// The voice's model or its JSON config is missing or unusable.
    #[error("cannot load the Piper voice {path}: {reason}")]
    Voice {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// espeak-ng's data folder was not found.
    #[error("espeak-ng's data (an `espeak-ng-data` folder) is not in {searched}; install Debian's espeak-ng-data (scripts/setup does) or set tts.espeak_data")]
    EspeakData {
        /// The folders looked in.
        searched: String,
    },
    /// Synthesis failed on a piece of text.
    #[error("speech synthesis failed on {text:?}: {reason}")]
    Synthesis {
        /// The text.
        text: String,
        /// What piper-rs said.
        reason: String,
    },
}

/// espeak-ng keeps global state and piper-rs does not guard it: one phonemizer call at a time
/// per process.
static ESPEAK: Mutex<()> = Mutex::new(());

/// A loaded Piper voice. Blocking: run it off the async runtime.
pub struct Tts {
    piper: Piper,
    /// `tts.voices`, by name, with each one's number of speakers.
    others: Vec<(String, Piper, u32)>,
    /// How many speakers the voice has.
    speakers: u32,
    /// Voices asked for that are not in `tts.voices` (each is logged once).
    missing: Vec<String>,
    rate: u32,
    length_scale: f32,
    noise_scale: Option<f32>,
    noise_w: Option<f32>,
    speaker: Option<i64>,
}

impl std::fmt::Debug for Tts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tts")
            .field("rate", &self.rate)
            .field("length_scale", &self.length_scale)
            .finish_non_exhaustive()
    }
}

/// Synthesized speech and how long it took.
#[derive(Debug, Clone)]
pub struct Spoken {
    /// The audio, at the voice's rate.
    pub clip: Clip,
    /// Synthesis time.
    pub took: Duration,
}

impl Tts {
    /// Loads the voice in `config` and its other voices (`tts.voices`), with onnxruntime
    /// from `onnxruntime`.
    pub fn load(onnxruntime: &Path, config: &TtsConfig) -> Result<Tts, TtsError> {
        crate::wake::load_runtime(onnxruntime)?;
        use_espeak_data(config)?;
        let model = expand_home(&config.voice);
        let json = config
            .voice_config
            .as_deref()
            .map(expand_home)
            .unwrap_or_else(|| beside(&model));
        let (piper, rate, speakers) = load_voice(&model, &json, config.threads, DEFAULT_HINT)?;
        let mut others = Vec::new();
        for (name, path) in &config.voices {
            let model = expand_home(path);
            let hint = format!("tts.voices.{name} names it; point it at a Piper voice's .onnx, with its .onnx.json beside it");
            let (piper, _, speakers) = load_voice(&model, &beside(&model), config.threads, &hint)?;
            tracing::info!(voice = %name, model = %model.display(), "Piper voice loaded");
            others.push((name.clone(), piper, speakers));
        }
        Ok(Tts {
            piper,
            others,
            speakers,
            missing: Vec::new(),
            rate,
            length_scale: config.length_scale,
            noise_scale: config.noise_scale,
            noise_w: config.noise_w,
            speaker: config.speaker,
        })
    }

    /// The voice's sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Speaks `text`. Text with nothing to say gives an empty clip.
    pub fn synthesize(&mut self, text: &str) -> Result<Spoken, TtsError> {
        self.synthesize_as(text, None)
    }

    /// Speaks `text` with a persona's `voice`: its named Piper voice when this terminal has
    /// it (`tts.voices`), else the terminal's own, with each setting the voice gives in
    /// place of the terminal's.
    pub fn synthesize_as(&mut self, text: &str, voice: Option<&Voice>) -> Result<Spoken, TtsError> {
        let started = Instant::now();
        let text = text.trim();
        if !text.chars().any(char::is_alphanumeric) {
            return Ok(Spoken {
                clip: Clip {
                    samples: Vec::new(),
                    rate: self.rate,
                },
                took: started.elapsed(),
            });
        }
        let v = voice.cloned().unwrap_or_default();
        // A speaker belongs to the voice it was set for: the persona's to its named voice
        // (or to the terminal's own when it names none), the terminal's to its own.
        let (piper, speakers, speaker) = match v.model.as_deref() {
            Some(name) => match self.others.iter_mut().find(|(n, _, _)| n == name) {
                Some((_, piper, speakers)) => (piper, *speakers, v.speaker.map(i64::from)),
                None => {
                    if !self.missing.iter().any(|m| m == name) {
                        tracing::warn!(voice = name, persona = %v.persona,
                            "no such voice in tts.voices; speaking with the terminal's own voice, in the persona's settings");
                        self.missing.push(name.to_string());
                    }
                    (&mut self.piper, self.speakers, self.speaker)
                }
            },
            None => (
                &mut self.piper,
                self.speakers,
                v.speaker.map(i64::from).or(self.speaker),
            ),
        };
        // One the voice does not have would fail every piece in onnxruntime.
        let speaker = speaker.filter(|s| (0..i64::from(speakers)).contains(s));
        let created = {
            let _espeak = ESPEAK.lock().unwrap_or_else(|e| e.into_inner());
            piper.create(
                text,
                false,
                speaker,
                Some(v.length_scale.unwrap_or(self.length_scale)),
                v.noise_scale.or(self.noise_scale),
                v.noise_w.or(self.noise_w),
            )
        };
        let (samples, rate) = created.map_err(|e| TtsError::Synthesis {
            text: text.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Spoken {
            clip: Clip {
                samples: samples.into_iter().map(|s| s.clamp(-1.0, 1.0)).collect(),
                rate,
            },
            took: started.elapsed(),
        })
    }
}

/// A voice's JSON config where Piper puts it: the model's path with `.json` added.
fn beside(model: &Path) -> PathBuf {
    let mut p = model.to_path_buf().into_os_string();
    p.push(".json");
    PathBuf::from(p)
}

/// What a missing default voice's error suggests.
const DEFAULT_HINT: &str =
    "scripts/fetch-models piper-joe piper-joe-config fetches the default voice";

/// Loads the Piper voice `model` with its config `json`, on `threads` onnxruntime threads;
/// returns it with its sample rate and number of speakers. A missing file's error ends with
/// `hint`.
fn load_voice(
    model: &Path,
    json: &Path,
    threads: u32,
    hint: &str,
) -> Result<(Piper, u32, u32), TtsError> {
    let voice = |path: &Path, reason: String| TtsError::Voice {
        path: path.to_path_buf(),
        reason,
    };
    for path in [model, json] {
        if !path.is_file() {
            return Err(voice(path, format!("no such file ({hint})")));
        }
    }
    let text = std::fs::read_to_string(json).map_err(|e| voice(json, e.to_string()))?;
    let model_config: ModelConfig = serde_json::from_str(&text)
        .map_err(|e| voice(json, format!("not a Piper voice config: {e}")))?;
    let rate = model_config.audio.sample_rate;
    if !(8_000..=48_000).contains(&rate) {
        return Err(voice(json, format!("sample rate {rate} is out of range")));
    }
    let session = Session::builder()
        .map_err(|e| voice(model, e.to_string()))?
        .with_intra_threads(threads as usize)
        .map_err(|e| voice(model, e.to_string()))?
        // Its threads sleep rather than spin between operators and after a piece: a
        // spinning thread takes the core the hub or the listener needs next.
        .with_intra_op_spinning(false)
        .map_err(|e| voice(model, e.to_string()))?
        // Inputs change length with every sentence: a memory pattern and a growing arena
        // only hold on to the largest sentence's buffers.
        .with_memory_pattern(false)
        .map_err(|e| voice(model, e.to_string()))?
        .with_prepacking(false)
        .map_err(|e| voice(model, e.to_string()))?
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
        .map_err(|e| voice(model, e.to_string()))?
        .commit_from_file(model)
        .map_err(|e| voice(model, e.to_string()))?;
    let speakers = model_config.num_speakers.max(1);
    Ok((Piper::from_session(session, model_config), rate, speakers))
}

/// Points espeak-ng (inside piper-rs, which reads `PIPER_ESPEAKNG_DATA_DIRECTORY` once) at the
/// folder that holds `espeak-ng-data`: the configured one, or the first of Debian's places.
fn use_espeak_data(config: &TtsConfig) -> Result<(), TtsError> {
    const VAR: &str = "PIPER_ESPEAKNG_DATA_DIRECTORY";
    let candidates: Vec<PathBuf> = match &config.espeak_data {
        Some(dir) => vec![expand_home(dir)],
        None => std::env::var_os(VAR)
            .map(PathBuf::from)
            .into_iter()
            .chain(
                [
                    "/usr/lib/x86_64-linux-gnu",
                    "/usr/lib/aarch64-linux-gnu",
                    "/usr/lib/arm-linux-gnueabihf",
                    "/usr/share",
                    "/usr/local/share",
                ]
                .map(PathBuf::from),
            )
            .collect(),
    };
    let Some(dir) = candidates
        .iter()
        .find(|d| d.join("espeak-ng-data").join("phontab").is_file())
    else {
        return Err(TtsError::EspeakData {
            searched: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    if std::env::var_os(VAR).as_deref() != Some(dir.as_os_str()) {
        // Set before the first phonemizer call, which is the only reader.
        std::env::set_var(VAR, dir);
    }
    Ok(())
}

/// Splits text into the pieces speech is synthesized in: sentences, longer ones in parts of at
/// most `max_words`. With `first_words` above 0 (the start of a reply), the first sentence's
/// first clause goes alone, or its first `first_words` words when the clause is longer, so that
/// the first audio needs little synthesis.
pub fn pieces(text: &str, first_words: usize, max_words: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        current.push(c);
        let next_is_space = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if matches!(c, '.' | '!' | '?') && next_is_space {
            out.extend(Some(current.trim().to_string()).filter(|p| !p.is_empty()));
            current.clear();
        }
    }
    out.extend(Some(current.trim().to_string()).filter(|p| !p.is_empty()));
    let mut out: Vec<String> = out.iter().flat_map(|s| bounded(s, max_words)).collect();
    if first_words > 0 && !out.is_empty() {
        let words: Vec<&str> = out[0].split_whitespace().collect();
        // The first clause: up to a comma, semicolon or colon after at least three words.
        let clause = words
            .iter()
            .position(|w| w.ends_with([',', ';', ':']))
            .map(|i| i + 1)
            .filter(|&n| n >= 3);
        // Cut only where at least two words are left for the next piece.
        let cut = clause.map_or(first_words, |c| c.min(first_words));
        if cut + 2 <= words.len() {
            let (head, tail) = words.split_at(cut);
            out.splice(0..1, [head.join(" "), tail.join(" ")]);
        }
    }
    out
}

/// `sentence` in parts of at most `max` words (at least 4), cut after the last comma in reach
/// where there is one: synthesis memory grows with a piece's length (the vocoder's
/// activations).
fn bounded(sentence: &str, max: usize) -> Vec<String> {
    let max = max.max(4);
    let mut words: Vec<&str> = sentence.split_whitespace().collect();
    let mut parts = Vec::new();
    while words.len() > max {
        let cut = words[2..max]
            .iter()
            .rposition(|w| w.ends_with([',', ';', ':']))
            .map_or(max - 1, |i| i + 3);
        parts.push(words[..cut].join(" "));
        words.drain(..cut);
    }
    if !words.is_empty() {
        parts.push(words.join(" "));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_splits_into_sentences_and_a_reply_starts_with_its_first_words() {
        assert_eq!(
            pieces("Sure, I will remind you at eight. Anything else?", 0, 20),
            vec!["Sure, I will remind you at eight.", "Anything else?"]
        );
        // The start of a reply: its first clause alone...
        assert_eq!(
            pieces(
                "Paris is the capital, and it is lovely in spring. Yes.",
                4,
                20
            ),
            vec![
                "Paris is the capital,",
                "and it is lovely in spring.",
                "Yes."
            ]
        );
        // ...or its first words, when the clause is long...
        assert_eq!(
            pieces("The capital of France is Paris, of course.", 4, 20),
            vec!["The capital of France", "is Paris, of course."]
        );
        // ...but a short clause or a last word is not cut off; decimals stay whole.
        assert_eq!(
            pieces("Yes, it is 3.5 degrees", 4, 20),
            vec!["Yes, it is 3.5 degrees"]
        );
        assert_eq!(
            pieces("It is raining now.", 3, 20),
            vec!["It is raining now."]
        );
        assert!(pieces("   ", 4, 20).is_empty());
        // A long sentence is spoken in parts, after a comma where it can.
        let long = "When you come home tonight, please remember to water the plants in the \
                    kitchen and the two on the balcony before you go to bed.";
        let parts = pieces(long, 0, 8);
        assert_eq!(parts[0], "When you come home tonight,");
        assert!(
            parts.iter().all(|p| p.split_whitespace().count() <= 8),
            "{parts:?}"
        );
        assert_eq!(parts.join(" "), long);
    }
}
