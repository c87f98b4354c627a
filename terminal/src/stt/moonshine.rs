//! The Moonshine engine: Moonshine's encoder and merged decoder (ONNX Runtime `.ort` files)
//! through `ort`, greedy decoding with the decoder's key/value cache, and Moonshine's
//! `tokenizer.bin`.
//!
//! The decode loop follows transcribe-rs 0.3.12's Moonshine engine. The encoder turns raw
//! 16 kHz audio (`input_values`, 1 x samples) into `last_hidden_state`. The merged decoder runs
//! once per token: `input_ids` (the previous token; BOS first), `encoder_hidden_states`,
//! `use_cache_branch`, and `past_key_values.{layer}.{decoder|encoder}.{key|value}`. On the first
//! step the cache is empty and `use_cache_branch` false; the decoder returns
//! `present.{layer}.{decoder|encoder}.{key|value}`, and from then on the decoder's self-attention
//! entries are replaced after every step while the encoder's (cross-attention) entries are
//! kept from the first. Layer count, heads and head size are read from the model's inputs, so
//! tiny-en and base-en load the same way. Decoding stops at EOS or after about 6.5 tokens a
//! second of audio, where Moonshine's own code stops: past that it only repeats itself.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};

use super::{clean, SttError, Transcript};
use crate::audio::SPEECH_RATE;
use crate::config::{expand_home, SttConfig};

const ENCODER: &str = "encoder_model.ort";
const DECODER: &str = "decoder_model_merged.ort";
const TOKENIZER: &str = "tokenizer.bin";
/// The flatbuffer file identifier of an ONNX Runtime `.ort` model, at bytes 4 to 8.
const ORT_MAGIC: &[u8; 4] = b"ORTM";
const BOS: i64 = 1;
const EOS: i64 = 2;
/// Moonshine's stop: at most this many tokens per second of audio.
const TOKENS_PER_SECOND: f32 = 6.5;
/// Shorter audio is padded with silence to this length; the encoder's convolutions need some,
/// and a click should not be the whole input.
const SHORTEST_SAMPLES: usize = SPEECH_RATE as usize;

/// A loaded Moonshine model.
pub(super) struct Moonshine {
    /// `Session::run` takes `&mut`; `Stt` is shared between threads.
    sessions: Mutex<Sessions>,
    tokenizer: Tokenizer,
    /// The decoder's cache entries, in input order.
    cache: Vec<CacheEntry>,
    /// Whether the encoder and decoder take an attention mask (some exports do).
    encoder_mask: bool,
    decoder_mask: bool,
    folder: PathBuf,
}

struct Sessions {
    encoder: Session,
    decoder: Session,
}

/// One `past_key_values.*` input of the decoder and its `present.*` output.
struct CacheEntry {
    input: String,
    output: String,
    /// Cross-attention (encoder) entries are computed on the first step only.
    cross: bool,
    /// The empty cache's shape: batch 1, no positions yet.
    empty: [usize; 4],
}

