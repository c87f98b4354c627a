//! `hearth-terminal`: parses the command line, loads the config, starts logging and runs the
//! terminal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth_terminal::config::{TerminalConfig, DEFAULT_TOML};
use hearth_terminal::frontend::voice::Source;
use hearth_terminal::Mode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "hearth-terminal", version, about = "A hearth room terminal")]
struct Cli {
    /// Config file (TOML). Without it the built-in defaults are used.
    #[arg(long, env = "HEARTH_TERMINAL_CONFIG")]
    config: Option<PathBuf>,
    /// Text mode: type to the hub on stdin, read its replies on stdout.
    #[arg(long)]
    text: bool,
    /// Override terminal.id.
    #[arg(long)]
    id: Option<String>,
    /// Override terminal.room.
    #[arg(long)]
    room: Option<String>,
    /// Override hub.host.
    #[arg(long)]
    host: Option<String>,
    /// Override hub.port.
    #[arg(long)]
    port: Option<u16>,
    /// Voice mode with this WAV file as the microphone (overrides voice.input_wav).
    #[arg(long)]
    input_wav: Option<PathBuf>,
    /// Read --input-wav at the pace of a live microphone (sets voice.input_realtime).
    #[arg(long)]
    realtime: bool,
    /// Play earcons and speech into this WAV file (overrides voice.output_wav).
    #[arg(long)]
    output_wav: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the default config file.
    Config,
    /// Transcribe WAV files with the configured speech-to-text model and print what was heard,
    /// with timing and the prosody features the hub would get.
    Transcribe {
        /// WAV files, any rate and channel count.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Measure the voice pipeline on this machine and print a table: speech-to-text speed,
    /// end of speech to transcript, idle-listening CPU, peak memory.
    Bench {
        /// WAV files of speech; without them espeak-ng speaks a few requests.
        files: Vec<PathBuf>,
        /// Times each clip is transcribed.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Seconds of idle audio for the listening measure.
        #[arg(long, default_value_t = 30)]
        idle_s: u32,
    },
    /// Measure the wake word on the repo's set and print tables: recall with and without a
    /// pause after it, whether the request keeps its first word, false wakes per hour on
    /// ordinary speech and room noise, and CPU; before (one phase, no check, no gate) and
    /// after (as configured). Takes about ten minutes per hour of negatives.
    BenchWake {
        /// Minutes of ordinary speech for the false-wake measure (room noise adds a tenth).
        #[arg(long, default_value_t = 60)]
        negative_minutes: usize,
        /// Leave the positives out (tuning false wakes).
        #[arg(long)]
        negatives_only: bool,
    },
    /// Speak text with the configured Piper voice into a WAV file, sentence by sentence as a
    /// reply would be, and print how long synthesis took.
    Say {
        /// What to say.
        text: String,
        /// The WAV file to write.
        #[arg(long, short)]
        out: PathBuf,
        /// Say it in one piece, as a person would, instead of piece by piece as a reply.
        #[arg(long)]
        whole: bool,
    },
    /// Word error rate and decode time of each speech-to-text engine (the config's whisper
    /// and Moonshine models, and any given here) on espeak-ng, Piper and human speech.
    Wer {
        /// Another whisper ggml model to measure.
        #[arg(long)]
        whisper: Vec<PathBuf>,
        /// Another Moonshine model folder to measure.
        #[arg(long)]
        moonshine: Vec<PathBuf>,
        /// The human-speech clip (JFK's "ask not"); default `jfk.wav` beside the whisper model,
        /// where `scripts/fetch-models jfk-wav` puts it, and left out when it is not there.
        #[arg(long)]
        jfk: Option<PathBuf>,
        /// Print every transcript that is not word-perfect.
        #[arg(long, short)]
        verbose: bool,
    },
    /// List the sound devices (ids for voice.input_device and voice.output_device).
    Devices,
    /// Run the wake word over WAV files and print where it fires, with the peak score.
    Wake {
        /// WAV files, any rate and channel count.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    fixed_mmap_threshold();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,hearth_terminal=info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth-terminal: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc raises its mmap threshold as large buffers are freed; after that, whisper.cpp's and
/// onnxruntime's per-utterance buffers (tens of megabytes) stay in the heap when freed, and the
/// listener's and the speaker's peaks add up: 315 MiB against 267 MiB at peak in
/// `hearth-terminal bench`. A fixed 1 MiB threshold keeps large buffers mapped, and given back
/// on free (128 KiB saved 12 MiB more but slowed synthesis by a third: more page faults). glibc reads it when the process starts, so the terminal executes itself once with it
/// (set `MALLOC_MMAP_THRESHOLD_` yourself to choose another value).
fn fixed_mmap_threshold() {
    const VAR: &str = "MALLOC_MMAP_THRESHOLD_";
    if !cfg!(all(target_os = "linux", target_env = "gnu")) || std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(VAR, "1048576")
        .exec();
    // exec returns only when it failed: go on with glibc's defaults.
    eprintln!("hearth-terminal: could not restart with {VAR} set ({error}); continuing");
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Config) = cli.command {
        print!("{DEFAULT_TOML}");
        return Ok(());
    }
    let mut config = match &cli.config {
        Some(path) => TerminalConfig::load(path)?,
        None => TerminalConfig::default(),
    };
    if let Some(id) = cli.id {
        config.terminal.id = id;
    }
    if let Some(room) = cli.room {
        config.terminal.room = room;
    }
    if let Some(host) = cli.host {
        config.hub.host = host;
    }
    if let Some(port) = cli.port {
        config.hub.port = port;
    }
    config.validate()?;
    match cli.command {
        Some(Command::Transcribe { files }) => return transcribe(&config, &files),
        Some(Command::Wake { files }) => return wake(&config, &files),
        Some(Command::Say { text, out, whole }) => return say(&config, &text, &out, whole),
        Some(Command::Devices) => return devices(),
        Some(Command::BenchWake {
            negative_minutes,
            negatives_only,
        }) => {
            return hearth_terminal::wake::bench::run(
                &config,
                negative_minutes.max(1),
                !negatives_only,
            )
        }
        Some(Command::Bench {
            files,
            runs,
            idle_s,
        }) => return hearth_terminal::bench::run(&config, &files, runs.max(1), idle_s.max(1)),
        Some(Command::Wer {
            whisper,
            moonshine,
            jfk,
            verbose,
        }) => return wer(&config, &whisper, &moonshine, jfk, verbose),
        _ => {}
    }
    if let Some(path) = cli.input_wav {
        config.voice.input_wav = Some(path);
    }
    if let Some(path) = cli.output_wav {
        config.voice.output_wav = Some(path);
    }
    let mode = match (&config.voice.input_wav, cli.text) {
        (Some(path), false) => Mode::Voice(Source::Wav {
            path: path.clone(),
            realtime: config.voice.input_realtime || cli.realtime,
        }),
        (_, true) => Mode::Text,
        (None, false) => Mode::Voice(Source::Device(config.voice.input_device.clone())),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal as unix_signal, SignalKind};
            if let Ok(mut term) = unix_signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                signal.cancel();
            }
        });
        hearth_terminal::run(config, mode, shutdown).await
    })
}

