//! Sound cards through cpal (ALSA on Linux): the microphone and the speaker, by name, at the
//! rates the models need.
//!
//! Streams ask the device for 16 kHz mono first (ALSA's `plug` and `default` devices convert);
//! a device that refuses gets its own format, mixed down to mono and resampled linearly. The
//! capture callback hands audio to the listener through a bounded channel, so that a listener
//! busy transcribing holds audio back rather than losing it (an unpaced test device, such as
//! ALSA's `file` plugin, is held back the same way). The output stream exists only while there
//! is something to play: idle, the speaker costs nothing.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SizedSample};

use crate::audio::SPEECH_RATE;
use crate::frontend::speech::Speaker;
use crate::wake::STEP;

/// Why a sound card cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No device by that name (or no default one).
    #[error("no {direction} device {name:?} (`hearth-terminal devices` lists them)")]
    NotFound {
        /// "input" or "output".
        direction: &'static str,
        /// The name asked for; "default" for the default.
        name: String,
    },
    /// The device exists but a stream could not be opened.
    #[error("cannot open the {direction} device {name:?}: {reason}")]
    Open {
        /// "input" or "output".
        direction: &'static str,
        /// The device.
        name: String,
        /// What cpal said.
        reason: String,
    },
    /// Devices could not be listed.
    #[error("cannot list sound devices: {0}")]
    List(String),
}

/// One device, for `hearth-terminal devices`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// The id to put in the config (`voice.input_device` / `voice.output_device`).
    pub id: String,
    /// What the driver says it is.
    pub description: String,
    /// Its default input format, if it can record.
    pub input: Option<String>,
    /// Its default output format, if it can play.
    pub output: Option<String>,
    /// Whether it is the default input / output.
    pub default_input: bool,
    /// See `default_input`.
    pub default_output: bool,
}

fn id_of(device: &cpal::Device) -> String {
    device
        .id()
        .map(|id| id.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Every device of the default host.
pub fn list() -> Result<Vec<DeviceInfo>, DeviceError> {
    let host = cpal::default_host();
    let default_in = host.default_input_device().map(|d| id_of(&d));
    let default_out = host.default_output_device().map(|d| id_of(&d));
    let format = |c: cpal::SupportedStreamConfig| {
        format!(
            "{} Hz, {} ch, {}",
            c.sample_rate(),
            c.channels(),
            c.sample_format()
        )
    };
    let devices = host
        .devices()
        .map_err(|e| DeviceError::List(e.to_string()))?;
    Ok(devices
        .map(|d| {
            let id = id_of(&d);
            DeviceInfo {
                description: d.description().map(|x| x.to_string()).unwrap_or_default(),
                input: d.default_input_config().ok().map(format),
                output: d.default_output_config().ok().map(format),
                default_input: default_in.as_deref() == Some(id.as_str()),
                default_output: default_out.as_deref() == Some(id.as_str()),
                id,
            }
        })
        .collect())
}

/// The device named `name` (its id, or a word of its description), or the default.
fn find(name: Option<&str>, input: bool) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let direction = if input { "input" } else { "output" };
    let not_found = || DeviceError::NotFound {
        direction,
        name: name.unwrap_or("default").to_string(),
    };
    let wanted = match name {
        None => None,
        Some(n) if n.is_empty() || n == "default" => None,
        Some(n) => Some(n),
    };
    let Some(wanted) = wanted else {
        return if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        }
        .ok_or_else(not_found);
    };
    let devices = host
        .devices()
        .map_err(|e| DeviceError::List(e.to_string()))?;
    let usable = |d: &cpal::Device| {
        if input {
            d.supports_input()
        } else {
            d.supports_output()
        }
    };
    let candidates: Vec<cpal::Device> = devices.filter(usable).collect();
    candidates
        .iter()
        .find(|d| id_of(d) == wanted || id_of(d).ends_with(&format!(":{wanted}")))
        .or_else(|| {
            candidates.iter().find(|d| {
                d.description()
                    .map(|x| x.to_string().contains(wanted))
                    .unwrap_or(false)
            })
        })
        .cloned()
        .ok_or_else(not_found)
}

