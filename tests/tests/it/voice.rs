//! Voice mode across processes, with no sound card: a WAV file made by espeak-ng says "hey
//! jarvis" and then a request. The real terminal hears the wake word (openWakeWord on
//! onnxruntime), ends the utterance on silence (earshot), transcribes it (whisper tiny.en) and
//! sends it with prosody features; the real hub answers, and the terminal speaks the answer
//! (Piper) into its WAV sink, which whisper transcribes back to the answer's words. A WAV
//! without the wake word sends nothing. With the hub away, the terminal says so aloud and
//! recovers when it returns.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hearth_shared::{decode, Cancel, CancelReason, ReplyChunk, Utterance};
use hearth_tests::{free_port, wait_for_log, Hub, Observer, Terminal};

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

/// A WAV file of the phrases spoken one after another, each after its seconds of silence, with
/// half a second of silence at the end.
fn spoken(dir: &Path, name: &str, phrases: &[(f32, &str)]) -> anyhow::Result<PathBuf> {
    let mut samples: Vec<i16> = Vec::new();
    let mut spec = None;
    for (i, (gap_s, phrase)) in phrases.iter().enumerate() {
        let part = dir.join(format!("{name}-{i}.wav"));
        espeak(phrase, &part)?;
        let mut reader = hound::WavReader::open(&part)?;
        let s = reader.spec();
        samples.extend(std::iter::repeat_n(
            0,
            (s.sample_rate as f32 * gap_s) as usize,
        ));
        for sample in reader.samples::<i16>() {
            samples.push(sample?);
        }
        spec = Some(s);
    }
    let spec = spec.expect("at least one phrase");
    samples.extend(std::iter::repeat_n(0, spec.sample_rate as usize / 2));
    let path = dir.join(format!("{name}.wav"));
    let mut writer = hound::WavWriter::create(&path, spec)?;
    for s in samples {
        writer.write_sample(s)?;
    }
    writer.finalize()?;
    Ok(path)
}

/// A voice terminal "kitchen" hearing `input`, playing into `played.wav` in `dir` (returned).
/// Its voice speaks without VITS noise, so that a reply always sounds the same and what
/// whisper hears in it does not change from run to run (with the voice's own noise, "L'Alma,
/// the capital of France" was heard as "I'll only cap it all, but friends" once in 16 runs).
fn voice_terminal(
    dir: &Path,
    port: u16,
    input: &Path,
    extra: &[&str],
) -> anyhow::Result<(Terminal, PathBuf)> {
    let played = dir.join("played.wav");
    let mut args = vec![
        "--input-wav",
        input.to_str().expect("a UTF-8 temporary path"),
        "--output-wav",
        played.to_str().expect("a UTF-8 temporary path"),
    ];
    args.extend_from_slice(extra);
    let quiet_voice = "[tts]\nnoise_scale = 0.0\nnoise_w = 0.0\n";
    let terminal = Terminal::start_configured(dir, port, "kitchen", quiet_voice, &args)?;
    Ok((terminal, played))
}

/// What whisper hears in a WAV file, through `hearth-terminal transcribe` (the tests do not
/// link whisper.cpp themselves).
fn transcribe(wav: &Path) -> anyhow::Result<String> {
    let out = Command::new(hearth_tests::bin("hearth-terminal"))
        .arg("transcribe")
        .arg(wav)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "transcribe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    Ok(stdout
        .split_once('\t')
        .map(|(_, text)| text.trim().to_string())
        .unwrap_or_default())
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
    let input = spoken(
        dir.path(),
        "request",
        &[(0.5, "Hey Jarvis!"), (0.5, request)],
    )?;
    let (mut term, played) = voice_terminal(dir.path(), port, &input, &[])?;

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

    // The hub's answer is printed by the voice terminal, and spoken into the sink: the terminal
    // exits once it has played out.
    let (line, _) = term.expect("hub: ", REPLY_TIMEOUT).await?;
    let reply = line.trim_start_matches("hub: ");
    assert!(!reply.is_empty(), "{line:?}");
    let status = tokio::time::timeout(REPLY_TIMEOUT, term.child.wait()).await??;
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&term.log)?;
    assert!(log.contains("first audio of the reply queued"), "{log}");

    // Whisper hears the reply's words in what was played (after the listening earcon).
    assert_heard(reply, &played)
}

