//! Audio: sound cards through cpal ([`device`]), WAV files (the headless source and sink),
//! resampling to the rates the models need, echo cancellation ([`echo`]), and the prosody
//! features that go to the hub with each transcript.

pub mod device;
pub mod echo;
pub mod features;
pub mod resample;
pub mod wav;

use std::path::PathBuf;

/// The sample rate whisper (and the wake-word models) take: 16 kHz mono.
pub const SPEECH_RATE: u32 = 16_000;

/// Why audio could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or is not a WAV file.
    #[error("cannot read {path} as WAV audio: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the WAV reader said.
        reason: String,
    },
    /// A WAV file in a sample format the terminal does not take.
    #[error("{path} has {bits}-bit {format} samples, which the terminal does not take; use 8, 16, 24 or 32-bit PCM, or 32-bit float")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Bits per sample.
        bits: u16,
        /// "integer" or "float".
        format: &'static str,
    },
    /// A WAV file with no samples in it.
    #[error("{path} holds no audio")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A WAV file could not be written.
    #[error("cannot write WAV audio to {path}: {reason}")]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Mono samples in [-1, 1] at a known rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The samples.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub rate: u32,
}

impl Clip {
    /// How long the clip lasts, in seconds.
    pub fn seconds(&self) -> f32 {
        self.samples.len() as f32 / self.rate as f32
    }

    /// The clip at `rate`, resampled if it differs.
    pub fn at_rate(self, rate: u32) -> Clip {
        if self.rate == rate {
            return self;
        }
        Clip {
            samples: resample::resample(&self.samples, self.rate, rate),
            rate,
        }
    }
}
