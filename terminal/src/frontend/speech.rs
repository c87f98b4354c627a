//! Speech out for the voice front end: the earcons, the playback queue, the speaker thread that
//! synthesizes text into it, and the sinks that audio is played into.
//!
//! The listener thread is the audio clock: every 80 ms step it takes one step of microphone
//! audio and plays one step from the playback queue; audio that comes while nothing plays is
//! played at once, between steps ([`Playback::await_audio`]). Text goes to the speaker thread piece by
//! piece ([`crate::tts::pieces`]); each piece is synthesized while the one before it plays. A
//! barge-in bumps the queue's generation: what is queued is dropped at once, and pieces still
//! being synthesized for the old generation are dropped when they finish.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use hearth_shared::Voice;

use crate::audio::{wav, Clip, SPEECH_RATE};
use crate::config::TtsConfig;
use crate::tts::{pieces, Tts};

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

/// Audio waiting to be played (16 kHz), shared by the front end, the speaker thread and the
/// listener.
#[derive(Debug, Default)]
pub struct Playback {
    state: Mutex<Queue>,
    /// Signalled when a piece is delivered.
    delivered: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    samples: VecDeque<f32>,
    /// Pieces handed to the speaker thread and not yet queued.
    pending: usize,
    /// Bumped by an interruption; older pieces are dropped.
    generation: u64,
    /// Samples ever queued and ever taken: positions in one stream.
    queued_total: u64,
    taken_total: u64,
    /// Where each reply chunk's audio begins (stream position, chunk index), not yet taken.
    marks: VecDeque<(u64, u32)>,
    /// How many chunks of the current reply have begun to play.
    heard_chunks: u32,
}

impl Playback {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Notes a piece on its way for `generation`; false if that generation was interrupted
    /// (the piece is not to be sent).
    pub fn expect(&self, generation: u64) -> bool {
        let mut q = self.lock();
        if q.generation != generation {
            return false;
        }
        q.pending += 1;
        true
    }

    /// Queues a piece's audio (empty when it failed); dropped if its generation was
    /// interrupted meanwhile. Returns whether it was queued.
    pub fn deliver(&self, generation: u64, samples: &[f32]) -> bool {
        self.deliver_marked(generation, samples, None)
    }

    /// [`Playback::deliver`] for the first piece of reply chunk `mark`: once its first sample
    /// is taken to play, the chunk counts as heard.
    pub fn deliver_marked(&self, generation: u64, samples: &[f32], mark: Option<u32>) -> bool {
        let mut q = self.lock();
        if q.generation != generation {
            return false;
        }
        q.pending = q.pending.saturating_sub(1);
        if let Some(chunk) = mark {
            let at = q.queued_total;
            q.marks.push_back((at, chunk));
        }
        q.queued_total += samples.len() as u64;
        q.samples.extend(samples);
        self.delivered.notify_all();
        true
    }

    /// When nothing is queued but a piece is on its way, waits for it until `until`; true
    /// when audio came meanwhile (the listener then plays it at once, not at its next step).
    pub fn await_audio(&self, until: Instant) -> bool {
        let mut q = self.lock();
        if !q.samples.is_empty() {
            return false;
        }
        while q.samples.is_empty() && q.pending > 0 {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return false;
            };
            q = match self.delivered.wait_timeout(q, left) {
                Ok((q, _)) => q,
                Err(e) => e.into_inner().0,
            };
        }
        !q.samples.is_empty()
    }

    /// Queues audio at once (the listening earcon).
    pub fn push(&self, samples: &[f32]) {
        let mut q = self.lock();
        q.queued_total += samples.len() as u64;
        q.samples.extend(samples);
    }

    /// Up to `n` samples to play now.
    pub fn take(&self, n: usize) -> Vec<f32> {
        let mut q = self.lock();
        let n = n.min(q.samples.len());
        q.taken_total += n as u64;
        while let Some(&(at, chunk)) = q.marks.front() {
            if at >= q.taken_total {
                break;
            }
            if chunk == 0 {
                crate::timeline::mark("first sample");
            }
            q.heard_chunks = q.heard_chunks.max(chunk + 1);
            q.marks.pop_front();
        }
        q.samples.drain(..n).collect()
    }

    /// A new reply starts: none of its chunks has been heard yet.
    pub fn start_reply(&self) {
        self.lock().heard_chunks = 0;
    }

    /// How many chunks of the current reply have begun to play.
    pub fn heard_chunks(&self) -> u32 {
        self.lock().heard_chunks
    }

    /// Whether anything is playing or on its way.
    pub fn busy(&self) -> bool {
        let q = self.lock();
        !q.samples.is_empty() || q.pending > 0
    }

    /// Stops everything queued or on its way; returns the samples dropped.
    pub fn interrupt(&self) -> usize {
        let mut q = self.lock();
        q.generation += 1;
        q.pending = 0;
        let dropped = q.samples.len();
        q.taken_total += dropped as u64;
        q.samples.clear();
        q.marks.clear();
        dropped
    }
}

