//! Voice mode: audio in, wake word, endpointing, speech to text, on a thread of its own.
//!
//! The listener thread owns the models (they block) and walks a small state machine over 80 ms
//! chunks of 16 kHz audio:
//!
//! ```text
//! Waiting --wake word--> Listening --end of speech--> (transcribe, send) --> Waiting
//!    ^                       |  no speech / too long            |
//!    +-----------------------+                                  +--> Listening, when a reply
//!                                                                    or question invites an
//!                                                                    answer (follow-up window)
//! ```
//!
//! Every state ends: listening ends at silence, at the longest utterance, or when nobody speaks.
//! Replies are printed (and the earcon played into the sink) until speech out lands.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use hearth_shared::now_ms;
use tokio::sync::mpsc;

use super::text::Printer;
use super::{Frontend, Input, Output};
use crate::audio::{features, wav, Clip, SPEECH_RATE};
use crate::config::{ListenConfig, TerminalConfig};
use crate::endpoint::{End, Endpointer};
use crate::stt::Stt;
use crate::wake::{WakeWord, STEP};

/// What the session tells the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// Listen for an answer without the wake word.
    FollowUp,
}

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A WAV file, read as fast as the models go (headless use, tests).
    Wav(PathBuf),
}

/// The voice front end's handle: inputs from the listener thread, outputs printed.
#[derive(Debug)]
pub struct VoiceFrontend {
    inputs: mpsc::Receiver<Input>,
    control: std_mpsc::Sender<Control>,
    printer: Printer,
    follow_up: bool,
}