/// A linear resampler that keeps its place across buffers (a fallback for devices that will
/// not run at 16 kHz; it does not filter).
#[derive(Debug)]
struct Linear {
    step: f64,
    /// Position of the next output sample, relative to the current buffer's start.
    at: f64,
    /// The previous buffer's last sample (position -1).
    last: f32,
}

impl Linear {
    fn new(from: u32, to: u32) -> Linear {
        Linear {
            step: f64::from(from) / f64::from(to),
            at: 0.0,
            last: 0.0,
        }
    }

    fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let n = input.len();
        if n == 0 {
            return;
        }
        loop {
            let i = self.at.floor();
            if i + 1.0 >= n as f64 {
                break;
            }
            let a = if i < 0.0 {
                self.last
            } else {
                input[i as usize]
            };
            let b = input[(i + 1.0) as usize];
            out.push(a + (b - a) * (self.at - i) as f32);
            self.at += self.step;
        }
        self.at -= n as f64;
        self.last = input[n - 1];
    }
}

/// Opens a stream on `device` at 16 kHz mono in f32 samples, or, where the device refuses
/// that, in its own default format; returns the stream and its rate. `build` makes the stream
/// for a config and sample format (the capture or the playback callback).
fn open_stream(
    device: &cpal::Device,
    input: bool,
    build: impl Fn(&cpal::StreamConfig, cpal::SampleFormat) -> Result<cpal::Stream, String>,
) -> Result<(cpal::Stream, u32), String> {
    let wanted = cpal::StreamConfig {
        channels: 1,
        sample_rate: SPEECH_RATE,
        buffer_size: cpal::BufferSize::Default,
    };
    let first = match build(&wanted, cpal::SampleFormat::F32) {
        Ok(stream) => return Ok((stream, SPEECH_RATE)),
        Err(first) => first,
    };
    let own = if input {
        device.default_input_config()
    } else {
        device.default_output_config()
    }
    .map_err(|_| first.clone())?;
    let stream = build(&own.into(), own.sample_format())
        .map_err(|e| format!("{first}; with its own format: {e}"))?;
    Ok((stream, own.sample_rate()))
}

fn unsupported(format: cpal::SampleFormat) -> Result<cpal::Stream, String> {
    Err(format!("sample format {format} is not supported"))
}