/// Whisper hears `reply` in the WAV `played`. The 135M model's replies can be odd ("Alma,
/// capital of France") and tiny.en mishears some words, so a word counts when a heard word
/// starts with the same four letters, and a third of the reply's longer words must be heard.
fn assert_heard(reply: &str, played: &Path) -> anyhow::Result<()> {
    let heard = words(&transcribe(played)?);
    let said: Vec<String> = words(reply).into_iter().filter(|w| w.len() >= 4).collect();
    let found = said
        .iter()
        .filter(|w| {
            heard
                .iter()
                .any(|h| h.chars().count() >= 4 && h.chars().take(4).eq(w.chars().take(4)))
        })
        .count();
    anyhow::ensure!(
        !said.is_empty() && found >= 1 && found * 3 >= said.len(),
        "only {found} of {said:?} heard in the played reply {heard:?}"
    );
    Ok(())
}

#[tokio::test]
async fn with_the_hub_away_the_terminal_says_so_aloud_and_recovers_when_it_returns(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    // A request while the hub is away (after the terminal has said so), and another 15 s later,
    // read at a microphone's pace.
    let input = spoken(
        dir.path(),
        "offline",
        &[
            (5.0, "Hey Jarvis!"),
            (0.5, "What is the capital of France?"),
            (15.0, "Hey Jarvis!"),
            (0.5, "What is the capital of France?"),
        ],
    )?;
    let (mut term, played) = voice_terminal(dir.path(), port, &input, &["--realtime"])?;
    term.expect("hearth: hub unreachable", REPLY_TIMEOUT)
        .await?;
    term.expect("could not send that", REPLY_TIMEOUT).await?;

    // The hub comes back; the terminal reconnects, says so, and the next request is answered.
    let _hub = Hub::start(dir.path(), port, "").await?;
    let mut obs = Observer::connect(port, &["hearth/v1/terminal/+/utterance"]).await?;
    term.expect("connected to the hub", REPLY_TIMEOUT).await?;
    let (payload, _) = obs
        .next_on("hearth/v1/terminal/kitchen/utterance", REPLY_TIMEOUT)
        .await?;
    let utterance: Utterance = decode(&payload, usize::MAX)?;
    assert!(
        words(&utterance.text).contains(&"capital".to_string()),
        "{utterance:?}"
    );
    term.expect("hub: ", REPLY_TIMEOUT).await?;
    let status = tokio::time::timeout(REPLY_TIMEOUT, term.child.wait()).await??;
    assert!(status.success(), "{status}");

    // What it said while the hub was away is in the sink, in words whisper understands.
    let heard = words(&transcribe(&played)?);
    let expected = [
        "reach",
        "unreachable",
        "trying",
        "listening",
        "connected",
        "again",
    ];
    let found: Vec<&str> = expected
        .into_iter()
        .filter(|w| heard.iter().any(|h| h == w))
        .collect();
    assert!(
        found.len() >= 3 && found.iter().any(|w| w.contains("reach")),
        "only {found:?} of {expected:?} in {heard:?}"
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
            (0.5, "Remind me to water the plants tomorrow at eight."),
            (0.5, "What is the weather like?"),
        ],
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

#[tokio::test]
async fn the_wake_word_over_the_reply_cancels_it_and_the_next_question_is_answered(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let hub = Hub::start(dir.path(), port, "").await?;
    let mut obs = Observer::connect(
        port,
        &[
            "hearth/v1/terminal/+/utterance",
            "hearth/v1/terminal/+/reply",
            "hearth/v1/terminal/+/cancel",
        ],
    )
    .await?;
    // A request with a long answer; 14 s later, while the answer is being spoken, the wake
    // word again and a new question. At a microphone's pace.
    let input = spoken(
        dir.path(),
        "barge-in",
        &[
            (0.5, "Hey Jarvis!"),
            (0.5, "Tell me a long story about a dragon and a knight."),
            (14.0, "Hey Jarvis!"),
            (0.5, "What is the capital of France?"),
        ],
    )?;
    let (mut term, _played) = voice_terminal(dir.path(), port, &input, &["--realtime"])?;

    let mut first: Option<String> = None;
    let mut chunks: Vec<String> = Vec::new();
    let (cancel, second) = loop {
        let (topic, payload, _) = obs.next(REPLY_TIMEOUT).await?;
        if topic.ends_with("/utterance") {
            let u: Utterance = decode(&payload, usize::MAX)?;
            if first.is_none() {
                first = Some(u.id);
            } else {
                anyhow::bail!("a second utterance came before any cancel: {u:?}");
            }
        } else if topic.ends_with("/reply") {
            let c: ReplyChunk = decode(&payload, usize::MAX)?;
            if Some(&c.utterance_id) == first.as_ref() && !c.text.is_empty() {
                chunks.push(c.text);
            }
        } else if topic.ends_with("/cancel") {
            let cancel: Cancel = decode(&payload, usize::MAX)?;
            let (payload, _) = obs
                .next_on("hearth/v1/terminal/kitchen/utterance", REPLY_TIMEOUT)
                .await?;
            break (cancel, decode::<Utterance>(&payload, usize::MAX)?);
        }
    };
    assert_eq!(Some(&cancel.utterance_id), first.as_ref());
    assert_eq!(cancel.reason, CancelReason::BargeIn);
    let heard = cancel
        .heard_chunks
        .expect("the voice terminal counts what it played") as usize;
    assert!(
        heard >= 1,
        "the barge-in came while the reply played: {cancel:?}"
    );
    if !words(&second.text).contains(&"france".to_string()) {
        // What the listener heard and did, for the failure message.
        let log = std::fs::read_to_string(&term.log).unwrap_or_default();
        for l in log.lines().filter(|l| {
            l.contains("wake") || l.contains("heard") || l.contains("early") || l.contains("barge")
        }) {
            eprintln!("terminal: {l}");
        }
    }
    assert!(
        words(&second.text).contains(&"france".to_string()),
        "{second:?}"
    );

    // The next question is answered, without waiting for the old reply.
    term.expect("hub: ", REPLY_TIMEOUT).await?;
    wait_for_log(&hub.log, "reply cancelled", REPLY_TIMEOUT).await?;
    wait_for_log(&hub.log, &format!("id={} ", second.id), REPLY_TIMEOUT).await?;
    let log = hub.log_text();
    // The hub keeps only what was heard: either it stopped the reply mid-way, or it trimmed
    // the finished reply to the chunks that had begun to play.
    let kept: Vec<&str> = chunks[..heard.min(chunks.len())]
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    let kept = kept.join(" ");
    let trimmed = format!("Trimmed({kept:?})");
    assert!(
        log.contains(&trimmed)
            || (log.contains("result=InFlight") && log.contains("reply interrupted")),
        "neither {trimmed} nor an interrupted reply in:\n{log}"
    );
    Ok(())
}

/// Seconds of speech per word in a played WAV: 20 ms frames louder than -34 dBFS, over the
/// reply's word count (the earcon before it adds a little to both voices alike).
fn seconds_per_word(wav: &Path, reply: &str) -> anyhow::Result<f32> {
    let mut reader = hound::WavReader::open(wav)?;
    let spec = reader.spec();
    let scale = match spec.sample_format {
        hound::SampleFormat::Int => (1u64 << (spec.bits_per_sample - 1)) as f32,
        hound::SampleFormat::Float => 1.0,
    };
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => reader
            .samples::<i32>()
            .map(|s| s.map(|s| s as f32 / scale))
            .collect::<Result<_, _>>()?,
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
    };
    let frame = (spec.sample_rate / 50) as usize * spec.channels as usize;
    let loud = samples
        .chunks(frame)
        .filter(|f| (f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32).sqrt() > 0.02)
        .count();
    let n = words(reply).len().max(1);
    Ok(loud as f32 * 0.02 / n as f32)
}

