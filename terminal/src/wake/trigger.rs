//! The wake word as the listener uses it.
//!
//! - **Gated on voice activity.** earshot's VAD (about 1 ms of CPU a second) runs on every
//!   step; the wake-word model runs only while speech was heard in the last
//!   [`HOLD_MS`]. When speech starts, the model is reset and the last [`REPLAY_MS`] of audio
//!   (its whole receptive field) is replayed through it, so it scores the same as if it had
//!   run all along from silence.
//! - **Low hits checked.** A step scoring at least `wake.verify_threshold` but under
//!   `wake.threshold` is a candidate. [`CHECK_AFTER_STEPS`] steps later (the score peaks a few
//!   hundred ms after the name), speech to text transcribes the audio from `pre_roll_ms`
//!   before the candidate, on its own thread, and the wake word counts if the transcript has
//!   the phrase ([`super::phrase::heard`]). A person who runs the request straight on from
//!   "hey jarvis" often peaks between 0.1 and 0.5, and some voices between 0.03 and 0.1; the
//!   check decides, and the floor only bounds its CPU (in 66 minutes of ordinary speech no
//!   checked score became a wake: README, the wake word).
//! - **Pre-roll.** The audio of the last seconds is kept, so that the listener can start the
//!   utterance `pre_roll_ms` before the detection ([`Wake::from`]).
//!
//! Samples are counted from the first one pushed; [`Wake`] positions are in that count.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;

use super::{phrase, WakeError, WakeWord, STEP};
use crate::audio::SPEECH_RATE;
use crate::config::{ListenConfig, SttConfig, WakeConfig};
use crate::endpoint::FRAME;
use crate::stt::{Stt, SttError, Transcript};

/// The model keeps running this long after the last voiced frame.
pub const HOLD_MS: usize = 2_000;
/// Audio replayed through the model when speech starts: its receptive field (76 mel frames,
/// then 16 embeddings 80 ms apart), with a margin.
pub const REPLAY_MS: usize = 2_240;
/// Steps between a candidate and its check.
pub const CHECK_AFTER_STEPS: usize = 4;
/// Audio kept beyond the pre-roll (a check in flight, the replay).
const KEEP_MS: usize = 4_000;

/// The wake word, heard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wake {
    /// Where it was detected (the end of the step that scored), in samples pushed so far.
    pub at: usize,
    /// Where the utterance should start: `pre_roll_ms` before `at`, or the oldest audio kept.
    pub from: usize,
    /// The best score.
    pub score: f32,
    /// Whether speech to text confirmed a low score.
    pub checked: bool,
}

/// A candidate waiting for its check.
struct Candidate {
    at: usize,
    score: f32,
    steps_left: usize,
    check: Option<mpsc::Receiver<Result<Transcript, SttError>>>,
}

/// The wake word with its voice-activity gate, its check and its pre-roll.
pub struct Trigger {
    wake: WakeWord,
    stt: Arc<Stt>,
    config: WakeConfig,
    vad: Box<earshot::Detector>,
    vad_threshold: f32,
    pending: Vec<f32>,
    /// The last samples pushed, ending at `end`.
    audio: VecDeque<f32>,
    end: usize,
    /// Where voice was last heard (in samples), if ever.
    voiced_at: Option<usize>,
    /// Whether the model is running (always, when not gated).
    running: bool,
    /// Where the last reset was: a replay never reaches back before it (audio from before
    /// it, such as the wake word just acted on, is not heard again).
    reset_at: usize,
    candidate: Option<Candidate>,
    /// A new candidate needs the score to go under `verify_threshold` first.
    armed: bool,
    /// Steps the model took (for the idle-cost figures).
    model_steps: usize,
    /// Check on the calling thread (audio that is not paced, such as a file read as fast as
    /// the models go: a check in the background would fall behind it).
    inline_checks: bool,
    /// Checks running in the background, joined when the trigger goes: whisper still running
    /// while the process exits brings it down.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The best score since the last reset (the bench's per-clip figure).
    best: f32,
}

impl Drop for Trigger {
    fn drop(&mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger")
            .field("end", &self.end)
            .field("running", &self.running)
            .field("model_steps", &self.model_steps)
            .finish_non_exhaustive()
    }
}

/// The speech to text that checks low scores: `stt` itself when it runs `wake.check_engine`
/// or no check runs, otherwise that engine loaded with the same `[stt]` settings (whisper,
/// which can be told the phrase, while Moonshine transcribes the requests).
pub fn checker(
    stt: &Arc<Stt>,
    stt_config: &SttConfig,
    wake: &WakeConfig,
) -> Result<Arc<Stt>, SttError> {
    if wake.verify_threshold <= 0.0 || stt.engine() == wake.check_engine {
        return Ok(stt.clone());
    }
    let config = SttConfig {
        engine: wake.check_engine,
        ..stt_config.clone()
    };
    let loaded = Stt::load(&config).inspect_err(|_| {
        tracing::error!(
            engine = %wake.check_engine,
            "the wake word's check cannot load its engine; fetch its model, or set \
             wake.check_engine to the engine in stt.engine, or wake.verify_threshold = 0 \
             for no check"
        );
    })?;
    tracing::info!(engine = %wake.check_engine, "the wake word's low scores are checked by a second engine");
    Ok(Arc::new(loaded))
}

