//! Acoustic echo cancellation: the terminal's own speech, as its microphone hears it, taken out
//! of the microphone audio before the wake word, the VAD and speech to text see it.
//!
//! speexdsp's canceller (through `aec-rs`: a 1,600-tap adaptive filter in the frequency domain,
//! 10 ms frames) learns the path from what the speaker played (the reference) to what the
//! microphone heard, and subtracts the echo it predicts; Speex's preprocessor can then suppress
//! the echo that is left (and noise). The filter covers echoes that arrive up to its length
//! after the reference, so the reference must not come later than the echo.
//!
//! The reference is what the speaker plays during the microphone step, not what the listener
//! hands it: a sound card holds a queue (`Speaker::queued`) and plays it at its own clock. So
//! [`EchoCanceller::played`] schedules each hand-over at *now + what the speaker still holds*
//! (+ `voice.echo_delay_ms`, for a card whose own latency is known), on the microphone's
//! clock, and [`EchoCanceller::cancel`] reads the step that was just heard off that schedule.
//! When the speaker's queue says otherwise (its clock drifted, or a barge-in dropped its
//! queue), the schedule is cut back to the speaker's word.
//!
//! The filter starts knowing nothing of the room, and takes the first half second or so of
//! sound to learn it (measured: 2-7 dB of reduction over the first 600 ms of speech, 20 dB
//! and more after a second). Until it has heard [`LEARN_MS`] of sound, the microphone is
//! muted while the speaker plays and a filter length after (half duplex, as a terminal without
//! a canceller has to be), so that the start of the first reply is not heard as the user. Not
//! over an earcon, though, and not over a reply's first 125 ms.
//!
//! While nothing has played for a filter length, microphone audio passes through untouched:
//! the canceller changes nothing in a quiet room, and costs nothing there.

use std::collections::VecDeque;

use aec_rs::{Aec, AecConfig};

use super::{wav, SPEECH_RATE};

/// speexdsp's frame: 10 ms at 16 kHz.
pub const FRAME: usize = 160;

/// How much sound the canceller hears before the microphone is no longer muted while the
/// speaker plays. (Tones count as much as speech: a terminal that has only played earcons
/// has learned less of the room than this says.)
pub const LEARN_MS: u32 = 1000;

/// While it learns, sound longer than this is muted: the earcons (120 ms) are not.
const EARCON_MS: u32 = 125;

/// Reference samples quieter than this (-60 dBFS) are not sound to learn from.
const QUIET: f32 = 0.001;

/// How far the schedule may drift from what the speaker says it holds before it is cut back
/// (16 kHz samples, 20 ms): less than the jitter of a card's periods would make it jump back
/// and forth, and every jump makes the filter learn the path again.
const DRIFT: usize = 320;

/// How the canceller is set up (`[voice]` `echo_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoSettings {
    /// The filter's length (how late an echo can come after the reference), in ms.
    pub filter_ms: u32,
    /// Run Speex's preprocessor after the canceller: residual-echo suppression, and noise
    /// suppression with it.
    pub preprocess: bool,
    /// Extra delay of the reference (the sound card's own latency), in ms.
    pub delay_ms: u32,
}

/// The canceller and the schedule of what the speaker plays. Made and used on the listener
/// thread (speexdsp's state is not `Send`).
pub struct EchoCanceller {
    aec: Aec,
    /// What the speaker plays from `base` on, one sample per microphone sample.
    schedule: VecDeque<f32>,
    /// The microphone-clock time of `schedule[0]`: the end of the last step heard ("now").
    base: usize,
    delay: usize,
    /// Filter length in samples: how long after the last sound played the canceller keeps
    /// running.
    taps: usize,
    /// The microphone-clock time of the last sample with sound in the reference.
    last_sound: Option<usize>,
    /// Samples of sound the filter has learned from, up to [`LEARN_MS`].
    learned: usize,
    /// Samples of sound in the steps since the last step without any.
    sounding: usize,
    reference: Vec<f32>,
    frame_in: [i16; FRAME],
    frame_ref: [i16; FRAME],
    frame_out: [i16; FRAME],
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller")
            .field("base", &self.base)
            .field("scheduled", &self.schedule.len())
            .field("taps", &self.taps)
            .finish_non_exhaustive()
    }
}

/// `ms` at 16 kHz, in samples.
fn samples(ms: u32) -> usize {
    ms as usize * SPEECH_RATE as usize / 1000
}

impl EchoCanceller {
    /// A canceller for 16 kHz audio. (speexdsp's canceller keeps its 8 kHz default time
    /// constants: `aec-rs` does not set the rate. It adapts no slower for it, and its DC notch
    /// cuts a little more below 200 Hz.)
    pub fn new(settings: &EchoSettings) -> EchoCanceller {
        let taps = samples(settings.filter_ms).max(FRAME);
        let aec = Aec::new(&AecConfig {
            frame_size: FRAME,
            filter_length: i32::try_from(taps).unwrap_or(i32::MAX),
            sample_rate: SPEECH_RATE,
            enable_preprocess: settings.preprocess,
        });
        EchoCanceller {
            aec,
            schedule: VecDeque::new(),
            base: 0,
            delay: samples(settings.delay_ms),
            taps,
            last_sound: None,
            learned: 0,
            sounding: 0,
            reference: Vec::new(),
            frame_in: [0; FRAME],
            frame_ref: [0; FRAME],
            frame_out: [0; FRAME],
        }
    }

