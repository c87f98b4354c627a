//! `hearth-hub`: parses the command line, loads the config, starts logging and calls into the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hearth_hub::backup;
use hearth_hub::config::{HubConfig, DEFAULT_TOML};
use hearth_hub::train::TrainOptions;
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
    /// Serve the dashboard (`dashboard.enabled = true`) whatever the config says.
    #[arg(long, global = true)]
    dashboard: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (the default).
    Run,
    /// Print the default config file.
    Config,
    /// Print the GPU backends this hub was built with and the compute devices llama.cpp
    /// finds on this machine (where `llm.gpu_layers` can offload to).
    Devices,
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
    /// Score the emotion of a turn as the hub does, and show every signal behind it, the tone
    /// line, the recall shape and how Hearth's mood would move.
    Emotion {
        /// What the user said.
        text: String,
        /// Loudness from the voice terminal, in dBFS.
        #[arg(long, allow_hyphen_values = true)]
        loudness: Option<f32>,
        /// Speaking rate from the voice terminal, in words per second.
        #[arg(long)]
        rate: Option<f32>,
        /// The user's turn before it (for topic switches).
        #[arg(long)]
        previous: Option<String>,
    },
    /// Pair a terminal: register it in a room and write its secret once (to --out, mode
    /// 0600, or to stdout). Works while the hub runs.
    Pair {
        /// The terminal id (its MQTT username and topic segment).
        id: String,
        /// The room it stands in; everything it sends counts as said there.
        #[arg(long)]
        room: String,
        /// The hub's address as the terminal reaches it (default: mqtt.host).
        #[arg(long)]
        host: Option<String>,
        /// Write the terminal's config file here (mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing pairing of this id (the old secret stops working).
        #[arg(long)]
        replace: bool,
    },
    /// List the paired terminals, or revoke one.
    Terminals {
        /// Revoke this terminal: its login and its messages are refused from now on.
        #[arg(long)]
        revoke: Option<String>,
    },
    /// Print a mosquitto ACL file for the paired terminals (defence in depth with an external
    /// broker; hearth's sealed messages hold without it).
    MosquittoAcl,
    /// Write everything the hub stores (memories, their vectors and graph, the profile,
    /// reminders, tasks) into one archive file, readable by you only. Stop the hub first.
    Backup {
        /// The archive to write (replaced atomically if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore an archive written by `backup` into an empty hub (after `wipe --yes`, or on a
    /// new machine). The whole archive is checked before anything is written.
    Restore {
        /// The archive.
        file: PathBuf,
    },
    /// Forget everything: remove every store (memories, reminders, tasks) and the indexes
    /// derived from them. Without --yes it says what it would remove and removes nothing.
    Wipe {
        /// Really remove it all.
        #[arg(long)]
        yes: bool,
    },
    /// Look into and manage the memory (stop the hub first: the store allows one process).
    Memory {
        #[command(subcommand)]
        action: MemoryAction,
    },
    /// Training data for the language-model roles, from the role log (stop the hub first).
    Train {
        #[command(subcommand)]
        action: TrainAction,
    },
}

