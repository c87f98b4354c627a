//! `hearth-terminal bench-wake`: the wake word's recall and false wakes on the repo's set,
//! before (one phase, no check, no gate: the detector as it was) and after (the
//! [`Trigger`] as configured), and what idle listening costs.
//!
//! The set is synthesised on the spot from text in the repo, so it is the same on every
//! machine with the same espeak-ng and Piper voice:
//! - **Positives**: each of [`REQUESTS`] in each of [`VOICES`] (espeak-ng voices and the Piper
//!   voice), once with a pause after "hey jarvis" (said apart, then 600 ms of silence) and
//!   once run straight on (one sentence). Each starts after a different lead of silence, so
//!   that the 80 ms steps fall differently. A positive is heard when a wake comes between
//!   its start and two seconds after its end; its request is kept when the transcript from
//!   the wake's pre-roll, with the phrase cut, starts with the request's first word.
//! - **Negatives**: the household turns in `bench/data` (and more of them, as the minutes
//!   require), read in turn by the espeak voices with short pauses, plus room noise (white
//!   and low rumble). Every wake there is a false wake.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::trigger::{checker, Trigger};
use super::{phrase, WakeWord, STEP};
use crate::audio::SPEECH_RATE;
use crate::bench::thread_cpu;
use crate::config::{TerminalConfig, WakeConfig};
use crate::stt::Stt;
use crate::tts::Tts;

/// The espeak-ng voices of the set, and the Piper voice ("piper").
pub const VOICES: [&str; 7] = [
    "en-us",
    "en-us+m3",
    "en-us+f3",
    "en-us+f5",
    "en-gb-scotland",
    "en-gb",
    "piper",
];

/// Requests said after the wake word.
pub const REQUESTS: [&str; 6] = [
    "remind me to water the plants tomorrow",
    "set a timer for twenty minutes",
    "what time is it",
    "forget what I told you about the party",
    "turn the music down a little",
    "tell me a story about a lighthouse",
];

/// The household turns, the negatives' text.
const TURNS: &str = include_str!("../../../bench/data/household-turns.tsv");
const HELDOUT: &str = include_str!("../../../bench/data/household-turns-heldout.tsv");

/// One positive clip.
struct Positive {
    voice: &'static str,
    pause: bool,
    request: &'static str,
    /// 16 kHz audio: lead silence, the clip, two and a half seconds of silence.
    audio: Vec<f32>,
    /// Where the spoken clip starts and ends.
    start: usize,
    end: usize,
}

/// Speaks `text` with espeak-ng `voice` (16 kHz, silence trimmed).
fn espeak(voice: &str, text: &str, dir: &Path) -> anyhow::Result<Vec<f32>> {
    let clip = crate::bench::espeak_voice(text, voice, &dir.join("said.wav"))?;
    Ok(trim(clip.at_rate(SPEECH_RATE).samples))
}

/// Drops leading and trailing silence.
fn trim(samples: Vec<f32>) -> Vec<f32> {
    let first = samples.iter().position(|s| s.abs() > 0.01);
    let last = samples.iter().rposition(|s| s.abs() > 0.01);
    match (first, last) {
        (Some(a), Some(b)) => samples[a..=b].to_vec(),
        _ => Vec::new(),
    }
}

fn say(voice: &str, text: &str, tts: &mut Tts, dir: &Path) -> anyhow::Result<Vec<f32>> {
    if voice == "piper" {
        Ok(trim(
            tts.synthesize(text)?.clip.at_rate(SPEECH_RATE).samples,
        ))
    } else {
        espeak(voice, text, dir)
    }
}

fn silence(ms: usize) -> Vec<f32> {
    vec![0.0; ms * SPEECH_RATE as usize / 1000]
}

/// The positive set.
fn positives(tts: &mut Tts, dir: &Path) -> anyhow::Result<Vec<Positive>> {
    let mut out = Vec::new();
    for (v, voice) in VOICES.iter().enumerate() {
        for (r, request) in REQUESTS.iter().enumerate() {
            for pause in [true, false] {
                let clip = if pause {
                    let mut clip = say(voice, "hey jarvis", tts, dir)?;
                    clip.extend(silence(600));
                    clip.extend(say(voice, request, tts, dir)?);
                    clip
                } else {
                    say(voice, &format!("hey jarvis {request}"), tts, dir)?
                };
                // Leads from 1 s in steps of 13 ms: the steps fall differently each time.
                let lead = 1000 + 13 * ((v * REQUESTS.len() + r) * 2 + usize::from(pause)) % 80;
                let mut audio = silence(lead);
                let start = audio.len();
                audio.extend(&clip);
                let end = audio.len();
                audio.extend(silence(2500));
                out.push(Positive {
                    voice,
                    pause,
                    request,
                    audio,
                    start,
                    end,
                });
            }
        }
    }
    Ok(out)
}