impl std::fmt::Debug for Moonshine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moonshine")
            .field("model", &self.folder)
            .field("cache_entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Moonshine {
    /// Loads onnxruntime, checks the three files, and opens the encoder and decoder.
    pub(super) fn load(config: &SttConfig) -> Result<Moonshine, SttError> {
        crate::wake::load_runtime(&config.onnxruntime).map_err(|e| match e {
            crate::wake::WakeError::Runtime { path, reason } => SttError::Runtime { path, reason },
            other => SttError::Runtime {
                path: config.onnxruntime.clone(),
                reason: other.to_string(),
            },
        })?;
        let folder = expand_home(&config.moonshine_model);
        let threads = config.threads as usize;
        let encoder = open(&folder.join(ENCODER), threads)?;
        let decoder = open(&folder.join(DECODER), threads)?;
        let tokenizer = Tokenizer::read(&folder.join(TOKENIZER))?;
        let invalid = |file: &str, reason: String| SttError::Moonshine {
            path: folder.join(file),
            reason,
        };

        let input_names = |s: &Session| -> Vec<String> {
            s.inputs().iter().map(|i| i.name().to_string()).collect()
        };
        let encoder_inputs = input_names(&encoder);
        if !encoder_inputs.iter().any(|n| n == "input_values") {
            return Err(invalid(
                ENCODER,
                format!("not a Moonshine encoder: its inputs are {encoder_inputs:?}"),
            ));
        }
        if !encoder
            .outputs()
            .iter()
            .any(|o| o.name() == "last_hidden_state")
        {
            return Err(invalid(
                ENCODER,
                "not a Moonshine encoder: it has no last_hidden_state output".into(),
            ));
        }
        let decoder_inputs = input_names(&decoder);
        for needed in ["input_ids", "encoder_hidden_states", "use_cache_branch"] {
            if !decoder_inputs.iter().any(|n| n == needed) {
                return Err(invalid(
                    DECODER,
                    format!(
                        "not a merged Moonshine decoder (no {needed}): its inputs are {decoder_inputs:?}"
                    ),
                ));
            }
        }
        let outputs: Vec<String> = decoder
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let mut cache = Vec::new();
        for input in decoder.inputs() {
            let Some(rest) = input.name().strip_prefix("past_key_values.") else {
                continue;
            };
            let output = format!("present.{rest}");
            if !outputs.contains(&output) {
                return Err(invalid(
                    DECODER,
                    format!("input {} has no output {output}", input.name()),
                ));
            }
            let shape: Vec<i64> = input
                .dtype()
                .tensor_shape()
                .map(|s| s.to_vec())
                .unwrap_or_default();
            let (heads, head_dim) = match shape[..] {
                [_, heads, _, dim] if heads > 0 && dim > 0 => (heads as usize, dim as usize),
                _ => {
                    return Err(invalid(
                        DECODER,
                        format!("cache input {} has shape {shape:?}", input.name()),
                    ))
                }
            };
            cache.push(CacheEntry {
                input: input.name().to_string(),
                output,
                cross: rest.contains(".encoder."),
                empty: [1, heads, 0, head_dim],
            });
        }
        if cache.is_empty() || !outputs.iter().any(|o| o == "logits") {
            return Err(invalid(
                DECODER,
                format!("no key/value cache or no logits: its outputs are {outputs:?}"),
            ));
        }
        let moonshine = Moonshine {
            encoder_mask: encoder_inputs.iter().any(|n| n == "attention_mask"),
            decoder_mask: decoder_inputs.iter().any(|n| n == "encoder_attention_mask"),
            sessions: Mutex::new(Sessions { encoder, decoder }),
            tokenizer,
            cache,
            folder,
        };
        tracing::info!(
            model = %moonshine.folder.display(),
            layers = moonshine.cache.len() / 4,
            threads,
            "speech-to-text model loaded (Moonshine)"
        );
        Ok(moonshine)
    }

    /// Transcribes 16 kHz mono samples.
    pub(super) fn transcribe(&self, samples: &[f32]) -> Result<Transcript, SttError> {
        let started = Instant::now();
        let mut audio = samples.to_vec();
        if audio.len() < SHORTEST_SAMPLES {
            audio.resize(SHORTEST_SAMPLES, 0.0);
        }
        let seconds = audio.len() as f32 / SPEECH_RATE as f32;
        let max_tokens = (seconds * TOKENS_PER_SECOND).ceil() as usize;
        let tokens = self.generate(audio, max_tokens)?;
        Ok(Transcript {
            text: clean(&self.tokenizer.decode(&tokens)),
            took: started.elapsed(),
            no_speech: 0.0,
        })
    }

    /// Encodes the audio and decodes greedily; the tokens without BOS and EOS.
    fn generate(&self, audio: Vec<f32>, max_tokens: usize) -> Result<Vec<i64>, SttError> {
        let failed = |what: &'static str| {
            move |e: ort::Error| SttError::MoonshineRun {
                what,
                reason: e.to_string(),
            }
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let Sessions { encoder, decoder } = &mut *sessions;
        let n = audio.len();
        let mask = || Tensor::from_array(([1usize, n], vec![1i64; n]));

        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![(
            "input_values".into(),
            Tensor::from_array(([1usize, n], audio))
                .map_err(failed("the audio"))?
                .into(),
        )];
        if self.encoder_mask {
            inputs.push((
                "attention_mask".into(),
                mask().map_err(failed("the audio"))?.into(),
            ));
        }
        let mut out = encoder.run(inputs).map_err(failed("encoding"))?;
        let hidden: DynValue = out
            .remove("last_hidden_state")
            .ok_or(SttError::MoonshineRun {
                what: "encoding",
                reason: "the encoder gave no last_hidden_state".into(),
            })?;
        drop(out);
        let decoder_mask = if self.decoder_mask {
            Some(mask().map_err(failed("the audio"))?)
        } else {
            None
        };

        // `from_array` refuses a dimension of 0; an allocated tensor of no elements is fine.
        let allocator = ort::memory::Allocator::default();
        let mut cache: Vec<DynValue> = Vec::with_capacity(self.cache.len());
        for entry in &self.cache {
            let empty =
                Tensor::<f32>::new(&allocator, entry.empty).map_err(failed("the empty cache"))?;
            cache.push(empty.into_dyn());
        }
        let mut tokens = Vec::new();
        let mut last = BOS;
        for step in 0..max_tokens {
            let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
                (
                    "input_ids".into(),
                    Tensor::from_array(([1usize, 1], vec![last]))
                        .map_err(failed("a token"))?
                        .into(),
                ),
                ("encoder_hidden_states".into(), (&hidden).into()),
                (
                    "use_cache_branch".into(),
                    Tensor::from_array(([1usize], vec![step > 0]))
                        .map_err(failed("a token"))?
                        .into(),
                ),
            ];
            if let Some(mask) = &decoder_mask {
                inputs.push(("encoder_attention_mask".into(), mask.into()));
            }
            for (entry, value) in self.cache.iter().zip(&cache) {
                inputs.push((entry.input.as_str().into(), value.into()));
            }
            let mut out = decoder.run(inputs).map_err(failed("decoding"))?;
            let (shape, logits) = out["logits"]
                .try_extract_tensor::<f32>()
                .map_err(failed("decoding"))?;
            // The newest position's row: logits are batch x positions x vocabulary.
            let vocab = shape.last().map_or(0, |&v| v.max(0) as usize);
            if vocab == 0 || logits.len() < vocab {
                return Err(SttError::MoonshineRun {
                    what: "decoding",
                    reason: format!("logits of shape {shape:?}"),
                });
            }
            let next = argmax(&logits[logits.len() - vocab..]) as i64;
            for (entry, value) in self.cache.iter().zip(cache.iter_mut()) {
                if step > 0 && entry.cross {
                    continue;
                }
                *value = out
                    .remove(entry.output.as_str())
                    .ok_or(SttError::MoonshineRun {
                        what: "decoding",
                        reason: format!("the decoder gave no {}", entry.output),
                    })?;
            }
            if next == EOS {
                break;
            }
            tokens.push(next);
            last = next;
        }
        Ok(tokens)
    }
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// Checks that `path` is an `.ort` model, then opens it with `threads` intra-op threads that
/// sleep rather than spin between operators: on a busy 2-core machine spinning made decoding
/// about twice as slow (espeak clips and jfk.wav, tiny-en, 2 threads).
fn open(path: &Path, threads: usize) -> Result<Session, SttError> {
    let invalid = |reason: String| SttError::Moonshine {
        path: path.to_path_buf(),
        reason,
    };
    let head = read_head(path).map_err(|e| invalid(e.to_string()))?;
    if head.len() < 8 || &head[4..8] != ORT_MAGIC {
        return Err(invalid(
            "not an ONNX Runtime .ort model (no ORTM identifier)".into(),
        ));
    }
    Session::builder()
        .map_err(|e| invalid(e.to_string()))?
        .with_intra_threads(threads)
        .map_err(|e| invalid(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| invalid(e.to_string()))?
        .with_intra_op_spinning(false)
        .map_err(|e| invalid(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| invalid(format!("onnxruntime refused it: {e}")))
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(8);
    std::fs::File::open(path)?.take(8).read_to_end(&mut head)?;
    Ok(head)
}

/// Moonshine's `tokenizer.bin`: one entry per token id, each a length (one byte, or two when
/// the first is 128 or more: the low 7 bits, then the next byte times 128) and that many bytes
/// of UTF-8, with "▁" for a space. Ids 0 to 2 are `<unk>`, `<s>` and `</s>`; bytes 0 to 255
/// follow as single-byte tokens; entries such as `<<ST_12>>` are special and never text.
struct Tokenizer {
    tokens: Vec<Vec<u8>>,
}

impl Tokenizer {
    fn read(path: &Path) -> Result<Tokenizer, SttError> {
        let bytes = std::fs::read(path).map_err(|e| SttError::Moonshine {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Tokenizer::parse(&bytes).map_err(|reason| SttError::Moonshine {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn parse(bytes: &[u8]) -> Result<Tokenizer, String> {
        let mut tokens = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let mut len = bytes[at] as usize;
            at += 1;
            if len >= 128 {
                let high = *bytes
                    .get(at)
                    .ok_or_else(|| format!("it ends inside token {}'s length", tokens.len()))?;
                len = (len - 128) + ((high as usize) << 7);
                at += 1;
            }
            let token = bytes
                .get(at..at + len)
                .ok_or_else(|| format!("it ends inside token {} (truncated?)", tokens.len()))?;
            tokens.push(token.to_vec());
            at += len;
        }
        if tokens.len() < 259 {
            return Err(format!(
                "it holds {} tokens; a Moonshine tokenizer has tens of thousands",
                tokens.len()
            ));
        }
        Ok(Tokenizer { tokens })
    }

    fn decode(&self, ids: &[i64]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if id <= EOS {
                continue;
            }
            let Some(token) = usize::try_from(id).ok().and_then(|i| self.tokens.get(i)) else {
                continue;
            };
            if token.len() > 4 && token.starts_with(b"<<") && token.ends_with(b">>") {
                continue;
            }
            bytes.extend_from_slice(token);
        }
        String::from_utf8_lossy(&bytes).replace('\u{2581}', " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer_bytes(tokens: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for t in tokens {
            if t.len() >= 128 {
                out.push(128 + (t.len() & 127) as u8);
                out.push((t.len() >> 7) as u8);
            } else {
                out.push(t.len() as u8);
            }
            out.extend_from_slice(t);
        }
        out
    }

    fn vocabulary() -> Vec<Vec<u8>> {
        let mut tokens: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
        tokens.extend((0..=255u8).map(|b| vec![b]));
        tokens.push("▁Hello".as_bytes().to_vec());
        tokens.push(",".as_bytes().to_vec());
        tokens.push("▁world".as_bytes().to_vec());
        tokens.push(b"<<ST_7>>".to_vec());
        tokens.push(vec![b'x'; 200]);
        tokens
    }

    #[test]
    fn the_tokenizer_reads_and_decodes() {
        let vocab = vocabulary();
        let refs: Vec<&[u8]> = vocab.iter().map(|t| t.as_slice()).collect();
        let t = Tokenizer::parse(&tokenizer_bytes(&refs)).unwrap();
        assert_eq!(t.tokens.len(), vocab.len());
        assert_eq!(t.tokens[263].len(), 200);
        // BOS, a special token, an unknown id and EOS are not text; byte tokens are.
        let ids = [1, 259, 260, 262, 261, 3 + i64::from(b'!'), 99_999, 2];
        assert_eq!(clean(&t.decode(&ids)), "Hello, world!");
    }

    #[test]
    fn a_damaged_tokenizer_is_an_error() {
        let vocab = vocabulary();
        let refs: Vec<&[u8]> = vocab.iter().map(|t| t.as_slice()).collect();
        let bytes = tokenizer_bytes(&refs);
        let err = Tokenizer::parse(&bytes[..bytes.len() - 3]).err().unwrap();
        assert!(err.contains("truncated"), "{err}");
        let err = Tokenizer::parse(&tokenizer_bytes(&refs[..10]))
            .err()
            .unwrap();
        assert!(err.contains("tokens"), "{err}");
        assert!(Tokenizer::parse(&[]).is_err());
    }

    #[test]
    fn argmax_takes_the_first_highest() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