#[derive(Subcommand)]
enum TrainAction {
    /// Write a role's good examples (an answer said whole and not corrected, guarded or
    /// forgotten; other work the code kept) as chat-format JSON lines with their provenance.
    Export {
        /// consciousness, subconscious, preprocessor, memory_writer or pixie.
        #[arg(long)]
        role: String,
        /// Output file (stdout without it).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only the examples whose output starts with this text: those that show the
        /// behaviour being taught (a persona's opening words, say).
        #[arg(long)]
        starting_with: Option<String>,
        /// Only the answers of this persona (the role log names each answer's persona; an
        /// entry from before personas counts when its system prompt holds the codex): the
        /// examples for its own adapter.
        #[arg(long)]
        persona: Option<String>,
    },
    /// Fit a LoRA adapter for llm.model to exported examples, on the CPU, and write it as a
    /// llama.cpp LoRA GGUF for roles.<name>.adapter.
    Fit {
        /// The role the adapter is for: where an example's system prompt starts with the
        /// role's full prompt, it is trained with roles.<role>.minimal_prompt instead.
        #[arg(long, default_value = "consciousness")]
        role: String,
        /// Chat-format JSON lines, as `train export` writes them.
        #[arg(long)]
        data: PathBuf,
        /// The adapter file to write.
        #[arg(long)]
        out: PathBuf,
        /// The adapter's rank.
        #[arg(long, default_value_t = TrainOptions::default().rank)]
        rank: usize,
        /// Its scaling numerator (updates are scaled by alpha / rank).
        #[arg(long, default_value_t = TrainOptions::default().alpha)]
        alpha: f32,
        /// The projections adapted in every block, comma-separated (all of them unless
        /// given): attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down.
        #[arg(
            long,
            default_value = "attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down",
            value_delimiter = ','
        )]
        targets: Vec<String>,
        /// Passes over the examples.
        #[arg(long, default_value_t = TrainOptions::default().epochs)]
        epochs: usize,
        /// AdamW's learning rate.
        #[arg(long, default_value_t = TrainOptions::default().learning_rate)]
        learning_rate: f64,
        /// Examples are cut to this many tokens.
        #[arg(long, default_value_t = TrainOptions::default().max_tokens)]
        max_tokens: usize,
        /// Seeds the adapter's initial values and the examples' order.
        #[arg(long, default_value_t = TrainOptions::default().seed)]
        seed: u64,
        /// The adapter is this persona's (its file's adapter): its codex is trained as its
        /// minimal codex, after the answer prompt, instead of the role's prompts.
        #[arg(long)]
        persona: Option<String>,
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
    /// What do you remember about TOPIC: the memories and graph nodes that mention it.
    Recall {
        /// Words to look for.
        #[arg(required = true, num_args = 1..)]
        topic: Vec<String>,
    },
    /// Correct a fact: store TEXT in place of memory ID, keeping the old one as superseded.
    Correct {
        /// The memory's id (as `recall` shows it).
        id: u64,
        /// The corrected fact.
        text: String,
    },
    /// Forget one memory everywhere (store, both indexes, graph nodes learnt only from it).
    Forget {
        /// The memory's id.
        id: u64,
    },
    /// Print the memory graph as a tree.
    Graph,
    /// Print the consolidated user profile.
    Profile,
    /// Run the lifecycle sweep now (expiry, decay, archiving, profile consolidation).
    Sweep,
}