#[tokio::test]
async fn two_personas_are_heard_each_in_its_own_voice() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Nova speaks quickly and is the household's default; Brick speaks slowly. One Piper
    // voice, two paces (the settings of one voice, as a household without a second voice
    // would have them).
    let extra = hearth_tests::personas_toml(
        dir.path(),
        "Nova",
        &[
            (
                "nova.toml",
                "name = \"Nova\"\ncodex = \"You are Nova, quick and bright.\"\n[voice]\nlength_scale = 0.75\n",
            ),
            (
                "brick.toml",
                "name = \"Brick\"\ncodex = \"You are Brick, slow and steady.\"\n[voice]\nlength_scale = 1.9\n",
            ),
        ],
    )?;
    let port = free_port();
    let _hub = Hub::start(dir.path(), port, &extra).await?;
    let mut obs = Observer::connect(port, &["hearth/v1/terminal/+/reply"]).await?;
    let mut paces = Vec::new();
    // The room's persona, then Brick by name (whisper hears "ask Rick", which picks Brick).
    for (persona, request) in [
        ("Nova", "What is the capital of France?"),
        ("Brick", "Ask Brick, what is the capital of France?"),
    ] {
        let run = dir.path().join(persona);
        std::fs::create_dir(&run)?;
        let input = spoken(&run, "request", &[(0.5, "Hey Jarvis!"), (0.5, request)])?;
        let (mut term, played) = voice_terminal(&run, port, &input, &[])?;
        // Every chunk names the persona's voice...
        let voice = loop {
            let (payload, _) = obs
                .next_on("hearth/v1/terminal/kitchen/reply", REPLY_TIMEOUT)
                .await?;
            let chunk: ReplyChunk = decode(&payload, usize::MAX)?;
            let named = chunk.voice.clone().expect("a persona's voice on the reply");
            assert_eq!(named.persona, persona, "{chunk:?}");
            if chunk.is_final {
                break named;
            }
        };
        // ...the terminal prints who answers and speaks with that voice...
        let (line, _) = term
            .expect(&format!("hub ({persona}): "), REPLY_TIMEOUT)
            .await?;
        let reply = line.split_once("): ").map_or("", |(_, r)| r).to_string();
        let status = tokio::time::timeout(REPLY_TIMEOUT, term.child.wait()).await??;
        assert!(status.success(), "{status}");
        let log = std::fs::read_to_string(&term.log)?;
        let spoke = log
            .lines()
            .find(|l| l.contains("speaking in the persona's voice"))
            .unwrap_or_default();
        assert!(
            spoke.contains(&format!("persona={persona}"))
                && spoke.contains(&format!("length_scale={:?}", voice.length_scale)),
            "{spoke:?} in {log}"
        );
        // ...and whisper hears the reply's words in what was played.
        assert_heard(&reply, &played).map_err(|e| e.context(persona))?;
        paces.push(seconds_per_word(&played, &reply)?);
    }
    // Which voice was used, from the audio itself: Brick's words take longer than Nova's
    // (1.9 against 0.75 in length scale: 2.5 times as long).
    eprintln!(
        "seconds per word: Nova {:.3}, Brick {:.3}",
        paces[0], paces[1]
    );
    assert!(
        paces[1] > paces[0] * 1.5,
        "seconds per word: Nova {:.3}, Brick {:.3}",
        paces[0],
        paces[1]
    );
    Ok(())
}