/// Work for the speaker thread.
#[derive(Debug)]
enum Say {
    /// Synthesize and queue a piece of text.
    Text {
        /// The text.
        text: String,
        /// The playback generation it belongs to.
        generation: u64,
        /// For the first piece of a reply: when its first chunk arrived (logged as the time to
        /// first audio).
        since: Option<Instant>,
        /// For the first piece of a reply chunk: the chunk's index in the reply.
        mark: Option<u32>,
        /// The persona's voice; `None`: the terminal's own.
        voice: Option<Voice>,
    },
    /// Queue a sound (an earcon) in order with the speech around it.
    Clip {
        /// The sound.
        clip: Clip,
        /// The playback generation it belongs to.
        generation: u64,
    },
}

/// Speech out: the speaker thread and the playback queue it fills. Text handed to it is cut
/// into [`pieces`] and synthesized in order; each piece is counted as on its way until its
/// audio is queued (or dropped by an interruption).
#[derive(Debug)]
pub struct SpeechOut {
    speaker: std_mpsc::Sender<Say>,
    playback: Arc<Playback>,
    /// `tts.first_piece_words`.
    first_words: usize,
    /// `tts.max_piece_words`.
    max_words: usize,
}

impl SpeechOut {
    /// Starts the speaker thread with `tts`; it ends when this is dropped.
    pub fn start(tts: Tts, config: &TtsConfig) -> SpeechOut {
        let playback = Arc::new(Playback::default());
        SpeechOut {
            speaker: spawn_speaker(tts, playback.clone()),
            playback,
            first_words: config.first_piece_words,
            max_words: config.max_piece_words,
        }
    }

    /// The queue the speaker thread fills, for whoever plays it.
    pub fn playback(&self) -> &Arc<Playback> {
        &self.playback
    }

    /// Speaks `text` for `generation`, in pieces. `reply_since` marks the start of a reply
    /// (when its first chunk arrived): its first words go alone, and the time to its first
    /// audio is logged.
    pub fn say(&self, text: &str, generation: u64, reply_since: Option<Instant>) {
        self.say_marked(text, generation, reply_since, None, None);
    }

    /// [`SpeechOut::say`] for reply chunk `mark`, whose start is then tracked
    /// ([`Playback::heard_chunks`]), in a persona's `voice` (the terminal's own when `None`).
    pub fn say_marked(
        &self,
        text: &str,
        generation: u64,
        reply_since: Option<Instant>,
        mark: Option<u32>,
        voice: Option<&Voice>,
    ) {
        let first_words = if reply_since.is_some() {
            self.first_words
        } else {
            0
        };
        // Once per reply (at its first chunk) or speech.
        if let Some(v) = voice.filter(|_| reply_since.is_some() || mark.is_none()) {
            tracing::info!(persona = %v.persona, model = ?v.model, speaker = ?v.speaker,
                length_scale = ?v.length_scale, noise_scale = ?v.noise_scale,
                noise_w = ?v.noise_w, "speaking in the persona's voice");
        }
        for (i, text) in pieces(text, first_words, self.max_words)
            .into_iter()
            .enumerate()
        {
            let since = reply_since.filter(|_| i == 0);
            self.send(Say::Text {
                text,
                generation,
                since,
                mark: mark.filter(|_| i == 0),
                voice: voice.cloned(),
            });
        }
    }

    /// Plays `clip` for `generation`, in order with the speech around it.
    pub fn sound(&self, clip: Clip, generation: u64) {
        self.send(Say::Clip { clip, generation });
    }

    fn send(&self, say: Say) {
        let generation = match &say {
            Say::Text { generation, .. } | Say::Clip { generation, .. } => *generation,
        };
        if self.playback.expect(generation) && self.speaker.send(say).is_err() {
            // The speaker thread is gone; nothing will deliver this piece.
            self.playback.deliver(generation, &[]);
        }
    }
}

/// Starts the speaker thread; it ends when the returned sender is dropped.
fn spawn_speaker(mut tts: Tts, playback: Arc<Playback>) -> std_mpsc::Sender<Say> {
    let (tx, rx) = std_mpsc::channel::<Say>();
    std::thread::Builder::new()
        .name("speaker".into())
        .spawn(move || {
            for say in rx {
                match say {
                    Say::Clip { clip, generation } => {
                        playback.deliver(generation, &clip.at_rate(SPEECH_RATE).samples);
                    }
                    Say::Text {
                        text,
                        generation,
                        since,
                        mark,
                        voice,
                    } => {
                        if playback.generation() != generation {
                            continue;
                        }
                        let audio = match tts.synthesize_as(&text, voice.as_ref()) {
                            Ok(spoken) => {
                                tracing::debug!(%text, audio_s = spoken.clip.seconds(),
                                    synth_ms = spoken.took.as_millis() as u64, "synthesized");
                                spoken.clip.at_rate(SPEECH_RATE).samples
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "speech synthesis failed; skipping");
                                Vec::new()
                            }
                        };
                        if playback.deliver_marked(generation, &audio, mark) {
                            if let Some(since) = since {
                                tracing::info!(
                                    first_audio_ms = since.elapsed().as_millis() as u64,
                                    "first audio of the reply queued"
                                );
                            }
                        }
                    }
                }
            }
        })
        .expect("spawning the speaker thread");
    tx
}

