//! `hearth-bench voice`: a turn end to end through the real binaries. A real hub (embedded
//! broker, the configured chat model) and, per request, a real voice terminal reading a WAV
//! file at a microphone's pace (`--input-wav FILE --realtime`) and speaking into a WAV file.
//!
//! Each request is "hey jarvis" run straight on into a request, with no pause, spoken by the
//! Piper voice (through `hearth-terminal say`) or an espeak-ng voice, after a second of
//! silence. The end of speech is known from the file (the clip's last sample over the noise
//! floor); the terminal's timeline marks (`hearth_terminal::timeline`, one clock) give the
//! rest: the endpoint decision, the transcript, the utterance sent, the reply's first chunk,
//! and the reply's first sample taken for the speaker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hearth_tests::{bin, wait_for_log, Hub, Terminal};

/// The requests, after "hey jarvis"; each is said by each voice in turn. `|` is where a
/// person might stop for a moment (`--pause-ms`): what comes before it is a request on its
/// own ("tell me a short story"), or would be but for its time ("set a timer"), which is
/// where an endpointer that ends finished requests sooner can cut.
const REQUESTS: [&str; 6] = [
    "what time is it",
    "set a timer | for twenty minutes",
    "remind me to water the plants | tomorrow morning",
    "what is the capital | of france",
    "tell me a short story | about a lighthouse keeper",
    "how many days are there | in a leap year",
];

/// The voices: Piper, then espeak-ng ones.
const VOICES: [&str; 3] = ["piper", "en-us+f5", "en-us+f3"];

/// Options of the voice benchmark.
#[derive(Debug, Clone)]
pub struct VoiceBenchOptions {
    /// Requests to run (at least 12 for the README figures), cycling through voices.
    pub requests: usize,
    /// The chat model (the test model when `None`).
    pub model: Option<PathBuf>,
    /// The terminal's `stt.engine` ("whisper" or "moonshine").
    pub stt_engine: String,
    /// The terminal's `[listen]` settings to change, as `KEY=VALUE` TOML lines.
    pub listen: Vec<String>,
    /// The terminal's `[stt]` settings to change, as `KEY=VALUE` TOML lines.
    pub stt: Vec<String>,
    /// The hub's `[llm]` settings to change, as `KEY=VALUE` TOML lines.
    pub llm: Vec<String>,
    /// A pause this long (ms) where a request has a `|`; 0: none.
    pub pause_ms: u32,
}

/// A request's audio: the WAV file and where speech ends in it, in ms.
struct Request {
    text: String,
    voice: &'static str,
    wav: PathBuf,
    speech_end_ms: f64,
    /// Whether it has a pause in it.
    paused: bool,
}

/// Synthesises "hey jarvis, <request>" with `voice` into `dir`, with a second of silence
/// before and eight after (the terminal keeps hearing silence while it answers), and
/// `pause_ms` of silence at the request's `|`.
fn synthesise(
    dir: &Path,
    i: usize,
    voice: &'static str,
    request: &str,
    pause_ms: u32,
) -> anyhow::Result<Request> {
    let text = format!("hey jarvis {request}");
    let parts: Vec<&str> = if pause_ms > 0 {
        text.split('|').map(str::trim).collect()
    } else {
        vec![text.as_str()]
    };
    let text = text.replace(" |", "");
    let mut rate = 0;
    let mut spoken: Vec<Vec<i16>> = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let raw = dir.join(format!("raw-{i}-{k}.wav"));
        let (speech, r) = speak(voice, &part.replace(" |", ""), &raw)?;
        rate = r;
        spoken.push(speech);
    }
    let pause = vec![0i16; pause_ms as usize * rate / 1000];
    let speech: Vec<i16> = spoken.join(pause.as_slice());
    let wav = dir.join(format!("request-{i}.wav"));
    let mut writer = hound::WavWriter::create(
        &wav,
        hound::WavSpec {
            channels: 1,
            sample_rate: rate as u32,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    )?;
    for &s in std::iter::repeat_n(&0i16, rate)
        .chain(&speech)
        .chain(std::iter::repeat_n(&0i16, 8 * rate))
    {
        writer.write_sample(s)?;
    }
    writer.finalize()?;
    let ms = |samples: usize| samples as f64 * 1000.0 / rate as f64;
    Ok(Request {
        text,
        voice,
        wav,
        speech_end_ms: ms(rate + speech.len()),
        paused: spoken.len() > 1,
    })
}

