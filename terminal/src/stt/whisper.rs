//! The whisper engine: whisper.cpp (whisper-rs) on a ggml model.
//!
//! The model file is checked before whisper.cpp sees it (ggml magic, sane hyperparameters,
//! enough bytes), so a missing, truncated or foreign file is a clear error rather than an
//! abort inside C++. Decoding is tuned for speed on a small board (greedy, no temperature
//! fallback, one segment, no timestamps) as measured in shared/MODELS.md.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{clean, SttError, Transcript};
use crate::audio::SPEECH_RATE;
use crate::config::SttConfig;

/// ggml's file magic, "ggml" as a little-endian u32.
const GGML_MAGIC: u32 = 0x6767_6d6c;

/// A loaded whisper model. Decoding is blocking: call it from a dedicated thread or
/// `spawn_blocking`.
pub(super) struct Whisper {
    context: WhisperContext,
    config: SttConfig,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper")
            .field("model", &self.config.model)
            .finish_non_exhaustive()
    }
}

impl Whisper {
    /// Checks and loads the model named in `config`.
    pub(super) fn load(config: &SttConfig) -> Result<Whisper, SttError> {
        whisper_rs::install_logging_hooks();
        let path = crate::config::expand_home(&config.model);
        check_model(&path)?;
        let context = WhisperContext::new_with_params(&path, WhisperContextParameters::default())
            .map_err(|source| SttError::Whisper {
            what: "loading the model",
            source,
        })?;
        tracing::info!(model = %path.display(), "speech-to-text model loaded");
        Ok(Whisper {
            context,
            config: config.clone(),
        })
    }

    /// Transcribes 16 kHz mono samples; `prompt` is text said just before them, which
    /// whisper takes as context (the wake phrase, whose name it then spells as given).
    pub(super) fn transcribe(
        &self,
        samples: &[f32],
        prompt: Option<&str>,
    ) -> Result<Transcript, SttError> {
        let started = Instant::now();
        // whisper.cpp refuses less than a second of audio; pad short clips with silence.
        let shortest = SPEECH_RATE as usize + SPEECH_RATE as usize / 10;
        let padded: Vec<f32>;
        let audio = if samples.len() < shortest {
            padded = samples
                .iter()
                .copied()
                .chain(std::iter::repeat(0.0))
                .take(shortest)
                .collect();
            &padded
        } else {
            samples
        };
        let mut state = self
            .context
            .create_state()
            .map_err(|source| SttError::Whisper {
                what: "creating a decoder state",
                source,
            })?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.config.threads as i32);
        params.set_language(Some(&self.config.language));
        params.set_translate(false);
        params.set_no_context(true);
        params.set_single_segment(true);
        params.set_no_timestamps(true);
        params.set_temperature_inc(0.0);
        params.set_suppress_blank(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        if let Some(prompt) = prompt.filter(|p| !p.trim().is_empty()) {
            params.set_initial_prompt(prompt);
        }
        if let Some(ctx) = self.audio_ctx(samples.len()) {
            params.set_audio_ctx(ctx);
        }
        params.set_max_tokens(max_tokens(audio.len()));
        state
            .full(params, audio)
            .map_err(|source| SttError::Whisper {
                what: "decoding",
                source,
            })?;
        let mut text = String::new();
        let mut no_speech = 0.0f32;
        for segment in state.as_iter() {
            if let Ok(piece) = segment.to_str_lossy() {
                text.push_str(&piece);
            }
            no_speech = no_speech.max(segment.no_speech_probability());
        }
        Ok(Transcript {
            text: clean(&text),
            took: started.elapsed(),
            no_speech,
        })
    }
}

impl Whisper {
    /// The encoder window for `samples` of audio: the configured one, or with `fit_audio_ctx`
    /// the clip's own length (whisper encodes 50 frames a second) plus a margin, in steps of
    /// 64 frames. The encoder's cost grows with the window, and a 3-second request in
    /// whisper's full 30-second window is mostly padding. Audio longer than the configured
    /// window (a long file given to `transcribe`) gets whisper's full window, so that nothing
    /// past the window is lost.
    fn audio_ctx(&self, samples: usize) -> Option<i32> {
        let frames = samples * 50 / SPEECH_RATE as usize;
        if self.config.fit_audio_ctx {
            let ctx = (frames + FIT_MARGIN_FRAMES).div_ceil(64) * 64;
            return Some(ctx.min(1500) as i32);
        }
        let ctx = self.config.audio_ctx as usize;
        (ctx > 0 && frames <= ctx).then_some(ctx as i32)
    }
}

