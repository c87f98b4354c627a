//! `hearth-terminal bench`: the voice pipeline's speed and memory on this machine, as a table.
//! Speech comes from WAV files given on the command line, or from espeak-ng.
//!
//! It measures what the voice terminal's targets are about: speech-to-text real-time factor
//! and the time from the end of speech to the transcript (decoding starts after
//! `listen.early_decode_ms` of silence; the endpointer waits `silence_ms` in any case), the CPU that the wake word and the VAD take per second of idle listening, speech
//! synthesis real-time factor, the CPU that the echo canceller takes per second of audio while
//! speech plays, and the time from a reply's first chunk to its first audio
//! (through the real speaker thread and playback queue), and the terminal's peak resident
//! memory with every model loaded. `wer` (in `bench/wer.rs`) compares the speech-to-text
//! engines' accuracy and speed.

pub mod wer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::audio::echo::{EchoCanceller, EchoSettings};
use crate::audio::{wav, Clip, SPEECH_RATE};
use crate::config::TerminalConfig;
use crate::endpoint::Endpointer;
use crate::frontend::speech::SpeechOut;
use crate::stt::Stt;
use crate::tts::{pieces, Tts};
use crate::wake::{WakeWord, STEP};

/// Phrases spoken by espeak-ng when no files are given.
const PHRASES: [&str; 4] = [
    "What is the weather like in the kitchen today?",
    "Remind me to water the plants tomorrow at eight.",
    "Set a timer for twenty minutes.",
    "Tell me a short story about a lighthouse keeper and his cat.",
];

/// Replies spoken for the speech-out measures, as the hub streams them (one chunk each).
const REPLIES: [&str; 4] = [
    "The capital of France is Paris, a city famous for its museums and cafes.",
    "Sure, I will remind you to water the plants tomorrow at eight in the morning.",
    "It is twenty past seven. Your timer has about twelve minutes left.",
    "Once upon a time, a lighthouse keeper lived alone with his cat on a rocky island.",
];

/// CPU time this thread has used, from the scheduler's own accounting (nanoseconds).
pub(crate) fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Speaks `text` with espeak-ng into the WAV file `path` and reads it back (22,050 Hz).
pub fn espeak(text: &str, path: &Path) -> anyhow::Result<Clip> {
    espeak_voice(text, "en-us", path)
}

/// [`espeak`] with an espeak-ng voice ("en-gb", "en-us+f3").
pub fn espeak_voice(text: &str, voice: &str, path: &Path) -> anyhow::Result<Clip> {
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-w"])
        .arg(path)
        .arg(text)
        .status()
        .map_err(|e| {
            anyhow::anyhow!("espeak-ng is needed without WAV files (apt install espeak-ng): {e}")
        })?;
    anyhow::ensure!(status.success(), "espeak-ng failed");
    Ok(wav::read(path)?)
}