fn samples(ms: usize) -> usize {
    ms * SPEECH_RATE as usize / 1000
}

impl Trigger {
    /// The trigger around a loaded model; `stt` checks low scores.
    pub fn new(wake: WakeWord, stt: Arc<Stt>, config: &WakeConfig, listen: &ListenConfig) -> Self {
        Trigger {
            wake,
            stt,
            config: config.clone(),
            vad: earshot::Detector::default_boxed(),
            vad_threshold: listen.vad_threshold,
            pending: Vec::with_capacity(FRAME),
            audio: VecDeque::new(),
            end: 0,
            voiced_at: None,
            running: !config.vad_gate,
            reset_at: 0,
            candidate: None,
            armed: true,
            model_steps: 0,
            inline_checks: false,
            threads: Vec::new(),
            best: 0.0,
        }
    }

    /// Checks low scores on the calling thread, for audio that is not paced like a
    /// microphone; the result is then the same on every run.
    pub fn inline_checks(&mut self, inline: bool) {
        self.inline_checks = inline;
    }

    /// Samples pushed so far.
    pub fn end(&self) -> usize {
        self.end
    }

    /// Steps the model has taken (it takes none while gated off).
    pub fn model_steps(&self) -> usize {
        self.model_steps
    }

    /// Whether a candidate is waiting for its check.
    pub fn checking(&self) -> bool {
        self.candidate.is_some()
    }

    /// The audio kept from sample `from` to the end (from the oldest kept, if that is later).
    pub fn audio_since(&self, from: usize) -> Vec<f32> {
        let oldest = self.end - self.audio.len();
        self.audio
            .iter()
            .skip(from.saturating_sub(oldest))
            .copied()
            .collect()
    }

    /// The best score since the last reset.
    pub fn best(&self) -> f32 {
        self.best
    }

    /// Forgets scores, candidates and the audio heard so far as far as the model goes
    /// (after the listener acted on a wake, or listened for another reason); the pre-roll
    /// and the count go on.
    pub fn reset(&mut self) {
        self.best = 0.0;
        self.wake.reset();
        self.candidate = None;
        self.armed = true;
        self.running = !self.config.vad_gate;
        self.voiced_at = None;
        self.vad.reset();
        self.pending.clear();
        self.reset_at = self.end;
    }

    /// Keeps audio heard while the wake word is not wanted (the listener is taking an
    /// utterance), so that the count and the pre-roll stay continuous.
    pub fn record(&mut self, chunk: &[f32]) {
        self.audio.extend(chunk);
        self.end += chunk.len();
        let keep = samples(KEEP_MS + self.config.pre_roll_ms as usize).max(samples(REPLAY_MS));
        while self.audio.len() > keep {
            self.audio.pop_front();
        }
    }

    /// Feeds one step of 16 kHz audio; returns the wake word if it was heard.
    pub fn push(&mut self, chunk: &[f32]) -> Result<Option<Wake>, WakeError> {
        self.record(chunk);
        let voiced = self.voiced(chunk);
        if voiced {
            self.voiced_at = Some(self.end);
        }
        let steps_before = self.model_steps;
        let detection = if self.running {
            let held = self
                .voiced_at
                .is_some_and(|at| self.end - at <= samples(HOLD_MS));
            if self.config.vad_gate && !held && self.candidate.is_none() {
                tracing::debug!("wake word: quiet, model paused");
                self.running = false;
                None
            } else {
                self.model_steps += chunk.len().div_ceil(STEP);
                self.wake.push(chunk)?
            }
        } else if voiced {
            // Speech starts: the model hears the last seconds as if it had run all along.
            self.running = true;
            self.wake.reset();
            let from = self
                .end
                .saturating_sub(samples(REPLAY_MS))
                .max(self.reset_at);
            let replay = self.audio_since(from);
            self.model_steps += replay.len().div_ceil(STEP);
            self.wake.push(&replay)?
        } else {
            None
        };
        let peak = if self.model_steps > steps_before {
            self.wake.peak()
        } else {
            0.0
        };
        self.best = self.best.max(peak);
        if let Some(d) = detection {
            self.candidate = None;
            self.armed = false;
            return Ok(Some(self.wake_at(self.end, d.score, false)));
        }
        self.check(peak)
    }

    /// Whether any VAD frame of `chunk` is speech.
    fn voiced(&mut self, chunk: &[f32]) -> bool {
        let mut voiced = false;
        for &s in chunk {
            self.pending.push(s);
            if self.pending.len() == FRAME {
                voiced |= self.vad.predict_f32(&self.pending) >= self.vad_threshold;
                self.pending.clear();
            }
        }
        voiced
    }

    fn wake_at(&self, at: usize, score: f32, checked: bool) -> Wake {
        let oldest = self.end - self.audio.len();
        let from = at
            .saturating_sub(samples(self.config.pre_roll_ms as usize))
            .max(oldest);
        Wake {
            at,
            from,
            score,
            checked,
        }
    }