fn main() -> ExitCode {
    // Whatever the hub creates (sled's files, the index, a backup) is its user's alone.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    hearth_hub::log_to_stderr("info,rumqttd=warn,llama_cpp_2=warn");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth-hub: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<HubConfig> {
    let mut config = HubConfig::from_args(cli.config.as_deref(), cli.model.as_deref())?;
    if cli.dashboard {
        config.dashboard.enabled = true;
        config
            .dashboard
            .check(!config.mqtt.tls_listen.is_empty())
            .map_err(anyhow::Error::msg)?;
    }
    Ok(config)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Config) => {
            print!("{DEFAULT_TOML}");
            Ok(())
        }
        Some(Command::Devices) => {
            let built: Vec<&str> = [
                ("CUDA", cfg!(feature = "cuda")),
                ("Vulkan", cfg!(feature = "vulkan")),
            ]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
            let (devices, offload) = hearth_hub::llm::devices()?;
            if built.is_empty() {
                println!("GPU backends built in: none (a CPU build; see README for --features cuda or vulkan)");
            } else {
                println!("GPU backends built in: {}", built.join(", "));
            }
            for line in &devices {
                println!("device {line}");
            }
            if offload {
                println!("GPU offload: yes (llm.gpu_layers places layers on the GPU)");
            } else {
                println!("GPU offload: no GPU found; every layer runs on the CPU");
            }
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
        Some(Command::Emotion {
            text,
            loudness,
            rate,
            previous,
        }) => {
            let config = load_config(&cli)?;
            emotion_command(&config, text, *loudness, *rate, previous.as_deref());
            Ok(())
        }
        Some(Command::Backup { out }) => {
            let config = load_config(&cli)?;
            let header = backup::backup(&backup::stores(&config), out, hearth_shared::now_ms())
                .with_context(|| format!("cannot back up to {}", out.display()))?;
            print!("{}", header.render());
            println!("backed up to {}", out.display());
            Ok(())
        }
        Some(Command::Restore { file }) => {
            let config = load_config(&cli)?;
            let header = backup::restore(&backup::stores(&config), &backup::derived(&config), file)
                .with_context(|| format!("cannot restore {}", file.display()))?;
            print!("{}", header.render());
            println!(
                "restored {} (hearth {}, written at {} ms); the search index is rebuilt when the hub starts",
                file.display(),
                header.hearth_version,
                header.created_at_ms
            );
            Ok(())
        }
        Some(Command::Wipe { yes }) => {
            let config = load_config(&cli)?;
            let stores = backup::stores(&config);
            let derived = backup::derived(&config);
            if !yes {
                let plan = backup::wipe_plan(&stores, &derived);
                if plan.is_empty() {
                    println!("there is nothing to wipe");
                    return Ok(());
                }
                println!("this would remove, for good:");
                for path in &plan {
                    println!("  {}", path.display());
                }
                anyhow::bail!("nothing was removed; run `hearth-hub wipe --yes` to remove it");
            }
            for path in backup::wipe(&stores, &derived).context("cannot wipe the hub")? {
                println!("removed {}", path.display());
            }
            Ok(())
        }
        Some(Command::Memory { action }) => {
            let config = load_config(&cli)?;
            memory_command(&config, action)
        }
        Some(Command::Train {
            action:
                TrainAction::Export {
                    role,
                    out,
                    starting_with,
                    persona,
                },
        }) => {
            let config = load_config(&cli)?;
            let persona = persona
                .as_deref()
                .map(|p| persona_named(&config, p))
                .transpose()?;
            export_examples(
                &config,
                role,
                out.as_deref(),
                starting_with.as_deref(),
                persona,
            )
        }
        Some(Command::Train {
            action:
                TrainAction::Fit {
                    role,
                    data,
                    out,
                    rank,
                    alpha,
                    targets,
                    epochs,
                    learning_rate,
                    max_tokens,
                    seed,
                    persona,
                },
        }) => {
            // candle's thread pool spins after every element-wise op, which on a shared
            // 2-core machine made each step three times slower; its matrix products still
            // use every core. It reads this once, so it is set before any tensor exists.
            if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
                std::env::set_var("CANDLE_NUM_THREADS", "1");
            }
            let config = load_config(&cli)?;
            let targets = targets
                .iter()
                .map(|t| t.trim().parse())
                .collect::<anyhow::Result<Vec<_>>>()?;
            let opts = TrainOptions {
                rank: *rank,
                alpha: *alpha,
                targets,
                epochs: *epochs,
                learning_rate: *learning_rate,
                max_tokens: *max_tokens,
                seed: *seed,
                shorten: match persona {
                    Some(name) => {
                        anyhow::ensure!(
                            role_named(role)? == hearth_hub::llm::JobRole::Consciousness,
                            "a persona's adapter is for its answers: --role consciousness"
                        );
                        persona_prompt(&config, persona_named(&config, name)?)
                    }
                    None => shortened_prompt(&config, role)?,
                },
            };
            fit_adapter(&config, data, out, &opts)
        }
        Some(Command::Pair {
            id,
            room,
            host,
            out,
            replace,
        }) => {
            let config = load_config(&cli)?;
            let pairing =
                hearth_hub::trust::cli::pair(&config, id, room, host.as_deref(), *replace)?;
            match out {
                Some(path) => {
                    hearth_hub::trust::cli::write_private(path, &pairing.terminal_toml)?;
                    eprintln!("paired {id:?} in the {room}; its config (with its secret) is in {} (mode 0600): copy it to the terminal and start it with --config", path.display());
                }
                None => print!("{}", pairing.terminal_toml),
            }
            if let Some(line) = pairing.mosquitto_passwd {
                eprintln!("with mosquitto, add the terminal's login: {line}");
            }
            Ok(())
        }
        Some(Command::Terminals { revoke }) => {
            let config = load_config(&cli)?;
            print!(
                "{}",
                hearth_hub::trust::cli::terminals(&config, revoke.as_deref())?
            );
            Ok(())
        }
        Some(Command::MosquittoAcl) => {
            let config = load_config(&cli)?;
            print!("{}", hearth_hub::trust::cli::mosquitto_acl(&config)?);
            Ok(())
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

/// Runs a memory command on the running hub (not export, import or sweep, which need the
/// store itself).
fn through_hub(
    hub: &hearth_hub::dashboard::client::HubClient,
    action: &MemoryAction,
) -> anyhow::Result<()> {
    match action {
        MemoryAction::Recall { topic } => {
            let topic = topic.join(" ");
            let found = hub.recall(&topic)?;
            if found.hits.is_empty() && found.graph.is_empty() {
                println!("I don't remember anything about {topic}.");
            }
            for h in found.hits {
                println!(
                    "#{} [{}, score {:.3}, {}] {}\n    {}",
                    h.id, h.state, h.score, h.room, h.text, h.signals
                );
            }
            for line in found.graph {
                println!("graph {line}");
            }
        }
        MemoryAction::Forget { id } => println!("{}", hub.forget(*id)?),
        MemoryAction::Correct { id, text } => println!("{}", hub.correct(*id, text)?),
        MemoryAction::Graph => {
            let tree = hub.graph()?;
            if tree.is_empty() {
                println!("the memory graph is empty");
            }
            print!("{tree}");
        }
        MemoryAction::Profile => {
            let profile = hub.profile()?;
            if profile.is_empty() {
                println!("no profile yet: it is made by the first sweep");
            }
            print!("{profile}");
        }
        MemoryAction::Export { .. } | MemoryAction::Import { .. } | MemoryAction::Sweep => {
            anyhow::bail!("export, import and sweep open the store themselves: stop the hub first")
        }
    }
    Ok(())
}

fn memory_command(config: &HubConfig, action: &MemoryAction) -> anyhow::Result<()> {
    use hearth_hub::memory::{Memories, MemoryStore, NewMemory, Speaker};
    // While the hub runs, it holds the store: ask it through its dashboard.
    let needs_store = matches!(
        action,
        MemoryAction::Export { .. } | MemoryAction::Import { .. } | MemoryAction::Sweep
    );
    if let Some(hub) = hearth_hub::dashboard::client::HubClient::running(config)? {
        if needs_store {
            anyhow::bail!(
                "the hub is running and holds the memory store: stop it first (export, import and sweep open the store themselves)"
            );
        }
        through_hub(&hub, action)?;
        return Ok(());
    }
    let path = &config.memory.path;
    let open = || {
        let context = || {
            format!(
                "cannot open the memory at {} (is the hub running? With [dashboard] enabled, `memory recall`, `forget`, `correct`, `graph` and `profile` go through it)",
                path.display()
            )
        };
        // The vector index's width is that of the stored vectors (MiniLM's 384 when none).
        let dim = {
            let store = MemoryStore::open(&path.join("store")).with_context(context)?;
            let first = store.vectors().next().transpose()?;
            first.map_or(384, |(_, v)| v.len())
        };
        Memories::open(path, dim).with_context(context)
    };
    match action {
        MemoryAction::Export { out } => {
            // The store alone: the full-text index catches up when the hub next opens it.
            let store = MemoryStore::open(&path.join("store"))?;
            let n = match out {
                Some(file) => {
                    let f = std::fs::File::create(file)
                        .with_context(|| format!("cannot create {}", file.display()))?;
                    store.export_jsonl(std::io::BufWriter::new(f))?
                }
                None => store.export_jsonl(std::io::stdout().lock())?,
            };
            eprintln!("exported {n} memories from {}", path.display());
        }
        MemoryAction::Import { file } => {
            let store = MemoryStore::open(&path.join("store"))?;
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let n = store
                .import_jsonl(std::io::BufReader::new(f))
                .with_context(|| format!("cannot import {}", file.display()))?;
            eprintln!("imported {n} memories into {}", path.display());
        }
        MemoryAction::Recall { topic } => {
            let memories = open()?;
            let topic = topic.join(" ");
            let hits = memories.search_text(&topic, 20)?;
            let nodes = memories.graph().search(&topic, 10)?;
            if hits.is_empty() && nodes.is_empty() {
                println!("I don't remember anything about {topic}.");
            }
            for (m, score) in hits {
                let status = match (m.superseded_by, m.tier) {
                    _ if m.asked => "asked (question log)".to_string(),
                    (Some(by), _) => format!("superseded by #{by}"),
                    (None, tier) => format!("{tier:?}"),
                };
                println!(
                    "#{} [{status}, bm25 {score:.2}, {}] {}",
                    m.id, m.room, m.text
                );
            }
            for n in nodes {
                println!("graph {}", n.line());
            }
        }
        MemoryAction::Correct { id, text } => {
            let memories = open()?;
            let embedding = runtime()?.block_on(async {
                let (embedder, _t) =
                    hearth_hub::llm::embed::Embedder::start(config.embeddings.clone()).await?;
                let e = hearth_hub::subconscious::embed_memory(
                    &embedder,
                    &config.memory,
                    text,
                    None,
                    None,
                )
                .await;
                anyhow::Ok(e)
            })?;
            let now = hearth_shared::now_ms();
            let new = NewMemory {
                text: text.clone(),
                room: "cli".into(),
                speaker: Speaker::User,
                created_at_ms: now,
                salience: config.memory.lifecycle.salience(text, 0.3),
                source: Some("hearth-hub memory correct".into()),
            };
            match memories.correct(*id, new, embedding.as_ref())? {
                Some((old, new)) => println!(
                    "#{} {:?} is superseded by #{} {:?}",
                    old.id, old.text, new.id, new.text
                ),
                None => anyhow::bail!("there is no memory #{id}"),
            }
        }
        MemoryAction::Forget { id } => {
            let memories = open()?;
            let said = memories
                .store()
                .get(*id)?
                .map(|m| hearth_hub::subconscious::spoken(&m.text).to_string());
            if !memories.forget(*id)? {
                anyhow::bail!("there is no memory #{id}");
            }
            // What was forgotten leaves the role log too.
            let dropped = memories.role_log().forget(&Vec::from_iter(said))?;
            println!("forgot #{id} (and {dropped} role-log entries that said it)");
        }
        MemoryAction::Graph => {
            let memories = open()?;
            let tree = memories.graph().render_tree()?;
            if tree.is_empty() {
                println!("the memory graph is empty");
            }
            print!("{tree}");
        }
        MemoryAction::Profile => match open()?.profile()? {
            Some(p) => print!("{}", p.render()),
            None => println!(
                "no profile yet: it is made by the first sweep (`hearth-hub memory sweep`)"
            ),
        },
        MemoryAction::Sweep => {
            let (report, profile) =
                open()?.sweep(&config.memory.lifecycle, hearth_shared::now_ms())?;
            println!(
                "kept {}, expired {}, faded {}, questions pruned {}",
                report.kept, report.expired, report.faded, report.pruned
            );
            print!("{}", profile.render());
        }
    }
    Ok(())
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

fn emotion_command(
    config: &HubConfig,
    text: &str,
    loudness: Option<f32>,
    rate: Option<f32>,
    previous: Option<&str>,
) {
    use hearth_hub::emotion;
    let audio = (loudness.is_some() || rate.is_some()).then_some(hearth_shared::AudioFeatures {
        loudness_dbfs: loudness,
        speaking_rate_wps: rate,
        pitch_hz: None,
    });
    let user = emotion::score(text, audio.as_ref(), previous);
    println!("label:      {:?}", user.label());
    println!("valence:    {:+.2}", user.valence);
    println!("arousal:    {:+.2}", user.arousal);
    println!("engagement: {:.2}", user.engagement);
    println!("signals:");
    for c in &user.why {
        println!(
            "  {:<10} {:+.2}  {}",
            format!("{:?}", c.axis).to_lowercase(),
            c.amount,
            c.signal
        );
    }
    println!(
        "salience (emotional part): {:.2}",
        user.salience(&config.emotion)
    );
    let mut mood = emotion::Mood::resting(&config.emotion, 0);
    let (tv, ta) = mood.respond(&user, 0, &config.emotion);
    println!(
        "hearth's mood from rest: valence {:+.2}, arousal {:+.2} (toward {tv:+.2}, {ta:+.2}, inertia {})",
        mood.valence, mood.arousal, config.emotion.inertia
    );
    match emotion::tone_line(&user, &mood) {
        Some(line) => print!("tone line:  {line}"),
        None => println!("tone line:  (none: the prompt is unchanged)"),
    }
    let r = &config.memory.retrieval;
    let (k, shaped, why) = emotion::shape_recall(&user, config.memory.recall_k, r, &config.emotion);
    println!(
        "recall:     {why}: k {} -> {k}, w_recency {:.3} -> {:.3}, w_importance {:.3} -> {:.3}",
        config.memory.recall_k, r.w_recency, shaped.w_recency, r.w_importance, shaped.w_importance
    );
}

/// The role called `name`, or an error listing the roles.
fn role_named(name: &str) -> anyhow::Result<hearth_hub::llm::JobRole> {
    use hearth_hub::llm::JobRole;
    JobRole::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = JobRole::ALL.iter().map(|r| r.name()).collect();
        anyhow::anyhow!(
            "there is no role {name:?}; the roles are {}",
            names.join(", ")
        )
    })
}