/// Deterministic noise: white, and a low rumble (white noise through a one-pole low-pass).
fn room_noise(seconds: usize, seed: u32) -> Vec<f32> {
    let mut seed = seed;
    let mut low = 0.0f32;
    (0..seconds * SPEECH_RATE as usize)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let white = (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
            low = 0.995 * low + 0.005 * white;
            0.004 * white + 0.3 * low
        })
        .collect()
}

/// About `minutes` of ordinary speech (the household turns, in turn by the espeak voices),
/// then a tenth as much room noise; and how many seconds that is.
fn negatives(minutes: usize, dir: &Path) -> anyhow::Result<Vec<f32>> {
    let turns: Vec<&str> = TURNS
        .lines()
        .chain(HELDOUT.lines())
        .filter_map(|l| l.split('\t').nth(2))
        .filter(|t| !t.is_empty() && *t != "text")
        .collect();
    let voices: Vec<&str> = VOICES.iter().copied().filter(|v| *v != "piper").collect();
    let wanted = minutes * 60 * SPEECH_RATE as usize;
    let mut audio = Vec::new();
    let mut round = 0;
    while audio.len() < wanted {
        for (i, chunk) in turns.chunks(8).enumerate() {
            if audio.len() >= wanted {
                break;
            }
            let voice = voices[(i + round) % voices.len()];
            audio.extend(espeak(voice, &chunk.join(" "), dir)?);
            audio.extend(silence(400 + 150 * (i % 5)));
        }
        round += 1;
    }
    audio.extend(room_noise(minutes * 6, 7));
    Ok(audio)
}

/// The detector as it was: one phase, no check, no gate, and the utterance from the
/// detection on.
fn before(config: &WakeConfig) -> WakeConfig {
    WakeConfig {
        phases: 1,
        verify_threshold: 0.0,
        vad_gate: false,
        pre_roll_ms: 0,
        ..config.clone()
    }
}

/// Per condition: clips, heard, request kept.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    clips: usize,
    heard: usize,
    kept: usize,
}

/// Runs `trigger` over a positive; whether it woke in time, and whether the request kept
/// its first word.
fn hear(
    trigger: &mut Trigger,
    stt: &Stt,
    p: &Positive,
    phrase: &str,
) -> anyhow::Result<(bool, bool)> {
    trigger.reset();
    let base = trigger.end();
    for chunk in p.audio.chunks(STEP) {
        let Some(wake) = trigger.push(chunk)? else {
            continue;
        };
        let at = wake.at - base;
        if at < p.start || at > p.end + 2 * SPEECH_RATE as usize {
            continue;
        }
        let from = wake.from.saturating_sub(base);
        let said = &p.audio[from.min(p.end)..p.end];
        let request = if wake.from < wake.at {
            let heard = stt.transcribe_after(said, phrase)?;
            phrase::request(&heard.text, phrase)
        } else {
            stt.transcribe(said)?.text
        };
        let request: String = request.to_lowercase();
        let first = p.request.split_whitespace().next().unwrap_or_default();
        return Ok((true, request.starts_with(first)));
    }
    tracing::debug!(voice = p.voice, pause = p.pause, request = %p.request, best = trigger.best(), "not heard");
    Ok((false, false))
}