    /// Starts, counts down and collects the check of a low score.
    fn check(&mut self, peak: f32) -> Result<Option<Wake>, WakeError> {
        let low = self.config.verify_threshold;
        if low <= 0.0 {
            return Ok(None);
        }
        if peak < low {
            self.armed = true;
        }
        if self.candidate.is_none() && self.armed && peak >= low {
            tracing::debug!(score = peak, "wake word: a low score, to be checked");
            self.armed = false;
            self.candidate = Some(Candidate {
                at: self.end,
                score: peak,
                steps_left: CHECK_AFTER_STEPS,
                check: None,
            });
            return Ok(None);
        }
        let Some(candidate) = self.candidate.as_mut() else {
            return Ok(None);
        };
        candidate.score = candidate.score.max(peak);
        if candidate.steps_left > 0 {
            candidate.steps_left -= 1;
            if candidate.steps_left > 0 {
                return Ok(None);
            }
            let from = candidate
                .at
                .saturating_sub(samples(self.config.pre_roll_ms as usize));
            let audio = self.audio_since(from);
            let stt = self.stt.clone();
            let phrase = self.config.phrase.clone();
            let (tx, rx) = mpsc::channel();
            if self.inline_checks {
                let _ = tx.send(stt.transcribe_after(&audio, &phrase));
            } else {
                let spawned =
                    std::thread::Builder::new()
                        .name("wake-check".into())
                        .spawn(move || {
                            let _ = tx.send(stt.transcribe_after(&audio, &phrase));
                        });
                self.threads.retain(|t| !t.is_finished());
                match spawned {
                    Ok(handle) => self.threads.push(handle),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start the wake-word check");
                        self.candidate = None;
                        return Ok(None);
                    }
                }
            }
            if let Some(candidate) = self.candidate.as_mut() {
                candidate.check = Some(rx);
            }
            if !self.inline_checks {
                return Ok(None);
            }
        }
        let Some(candidate) = self.candidate.as_ref() else {
            return Ok(None);
        };
        let result = match candidate.check.as_ref().map(mpsc::Receiver::try_recv) {
            Some(Ok(result)) => result,
            Some(Err(mpsc::TryRecvError::Empty)) => return Ok(None),
            Some(Err(mpsc::TryRecvError::Disconnected)) | None => {
                self.candidate = None;
                return Ok(None);
            }
        };
        let Some(candidate) = self.candidate.take() else {
            return Ok(None);
        };
        match result {
            Ok(heard) if phrase::heard(&heard.text, &self.config.phrase) => {
                tracing::info!(score = candidate.score, text = %heard.text, check_ms = heard.took.as_millis() as u64,
                    "wake word: a low score, confirmed by speech to text");
                Ok(Some(self.wake_at(candidate.at, candidate.score, true)))
            }
            Ok(heard) => {
                tracing::debug!(score = candidate.score, text = %heard.text, "wake word: a low score, not the phrase");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the wake-word check failed");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! On the fetched models: a wake, acted on, is not heard again when speech starts after
    //! the reset (the replay starts at the reset); the pre-roll reaches back before it.

    use super::*;
    use crate::config::TerminalConfig;
    use crate::tts::Tts;

    #[test]
    fn a_wake_acted_on_is_not_replayed_and_the_pre_roll_reaches_back() {
        if crate::wake::skip_without_onnxruntime() {
            return;
        }
        let config = TerminalConfig::with_fetched_models();
        let stt = Arc::new(Stt::load(&config.stt).unwrap());
        let wake = WakeWord::load(&config.voice.onnxruntime, &config.wake).unwrap();
        let mut trigger = Trigger::new(wake, stt, &config.wake, &config.listen);
        trigger.inline_checks(true);
        // The same speech every run.
        let mut tts = Tts::load(&config.voice.onnxruntime, &config.tts.without_noise()).unwrap();
        let mut say = |text: &str| {
            tts.synthesize(text)
                .unwrap()
                .clip
                .at_rate(SPEECH_RATE)
                .samples
        };
        let mut audio = vec![0.0; samples(2000)];
        audio.extend(say("Hey Jarvis!"));
        let mut woke = None;
        for chunk in audio.chunks(STEP) {
            if let Some(wake) = trigger.push(chunk).unwrap() {
                woke = Some(wake);
                break;
            }
        }
        let wake = woke.expect("the wake word was not heard");
        assert!(wake.score >= config.wake.threshold);
        assert_eq!(
            wake.at - wake.from,
            samples(config.wake.pre_roll_ms as usize)
        );
        assert_eq!(trigger.audio_since(wake.from).len(), wake.at - wake.from);
        // Acted on; a moment later someone speaks (the model starts again on voice).
        trigger.reset();
        let steps = trigger.model_steps();
        let speech = say("The kettle is on, and the bread is in the oven.");
        for chunk in speech.chunks(STEP) {
            assert_eq!(trigger.push(chunk).unwrap(), None);
        }
        assert!(
            trigger.model_steps() > steps,
            "the model never ran on the speech"
        );
    }
}