/// The persona called `name` in `personas.dir`, or an error listing them.
fn persona_named<'a>(
    config: &'a HubConfig,
    name: &str,
) -> anyhow::Result<&'a hearth_hub::persona::Persona> {
    config.personas.find(name).ok_or_else(|| {
        let names: Vec<&str> = config.personas.names().collect();
        anyhow::anyhow!(
            "there is no persona {name:?} in personas.dir ({}); the personas are {names:?}",
            config.personas.dir.display()
        )
    })
}

/// How a persona's answers are trained for its adapter ([`Persona::shortened`]).
///
/// [`Persona::shortened`]: hearth_hub::persona::Persona::shortened
fn persona_prompt(
    config: &HubConfig,
    persona: &hearth_hub::persona::Persona,
) -> Option<hearth_hub::train::Shorten> {
    let built_in = &config.conversation.system_prompt;
    let Some((full, minimal)) = persona.shortened(&config.roles, built_in) else {
        eprintln!(
            "persona {}'s minimal_codex is not set: the examples keep their prompts",
            persona.name
        );
        return None;
    };
    Some(hearth_hub::train::Shorten::Prefix { full, minimal })
}

/// How `role`'s examples get its minimal prompt, when it has one: the consciousness's full
/// prompt (`roles.consciousness.system_prompt`, or `conversation.system_prompt`) is replaced
/// where it leads; every other role's system message is replaced whole, as the hub does.
fn shortened_prompt(
    config: &HubConfig,
    role: &str,
) -> anyhow::Result<Option<hearth_hub::train::Shorten>> {
    use hearth_hub::llm::JobRole;
    use hearth_hub::train::Shorten;
    let role = role_named(role)?;
    let c = config.roles.get(role);
    let minimal = c.minimal_prompt.clone();
    if minimal.is_empty() {
        eprintln!("roles.{role}.minimal_prompt is not set: the examples keep their prompts");
        return Ok(None);
    }
    Ok(Some(match role {
        JobRole::Consciousness => Shorten::Prefix {
            full: (config.roles)
                .full_answer_prompt(&config.conversation.system_prompt)
                .to_string(),
            minimal,
        },
        _ => Shorten::Whole { minimal },
    }))
}

