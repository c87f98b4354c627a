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
    /// Play the attention earcon: the hub is about to speak first.
    Attention,
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
        if matches!(output, Output::Speech { .. }) {
            let _ = self.control.send(Control::Attention);
        }
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

/// The two earcons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earcon {
    /// "I am listening": two rising tones.
    Listening,
    /// "I have something to say" (before proactive speech): two falling tones.
    Attention,
}

/// The earcon's sound, 120 ms.
pub fn earcon(which: Earcon) -> Clip {
    let rate = SPEECH_RATE;
    let (first, second) = match which {
        Earcon::Listening => (660.0, 880.0),
        Earcon::Attention => (988.0, 784.0),
    };
    let tone = |freq: f32, n: usize| {
        (0..n).map(move |i| {
            let t = i as f32 / rate as f32;
            let fade = (i.min(n - i) as f32 / 80.0).min(1.0);
            0.3 * fade * (2.0 * std::f32::consts::PI * freq * t).sin()
        })
    };
    Clip {
        samples: tone(first, 960).chain(tone(second, 960)).collect(),
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
            let controls: Vec<Control> = self.controls.try_iter().collect();
            if controls.contains(&Control::Attention) {
                self.sink.play(&earcon(Earcon::Attention));
            }
            if controls.contains(&Control::FollowUp) && state == State::Waiting {
                tracing::info!("listening for an answer without the wake word");
                state = self.start_listening(at, &mut utterance);
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
        self.sink.play(&earcon(Earcon::Listening));
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
        let audio = features::of(samples, SPEECH_RATE, heard.words());
        let said = Input::Said {
            text: heard.text,
            started_at_ms: ended_at_ms.saturating_sub((seconds * 1000.0) as u64),
            ended_at_ms,
            audio: Some(audio),
        };
        let _ = self.inputs.blocking_send(said);
    }
}

#[cfg(test)]
mod tests {
    //! The listener on the real models (fetched by `scripts/setup`), driven directly: an
    //! invitation to answer lets speech in without the wake word, and nothing else does.

    use super::*;

    fn models() -> PathBuf {
        std::env::var_os("HEARTH_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/hearth/models")
            })
    }

    fn espeak(dir: &std::path::Path, text: &str) -> Clip {
        let mut clip = crate::bench::espeak(text, &dir.join("said.wav"))
            .unwrap()
            .at_rate(SPEECH_RATE);
        let mut padded = vec![0.0; 4_000];
        padded.append(&mut clip.samples);
        clip.samples = padded;
        clip
    }

    /// Runs a listener over `clip` after sending it `controls`; returns what it sent and the
    /// sink's audio.
    fn listen(clip: Clip, controls: &[Control]) -> (Vec<Input>, Clip) {
        let dir = tempfile::tempdir().unwrap();
        let config = TerminalConfig::default().with_models_in(&models());
        let sink = dir.path().join("played.wav");
        let (tx, mut rx) = mpsc::channel(8);
        let (control, receiver) = std_mpsc::channel();
        for c in controls {
            control.send(*c).unwrap();
        }
        let mut listener = Listener {
            stt: Stt::load(&config.stt).unwrap(),
            wake: WakeWord::load(&config.voice.onnxruntime, &config.wake).unwrap(),
            endpoint: Endpointer::new(&config.listen),
            listen: config.listen.clone(),
            sink: Sink::new(Some(sink.clone())),
            inputs: tx,
            controls: receiver,
        };
        listener.run(clip);
        let mut inputs = Vec::new();
        while let Ok(input) = rx.try_recv() {
            inputs.push(input);
        }
        let played = wav::read(&sink).unwrap_or(Clip {
            samples: Vec::new(),
            rate: SPEECH_RATE,
        });
        (inputs, played)
    }

    #[test]
    fn an_invited_answer_needs_no_wake_word_and_proactive_speech_starts_with_an_earcon() {
        let dir = tempfile::tempdir().unwrap();
        let answer = espeak(dir.path(), "What is the weather like in the kitchen today?");

        // Not invited: no wake word, nothing sent, nothing played.
        let (inputs, played) = listen(answer.clone(), &[]);
        assert_eq!(inputs, vec![Input::Closed]);
        assert!(played.samples.is_empty());

        // The hub asked a question: the attention earcon, then listening without the wake
        // word (the listening earcon), then the answer goes to the hub.
        let (inputs, played) = listen(answer, &[Control::Attention, Control::FollowUp]);
        let Some(Input::Said { text, audio, .. }) = inputs.first() else {
            panic!("no answer was sent: {inputs:?}");
        };
        assert!(text.to_lowercase().contains("weather"), "{text:?}");
        assert!(audio.as_ref().and_then(|a| a.loudness_dbfs).is_some());
        assert_eq!(inputs.last(), Some(&Input::Closed));
        let both =
            earcon(Earcon::Attention).samples.len() + earcon(Earcon::Listening).samples.len();
        assert_eq!(played.samples.len(), both);
    }
}