/// Deterministic white noise at 16 kHz, uniform in [-amplitude, amplitude].
pub fn noise(seconds: f32, amplitude: f32, seed: u32) -> Vec<f32> {
    let mut seed = seed;
    (0..(SPEECH_RATE as f32 * seconds) as usize)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0) * amplitude
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs the benchmark and prints its table.
pub fn run(
    config: &TerminalConfig,
    files: &[PathBuf],
    runs: usize,
    idle_s: u32,
) -> anyhow::Result<()> {
    let tmp = tempfile_dir()?;
    let mut clips: Vec<Clip> = Vec::new();
    if files.is_empty() {
        for (i, phrase) in PHRASES.iter().enumerate() {
            let path = tmp.join(format!("phrase-{i}.wav"));
            clips.push(espeak(phrase, &path)?.at_rate(SPEECH_RATE));
        }
    } else {
        for file in files {
            clips.push(wav::read(file)?.at_rate(SPEECH_RATE));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);

    let load = Instant::now();
    let stt = Stt::load(&config.stt)?;
    let mut wake = WakeWord::load(&config.voice.onnxruntime, &config.wake)?;
    let mut endpoint = Endpointer::new(&config.listen);
    let mut tts = Tts::load(&config.voice.onnxruntime, &config.tts)?;
    let load = load.elapsed();

    // Speech to text: every clip, `runs` times.
    let mut rtf = Vec::new();
    let mut decode_ms = Vec::new();
    for _ in 0..runs {
        for clip in &clips {
            let heard = stt.transcribe(&clip.samples)?;
            decode_ms.push(heard.took.as_secs_f64() * 1000.0);
            rtf.push(heard.took.as_secs_f64() / f64::from(clip.seconds()));
        }
    }
    rtf.sort_by(f64::total_cmp);
    decode_ms.sort_by(f64::total_cmp);
    let silence_ms = f64::from(config.listen.silence_ms);
    // Decoding starts after `early_decode_ms` of silence when that is set (and below the
    // silence wait); the transcript is ready when both the wait and the decode are done.
    let early_ms = f64::from(config.listen.early_decode_ms);
    let ready_after = |decode: f64| {
        if early_ms > 0.0 && early_ms < silence_ms {
            silence_ms.max(early_ms + decode)
        } else {
            silence_ms + decode
        }
    };

    // Idle listening: wake word and VAD on quiet room noise, CPU time of this thread.
    let idle = noise(idle_s as f32, 0.003, 11);
    wake.reset();
    endpoint.reset();
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    for chunk in idle.chunks(STEP) {
        wake.push(chunk)?;
    }
    let wake_cpu = thread_cpu().zip(cpu0).map(|(b, a)| b - a);
    let cpu1 = thread_cpu();
    for chunk in idle.chunks(STEP) {
        endpoint.push(chunk);
    }
    let vad_cpu = thread_cpu().zip(cpu1).map(|(b, a)| b - a);
    let wall = wall0.elapsed();
    let per_s = |d: Option<Duration>| {
        d.map_or("n/a".to_string(), |d| {
            format!(
                "{:.1} ms ({:.2}% of a core)",
                d.as_secs_f64() * 1000.0 / f64::from(idle_s),
                d.as_secs_f64() * 100.0 / f64::from(idle_s)
            )
        })
    };

    // Echo cancellation while speech plays: the clips as the reply, heard back 30 ms late at
    // half the level, through the canceller as configured (its defaults when it is off).
    let settings = config.voice.echo().unwrap_or(EchoSettings {
        filter_ms: 100,
        preprocess: true,
        delay_ms: 0,
    });
    let far: Vec<f32> = clips
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect();
    let (echo_cpu, echo_s) = echo_cpu(&far, &settings);

    // Speech out: real-time factor per piece, then first audio through the speaker thread.
    let mut tts_rtf = Vec::new();
    for _ in 0..runs {
        for reply in REPLIES {
            for piece in pieces(reply, 0, config.tts.max_piece_words) {
                let spoken = tts.synthesize(&piece)?;
                tts_rtf.push(spoken.took.as_secs_f64() / f64::from(spoken.clip.seconds()));
            }
        }
    }
    tts_rtf.sort_by(f64::total_cmp);
    let speech = SpeechOut::start(tts, &config.tts);
    let playback = speech.playback();
    let mut first_audio_ms = Vec::new();
    for _ in 0..runs {
        for reply in REPLIES {
            let started = Instant::now();
            speech.say(reply, playback.generation(), Some(started));
            while playback.take(1).is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
            first_audio_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            // Let the rest synthesize; the next reply starts on a quiet queue.
            while playback.busy() {
                playback.take(usize::MAX);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    first_audio_ms.sort_by(f64::total_cmp);

    println!(
        "voice pipeline on this machine ({} clips x {runs} runs, {idle_s} s of idle audio, stt.engine = {})",
        clips.len(),
        stt.engine()
    );
    println!("{:<52} {:>12} {:>12}", "measure", "p50", "p90");
    println!(
        "{:<52} {:>12.2} {:>12.2}",
        "speech to text real-time factor",
        percentile(&rtf, 0.5),
        percentile(&rtf, 0.9)
    );
    println!(
        "{:<52} {:>12.0} {:>12.0}",
        "decode time after the utterance ends (ms)",
        percentile(&decode_ms, 0.5),
        percentile(&decode_ms, 0.9)
    );
    println!(
        "{:<52} {:>12.0} {:>12.0}",
        format!("end of speech to transcript (ms, decoding from {early_ms:.0} ms)"),
        ready_after(percentile(&decode_ms, 0.5)),
        ready_after(percentile(&decode_ms, 0.9))
    );
    println!(
        "{:<52} {:>25}",
        "wake word CPU per second of idle audio",
        per_s(wake_cpu)
    );
    println!(
        "{:<52} {:>25}",
        "VAD CPU per second of idle audio",
        per_s(vad_cpu)
    );
    println!(
        "{:<52} {:>25}",
        format!(
            "echo canceller CPU per s of speech ({} ms{})",
            settings.filter_ms,
            if settings.preprocess { ", +pre" } else { "" }
        ),
        echo_cpu.map_or("n/a".to_string(), |d| format!(
            "{:.1} ms ({:.2}% of a core)",
            d.as_secs_f64() * 1000.0 / echo_s,
            d.as_secs_f64() * 100.0 / echo_s
        ))
    );
    println!(
        "{:<52} {:>25}",
        "idle listening wall time, both",
        format!(
            "{:.1} ms/s",
            wall.as_secs_f64() * 1000.0 / f64::from(idle_s)
        )
    );
    println!(
        "{:<52} {:>25}",
        format!("model load ({}, wake word, Piper voice)", stt.engine()),
        format!("{} ms", load.as_millis())
    );
    println!(
        "{:<52} {:>12.2} {:>12.2}",
        "text to speech real-time factor (per sentence)",
        percentile(&tts_rtf, 0.5),
        percentile(&tts_rtf, 0.9)
    );
    println!(
        "{:<52} {:>12.0} {:>12.0}",
        format!(
            "first reply chunk to first audio (ms, first {} words)",
            config.tts.first_piece_words
        ),
        percentile(&first_audio_ms, 0.5),
        percentile(&first_audio_ms, 0.9)
    );
    println!(
        "{:<52} {:>25}",
        "peak resident memory (VmHWM)",
        peak_rss_mib().map_or("n/a".into(), |m| format!("{m:.0} MiB"))
    );
    Ok(())
}

/// CPU time the echo canceller takes over `far` played and heard back, and the seconds of
/// audio.
fn echo_cpu(far: &[f32], settings: &EchoSettings) -> (Option<Duration>, f64) {
    let mut aec = EchoCanceller::new(settings);
    let delay = 30 * SPEECH_RATE as usize / 1000;
    let hiss = noise(far.len() as f32 / SPEECH_RATE as f32 + 1.0, 0.002, 5);
    let mic: Vec<f32> = (0..far.len())
        .map(|t| t.checked_sub(STEP + delay).map_or(0.0, |i| 0.5 * far[i]) + hiss[t])
        .collect();
    let cpu0 = thread_cpu();
    for (mic, played) in mic.chunks_exact(STEP).zip(far.chunks_exact(STEP)) {
        let mut step = mic.to_vec();
        aec.cancel(&mut step);
        aec.played(played, 0);
    }
    let cpu = thread_cpu().zip(cpu0).map(|(b, a)| b - a);
    let seconds = (far.len() / STEP * STEP) as f64 / f64::from(SPEECH_RATE);
    (cpu, seconds)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hearth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