fn transcribe(config: &TerminalConfig, files: &[PathBuf]) -> anyhow::Result<()> {
    use hearth_terminal::audio::{features, wav, SPEECH_RATE};
    let stt = hearth_terminal::stt::Stt::load(&config.stt)?;
    let mut failed = 0;
    for file in files {
        let clip = match wav::read(file) {
            Ok(clip) => clip.at_rate(SPEECH_RATE),
            Err(e) => {
                eprintln!("hearth-terminal: {e}");
                failed += 1;
                continue;
            }
        };
        let heard = stt.transcribe(&clip.samples)?;
        let f = features::of(&clip.samples, clip.rate, heard.words());
        println!("{}\t{}", file.display(), heard.text);
        eprintln!(
            "  {:.2} s of audio, decoded in {} ms (real-time factor {:.2}), no-speech {:.2}; \
             loudness {:?} dBFS, {:?} words/s, pitch {:?} Hz",
            clip.seconds(),
            heard.took.as_millis(),
            heard.took.as_secs_f32() / clip.seconds().max(1e-3),
            heard.no_speech,
            f.loudness_dbfs,
            f.speaking_rate_wps,
            f.pitch_hz,
        );
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be read", files.len());
    }
    Ok(())
}

fn wer(
    config: &TerminalConfig,
    whisper: &[PathBuf],
    moonshine: &[PathBuf],
    jfk: Option<PathBuf>,
    verbose: bool,
) -> anyhow::Result<()> {
    use hearth_terminal::bench::wer;
    let jfk = match jfk {
        Some(path) => Some(path),
        None => {
            let beside =
                hearth_terminal::config::expand_home(&config.stt.model).with_file_name("jfk.wav");
            if !beside.is_file() {
                eprintln!(
                    "hearth-terminal: no {} (scripts/fetch-models jfk-wav); measuring without human speech",
                    beside.display()
                );
            }
            beside.is_file().then_some(beside)
        }
    };
    let candidates = wer::Candidate::from_config(&config.stt, whisper, moonshine);
    wer::run(config, &candidates, jfk.as_deref(), verbose)
}