/// `text` said by `voice` (written to `raw` on the way), from its first sample over the noise
/// floor to its last, and the sample rate.
fn speak(voice: &str, text: &str, raw: &Path) -> anyhow::Result<(Vec<i16>, usize)> {
    let status = if voice == "piper" {
        std::process::Command::new(bin("hearth-terminal"))
            .args(["say", "--whole", text, "--out"])
            .arg(raw)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .context("run hearth-terminal say")?
    } else {
        std::process::Command::new("espeak-ng")
            .args(["-v", voice, "-w"])
            .arg(raw)
            .arg(text)
            .status()
            .context("run espeak-ng (apt install espeak-ng)")?
    };
    anyhow::ensure!(
        status.success(),
        "synthesising {text:?} with {voice} failed"
    );
    let mut reader = hound::WavReader::open(raw)?;
    let spec = reader.spec();
    anyhow::ensure!(
        spec.sample_format == hound::SampleFormat::Int && spec.bits_per_sample == 16,
        "{} is not 16-bit PCM",
        raw.display()
    );
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let channels = usize::from(spec.channels);
    let mono: Vec<i16> = samples.chunks(channels).map(|c| c[0]).collect();
    let first = mono
        .iter()
        .position(|s| s.unsigned_abs() > 328)
        .unwrap_or(0);
    let last = mono
        .iter()
        .rposition(|s| s.unsigned_abs() > 328)
        .unwrap_or(0);
    Ok((
        mono[first..=last.max(first)].to_vec(),
        spec.sample_rate as usize,
    ))
}

/// CPU time of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Waits until process `pid` uses no CPU for half a second, or `limit`.
async fn wait_idle(pid: u32, limit: Duration) {
    let started = std::time::Instant::now();
    let mut last = cpu_ticks(pid);
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = cpu_ticks(pid);
        if now.is_none() || now == last {
            return;
        }
        last = now;
    }
}

/// The timeline marks in a terminal log: (event, ms).
fn marks(log: &str) -> Vec<(String, f64)> {
    log.lines()
        .filter(|l| l.contains("timeline"))
        .filter_map(|l| {
            let event = l.split("event=\"").nth(1)?.split('"').next()?.to_string();
            let t = l.split("t_ms=").nth(1)?.split_whitespace().next()?;
            Some((event, t.trim_matches('"').parse().ok()?))
        })
        .collect()
}

