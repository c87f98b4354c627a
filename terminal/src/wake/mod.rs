//! The wake word: openWakeWord's three ONNX models through onnxruntime (`ort`, loaded at run
//! time from the library the setup fetched).
//!
//! The pipeline follows openWakeWord's streaming code: every 80 ms (1,280 samples at 16 kHz)
//! the mel model turns the newest audio, with 480 samples of context, into 32-band frames
//! (scaled `x / 10 + 2`); the embedding model turns the newest 76 frames into a 96-value
//! embedding; the classifier scores the newest 16 embeddings. Audio goes in at int16 scale,
//! as the models were trained.
//!
//! The classifier's score depends on where the 80 ms steps fall (it moves by about ±0.15, and
//! a wake word run straight into a request often peaks under the threshold at one alignment
//! and over it at another). So the detector scores `phases` interleaved streams: phase `p`
//! takes its embeddings `p * 80 / phases` ms behind the newest mel frame, with its own
//! classifier window, and a step's score is the best phase's. The mel frames are shared.
//!
//! [`trigger`] is the wake word as the listener uses it: gated on voice activity, low hits
//! checked by speech to text, and the audio before a hit kept for the utterance.

pub mod bench;
pub mod phrase;
pub mod trigger;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::Session;
use ort::value::TensorRef;

use crate::config::{expand_home, WakeConfig};

/// Samples per step: 80 ms at 16 kHz.
pub const STEP: usize = 1280;
/// Audio context before each step that the mel model needs.
const CONTEXT: usize = 480;
const MEL_BANDS: usize = 32;
const MEL_WINDOW: usize = 76;
/// Mel frames per step (10 ms each).
const MEL_PER_STEP: usize = 8;
const EMBEDDING: usize = 96;

/// Why the wake word cannot run.
#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    /// onnxruntime's library could not be loaded.
    #[error("cannot load onnxruntime from {path}: {reason}; set voice.onnxruntime (scripts/fetch-models onnxruntime fetches it)")]
    Runtime {
        /// The library path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A model file is missing or not a model onnxruntime can run.
    #[error("cannot load the wake-word model {path}: {reason}")]
    Model {
        /// The model path.
        path: PathBuf,
        /// What onnxruntime said.
        reason: String,
    },
    /// A model produced output of an unexpected shape, or failed while running.
    #[error("the wake-word {stage} model failed: {reason}")]
    Run {
        /// "mel", "embedding" or "classifier".
        stage: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// The environment variable that says onnxruntime cannot be loaded on this machine; its value
/// says why. `scripts/cross-pi` sets it to `qemu-user` for what it runs under qemu-user, where
/// `dlopen` of onnxruntime's aarch64 library segfaults: [`load_runtime`] refuses with an error
/// instead, and the tests that need onnxruntime skip ([`skip_without_onnxruntime`]).
pub const NO_ONNXRUNTIME: &str = "HEARTH_NO_ONNXRUNTIME";

/// Loads onnxruntime once per process, from `path`.
pub fn load_runtime(path: &Path) -> Result<(), WakeError> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    let path = expand_home(path);
    LOADED
        .get_or_init(|| {
            if let Some(why) = std::env::var_os(NO_ONNXRUNTIME) {
                return Err(format!(
                    "{NO_ONNXRUNTIME}={} says it cannot be loaded on this machine",
                    why.to_string_lossy()
                ));
            }
            if !path.is_file() {
                return Err("no such file".to_string());
            }
            let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
            builder.with_name("hearth-terminal").commit();
            Ok(())
        })
        .clone()
        .map_err(|reason| WakeError::Runtime { path, reason })
}

/// For a test that needs onnxruntime: true where [`NO_ONNXRUNTIME`] is set, after a line on
/// stderr that names the test and says why it is skipped. The line goes to stderr directly,
/// past the test harness's capture of `eprintln!`, so that a passing run shows it too.
pub fn skip_without_onnxruntime() -> bool {
    let Some(why) = std::env::var_os(NO_ONNXRUNTIME) else {
        return false;
    };
    // The test harness names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    let line = format!(
        "SKIPPED {test}: it needs onnxruntime, which {NO_ONNXRUNTIME}={} says cannot be \
         loaded here; it runs in the native suite\n",
        why.to_string_lossy()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    true
}

fn session(path: &Path) -> Result<Session, WakeError> {
    let path = expand_home(path);
    let model = |reason: String| WakeError::Model {
        path: path.clone(),
        reason,
    };
    if !path.is_file() {
        return Err(model(
            "no such file (scripts/fetch-models fetches the openWakeWord models)".into(),
        ));
    }
    Session::builder()
        .map_err(|e| model(e.to_string()))?
        .with_intra_threads(1)
        .map_err(|e| model(e.to_string()))?
        .commit_from_file(&path)
        .map_err(|e| model(e.to_string()))
}

/// A wake-word detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// The classifier's score, 0 to 1.
    pub score: f32,
}

