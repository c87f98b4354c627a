//! `hearth-hub`: parses the command line, loads the config, starts logging and calls into the
//! library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hearth_hub::config::{HubConfig, DEFAULT_TOML};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "hearth-hub",
    version,
    about = "The hearth hub: broker, language model and memory"
)]
struct Cli {
    /// Config file (TOML). Without it the built-in defaults are used.
    #[arg(long, global = true, env = "HEARTH_HUB_CONFIG")]
    config: Option<PathBuf>,
    /// Override llm.model from the config.
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (the default).
    Run,
    /// Print the default config file.
    Config,
    /// Check that a GGUF model file is complete and loadable, without loading it.
    CheckModel {
        /// The GGUF file.
        path: PathBuf,
    },
    /// Embed texts with the embedding model and print the cosine similarity of the first to
    /// each of the others.
    Embed {
        /// Two or more texts.
        #[arg(required = true, num_args = 2..)]
        texts: Vec<String>,
    },
    /// Export or import memories as JSON lines.
    Memory {
        #[command(subcommand)]
        action: MemoryAction,
    },
    /// Benchmarks; each prints a table.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(Subcommand)]
enum MemoryAction {
    /// Write every memory as one JSON object per line (to stdout, or --out FILE).
    Export {
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read memories from an export; memories with the same id are replaced.
    Import {
        /// The JSON-lines file.
        file: PathBuf,
    },
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn,llama_cpp_2=warn".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth-hub: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<HubConfig> {
    let mut config = match &cli.config {
        Some(path) => HubConfig::load(path)?,
        None => HubConfig::with_defaults(),
    };
    if let Some(model) = &cli.model {
        config.llm.model = model.clone();
    }
    config.validate()?;
    Ok(config)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Config) => {
            print!("{DEFAULT_TOML}");
            Ok(())
        }
        Some(Command::CheckModel { path }) => {
            let s = hearth_hub::llm::gguf::validate(path)?;
            println!(
                "{}: GGUF v{}, {} tensors, architecture {}, name {}, chat template: {}",
                path.display(),
                s.version,
                s.tensors,
                s.architecture.as_deref().unwrap_or("?"),
                s.name.as_deref().unwrap_or("?"),
                if s.has_chat_template {
                    "yes"
                } else {
                    "no (set llm.chat_template_fallback)"
                }
            );
            Ok(())
        }
        Some(Command::Bench {
            which: Bench::Llm { tokens, runs },
        }) => {
            let config = load_config(&cli)?;
            let opts = hearth_hub::bench::LlmBenchOptions {
                tokens: *tokens,
                runs: *runs,
            };
            runtime()?.block_on(hearth_hub::bench::llm(config, opts))
        }
        Some(Command::Embed { texts }) => {
            let config = load_config(&cli)?;
            runtime()?.block_on(async {
                let (embedder, _thread) =
                    hearth_hub::llm::embed::Embedder::start(config.embeddings.clone()).await?;
                let vectors = embedder.embed(texts.clone()).await?;
                println!("{} dimensions", embedder.dim());
                for (text, v) in texts.iter().zip(&vectors).skip(1) {
                    let cos = hearth_hub::llm::embed::cosine(&vectors[0], v);
                    println!("{cos:.3}  {:?} ~ {text:?}", texts[0]);
                }
                Ok(())
            })
        }
        Some(Command::Memory { action }) => {
            let config = load_config(&cli)?;
            let path = &config.memory.path;
            // The store alone: the full-text index catches up when the hub next opens it.
            let store = hearth_hub::memory::MemoryStore::open(&path.join("store"))?;
            match action {
                MemoryAction::Export { out: Some(file) } => {
                    let f = std::fs::File::create(file)
                        .with_context(|| format!("cannot create {}", file.display()))?;
                    let n = store.export_jsonl(std::io::BufWriter::new(f))?;
                    eprintln!(
                        "exported {n} memories from {} to {}",
                        path.display(),
                        file.display()
                    );
                }
                MemoryAction::Export { out: None } => {
                    let n = store.export_jsonl(std::io::stdout().lock())?;
                    eprintln!("exported {n} memories from {}", path.display());
                }
                MemoryAction::Import { file } => {
                    let f = std::fs::File::open(file)
                        .with_context(|| format!("cannot open {}", file.display()))?;
                    let n = store
                        .import_jsonl(std::io::BufReader::new(f))
                        .with_context(|| format!("cannot import {}", file.display()))?;
                    eprintln!("imported {n} memories into {}", path.display());
                }
            }
            Ok(())
        }
        Some(Command::Bench {
            which: Bench::Memory { sizes, queries },
        }) => {
            let config = load_config(&cli)?;
            let opts = hearth_hub::bench::MemoryBenchOptions {
                sizes: sizes.clone(),
                queries: *queries,
            };
            runtime()?.block_on(hearth_hub::bench::memory(config, opts))
        }
        None | Some(Command::Run) => {
            let config = load_config(&cli)?;
            runtime()?.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(wait_for_signal(shutdown.clone()));
                hearth_hub::run(config, shutdown).await
            })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
    shutdown.cancel();
}