    /// Takes the echo out of `mic`, the step of microphone audio that ended now. Whole
    /// [`FRAME`]s are processed (the listener's steps are 8 of them); a partial frame at the
    /// end passes through.
    pub fn cancel(&mut self, mic: &mut [f32]) {
        let start = self.base;
        let n = mic.len().min(self.schedule.len());
        self.reference.clear();
        self.reference.extend(self.schedule.drain(..n));
        self.reference.resize(mic.len(), 0.0);
        self.base += mic.len();
        if let Some(i) = self.reference.iter().rposition(|s| s.abs() > QUIET) {
            self.last_sound = Some(start + i);
        }
        let learning = !self.learned();
        // Nothing played within a filter length: nothing to cancel, and the audio stays as
        // it was.
        if self
            .last_sound
            .is_none_or(|at| start > at + self.taps + FRAME)
        {
            return;
        }
        for (mic, reference) in mic
            .chunks_exact_mut(FRAME)
            .zip(self.reference.chunks_exact(FRAME))
        {
            for (i, (m, r)) in mic.iter().zip(reference).enumerate() {
                self.frame_in[i] = wav::to_i16(*m);
                self.frame_ref[i] = wav::to_i16(*r);
            }
            self.aec
                .cancel_echo(&self.frame_in, &self.frame_ref, &mut self.frame_out);
            for (m, o) in mic.iter_mut().zip(&self.frame_out) {
                *m = f32::from(*o) / 32768.0;
            }
        }
        if learning {
            let sound = self.reference.iter().filter(|s| s.abs() > QUIET).count();
            self.learned += sound;
            // A sound as short as an earcon is not muted: the listening earcon plays as the
            // person starts the request, and its echo is a small part of it.
            self.sounding = if sound > 0 { self.sounding + sound } else { 0 };
            if self.sounding > samples(EARCON_MS) {
                mic.fill(0.0);
            }
        }
    }

    /// Whether the filter has heard enough sound to have learned the room ([`LEARN_MS`]).
    pub fn learned(&self) -> bool {
        self.learned >= samples(LEARN_MS)
    }

    /// `samples` were handed to the speaker now, behind `queued` samples it held and had not
    /// played yet (read before the hand-over; 0 for a sink that plays at once). Called every
    /// step, with nothing played too, so that a queue the speaker dropped is dropped here.
    pub fn played(&mut self, samples: &[f32], queued: usize) {
        // Where the speaker will play the first of `samples`, after what it holds.
        let due = queued + self.delay;
        let next = self.schedule.len();
        if next.abs_diff(due) > DRIFT {
            // The speaker's word goes: what it dropped (or played already) is cut, and a gap
            // it will play first is silence.
            self.schedule.resize(due, 0.0);
        }
        self.schedule.extend(samples);
    }
}

#[cfg(test)]
mod tests {
    //! The canceller on speech (espeak-ng), its echo delayed and quieter in the microphone.

    use super::*;
    use crate::bench::{espeak, noise};
    use crate::wake::STEP;

    fn energy(samples: &[f32]) -> f64 {
        samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() + 1e-12
    }

    fn db(ratio: f64) -> f64 {
        10.0 * ratio.log10()
    }

    fn speech(text: &str) -> Vec<f32> {
        let dir = tempfile::tempdir().unwrap();
        espeak(text, &dir.path().join("said.wav"))
            .unwrap()
            .at_rate(SPEECH_RATE)
            .samples
    }

    /// `far` played through the listener's steps into a room whose microphone hears it
    /// `delay` samples late at `gain`, with `near` (the person) and a little noise. Returns
    /// the microphone audio and the canceller's output.
    fn through_a_room(
        far: &[f32],
        near: &[f32],
        delay: usize,
        gain: f32,
        settings: &EchoSettings,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut aec = EchoCanceller::new(settings);
        let len = far.len().max(near.len()).div_ceil(STEP) * STEP + STEP;
        let hiss = noise(len as f32 / SPEECH_RATE as f32 + 1.0, 0.002, 7);
        // A sink that plays at once: what is handed over at the end of step k sounds during
        // step k + 1.
        let at = |v: &[f32], i: usize| v.get(i).copied().unwrap_or(0.0);
        let mic: Vec<f32> = (0..len)
            .map(|t| {
                let echo = t
                    .checked_sub(STEP + delay)
                    .map_or(0.0, |i| gain * at(far, i));
                echo + at(near, t) + hiss[t]
            })
            .collect();
        let mut out = Vec::with_capacity(len);
        for (k, step) in mic.chunks(STEP).enumerate() {
            let mut step = step.to_vec();
            aec.cancel(&mut step);
            out.extend(step);
            let played: Vec<f32> = (k * STEP..(k + 1) * STEP).map(|i| at(far, i)).collect();
            aec.played(&played, 0);
        }
        (mic, out)
    }

