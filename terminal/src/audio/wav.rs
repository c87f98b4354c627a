//! WAV files as the terminal's headless audio source and sink. Any channel count and the
//! common PCM and float formats are read and mixed down to mono; files are written as 16-bit
//! mono PCM, through a temporary file renamed into place so that a reader never sees half.

use std::path::Path;

use super::{AudioError, Clip};

/// Reads a WAV file as mono samples in [-1, 1] at the file's own rate.
pub fn read(path: &Path) -> Result<Clip, AudioError> {
    let unreadable = |e: hound::Error| AudioError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut reader = hound::WavReader::open(path).map_err(unreadable)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(unreadable)?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(unreadable)?
        }
        (format, bits) => {
            return Err(AudioError::UnsupportedFormat {
                path: path.to_path_buf(),
                bits,
                format: match format {
                    hound::SampleFormat::Float => "float",
                    hound::SampleFormat::Int => "integer",
                },
            })
        }
    };
    let samples: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| (frame.iter().sum::<f32>() / frame.len() as f32).clamp(-1.0, 1.0))
        .collect();
    if samples.is_empty() || spec.sample_rate == 0 {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Clip {
        samples,
        rate: spec.sample_rate,
    })
}

/// The format the terminal writes: 16-bit mono PCM at `rate`.
pub fn mono16(rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// A sample in [-1, 1] as a 16-bit one (clipped).
pub fn to_i16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16
}

/// Writes `clip` as a 16-bit mono WAV file, atomically.
pub fn write(path: &Path, clip: &Clip) -> Result<(), AudioError> {
    let unwritable = |reason: String| AudioError::Unwritable {
        path: path.to_path_buf(),
        reason,
    };
    let partial = path.with_extension("wav.partial");
    let mut writer = hound::WavWriter::create(&partial, mono16(clip.rate))
        .map_err(|e| unwritable(e.to_string()))?;
    for &s in &clip.samples {
        writer
            .write_sample(to_i16(s))
            .map_err(|e| unwritable(e.to_string()))?;
    }
    writer.finalize().map_err(|e| unwritable(e.to_string()))?;
    std::fs::rename(&partial, path).map_err(|e| unwritable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_clip_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let clip = Clip {
            samples: (0..1600).map(|i| (i as f32 / 50.0).sin() * 0.5).collect(),
            rate: 16_000,
        };
        write(&path, &clip).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.rate, 16_000);
        assert_eq!(back.samples.len(), clip.samples.len());
        for (a, b) in back.samples.iter().zip(&clip.samples) {
            assert!((a - b).abs() < 1e-3);
        }
    }

    #[test]
    fn stereo_is_mixed_down_and_bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..100 {
            w.write_sample(16_384i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let clip = read(&path).unwrap();
        assert_eq!((clip.rate, clip.samples.len()), (44_100, 100));
        assert!((clip.samples[0] - 0.25).abs() < 1e-3);

        let empty = dir.path().join("empty.wav");
        hound::WavWriter::create(&empty, spec)
            .unwrap()
            .finalize()
            .unwrap();
        assert!(matches!(read(&empty), Err(AudioError::Empty { .. })));

        let text = dir.path().join("not.wav");
        std::fs::write(&text, "remind me to water the plants").unwrap();
        let err = read(&text).unwrap_err().to_string();
        assert!(err.contains("not.wav") && err.contains("WAV"), "{err}");
        let missing = read(&dir.path().join("missing.wav")).unwrap_err();
        assert!(matches!(missing, AudioError::Unreadable { .. }));
    }
}