/// `hearth-hub train fit`: fits an adapter, one progress line per step on stderr.
fn fit_adapter(
    config: &HubConfig,
    data: &std::path::Path,
    out: &std::path::Path,
    opts: &TrainOptions,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    eprintln!(
        "fitting a rank-{} adapter for {} to {} ({} epochs)",
        opts.rank,
        config.llm.model.display(),
        data.display(),
        opts.epochs
    );
    let fitted = hearth_hub::train::fit_adapter(&config.llm, data, out, opts, |p| {
        let per_step = started.elapsed().as_secs_f64() / p.step as f64;
        let left = per_step * (p.total_steps - p.step) as f64;
        eprintln!(
            "step {}/{} (epoch {}): loss {:.3}, {:.1} s a step, about {:.0} s left",
            p.step,
            p.total_steps,
            p.epoch + 1,
            p.loss,
            per_step,
            left
        );
    })?;
    let report = &fitted.report;
    eprintln!(
        "wrote {} in {:.0} s: {} examples ({} with the minimal prompt, {} too long to learn from), loss {:.3} in the first epoch and {:.3} in the last",
        out.display(),
        report.elapsed.as_secs_f64(),
        report.examples_used,
        fitted.shortened,
        report.examples_skipped,
        report.first_epoch_loss,
        report.final_loss
    );
    Ok(())
}