    const SETTINGS: EchoSettings = EchoSettings {
        filter_ms: 100,
        preprocess: false,
        delay_ms: 0,
    };

    #[test]
    fn the_echo_of_speech_is_reduced_by_10_db() {
        let far = speech(
            "The capital of France is Paris, a city famous for its museums and cafes. \
             Sure, I will remind you to water the plants tomorrow at eight in the morning.",
        );
        let delay = samples(30);
        for (settings, floor) in [
            (SETTINGS, 10.0),
            (
                EchoSettings {
                    preprocess: true,
                    ..SETTINGS
                },
                15.0,
            ),
        ] {
            let (mic, out) = through_a_room(&far, &[], delay, 0.5, &settings);
            // After the first two seconds, in which the filter learns the room.
            let from = 2 * SPEECH_RATE as usize;
            let reduction = db(energy(&mic[from..]) / energy(&out[from..]));
            eprintln!("echo reduction on speech ({settings:?}): {reduction:.1} dB");
            assert!(reduction >= floor, "{reduction:.1} dB ({settings:?})");
        }
    }

    #[test]
    fn a_voice_over_the_echo_is_kept() {
        let far = speech(
            "Once upon a time, a lighthouse keeper lived alone with his cat on a rocky island. \
             It is twenty past seven. Your timer has about twelve minutes left.",
        );
        let mut near = vec![0.0; 3 * SPEECH_RATE as usize];
        near.extend(speech("Hey Jarvis, what time is it?"));
        for settings in [
            SETTINGS,
            EchoSettings {
                preprocess: true,
                ..SETTINGS
            },
        ] {
            let (mic, out) = through_a_room(&far, &near, samples(45), 0.35, &settings);
            // Over the person's words: what comes out, against the words alone.
            let (from, to) = (3 * SPEECH_RATE as usize, near.len());
            let echo = db(energy(&mic[from..to]) / energy(&near[from..to]));
            let kept = db(energy(&out[from..to]) / energy(&near[from..to]));
            eprintln!("double talk ({settings:?}): mic {echo:+.1} dB, out {kept:+.1} dB against the voice");
            // Speex's preprocessor takes a few dB of the voice with the echo it suppresses.
            assert!(kept > -6.0 && kept < 1.0, "{kept:.1} dB");
        }
    }

    #[test]
    fn the_microphone_is_muted_over_the_first_sound_and_untouched_in_silence() {
        let mut aec = EchoCanceller::new(&SETTINGS);
        let voice: Vec<f32> = noise(STEP as f32 / SPEECH_RATE as f32, 0.1, 9);
        let mut step = voice.clone();
        aec.cancel(&mut step);
        assert_eq!(step, voice, "nothing played: untouched");
        aec.played(&[0.3; 3 * STEP], 0);
        aec.cancel(&mut step);
        assert!(
            step.iter().any(|s| *s != 0.0),
            "not the first 80 ms: an earcon is not muted"
        );
        aec.cancel(&mut step);
        aec.cancel(&mut step);
        assert!(step.iter().all(|s| *s == 0.0), "muted while it learns");
        assert!(!aec.learned());
        for _ in 0..samples(LEARN_MS) / STEP {
            aec.played(&[0.3; STEP], 0);
            aec.cancel(&mut step);
        }
        assert!(aec.learned());
        // A filter length of silence later, the microphone passes untouched again.
        for _ in 0..3 {
            aec.played(&[], 0);
            aec.cancel(&mut step);
        }
        let mut step = voice.clone();
        aec.cancel(&mut step);
        assert_eq!(step, voice);
    }

    #[test]
    fn the_reference_follows_the_speakers_queue() {
        let mut aec = EchoCanceller::new(&SETTINGS);
        // A card that holds two steps: what is handed over now plays after them.
        aec.played(&[0.5; 3 * STEP], 0);
        let mut step = vec![0.0; STEP];
        aec.cancel(&mut step);
        assert_eq!(aec.reference, vec![0.5; STEP]);
        aec.played(&[0.25; STEP], 2 * STEP);
        aec.cancel(&mut step);
        aec.cancel(&mut step);
        aec.cancel(&mut step);
        assert_eq!(aec.reference, vec![0.25; STEP]);
        // A barge-in dropped the card's queue: so is the schedule.
        aec.played(&[0.75; STEP], 0);
        aec.played(&[], 0);
        aec.cancel(&mut step);
        assert!(
            aec.reference.iter().all(|s| *s == 0.0),
            "dropped audio is not echo"
        );
    }
}