/// Why voice mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// The audio source.
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    /// Speech to text.
    #[error(transparent)]
    Stt(#[from] crate::stt::SttError),
    /// The wake word.
    #[error(transparent)]
    Wake(#[from] crate::wake::WakeError),
}

impl VoiceFrontend {
    /// Loads the models and starts listening to `source`.
    pub fn start(config: &TerminalConfig, source: Source) -> Result<VoiceFrontend, VoiceError> {
        let Source::Wav(path) = source;
        let clip = wav::read(&path)?.at_rate(SPEECH_RATE);
        let stt = Stt::load(&config.stt)?;
        let wake = WakeWord::load(&config.voice.onnxruntime, &config.wake)?;
        let sink = config.voice.output_wav.clone();
        let listen = config.listen.clone();
        let (tx, rx) = mpsc::channel(8);
        let (control, controls) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("listener".into())
            .spawn(move || {
                let mut listener = Listener {
                    stt,
                    wake,
                    endpoint: Endpointer::new(&listen),
                    listen,
                    sink: Sink::new(sink),
                    inputs: tx,
                    controls,
                };
                listener.run(clip);
            })
            .expect("spawning the listener thread");
        tracing::info!(source = %path.display(), "voice mode: listening");
        Ok(VoiceFrontend {
            inputs: rx,
            control,
            printer: Printer::default(),
            follow_up: config.listen.follow_up_ms > 0,
        })
    }
}

impl Frontend for VoiceFrontend {
    async fn next_input(&mut self) -> Input {
        self.inputs.recv().await.unwrap_or(Input::Closed)
    }

    fn present(&mut self, output: Output) {
        let invites_answer = matches!(
            output,
            Output::ReplyEnd
                | Output::Speech {
                    expects_answer: true,
                    ..
                }
        );
        self.printer.present(output);
        if invites_answer && self.follow_up {
            let _ = self.control.send(Control::FollowUp);
        }
    }
}

/// Audio played by the terminal, written to a WAV file (there is no sound card here).
#[derive(Debug)]
struct Sink {
    path: Option<PathBuf>,
    played: Vec<f32>,
}

impl Sink {
    fn new(path: Option<PathBuf>) -> Sink {
        Sink {
            path,
            played: Vec::new(),
        }
    }

    fn play(&mut self, clip: &Clip) {
        let Some(path) = &self.path else { return };
        self.played
            .extend_from_slice(&clip.clone().at_rate(SPEECH_RATE).samples);
        let all = Clip {
            samples: self.played.clone(),
            rate: SPEECH_RATE,
        };
        if let Err(e) = wav::write(path, &all) {
            tracing::warn!(error = %e, "audio sink");
        }
    }
}

/// The earcon that says "I am listening": two rising tones, 120 ms.
pub fn earcon() -> Clip {
    let rate = SPEECH_RATE;
    let tone = |freq: f32, n: usize| {
        (0..n).map(move |i| {
            let t = i as f32 / rate as f32;
            let fade = (i.min(n - i) as f32 / 80.0).min(1.0);
            0.3 * fade * (2.0 * std::f32::consts::PI * freq * t).sin()
        })
    };
    Clip {
        samples: tone(660.0, 960).chain(tone(880.0, 960)).collect(),
        rate,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Waiting for the wake word.
    Waiting,
    /// Taking an utterance, since the given sample.
    Listening { since: usize },
}

struct Listener {
    stt: Stt,
    wake: WakeWord,
    endpoint: Endpointer,
    listen: ListenConfig,
    sink: Sink,
    inputs: mpsc::Sender<Input>,
    controls: std_mpsc::Receiver<Control>,
}

impl Listener {
    fn run(&mut self, clip: Clip) {
        // The file is followed by silence, so that an utterance at its very end still ends.
        let tail = (self.listen.silence_ms as usize + 500) * SPEECH_RATE as usize / 1000;
        let mut audio = clip.samples;
        audio.extend(std::iter::repeat_n(0.0, tail));
        let mut state = self.idle();
        let mut utterance: Vec<f32> = Vec::new();
        for (i, chunk) in audio.chunks(STEP).enumerate() {
            let at = i * STEP;
            if self.controls.try_iter().any(|c| c == Control::FollowUp) {
                if let State::Waiting = state {
                    tracing::info!("listening for an answer without the wake word");
                    state = self.start_listening(at, &mut utterance);
                }
            }
            match state {
                State::Waiting => match self.wake.push(chunk) {
                    Ok(Some(d)) => {
                        tracing::info!(
                            score = d.score,
                            at_s = at as f32 / SPEECH_RATE as f32,
                            "wake word heard"
                        );
                        state = self.start_listening(at + chunk.len(), &mut utterance);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "wake word failed; voice input stops");
                        break;
                    }
                },
                State::Listening { since } => {
                    utterance.extend_from_slice(chunk);
                    if let Some(end) = self.endpoint.push(chunk) {
                        self.finish(end, since, &utterance);
                        utterance.clear();
                        state = self.idle();
                    }
                }
            }
        }
        let _ = self.inputs.blocking_send(Input::Closed);
    }

    fn idle(&mut self) -> State {
        self.wake.reset();
        if self.listen.always {
            self.endpoint.reset();
            State::Listening { since: 0 }
        } else {
            State::Waiting
        }
    }

    fn start_listening(&mut self, at: usize, utterance: &mut Vec<f32>) -> State {
        self.sink.play(&earcon());
        self.endpoint.reset();
        utterance.clear();
        State::Listening { since: at }
    }

    fn finish(&mut self, end: End, since: usize, samples: &[f32]) {
        let ended_at_ms = now_ms();
        let seconds = samples.len() as f32 / SPEECH_RATE as f32;
        if end == End::NoSpeech || !self.endpoint.heard_speech() {
            tracing::info!("nobody spoke; waiting for the wake word again");
            return;
        }
        let started = Instant::now();
        let heard = match self.stt.transcribe(samples) {
            Ok(heard) => heard,
            Err(e) => {
                tracing::error!(error = %e, "speech to text failed");
                return;
            }
        };
        tracing::info!(
            text = %heard.text, ?end, audio_s = seconds, since_s = since as f32 / SPEECH_RATE as f32,
            stt_ms = started.elapsed().as_millis() as u64, "heard"
        );
        if heard.text.is_empty() {
            return;
        }
        let clip = Clip {
            samples: samples.to_vec(),
            rate: SPEECH_RATE,
        };
        let audio = features::of(&clip, heard.words());
        let said = Input::Said {
            text: heard.text,
            started_at_ms: ended_at_ms.saturating_sub((seconds * 1000.0) as u64),
            ended_at_ms,
            audio: Some(audio),
        };
        let _ = self.inputs.blocking_send(said);
    }
}
