//! Voice mode across processes, with no sound card: a WAV file made by espeak-ng says "hey
//! jarvis" and then a request. The real terminal hears the wake word (openWakeWord on
//! onnxruntime), ends the utterance on silence (earshot), transcribes it (whisper tiny.en) and
//! sends it with prosody features; the real hub answers. A WAV without the wake word sends
//! nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hearth_shared::{decode, Utterance};
use hearth_tests::{free_port, Hub, Observer, Terminal};

use crate::REPLY_TIMEOUT;

/// Speaks `text` with espeak-ng into a WAV file (22,050 Hz mono).
fn espeak(text: &str, path: &Path) -> anyhow::Result<()> {
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(path)
        .arg(text)
        .status()
        .map_err(|e| anyhow::anyhow!("espeak-ng (scripts/setup installs it): {e}"))?;
    anyhow::ensure!(status.success(), "espeak-ng failed on {text:?}");
    Ok(())
}

/// A WAV file of the phrases spoken one after another, with `gap_s` of silence around each.
fn spoken(dir: &Path, name: &str, phrases: &[&str], gap_s: f32) -> anyhow::Result<PathBuf> {
    let mut samples: Vec<i16> = Vec::new();
    let mut spec = None;
    for (i, phrase) in phrases.iter().enumerate() {
        let part = dir.join(format!("{name}-{i}.wav"));
        espeak(phrase, &part)?;
        let mut reader = hound::WavReader::open(&part)?;
        let s = reader.spec();
        let silence = (s.sample_rate as f32 * gap_s) as usize;
        samples.extend(std::iter::repeat_n(0, silence));
        for sample in reader.samples::<i16>() {
            samples.push(sample?);
        }
        spec = Some(s);
    }
    let spec = spec.expect("at least one phrase");
    samples.extend(std::iter::repeat_n(
        0,
        (spec.sample_rate as f32 * gap_s) as usize,
    ));
    let path = dir.join(format!("{name}.wav"));
    let mut writer = hound::WavWriter::create(&path, spec)?;
    for s in samples {
        writer.write_sample(s)?;
    }
    writer.finalize()?;
    Ok(path)
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[tokio::test]
async fn hey_jarvis_then_a_request_is_heard_transcribed_and_answered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let _hub = Hub::start(dir.path(), port, "").await?;
    let mut obs = Observer::connect(port, &["hearth/v1/terminal/+/utterance"]).await?;
    let request = "What is the capital of France?";
    let input = spoken(dir.path(), "request", &["Hey Jarvis!", request], 0.5)?;
    let played = dir.path().join("played.wav");
    let mut term = Terminal::start_with(
        dir.path(),
        port,
        "kitchen",
        &[
            "--input-wav",
            input.to_str().unwrap(),
            "--output-wav",
            played.to_str().unwrap(),
        ],
    )?;

    let (payload, _) = obs
        .next_on("hearth/v1/terminal/kitchen/utterance", REPLY_TIMEOUT)
        .await?;
    let utterance: Utterance = decode(&payload, usize::MAX)?;
    let heard = words(&utterance.text);
    for word in ["capital", "france"] {
        assert!(
            heard.iter().any(|w| w == word),
            "{word:?} not in {:?}",
            utterance.text
        );
    }
    // The wake word is not part of the request.
    assert!(!heard.iter().any(|w| w == "jarvis"), "{:?}", utterance.text);
    let audio = utterance
        .audio
        .expect("prosody features from a voice terminal");
    let loudness = audio.loudness_dbfs.expect("loudness");
    assert!((-40.0..0.0).contains(&loudness), "{audio:?}");
    assert!(
        audio.speaking_rate_wps.is_some_and(|r| r > 0.5 && r < 8.0),
        "{audio:?}"
    );

    // The hub's answer is printed by the voice terminal.
    let (line, _) = term.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(line.len() > "hub: ".len(), "{line:?}");
    // The earcon was played into the sink when it started listening.
    let mut reader = hound::WavReader::open(&played)?;
    let peak = reader
        .samples::<i16>()
        .map(|s| s.map(|s| s.unsigned_abs()))
        .try_fold(0u16, |m, s| s.map(|s| m.max(s)))?;
    assert!(
        peak > 1000,
        "the earcon is missing from {}",
        played.display()
    );
    Ok(())
}

#[tokio::test]
async fn speech_without_the_wake_word_triggers_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let _hub = Hub::start(dir.path(), port, "").await?;
    let mut obs = Observer::connect(port, &["hearth/v1/terminal/+/utterance"]).await?;
    let input = spoken(
        dir.path(),
        "chatter",
        &[
            "Remind me to water the plants tomorrow at eight.",
            "What is the weather like?",
        ],
        0.5,
    )?;
    let mut term = Terminal::start_with(
        dir.path(),
        port,
        "kitchen",
        &["--input-wav", input.to_str().unwrap()],
    )?;
    // The terminal reads the whole file, hears no wake word, and exits with nothing in flight.
    let status = tokio::time::timeout(REPLY_TIMEOUT, term.child.wait()).await??;
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&term.log)?;
    assert!(log.contains("voice mode: listening"), "{log}");
    assert!(!log.contains("wake word heard"), "{log}");
    assert!(
        obs.next(Duration::from_millis(500)).await.is_err(),
        "an utterance was sent without the wake word"
    );
    Ok(())
}