/// A streaming wake-word detector. Blocking: run it on the audio thread, not on tokio's.
pub struct WakeWord {
    mel: Session,
    embedding: Session,
    classifier: Session,
    threshold: f32,
    /// Classifier window, in embeddings (16 for the openWakeWord models).
    window: usize,
    /// Samples not yet stepped, after `CONTEXT` samples of history.
    audio: Vec<f32>,
    mels: VecDeque<[f32; MEL_BANDS]>,
    /// Each phase's embeddings, newest last; phase `p` lags `p * 8 / phases` mel frames.
    embeddings: Vec<VecDeque<[f32; EMBEDDING]>>,
    /// The features of silence, which `reset` goes back to.
    quiet: (VecDeque<[f32; MEL_BANDS]>, Vec<VecDeque<[f32; EMBEDDING]>>),
    /// Steps left before a new detection may fire (after one, and while warming up).
    refractory: usize,
    refractory_steps: usize,
    /// The last step's score.
    last_score: f32,
    /// The best score of the steps in the last `push`.
    peak: f32,
}

impl std::fmt::Debug for WakeWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeWord")
            .field("threshold", &self.threshold)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl WakeWord {
    /// Loads the runtime and the three models named in `config`.
    pub fn load(onnxruntime: &Path, config: &WakeConfig) -> Result<WakeWord, WakeError> {
        load_runtime(onnxruntime)?;
        let classifier = session(&config.model)?;
        let window = classifier
            .inputs()
            .first()
            .and_then(|input| input.dtype().tensor_shape().map(|s| s.to_vec()))
            .and_then(|shape| shape.get(1).copied())
            .filter(|&n| n > 0)
            .map_or(16, |n| n as usize);
        let phases = config.phases.clamp(1, MEL_PER_STEP as u32) as usize;
        let mut wake = WakeWord {
            mel: session(&config.mel_model)?,
            embedding: session(&config.embedding_model)?,
            classifier,
            threshold: config.threshold,
            window,
            audio: vec![0.0; CONTEXT],
            mels: VecDeque::from(vec![[1.0; MEL_BANDS]; MEL_WINDOW + MEL_PER_STEP]),
            embeddings: vec![VecDeque::from(vec![[0.0; EMBEDDING]; window]); phases],
            quiet: (VecDeque::new(), Vec::new()),
            refractory: 0,
            refractory_steps: (config.refractory_ms as usize * 16 / STEP).max(1),
            last_score: 0.0,
            peak: 0.0,
        };
        // Fill the history with real features of silence, and warm the sessions up.
        wake.push(&vec![0.0; STEP * (window + 4)])?;
        wake.quiet = (wake.mels.clone(), wake.embeddings.clone());
        wake.reset();
        Ok(wake)
    }

    /// Forgets the audio heard so far (after a detection has been acted on, say).
    pub fn reset(&mut self) {
        self.audio.clear();
        self.audio.resize(CONTEXT, 0.0);
        self.mels.clone_from(&self.quiet.0);
        self.embeddings.clone_from(&self.quiet.1);
        self.refractory = 0;
        self.last_score = 0.0;
        self.peak = 0.0;
    }

    /// The score of the latest 80 ms step.
    pub fn last_score(&self) -> f32 {
        self.last_score
    }

    /// The best score of the steps taken in the last `push` (0 if it took none).
    pub fn peak(&self) -> f32 {
        self.peak
    }

    /// The score at which the wake word counts as heard.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Feeds 16 kHz samples in [-1, 1]; returns a detection if the wake word ended in them.
    pub fn push(&mut self, samples: &[f32]) -> Result<Option<Detection>, WakeError> {
        self.audio.extend(samples.iter().map(|s| s * 32_767.0));
        let mut found = None;
        self.peak = 0.0;
        while self.audio.len() >= CONTEXT + STEP {
            let score = self.step()?;
            self.audio.drain(..STEP);
            self.last_score = score;
            self.peak = self.peak.max(score);
            if self.refractory > 0 {
                self.refractory -= 1;
            } else if score >= self.threshold && found.is_none() {
                found = Some(Detection { score });
                self.refractory = self.refractory_steps;
            }
        }
        Ok(found)
    }

    fn step(&mut self) -> Result<f32, WakeError> {
        let frame = &self.audio[..CONTEXT + STEP];
        let mel = infer(&mut self.mel, "mel", [1, frame.len()], frame)?;
        if mel.len() % MEL_BANDS != 0 || mel.is_empty() {
            return Err(WakeError::Run {
                stage: "mel",
                reason: format!(
                    "{} values is not a whole number of {MEL_BANDS}-band frames",
                    mel.len()
                ),
            });
        }
        for row in mel.chunks(MEL_BANDS) {
            let mut frame = [0.0; MEL_BANDS];
            for (dst, &v) in frame.iter_mut().zip(row) {
                *dst = v / 10.0 + 2.0;
            }
            self.mels.push_back(frame);
        }
        while self.mels.len() > MEL_WINDOW + MEL_PER_STEP {
            self.mels.pop_front();
        }
        let phases = self.embeddings.len();
        let mut best = 0.0f32;
        for p in 0..phases {
            let lag = p * MEL_PER_STEP / phases;
            let end = self.mels.len() - lag;
            let window: Vec<f32> = self
                .mels
                .range(end - MEL_WINDOW..end)
                .flatten()
                .copied()
                .collect();
            let shape = [1, MEL_WINDOW, MEL_BANDS, 1];
            let embedding = infer(&mut self.embedding, "embedding", shape, &window)?;
            let embedding: [f32; EMBEDDING] =
                embedding
                    .as_slice()
                    .try_into()
                    .map_err(|_| WakeError::Run {
                        stage: "embedding",
                        reason: format!("{} values, expected {EMBEDDING}", embedding.len()),
                    })?;
            let embeddings = &mut self.embeddings[p];
            embeddings.push_back(embedding);
            while embeddings.len() > self.window {
                embeddings.pop_front();
            }
            let features: Vec<f32> = embeddings.iter().flatten().copied().collect();
            let shape = [1, self.window, EMBEDDING];
            let score = infer(&mut self.classifier, "classifier", shape, &features)?;
            let score = score.first().copied().ok_or(WakeError::Run {
                stage: "classifier",
                reason: "no score".into(),
            })?;
            best = best.max(score);
        }
        Ok(best)
    }
}

/// Runs `session` on one f32 tensor of `shape` and returns its first output.
fn infer<const N: usize>(
    session: &mut Session,
    stage: &'static str,
    shape: [usize; N],
    data: &[f32],
) -> Result<Vec<f32>, WakeError> {
    let failed = |e: ort::Error| WakeError::Run {
        stage,
        reason: e.to_string(),
    };
    let input = TensorRef::from_array_view((shape, data)).map_err(failed)?;
    let out = session.run(ort::inputs![input]).map_err(failed)?;
    let (_, values) = out[0].try_extract_tensor::<f32>().map_err(failed)?;
    Ok(values.to_vec())
}