/// One request's stages, in ms after the end of speech.
#[derive(Debug, Default, Clone, Copy)]
struct Stages {
    endpoint: f64,
    transcript: f64,
    sent: f64,
    first_chunk: f64,
    first_sample: f64,
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// `toml` with `settings` (`KEY=VALUE` lines) in its `[section]`, added if missing: a key
/// the section already sets is replaced where it stands, a new one goes at the top.
fn set_in_section(toml: &str, section: &str, settings: &[String]) -> anyhow::Result<String> {
    let header = format!("[{section}]");
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_string();
    for (i, setting) in settings.iter().enumerate() {
        anyhow::ensure!(
            setting.contains('=') && !key(setting).is_empty(),
            "--{section} takes KEY=VALUE, not {setting:?}"
        );
        anyhow::ensure!(
            settings[..i].iter().all(|s| key(s) != key(setting)),
            "{section}.{} is set twice",
            key(setting)
        );
    }
    let mut out: Vec<String> = Vec::new();
    let mut unset: Vec<&String> = settings.iter().collect();
    let mut inside = false;
    let mut top = None;
    for line in toml.lines() {
        if line.trim_start().starts_with('[') {
            inside = line.trim() == header;
            out.push(line.to_string());
            if inside {
                top = Some(out.len());
            }
            continue;
        }
        match unset.iter().position(|s| inside && key(s) == key(line)) {
            Some(i) => out.push(unset.remove(i).clone()),
            None => out.push(line.to_string()),
        }
    }
    let rest: Vec<String> = unset.into_iter().cloned().collect();
    match top {
        Some(at) => out.splice(at..at, rest).for_each(drop),
        None if !rest.is_empty() => {
            out.push(header);
            out.extend(rest);
        }
        None => {}
    }
    Ok(out.join("\n") + "\n")
}

/// Runs the benchmark and prints its table.
pub async fn run(opts: VoiceBenchOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = hearth_tests::free_port();
    let mut toml = hearth_tests::hub_toml(dir.path(), port, "");
    if let Some(model) = &opts.model {
        let test_model = hearth_tests::smollm2().display().to_string();
        toml = toml.replace(&test_model, &model.display().to_string());
    }
    if !opts.llm.is_empty() {
        toml = set_in_section(&toml, "llm", &opts.llm)?;
    }
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, toml)?;
    let hub = Hub::launch(&config, port, dir.path()).await?;
    let hub_pid = hub.child.id();
    let mut rows: Vec<(Request, Option<Stages>, String, bool)> = Vec::new();
    let mut hub_lines = 0;
    for i in 0..opts.requests {
        let voice = VOICES[i % VOICES.len()];
        let request = REQUESTS[(i / VOICES.len() + i) % REQUESTS.len()];
        let req = synthesise(dir.path(), i, voice, request, opts.pause_ms)?;
        // The hub finishes the last turn (the rest of its reply, memory writes) first: on
        // this machine it shares the cores with the terminal, which a household's does not.
        if let Some(pid) = hub_pid {
            wait_idle(pid, Duration::from_secs(60)).await;
        }
        let out = dir.path().join(format!("reply-{i}.wav"));
        let id = format!("bench{i}");
        let wav = req.wav.to_string_lossy().into_owned();
        let out_arg = out.to_string_lossy().into_owned();
        let config = dir.path().join(format!("terminal-{id}.toml"));
        // The default engine is left unsaid, so that an older terminal can be measured too.
        let mut stt = opts.stt.clone();
        if opts.stt_engine != "whisper" {
            stt.push(format!("engine = \"{}\"", opts.stt_engine));
        }
        let mut toml = format!(
            "[terminal]\nid = \"{id}\"\nroom = \"{id}\"\n[hub]\nport = {port}\nusername = \"{}\"\npassword = \"{}\"\n",
            hearth_tests::USER,
            hearth_tests::PASSWORD,
        );
        for (section, settings) in [("stt", &stt), ("listen", &opts.listen)] {
            if !settings.is_empty() {
                toml = set_in_section(&toml, section, settings)?;
            }
        }
        std::fs::write(&config, toml)?;
        let terminal = Terminal::launch(
            dir.path(),
            &config,
            &id,
            &["--input-wav", &wav, "--realtime", "--output-wav", &out_arg],
        )?;
        let reached = wait_for_log(
            &terminal.log,
            "event=\"first sample\"",
            Duration::from_secs(60),
        )
        .await;
        let log = std::fs::read_to_string(&terminal.log).unwrap_or_default();
        drop(terminal);
        if let Err(e) = &reached {
            let tail: Vec<&str> = log.lines().rev().take(6).collect();
            eprintln!("request {i}: no reply sample ({e:#}); the terminal's last lines:");
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
        let heard = log
            .lines()
            .find(|l| l.contains(": heard text="))
            .and_then(|l| l.split("text=").nth(1))
            .map(|t| t.split(" end=").next().unwrap_or(t).to_string())
            .unwrap_or_default();
        let m = marks(&log);
        let at = |event: &str| m.iter().find(|(e, _)| e == event).map(|(_, t)| *t);
        // Ended before the speech did: at the pause, or as speech resumed after it, before
        // the voice detector heard that (what followed was not part of the request).
        let cut = match (at("mic"), at("endpoint")) {
            (Some(mic), Some(endpoint)) => req.paused && endpoint < mic + req.speech_end_ms,
            _ => false,
        };
        let stages = match (reached, at("mic")) {
            _ if cut => None,
            (Ok(_), Some(mic)) => {
                let end = mic + req.speech_end_ms;
                let after = |event: &str| at(event).map_or(f64::NAN, |t| t - end);
                Some(Stages {
                    endpoint: after("endpoint"),
                    transcript: after("transcript"),
                    sent: after("sent"),
                    first_chunk: after("first chunk"),
                    first_sample: after("first sample"),
                })
            }
            _ => None,
        };
        if std::env::var_os("HEARTH_BENCH_TRACE").is_some() {
            for line in log.lines().filter(|l| {
                [
                    "wake word",
                    "heard",
                    "early",
                    "timeline",
                    "listening",
                    "endpoint",
                ]
                .iter()
                .any(|k| l.contains(k))
            }) {
                eprintln!("    {line}");
            }
            // The hub's side of the turn: when it heard the utterance, recalled, started and
            // finished answering (its log from this request on).
            let hub_log = hub.log_text();
            for line in hub_log.lines().skip(hub_lines).filter(|l| {
                [
                    "utterance",
                    "memory context",
                    "answering",
                    "answered",
                    "chunk",
                ]
                .iter()
                .any(|k| l.contains(k))
            }) {
                eprintln!("    hub: {line}");
            }
            hub_lines = hub_log.lines().count();
        }
        eprintln!(
            "{i:>2} {:<9} {:<58} heard {heard:<50} {}",
            req.voice,
            req.text,
            stages.map_or(if cut { "cut off at the pause" } else { "no reply" }.to_string(), |s| format!(
                "endpoint {:.0} transcript {:.0} sent {:.0} first chunk {:.0} first sample {:.0} ms",
                s.endpoint, s.transcript, s.sent, s.first_chunk, s.first_sample
            ))
        );
        rows.push((req, stages, heard, cut));
    }
    let done: Vec<Stages> = rows.iter().filter_map(|(_, s, _, _)| *s).collect();
    println!(
        "voice turn end to end, stt.engine = {}: {} of {} requests answered (\"hey jarvis\" run straight on; voices {}), ms after the end of speech",
        opts.stt_engine,
        done.len(),
        rows.len(),
        VOICES.join(", ")
    );
    let paused = rows.iter().filter(|(r, ..)| r.paused).count();
    if paused > 0 {
        let cut = rows.iter().filter(|(.., cut)| *cut).count();
        println!(
            "cut off at a {} ms pause: {cut} of {paused} requests with one (not in the stages)",
            opts.pause_ms
        );
    }
    println!("{:<44} {:>8} {:>8}", "stage", "p50", "p90");
    let stage = |name: &str, f: fn(&Stages) -> f64| {
        let mut v: Vec<f64> = done.iter().map(f).filter(|x| x.is_finite()).collect();
        let p50 = percentile(&mut v, 0.5);
        let p90 = percentile(&mut v, 0.9);
        println!("{name:<44} {p50:>8.0} {p90:>8.0}");
    };
    stage("endpoint decision", |s| s.endpoint);
    stage("transcript", |s| s.transcript);
    stage("utterance sent", |s| s.sent);
    stage("first reply chunk", |s| s.first_chunk);
    stage("first reply sample to the speaker", |s| s.first_sample);
    let mut after_endpoint: Vec<f64> = done
        .iter()
        .map(|s| s.transcript - s.endpoint)
        .filter(|x| x.is_finite())
        .collect();
    println!(
        "{:<44} {:>8.0} {:>8.0}",
        "transcript after the endpoint decision",
        percentile(&mut after_endpoint.clone(), 0.5),
        percentile(&mut after_endpoint, 0.9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::set_in_section;

    #[test]
    fn a_setting_replaces_the_same_key_and_adds_a_new_one_or_a_section() {
        let toml = "[mqtt]\nport = 1\n[llm]\nthreads = 1\nthreads_batch = 2\n";
        let set = |s: &[&str], section| {
            let s: Vec<String> = s.iter().map(|s| s.to_string()).collect();
            set_in_section(toml, section, &s)
        };
        assert_eq!(
            set(&["threads_batch = 1", "first_clause_words=0"], "llm").unwrap(),
            "[mqtt]\nport = 1\n[llm]\nfirst_clause_words=0\nthreads = 1\nthreads_batch = 1\n"
        );
        assert_eq!(
            set(&["silence_ms = 600"], "listen").unwrap(),
            format!("{toml}[listen]\nsilence_ms = 600\n")
        );
        assert!(set(&["threads"], "llm").is_err());
        assert!(set(&["threads = 1", "threads=2"], "llm").is_err());
    }
}
