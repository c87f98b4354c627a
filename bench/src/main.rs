//! `hearth-bench`: hearth's benchmarks. Each prints a table and asserts nothing; speed and
//! memory figures in README come from here, never from tests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth_hub::config::HubConfig;

#[derive(Parser)]
#[command(name = "hearth-bench", version, about = "hearth's benchmarks")]
struct Cli {
    /// Hub config file (TOML). Without it the built-in defaults are used.
    #[arg(long, global = true, env = "HEARTH_HUB_CONFIG")]
    config: Option<PathBuf>,
    /// Override llm.model from the config.
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    #[command(subcommand)]
    which: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Hub generation speed against a bare llama-cpp-2 loop, and time to first sentence.
    Llm {
        /// Tokens per run.
        #[arg(long, default_value_t = 128)]
        tokens: usize,
        /// Runs of each kind (medians are shown).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// What switching LoRA adapters between roles costs, and the KV prefix kept per adapter.
    Adapters {
        /// Conversation turns, each followed by another role's job.
        #[arg(long, default_value_t = 6)]
        turns: usize,
        /// The adapters' rank.
        #[arg(long, default_value_t = 16)]
        rank: u64,
    },
    /// Retrieval recall on LoCoMo conversations (R@1/5/10 per category), ingest time and
    /// retrieval latency.
    Locomo {
        /// A folder of LoCoMo JSON files (or one file).
        #[arg(long)]
        data: PathBuf,
        /// Also run a baseline on the same stores: `bm25` (tantivy alone).
        #[arg(long, value_parser = ["bm25"])]
        baseline: Option<String>,
        /// Also rank with each retrieval lever switched, one at a time, on the same stores.
        #[arg(long)]
        ablation: bool,
        /// Keep each conversation's ingested store in this folder and reuse it on the next
        /// run (while tuning `[memory.retrieval]`, which ingest does not depend on). A store
        /// made with other ingest settings or another embedding model is made again.
        #[arg(long)]
        stores: Option<PathBuf>,
        /// Leave out the captions of photos shared in turns (`blip_caption`), which are
        /// otherwise part of the turn's memory as "[shares a photo of ...]".
        #[arg(long)]
        no_captions: bool,
        /// Ingest turns without their speakers' names, as a live terminal sends them (no
        /// `Utterance::speaker`, no "Name: " in the context).
        #[arg(long)]
        no_speakers: bool,
    },
    /// Facts that override earlier ones (MemoryAgentBench FactConsolidation) through the live
    /// ingest path: slots whose current memory holds the last value, single-hop and
    /// multi-hop recall.
    Facts {
        /// The FactConsolidation JSON file (bench/data/factconsolidation-6k.json).
        #[arg(long)]
        data: PathBuf,
        /// Ingest only the first N facts (and ask only questions answered in them).
        #[arg(long)]
        limit: Option<usize>,
        /// Make the memory store in this folder and keep it (cleared first if an earlier
        /// run made it; any other non-empty folder is refused).
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// What is stored: store/skip precision and recall of the hub's code path on labelled
    /// household turns, and on LoCoMo turns against LoCoMo's observations.
    Writes {
        /// Labelled turns (`label<TAB>kind<TAB>text`), one file or several.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "bench/data/household-turns.tsv,bench/data/household-turns-heldout.tsv"
        )]
        turns: Vec<PathBuf>,
        /// A folder of LoCoMo JSON files (or one file) whose observations label the turns.
        #[arg(long)]
        locomo: Option<PathBuf>,
        /// Also list up to this many turns decided against their label, per set.
        #[arg(long, default_value_t = 0)]
        show_wrong: usize,
    },
    /// Several rooms at once: simulated terminals against an in-process hub; answer
    /// latency, queue wait, fairness across rooms, and what was lost.
    Rooms {
        /// Simulated terminals, one room each.
        #[arg(long, default_value_t = 8)]
        terminals: usize,
        /// Utterances per terminal, each sent after the previous answer.
        #[arg(long, default_value_t = 20)]
        utterances: usize,
        /// The longest reply, in tokens.
        #[arg(long, default_value_t = 32)]
        max_tokens: u32,
        /// Terminals more, all in one busy room, sending like the others.
        #[arg(long, default_value_t = 0)]
        busy_room_terminals: usize,
        /// Serve requests first come, first served instead of rooms taking turns
        /// (`llm.fair_rooms = false`), to compare.
        #[arg(long)]
        first_come: bool,
        /// Run twice, the rooms decoded one at a time and together (`llm.parallel` at one
        /// sequence per terminal), and compare aggregate tokens/s, first-chunk latency and
        /// fairness.
        #[arg(long)]
        concurrent: bool,
        /// Each terminal pauses up to this many ms before each utterance (spread evenly, the
        /// same in every run), as people do between an answer and their next question; 0:
        /// none.
        #[arg(long, default_value_t = 0)]
        think_ms: u64,
    },
    /// A spoken turn end to end: a real hub and, per request, a real voice terminal reading a
    /// WAV file at a microphone's pace; ms from the end of speech to the endpoint decision,
    /// the transcript, the utterance sent, the first reply chunk and the first reply sample.
    /// Uses the test hub config with `--model` (default: the test chat model).
    Voice {
        /// Requests ("hey jarvis" run straight on into a request), cycling through voices.
        #[arg(long, default_value_t = 12)]
        requests: usize,
        /// The terminal's speech-to-text engine.
        #[arg(long, default_value = "whisper", value_parser = ["whisper", "moonshine"])]
        stt_engine: String,
        /// A `[listen]` setting for the terminal, `KEY=VALUE` (repeatable), to compare
        /// endpointing settings: `--listen early_decode_ms=150`.
        #[arg(long = "listen")]
        listen: Vec<String>,
        /// An `[stt]` setting for the terminal, `KEY=VALUE` (repeatable): `--stt threads=1`.
        #[arg(long = "stt")]
        stt: Vec<String>,
        /// A `[hub]`'s `[llm]` setting, `KEY=VALUE` (repeatable): `--llm first_clause_words=0`.
        #[arg(long = "llm")]
        llm: Vec<String>,
        /// A pause this long (ms) in the middle of each request that can take one ("tell me a
        /// short story | about a lighthouse keeper"): counts the requests the endpointer cuts
        /// off there.
        #[arg(long, default_value_t = 0)]
        pause_ms: u32,
    },
    /// Memory ingest rate, write latency, hybrid retrieval p50/p99 and disk size.
    Memory {
        /// Store sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        sizes: Vec<usize>,
        /// Retrieval queries per size.
        #[arg(long, default_value_t = 300)]
        queries: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log_to_stderr("info,rumqttd=warn,llama_cpp_2=warn");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<HubConfig> {
    Ok(HubConfig::from_args(
        cli.config.as_deref(),
        cli.model.as_deref(),
    )?)
}

/// The hub's log (`hearth_hub::stderr_log`), and beside it what `hearth-bench rooms` reads
/// of the hub's turns.
fn log_to_stderr(default_filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(hearth_hub::stderr_log(default_filter))
        .with(hearth_bench::rooms::first_token_layer())
        .init();
}

/// This process's command line, quoted where a shell would need it.
fn command_line() -> String {
    std::env::args()
        .enumerate()
        .map(|(i, a)| {
            let a = if i == 0 {
                // The program by its name, not the build folder it ran from.
                std::path::Path::new(&a)
                    .file_name()
                    .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
            } else {
                a
            };
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.which {
        Bench::Voice {
            requests,
            stt_engine,
            listen,
            stt,
            llm,
            pause_ms,
        } => {
            let opts = hearth_bench::voice::VoiceBenchOptions {
                requests: requests.max(1),
                model: cli.model.clone(),
                stt_engine,
                listen,
                stt,
                llm,
                pause_ms,
            };
            runtime.block_on(hearth_bench::voice::run(opts))
        }
        Bench::Adapters { turns, rank } => {
            let opts = hearth_bench::adapters::AdapterBenchOptions { turns, rank };
            runtime.block_on(hearth_bench::adapters::run(config, opts))
        }
        Bench::Llm { tokens, runs } => {
            let opts = hearth_bench::speed::LlmBenchOptions { tokens, runs };
            runtime.block_on(hearth_bench::speed::llm(config, opts))
        }
        Bench::Rooms {
            terminals,
            utterances,
            max_tokens,
            busy_room_terminals,
            first_come,
            concurrent,
            think_ms,
        } => {
            let mut config = config;
            config.llm.fair_rooms &= !first_come;
            let opts = hearth_bench::rooms::RoomsBenchOptions {
                terminals,
                utterances,
                max_tokens,
                busy_room_terminals,
                concurrent,
                think_ms,
            };
            runtime.block_on(hearth_bench::rooms::rooms(config, opts))
        }
        Bench::Writes {
            turns,
            locomo,
            show_wrong,
        } => {
            let mut rows = hearth_bench::writes::household(&turns)?;
            if let Some(data) = locomo {
                rows.push(hearth_bench::writes::locomo(&data)?);
            }
            hearth_bench::writes::print(&rows, show_wrong);
            Ok(())
        }
        Bench::Memory { sizes, queries } => {
            let opts = hearth_bench::speed::MemoryBenchOptions { sizes, queries };
            runtime.block_on(hearth_bench::speed::memory(config, opts))
        }
        Bench::Locomo {
            data,
            baseline,
            ablation,
            stores,
            no_captions,
            no_speakers,
        } => {
            let opts = hearth_bench::locomo::LocomoOptions {
                data,
                baseline: baseline.is_some(),
                ablation,
                stores,
                captions: !no_captions,
                speakers: !no_speakers,
            };
            runtime.block_on(hearth_bench::locomo::bench(config, opts))
        }
        Bench::Facts { data, limit, store } => {
            let opts = hearth_bench::facts::FactsOptions {
                data,
                limit,
                max_questions: None,
                store,
                command: command_line(),
            };
            runtime.block_on(hearth_bench::facts::bench(config, opts))
        }
    }
}