/// Where played audio goes. Made and used on the listener thread.
pub trait Speaker {
    /// Plays `samples` (16 kHz); `at` is the listener's clock, in microphone samples.
    fn play(&mut self, at: usize, samples: &[f32]);

    /// Called on steps with nothing to play.
    fn idle(&mut self) {}

    /// How much more than a step (16 kHz samples) the speaker wants handed over ahead of
    /// playing it: a sound card's margin against a late step. Zero for a sink that plays
    /// what it gets at once.
    fn lead(&self) -> usize {
        0
    }

    /// Audio handed over and not played yet (16 kHz samples).
    fn queued(&self) -> usize {
        0
    }

    /// Drops what is handed over and not played yet (a barge-in); returns how much.
    fn interrupt(&mut self) -> usize {
        0
    }
}

/// Played audio written to a WAV file (16-bit, 16 kHz), kept valid after every write; only
/// what is played goes in, not the silence between.
pub struct WavSink {
    path: PathBuf,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    failed: bool,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl WavSink {
    /// A sink that creates `path` when it first plays.
    pub fn new(path: PathBuf) -> WavSink {
        WavSink {
            path,
            writer: None,
            failed: false,
        }
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), hound::Error> {
        if self.writer.is_none() {
            self.writer = Some(hound::WavWriter::create(
                &self.path,
                wav::mono16(SPEECH_RATE),
            )?);
        }
        let writer = self.writer.as_mut().expect("just created");
        for &s in samples {
            writer.write_sample(wav::to_i16(s))?;
        }
        writer.flush()
    }
}

impl Speaker for WavSink {
    fn play(&mut self, _at: usize, samples: &[f32]) {
        if self.failed {
            return;
        }
        if let Err(e) = self.write(samples) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the audio sink; speech goes unheard");
            self.failed = true;
        }
    }
}

/// A sink that plays nothing (no `voice.output_wav` and no sound card).
#[derive(Debug, Default)]
pub struct Silent;

impl Speaker for Silent {
    fn play(&mut self, _at: usize, _samples: &[f32]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interruption_drops_what_is_queued_and_what_is_on_its_way() {
        let p = Playback::default();
        let g = p.generation();
        assert!(p.expect(g) && p.expect(g));
        assert!(p.busy());
        assert!(p.deliver(g, &[0.1; 100]));
        assert_eq!(p.take(30).len(), 30);
        assert_eq!(p.interrupt(), 70);
        // The second piece finishes after the interruption: dropped, and nothing is busy.
        assert!(!p.deliver(g, &[0.2; 100]));
        assert!(!p.busy());
        assert!(!p.expect(g));
        let g2 = p.generation();
        assert!(p.expect(g2) && p.deliver(g2, &[0.3; 10]));
        assert_eq!(p.take(100), vec![0.3; 10]);
        assert!(!p.busy());
    }

    #[test]
    fn the_listener_waits_between_steps_only_for_a_piece_on_its_way() {
        let p = Arc::new(Playback::default());
        let soon = || Instant::now() + std::time::Duration::from_secs(5);
        // Nothing on its way: no wait.
        assert!(!p.await_audio(soon()));
        // A piece on its way comes while the listener waits.
        let g = p.generation();
        assert!(p.expect(g));
        // The piece comes a while after the listener begins to wait: delivered before, it
        // would be queued audio, played at the step (below). Under qemu-user on a busy
        // machine a thread can start before the spawner goes on, hence the head start.
        let speaker = {
            let p = p.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                p.deliver(g, &[0.1; 10])
            })
        };
        assert!(p.await_audio(soon()));
        assert!(speaker.join().unwrap());
        // Audio already queued plays at the step, as before.
        assert!(!p.await_audio(soon()));
        assert_eq!(p.take(100).len(), 10);
        // A piece that fails (no audio) ends the wait too; so does the deadline.
        assert!(p.expect(g));
        assert!(p.deliver(g, &[]));
        assert!(!p.await_audio(soon()));
        assert!(p.expect(g));
        assert!(!p.await_audio(Instant::now() + std::time::Duration::from_millis(20)));
    }

    #[test]
    fn a_reply_chunk_counts_as_heard_once_its_audio_starts_playing() {
        let p = Playback::default();
        let g = p.generation();
        p.push(&[0.0; 50]); // an earcon before the reply
        p.start_reply();
        for chunk in 0..3 {
            assert!(p.expect(g));
            assert!(p.deliver_marked(g, &[0.1; 100], Some(chunk)));
        }
        assert_eq!(p.heard_chunks(), 0);
        p.take(50);
        assert_eq!(p.heard_chunks(), 0, "only the earcon played");
        p.take(1);
        assert_eq!(p.heard_chunks(), 1);
        p.take(100);
        assert_eq!(p.heard_chunks(), 2, "the second chunk has begun");
        p.interrupt();
        assert_eq!(p.heard_chunks(), 2, "the third never played");
        p.start_reply();
        assert_eq!(p.heard_chunks(), 0);
    }
}
