//! Prosody features of an utterance, sent to the hub with its transcript for emotion scoring:
//! loudness of the speech, speaking rate, and median pitch. All cheap, all from the samples.

use hearth_shared::AudioFeatures;

/// Frame length for the analysis, in seconds.
const FRAME_S: f32 = 0.03;
/// A frame counts as speech within this many dB of the loudest frame.
const SPEECH_RANGE_DB: f32 = 30.0;
/// Nothing quieter than this is speech.
const FLOOR_DBFS: f32 = -60.0;
/// The pitch range searched, in Hz (adult and child voices).
const PITCH_HZ: (f32, f32) = (60.0, 400.0);
/// How periodic a frame must be (normalised autocorrelation) to have a pitch.
const VOICED: f32 = 0.5;

/// Computes the features of mono `samples` at `rate` whose transcript has `words` words.
pub fn of(samples: &[f32], rate: u32, words: usize) -> AudioFeatures {
    let frame = ((rate as f32 * FRAME_S) as usize).max(1);
    let levels: Vec<f32> = samples.chunks(frame).map(dbfs).collect();
    let loudest = levels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let gate = (loudest - SPEECH_RANGE_DB).max(FLOOR_DBFS);
    let speech: Vec<usize> = (0..levels.len()).filter(|&i| levels[i] > gate).collect();
    let (Some(&first), Some(&last)) = (speech.first(), speech.last()) else {
        return AudioFeatures::default();
    };
    let power = speech
        .iter()
        .map(|&i| 10f32.powf(levels[i] / 10.0))
        .sum::<f32>()
        / speech.len() as f32;
    let span_s = (last - first + 1) as f32 * frame as f32 / rate as f32;
    let mut pitches: Vec<f32> = speech
        .iter()
        .filter_map(|&i| {
            pitch(
                &samples[i * frame..((i + 1) * frame).min(samples.len())],
                rate,
            )
        })
        .collect();
    pitches.sort_by(f32::total_cmp);
    AudioFeatures {
        loudness_dbfs: Some(round1(10.0 * power.log10())),
        speaking_rate_wps: (words > 0).then(|| round1(words as f32 / span_s)),
        pitch_hz: pitches.get(pitches.len() / 2).map(|&p| p.round()),
    }
}

fn round1(x: f32) -> f32 {
    (x * 10.0).round() / 10.0
}

fn dbfs(frame: &[f32]) -> f32 {
    let mean = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * mean.max(1e-12).log10()
}

/// The pitch of a voiced frame by autocorrelation, or `None` when it is not periodic enough.
fn pitch(frame: &[f32], rate: u32) -> Option<f32> {
    let min_lag = (rate as f32 / PITCH_HZ.1) as usize;
    let max_lag = ((rate as f32 / PITCH_HZ.0) as usize).min(frame.len() / 2);
    let energy: f32 = frame.iter().map(|s| s * s).sum();
    if energy <= 0.0 || min_lag >= max_lag {
        return None;
    }
    let corr = |lag: usize| -> f32 {
        frame[lag..]
            .iter()
            .zip(frame)
            .map(|(a, b)| a * b)
            .sum::<f32>()
            / energy
    };
    let (lag, best) = (min_lag..=max_lag)
        .map(|lag| (lag, corr(lag)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (best > VOICED).then(|| rate as f32 / lag as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loud_hum_has_its_level_pitch_and_rate_and_silence_has_none() {
        let rate = 16_000;
        // Half a second of silence, two seconds of a 150 Hz hum at half scale, then silence.
        let mut samples = vec![0.0; 8_000];
        samples
            .extend((0..32_000).map(|i| {
                0.5 * (2.0 * std::f32::consts::PI * 150.0 * i as f32 / rate as f32).sin()
            }));
        samples.extend(vec![0.0; 8_000]);
        let f = of(&samples, rate, 5);
        // A sine at amplitude 0.5 has an RMS of 0.354: -9 dBFS.
        assert!((f.loudness_dbfs.unwrap() + 9.0).abs() < 0.5, "{f:?}");
        assert!((f.pitch_hz.unwrap() - 150.0).abs() < 5.0, "{f:?}");
        // Five words over the two voiced seconds (frames are 30 ms, so a little more).
        assert!((f.speaking_rate_wps.unwrap() - 2.5).abs() < 0.2, "{f:?}");

        let silent = of(&[0.0; 16_000], rate, 3);
        assert_eq!(silent, AudioFeatures::default());
    }
}