/// At most this many tokens per second of audio, plus [`SPARE_TOKENS`]: speech comes to about
/// three a second, and a decoder that loses its place (it does, most often in a fitted
/// window) repeats the request until it is stopped, which takes time as well as words.
const TOKENS_PER_SECOND: usize = 6;
/// Tokens allowed beyond [`TOKENS_PER_SECOND`], so that a clip of a second still has room
/// for a short sentence and its punctuation.
const SPARE_TOKENS: usize = 8;

/// The most whisper writes in one segment: half its 448-token text context.
const SEGMENT_TOKENS: usize = 224;

/// whisper's token limit for `samples` of audio.
fn max_tokens(samples: usize) -> i32 {
    let seconds = samples.div_ceil(SPEECH_RATE as usize);
    (seconds * TOKENS_PER_SECOND + SPARE_TOKENS).min(SEGMENT_TOKENS) as i32
}

/// Frames of margin over the clip's length when the encoder window is fitted (1.3 s; a
/// margin of 2.5 s misheard more words on the word-error-rate set, and took longer).
const FIT_MARGIN_FRAMES: usize = 64;

/// Checks a whisper ggml file's header before whisper.cpp reads it: its magic, hyperparameters
/// in a sane range, and at least the bytes the header implies for the mel filters.
pub fn check_model(path: &Path) -> Result<(), SttError> {
    let invalid = |reason: String| SttError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|source| SttError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| SttError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut head = [0u8; 4 * 14];
    file.read_exact(&mut head)
        .map_err(|_| invalid(format!("it is only {len} bytes long")))?;
    let word = |i: usize| i32::from_le_bytes(head[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    if word(0) as u32 != GGML_MAGIC {
        return Err(invalid(
            "it does not start with the ggml magic (a GGUF or CTranslate2 file needs converting; scripts/ct2_to_ggml.py converts CTranslate2)".into(),
        ));
    }
    let names = [
        "n_vocab",
        "n_audio_ctx",
        "n_audio_state",
        "n_audio_head",
        "n_audio_layer",
        "n_text_ctx",
        "n_text_state",
        "n_text_head",
        "n_text_layer",
        "n_mels",
    ];
    for (i, name) in names.iter().enumerate() {
        let v = word(1 + i);
        if !(1..=1_000_000).contains(&v) {
            return Err(invalid(format!("header field {name} is {v}")));
        }
    }
    let (mel_rows, mel_cols) = (word(12), word(13));
    if !(1..=1024).contains(&mel_rows) || !(1..=4096).contains(&mel_cols) {
        return Err(invalid(format!(
            "mel filter bank is {mel_rows} x {mel_cols}"
        )));
    }
    // Weights follow the header; even tiny.en is tens of megabytes.
    let at_least = 56 + 4 * (mel_rows as u64) * (mel_cols as u64) + 1_000_000;
    if len < at_least {
        return Err(invalid(format!(
            "it is {len} bytes, too short for its header (truncated download?)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_model_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = check_model(&dir.path().join("none.bin")).unwrap_err();
        assert!(missing.to_string().contains("stt.model"), "{missing}");
        let gguf = dir.path().join("a.gguf");
        let mut bytes = b"GGUF\x03\0\0\0".to_vec();
        bytes.resize(4096, 0);
        std::fs::write(&gguf, bytes).unwrap();
        assert!(check_model(&gguf)
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let mut header = Vec::new();
        for v in [
            GGML_MAGIC as i32,
            51864,
            1500,
            384,
            6,
            4,
            448,
            384,
            6,
            4,
            80,
            1,
            80,
            201,
        ] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        let truncated = dir.path().join("t.bin");
        std::fs::write(&truncated, &header).unwrap();
        let err = check_model(&truncated).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        header[4..8].copy_from_slice(&(-5i32).to_le_bytes());
        std::fs::write(&truncated, &header).unwrap();
        let err = check_model(&truncated).unwrap_err().to_string();
        assert!(err.contains("n_vocab"), "{err}");
    }
}