fn wake(config: &TerminalConfig, files: &[PathBuf]) -> anyhow::Result<()> {
    use hearth_terminal::audio::{wav, SPEECH_RATE};
    use hearth_terminal::wake::{WakeWord, STEP};
    let mut detector = WakeWord::load(&config.voice.onnxruntime, &config.wake)?;
    for file in files {
        let clip = wav::read(file)?.at_rate(SPEECH_RATE);
        detector.reset();
        let started = std::time::Instant::now();
        let mut peak = 0.0f32;
        let mut fired = Vec::new();
        for (i, chunk) in clip.samples.chunks(STEP).enumerate() {
            if let Some(d) = detector.push(chunk)? {
                fired.push(format!(
                    "{:.2} s ({:.2})",
                    (i + 1) as f32 * STEP as f32 / SPEECH_RATE as f32,
                    d.score
                ));
            }
            peak = peak.max(detector.last_score());
        }
        let took = started.elapsed();
        println!(
            "{}\tpeak {peak:.3}\tfired: {}",
            file.display(),
            if fired.is_empty() {
                "no".to_string()
            } else {
                fired.join(", ")
            }
        );
        eprintln!(
            "  {:.2} s of audio in {} ms: {:.1} ms CPU per second of audio",
            clip.seconds(),
            took.as_millis(),
            took.as_secs_f32() * 1000.0 / clip.seconds().max(1e-3)
        );
    }
    Ok(())
}

fn say(
    config: &TerminalConfig,
    text: &str,
    out: &std::path::Path,
    whole: bool,
) -> anyhow::Result<()> {
    use hearth_terminal::audio::{wav, Clip};
    use hearth_terminal::tts::{pieces, Tts};
    let mut tts = Tts::load(&config.voice.onnxruntime, &config.tts)?;
    let mut all = Clip {
        samples: Vec::new(),
        rate: tts.rate(),
    };
    let pieces = if whole {
        vec![text.to_string()]
    } else {
        pieces(
            text,
            config.tts.first_piece_words,
            config.tts.max_piece_words,
        )
    };
    for (i, piece) in pieces.iter().enumerate() {
        let spoken = tts.synthesize(piece)?;
        eprintln!(
            "  piece {}: {:.2} s of audio in {} ms (real-time factor {:.2}): {piece:?}",
            i + 1,
            spoken.clip.seconds(),
            spoken.took.as_millis(),
            spoken.took.as_secs_f32() / spoken.clip.seconds().max(1e-3)
        );
        all.samples.extend(spoken.clip.samples);
    }
    wav::write(out, &all)?;
    println!("{}\t{:.2} s", out.display(), all.seconds());
    Ok(())
}

fn devices() -> anyhow::Result<()> {
    let devices = hearth_terminal::audio::device::list()?;
    if devices.is_empty() {
        println!("no sound devices");
    }
    for d in devices {
        let mark = match (d.default_input, d.default_output) {
            (true, true) => " (default input and output)",
            (true, false) => " (default input)",
            (false, true) => " (default output)",
            (false, false) => "",
        };
        println!("{}{mark}\t{}", d.id, d.description.replace('\n', " "));
        if let Some(input) = d.input {
            println!("  input:  {input}");
        }
        if let Some(output) = d.output {
            println!("  output: {output}");
        }
    }
    Ok(())
}
