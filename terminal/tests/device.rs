//! A real cpal stream, with no sound card: an ALSA configuration whose default device captures
//! from a raw file and plays into a WAV file (ALSA's `file` plugin, unpaced). The voice front end
//! opens both through cpal, hears "hey jarvis" and the request from the capture file,
//! transcribes it, and plays its listening earcon into the playback file.
//!
//! One test in this binary: `ALSA_CONFIG_PATH` is set for the whole process before ALSA is
//! first used.

use std::path::Path;
use std::time::Duration;

use hearth_terminal::audio::device;
use hearth_terminal::audio::{wav, SPEECH_RATE};
use hearth_terminal::config::TerminalConfig;
use hearth_terminal::frontend::speech::{earcon, Earcon};
use hearth_terminal::frontend::voice::{Source, VoiceFrontend};
use hearth_terminal::frontend::{Frontend, Input};

/// `phrases` spoken by espeak-ng at 16 kHz as raw 16-bit samples, each after half a second of
/// silence, with 1.5 s of silence at the end.
fn capture_file(dir: &Path, phrases: &[&str]) -> Vec<i16> {
    let mut samples = Vec::new();
    for phrase in phrases {
        let clip = hearth_terminal::bench::espeak(phrase, &dir.join("phrase.wav"))
            .unwrap()
            .at_rate(SPEECH_RATE);
        samples.extend(std::iter::repeat_n(0, SPEECH_RATE as usize / 2));
        samples.extend(clip.samples.iter().map(|&s| wav::to_i16(s)));
    }
    samples.extend(std::iter::repeat_n(0, SPEECH_RATE as usize * 3 / 2));
    samples
}

fn asoundrc(capture: &Path, playback: &Path) -> String {
    format!(
        r#"pcm.!default {{
    type asym
    playback.pcm "play2file"
    capture.pcm "capfromfile"
    hint {{ show on description "hearth test: playback to a WAV file, capture from a raw file" }}
}}
pcm.play2file {{
    type plug
    slave {{ pcm "tofile" format S16_LE rate 16000 channels 1 }}
}}
pcm.tofile {{
    type file
    slave.pcm "null"
    file "{playback}"
    format "wav"
}}
pcm.capfromfile {{
    type plug
    slave {{ pcm "fromfile" format S16_LE rate 16000 channels 1 }}
}}
pcm.fromfile {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{capture}"
    format "raw"
}}
"#,
        playback = playback.display(),
        capture = capture.display()
    )
}

#[test]
fn voice_mode_hears_and_plays_through_real_cpal_streams() {
    if hearth_terminal::wake::skip_without_onnxruntime() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture.raw");
    let playback = dir.path().join("playback.wav");
    let samples = capture_file(
        dir.path(),
        &[
            "Hey Jarvis!",
            "What is the weather like in the kitchen today?",
        ],
    );
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&capture, bytes).unwrap();
    let rc = dir.path().join("asoundrc");
    std::fs::write(&rc, asoundrc(&capture, &playback)).unwrap();
    let system = ["/usr/share/alsa/alsa.conf", "/etc/alsa/alsa.conf"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("ALSA's alsa.conf (Debian libasound2-data, installed by scripts/setup)");
    std::env::set_var("ALSA_CONFIG_PATH", format!("{system}:{}", rc.display()));

    // `hearth-terminal devices` sees the test device as the default both ways.
    let devices = device::list().unwrap();
    let default = devices
        .iter()
        .find(|d| d.default_input && d.default_output)
        .unwrap_or_else(|| panic!("no default device in {devices:?}"));
    assert!(default.description.contains("hearth test"), "{default:?}");

    // Voice mode on the default devices: the wake word, the request, the listening earcon.
    let config = TerminalConfig::with_fetched_models();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let heard = runtime.block_on(async {
        let mut voice = VoiceFrontend::start(&config, Source::Device(None)).unwrap();
        let input = tokio::time::timeout(Duration::from_secs(120), voice.next_input())
            .await
            .expect("nothing was heard from the capture device");
        // Finishing closes the streams: the file plugin completes the playback file.
        voice.finish().await;
        input
    });
    let Input::Said { text, audio, .. } = heard else {
        panic!("expected speech, got {heard:?}");
    };
    assert!(text.to_lowercase().contains("weather"), "{text:?}");
    assert!(audio.and_then(|a| a.loudness_dbfs).is_some());

    // The listening earcon went through the output stream into the playback file, whole: it
    // was handed to the device at once, with the lead. The file plugin does not pace its
    // device, so the stream pulls silence as fast as it can around it; only the earcon's part
    // of the file is read.
    let earcon = earcon(Earcon::Listening).samples;
    let lead = earcon.iter().position(|s| s.abs() > 1e-2).unwrap();
    let mut reader = hound::WavReader::open(&playback)
        .unwrap_or_else(|e| panic!("no playback file {}: {e}", playback.display()));
    eprintln!("playback file: {} samples", reader.len());
    let mut samples = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / f32::from(i16::MAX));
    let mut before = std::collections::VecDeque::new();
    let mut played: Vec<f32> = Vec::new();
    for s in samples.by_ref() {
        if s.abs() > 1e-2 {
            played.extend(before.drain(..));
            played.push(s);
            break;
        }
        before.push_back(s);
        if before.len() > lead {
            before.pop_front();
        }
    }
    assert!(!played.is_empty(), "the playback file is silent");
    played.extend(samples.take(earcon.len() - played.len()));
    let matched = earcon
        .iter()
        .zip(&played)
        .filter(|(a, b)| (*a - *b).abs() < 2e-3)
        .count();
    assert!(
        matched * 10 >= earcon.len() * 9,
        "only {matched} of {} earcon samples in the playback file",
        earcon.len()
    );
}