/// Runs the set and prints its tables.
pub fn run(
    config: &TerminalConfig,
    negative_minutes: usize,
    positives_too: bool,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("hearth-bench-wake-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let stt = Arc::new(Stt::load(&config.stt)?);
    let mut tts = Tts::load(&config.voice.onnxruntime, &config.tts)?;
    let started = Instant::now();
    let positives = if positives_too {
        positives(&mut tts, &dir)?
    } else {
        Vec::new()
    };
    let negatives = negatives(negative_minutes, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "set: {} positives, {:.1} min of negatives, synthesised in {:.0} s",
        positives.len(),
        negatives.len() as f32 / SPEECH_RATE as f32 / 60.0,
        started.elapsed().as_secs_f32()
    );
    let hours = negatives.len() as f64 / f64::from(SPEECH_RATE) / 3600.0;
    let idle = room_noise(60, 11);
    let phrase = &config.wake.phrase;
    let mut rows = Vec::new();
    for (name, wake_config) in [
        ("before", before(&config.wake)),
        ("after", config.wake.clone()),
    ] {
        let wake = WakeWord::load(&config.voice.onnxruntime, &wake_config)?;
        let checker = checker(&stt, &config.stt, &wake_config)?;
        let mut trigger = Trigger::new(wake, checker, &wake_config, &config.listen);
        trigger.inline_checks(true);
        let mut by_voice: Vec<(&str, Tally, Tally)> = Vec::new();
        for p in &positives {
            let (heard, kept) = hear(&mut trigger, &stt, p, phrase)?;
            let row = match by_voice.iter_mut().position(|(v, ..)| *v == p.voice) {
                Some(i) => &mut by_voice[i],
                None => {
                    by_voice.push((p.voice, Tally::default(), Tally::default()));
                    by_voice.last_mut().expect("just pushed")
                }
            };
            let tally = if p.pause { &mut row.1 } else { &mut row.2 };
            tally.clips += 1;
            tally.heard += usize::from(heard);
            tally.kept += usize::from(kept);
        }
        trigger.reset();
        let cpu = thread_cpu();
        let mut false_wakes = 0;
        let base = trigger.end();
        for chunk in negatives.chunks(STEP) {
            if let Some(wake) = trigger.push(chunk)? {
                false_wakes += 1;
                tracing::info!(
                    config = name,
                    at_s = (wake.at - base) as f32 / SPEECH_RATE as f32,
                    score = wake.score,
                    checked = wake.checked,
                    "false wake"
                );
                trigger.reset();
            }
        }
        let negative_cpu = thread_cpu().zip(cpu).map(|(b, a)| b - a);
        trigger.reset();
        let cpu = thread_cpu();
        for chunk in idle.chunks(STEP) {
            trigger.push(chunk)?;
        }
        let idle_cpu = thread_cpu().zip(cpu).map(|(b, a)| b - a);
        rows.push((name, by_voice, false_wakes, negative_cpu, idle_cpu));
    }

    let pct = |t: Tally, f: fn(Tally) -> usize| {
        if t.clips == 0 {
            "-".to_string()
        } else {
            format!("{:.2}", f(t) as f64 / t.clips as f64)
        }
    };
    println!(
        "wake word on the repo's set ({} positives: {} voices x {} requests, with and without a pause; {:.2} h of negatives)",
        positives.len(),
        VOICES.len(),
        REQUESTS.len(),
        hours
    );
    println!(
        "{:<8} {:<16} {:>12} {:>12} {:>14} {:>14}",
        "", "voice", "recall pause", "recall none", "kept pause", "kept none"
    );
    for (name, by_voice, ..) in &rows {
        let mut all = (Tally::default(), Tally::default());
        for (voice, pause, none) in by_voice {
            println!(
                "{:<8} {:<16} {:>12} {:>12} {:>14} {:>14}",
                name,
                voice,
                pct(*pause, |t| t.heard),
                pct(*none, |t| t.heard),
                pct(*pause, |t| t.kept),
                pct(*none, |t| t.kept)
            );
            for (sum, t) in [(&mut all.0, pause), (&mut all.1, none)] {
                sum.clips += t.clips;
                sum.heard += t.heard;
                sum.kept += t.kept;
            }
        }
        println!(
            "{:<8} {:<16} {:>12} {:>12} {:>14} {:>14}",
            name,
            "all",
            pct(all.0, |t| t.heard),
            pct(all.1, |t| t.heard),
            pct(all.0, |t| t.kept),
            pct(all.1, |t| t.kept)
        );
    }
    println!();
    println!(
        "{:<8} {:>18} {:>28} {:>28}",
        "", "false wakes / h", "CPU on negatives (% core)", "CPU idle, room noise (% core)"
    );
    let share = |cpu: Option<Duration>, seconds: f64| {
        cpu.map_or("n/a".to_string(), |c| {
            format!("{:.2}", c.as_secs_f64() * 100.0 / seconds)
        })
    };
    for (name, _, false_wakes, negative_cpu, idle_cpu) in &rows {
        println!(
            "{:<8} {:>18.1} {:>28} {:>28}",
            name,
            *false_wakes as f64 / hours,
            share(*negative_cpu, hours * 3600.0),
            share(*idle_cpu, idle.len() as f64 / f64::from(SPEECH_RATE))
        );
    }
    Ok(())
}