/// The microphone: 16 kHz mono, one listener step at a time.
pub struct Capture {
    // Fields drop in this order. The receiver goes first: the callback may be blocked on a
    // full channel, and stopping the stream waits for the callback to return.
    audio: std_mpsc::Receiver<Vec<f32>>,
    // Held for its lifetime: dropping it stops the stream.
    _stream: cpal::Stream,
    resampler: Option<Linear>,
    pending: Vec<f32>,
    name: String,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Buffers the capture callback may run ahead of the listener (several seconds at common
/// period sizes: longer than a transcription takes).
const CAPTURE_BUFFERS: usize = 512;

impl Capture {
    /// Opens the input device `name` (None or "default": the default) and starts it.
    pub fn open(name: Option<&str>) -> Result<Capture, DeviceError> {
        let device = find(name, true)?;
        let label = id_of(&device);
        let open = |reason: String| DeviceError::Open {
            direction: "input",
            name: label.clone(),
            reason,
        };
        let (tx, rx) = std_mpsc::sync_channel::<Vec<f32>>(CAPTURE_BUFFERS);
        let (stream, rate) = open_stream(&device, true, |config, format| {
            let tx = tx.clone();
            match format {
                cpal::SampleFormat::F32 => input_stream::<f32>(&device, config, tx),
                cpal::SampleFormat::I16 => input_stream::<i16>(&device, config, tx),
                cpal::SampleFormat::I32 => input_stream::<i32>(&device, config, tx),
                cpal::SampleFormat::U8 => input_stream::<u8>(&device, config, tx),
                other => unsupported(other),
            }
        })
        .map_err(open)?;
        stream.play().map_err(|e| open(e.to_string()))?;
        tracing::info!(device = %label, rate, "microphone open");
        Ok(Capture {
            audio: rx,
            _stream: stream,
            resampler: (rate != SPEECH_RATE).then(|| Linear::new(rate, SPEECH_RATE)),
            pending: Vec::new(),
            name: label,
        })
    }

    /// The next step of audio; `None` when the device stopped delivering (for 5 s).
    /// Whether a whole step is here already, so that [`Capture::next_step`] will not wait.
    pub fn ready(&mut self) -> bool {
        while self.pending.len() < STEP {
            let Ok(buffer) = self.audio.try_recv() else {
                return false;
            };
            match &mut self.resampler {
                Some(r) => r.push(&buffer, &mut self.pending),
                None => self.pending.extend_from_slice(&buffer),
            }
        }
        true
    }

    pub fn next_step(&mut self) -> Option<Vec<f32>> {
        while self.pending.len() < STEP {
            match self.audio.recv_timeout(Duration::from_secs(5)) {
                Ok(buffer) => match &mut self.resampler {
                    Some(r) => r.push(&buffer, &mut self.pending),
                    None => self.pending.extend_from_slice(&buffer),
                },
                Err(e) => {
                    tracing::error!(device = %self.name, error = %e, "the microphone stopped delivering audio");
                    return None;
                }
            }
        }
        Some(self.pending.drain(..STEP).collect())
    }
}

fn input_stream<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    tx: std_mpsc::SyncSender<Vec<f32>>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    device
        .build_input_stream(
            *config,
            move |data: &[T], _: &cpal::InputCallbackInfo| {
                let mono: Vec<f32> = data
                    .chunks(channels)
                    .map(|frame| {
                        frame.iter().map(|s| f32::from_sample(*s)).sum::<f32>() / channels as f32
                    })
                    .collect();
                // Blocks only when the listener is seconds behind; a closed channel means the
                // listener is gone.
                let _ = tx.send(mono);
            },
            |e| tracing::warn!(error = %e, "microphone stream"),
            None,
        )
        .map_err(|e| e.to_string())
}

/// The speaker: audio queued at 16 kHz, played at the device's rate. The stream is opened
/// when there is something to play and closed once it has played.
///
/// The device is the clock of what plays: it asks for audio a period at a time. The listener
/// hands audio over a step at a time, and keeps [`Speaker::lead`] more queued than that, so
/// that a late step does not leave the device a period of silence in the middle of a word.
pub struct DeviceSink {
    device: cpal::Device,
    name: String,
    /// At the device's rate.
    queue: Arc<Mutex<VecDeque<f32>>>,
    stream: Option<cpal::Stream>,
    resampler: Option<Linear>,
    /// How long the open stream's buffer lasts: it stays open that long after draining.
    tail: Duration,
    /// `voice.playback_lead_ms`, in 16 kHz samples.
    lead: usize,
    /// When the queue was found empty, with the stream still open.
    drained_at: Option<Instant>,
    failed: bool,
}

impl std::fmt::Debug for DeviceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DeviceSink {
    /// Finds the output device `name` (None or "default": the default); opens nothing yet.
    /// `lead` is how much audio (16 kHz samples) to keep queued ahead of the device.
    pub fn open(name: Option<&str>, lead: usize) -> Result<DeviceSink, DeviceError> {
        let device = find(name, false)?;
        let name = id_of(&device);
        tracing::info!(device = %name, "speaker found");
        Ok(DeviceSink {
            device,
            name,
            queue: Arc::new(Mutex::new(VecDeque::new())),
            stream: None,
            resampler: None,
            tail: Duration::ZERO,
            lead,
            drained_at: None,
            failed: false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<f32>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `n` samples at the device's rate, in 16 kHz samples.
    fn at_speech_rate(&self, n: usize) -> usize {
        match &self.resampler {
            // The output resampler steps this many 16 kHz samples per device sample.
            Some(r) => (n as f64 * r.step).round() as usize,
            None => n,
        }
    }

    fn start(&mut self) -> Result<(), DeviceError> {
        if self.stream.is_some() {
            return Ok(());
        }
        let open = |reason: String| DeviceError::Open {
            direction: "output",
            name: self.name.clone(),
            reason,
        };
        let device = &self.device;
        let (stream, rate) = open_stream(device, false, |config, format| {
            let q = self.queue.clone();
            match format {
                cpal::SampleFormat::F32 => output_stream::<f32>(device, config, q),
                cpal::SampleFormat::I16 => output_stream::<i16>(device, config, q),
                cpal::SampleFormat::I32 => output_stream::<i32>(device, config, q),
                cpal::SampleFormat::U8 => output_stream::<u8>(device, config, q),
                other => unsupported(other),
            }
        })
        .map_err(open)?;
        stream.play().map_err(|e| open(e.to_string()))?;
        self.resampler = (rate != SPEECH_RATE).then(|| Linear::new(SPEECH_RATE, rate));
        // What the device still buffers plays out before the close: two periods (cpal sizes
        // the buffer so), at most 500 ms.
        self.tail = stream
            .buffer_size()
            .map_or(Duration::from_millis(100), |period| {
                Duration::from_secs_f64(2.0 * f64::from(period) / f64::from(rate))
            })
            .min(Duration::from_millis(500));
        self.stream = Some(stream);
        Ok(())
    }
}

impl Speaker for DeviceSink {
    fn play(&mut self, _at: usize, samples: &[f32]) {
        if self.failed {
            return;
        }
        if let Err(e) = self.start() {
            tracing::error!(error = %e, "cannot play; speech goes unheard");
            self.failed = true;
            return;
        }
        self.drained_at = None;
        let mut out = Vec::with_capacity(samples.len() * 3);
        match &mut self.resampler {
            Some(r) => r.push(samples, &mut out),
            None => out.extend_from_slice(samples),
        }
        self.lock().extend(out);
    }

    fn idle(&mut self) {
        if self.stream.is_none() || !self.lock().is_empty() {
            return;
        }
        let drained_at = *self.drained_at.get_or_insert_with(Instant::now);
        if drained_at.elapsed() >= self.tail {
            self.stream = None;
            self.drained_at = None;
        }
    }

    fn lead(&self) -> usize {
        self.lead
    }

    fn queued(&self) -> usize {
        self.at_speech_rate(self.lock().len())
    }

    fn interrupt(&mut self) -> usize {
        let dropped = std::mem::take(&mut *self.lock()).len();
        self.at_speech_rate(dropped)
    }
}

fn output_stream<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    queue: Arc<Mutex<VecDeque<f32>>>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels.max(1));
    device
        .build_output_stream(
            *config,
            move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                // An empty queue mid-speech (an underrun) plays as silence.
                for frame in data.chunks_mut(channels) {
                    let v = q.pop_front().unwrap_or(0.0);
                    frame.fill(T::from_sample(v));
                }
            },
            |e| tracing::warn!(error = %e, "speaker stream"),
            None,
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_linear_resampler_keeps_its_place_across_buffers() {
        let input: Vec<f32> = (0..480).map(|i| i as f32).collect();
        let mut whole = Vec::new();
        Linear::new(48_000, 16_000).push(&input, &mut whole);
        let mut pieces = Vec::new();
        let mut r = Linear::new(48_000, 16_000);
        for chunk in input.chunks(37) {
            r.push(chunk, &mut pieces);
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole.len(), 160);
        assert_eq!(whole[10], 30.0);
        let mut up = Vec::new();
        Linear::new(16_000, 48_000).push(&[0.0, 3.0], &mut up);
        assert_eq!(up.len(), 3);
        for (got, want) in up.iter().zip([0.0, 1.0, 2.0]) {
            assert!((got - want).abs() < 1e-4, "{up:?}");
        }
    }
}