/// `hearth-hub train export`: a role's good examples from the role log, as JSON lines.
fn export_examples(
    config: &HubConfig,
    role: &str,
    out: Option<&std::path::Path>,
    starting_with: Option<&str>,
    persona: Option<&hearth_hub::persona::Persona>,
) -> anyhow::Result<()> {
    use hearth_hub::memory::rolelog::RoleLog;
    let role = role_named(role)?;
    let path = config.memory.path.join("store");
    let store = hearth_hub::memory::MemoryStore::open(&path).with_context(|| {
        format!(
            "cannot open the memory store at {} (is the hub running?)",
            path.display()
        )
    })?;
    let log = RoleLog::open(&store)?;
    let shows = |e: &hearth_hub::memory::rolelog::Entry| {
        let system = e
            .messages
            .first()
            .filter(|m| m.role == "system")
            .map_or("", |m| m.content.as_str());
        // An entry names its persona; one logged before personas were does not, and its
        // system prompt tells.
        let theirs = |p: &hearth_hub::persona::Persona| match &e.persona {
            Some(name) => name.eq_ignore_ascii_case(&p.name),
            None => p.prompted(system),
        };
        starting_with.is_none_or(|s| e.output.starts_with(s)) && persona.is_none_or(theirs)
    };
    let (written, left) = match out {
        Some(file) => {
            let f = std::fs::File::create(file)
                .with_context(|| format!("cannot create {}", file.display()))?;
            log.export_jsonl_where(role, shows, std::io::BufWriter::new(f))?
        }
        None => log.export_jsonl_where(role, shows, std::io::stdout().lock())?,
    };
    let mut unlike = match starting_with {
        Some(s) => format!(", or not starting with {s:?}"),
        None => String::new(),
    };
    if let Some(p) = persona {
        unlike.push_str(&format!(", or not {}'s", p.name));
    }
    eprintln!("exported {written} {role} examples ({left} left out: interrupted, corrected, guarded, forgotten or refused{unlike})");
    Ok(())
}
