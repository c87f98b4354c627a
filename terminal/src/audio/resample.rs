//! Sample-rate conversion with a Hann-windowed sinc filter: what a capture device or a TTS
//! voice gives (44.1, 48 or 22.05 kHz) to what a model takes (16 kHz), and back.
//!
//! Quality matters more than speed here (whisper hears aliasing as noise), but the cost is
//! still small: 2 x 16 taps per output sample.

use std::f32::consts::PI;

/// Half the filter length, in input samples at the lower of the two rates.
const HALF_TAPS: usize = 16;

/// Resamples `input` from `from` Hz to `to` Hz.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() || from == 0 || to == 0 {
        return input.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    let out_len = ((input.len() as f64) * ratio).round() as usize;
    // Low-pass at the lower Nyquist frequency: when shrinking, the filter widens in input samples.
    let cutoff = ratio.min(1.0) as f32;
    let half = (HALF_TAPS as f32 / cutoff).ceil() as isize;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let centre = n as f64 / ratio;
        let base = centre.floor() as isize;
        let frac = (centre - base as f64) as f32;
        let mut acc = 0.0f32;
        let mut norm = 0.0f32;
        for k in (-half + 1)..=half {
            let i = base + k;
            if i < 0 || i as usize >= input.len() {
                continue;
            }
            let x = k as f32 - frac;
            let w = window(x / half as f32) * cutoff * sinc(x * cutoff);
            acc += input[i as usize] * w;
            norm += w;
        }
        out.push(if norm.abs() > 1e-6 { acc / norm } else { 0.0 });
    }
    out
}

fn sinc(x: f32) -> f32 {
    if x.abs() < 1e-6 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// Hann window over [-1, 1].
fn window(t: f32) -> f32 {
    if t.abs() >= 1.0 {
        0.0
    } else {
        0.5 * (1.0 + (PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn a_tone_keeps_its_pitch_and_level_and_aliases_are_removed() {
        let out = resample(&tone(440.0, 48_000, 1.0), 48_000, 16_000);
        assert_eq!(out.len(), 16_000);
        let want = tone(440.0, 16_000, 1.0);
        let inner = 200..15_800;
        let err: f32 = out[inner.clone()]
            .iter()
            .zip(&want[inner.clone()])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");
        // 11 kHz cannot exist at 16 kHz: it must be filtered out, not folded to 5 kHz.
        let alias = resample(&tone(11_000.0, 48_000, 1.0), 48_000, 16_000);
        assert!(rms(&alias[inner.clone()]) < 0.05, "{}", rms(&alias[inner]));
        let up = resample(&tone(440.0, 16_000, 0.5), 16_000, 22_050);
        assert_eq!(up.len(), 11_025);
        assert!((rms(&up[500..10_000]) - 0.707).abs() < 0.02);
    }
}
