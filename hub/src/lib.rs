//! The hearth hub: the embedded MQTT broker, the local language model, and the service that
//! answers the room terminals.
//!
//! `main.rs` is a thin CLI over [`run`]; everything worth testing lives here.

pub mod api;
pub mod backup;
pub mod broker;
pub mod config;
pub mod controls;
pub mod conversation;
pub mod dashboard;
pub mod emotion;
pub mod extract;
pub mod files;
pub mod guard;
pub mod household;
pub mod live;
pub mod llm;
pub mod memory;
pub mod outbox;
pub mod persona;
pub mod pixie;
pub mod preprocess;
pub mod rooms;
pub mod say;
pub mod service;
pub mod subconscious;
pub mod tls;
pub mod train;
pub mod trust;
pub mod turn;
pub mod vital;
pub mod words;

#[cfg(test)]
mod props;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HubConfig;
use crate::conversation::Conversations;
use crate::emotion::Mood;
use crate::extract::GraphWriter;
use crate::household::{Home, Household};
use crate::llm::embed::Embedder;
use crate::llm::LlmHandle;
use crate::memory::Memories;
use crate::outbox::{Outbox, Outgoing};
use crate::pixie::runner::Runner;
use crate::pixie::Pixie;
use crate::subconscious::Subconscious;
use crate::turn::Pipeline;

/// Logs to stderr, filtered by `RUST_LOG` or else `default_filter`, in colour on a terminal.
pub fn log_to_stderr(default_filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(stderr_log(default_filter))
        .init();
}

/// [`log_to_stderr`]'s layer, for a process that puts other layers beside it
/// (`hearth-bench`).
pub fn stderr_log<S>(default_filter: &str) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter)
}

/// Runs the hub until `shutdown` is cancelled: loads the model (failing fast on a bad file),
/// starts the embedded broker if configured, then serves terminals.
pub async fn run(mut config: HubConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.validate()?;
    config.check_exposure()?;
    let registry = trust::Registry::open(&config.trust.registry)?;
    let paired = registry.list().len();
    tracing::info!(path = %registry.path().display(), paired, allow_unpaired = config.trust.allow_unpaired, "terminal registry opened");
    // The embedded broker refuses a client past its limit: a terminal that cannot connect
    // is silent in its room, so say it at start.
    if config.mqtt.embedded_broker && paired + 2 > config.mqtt.max_connections {
        tracing::warn!(paired, max_connections = config.mqtt.max_connections,
            "more terminals are paired than the embedded broker admits with the hub and a tool beside them: raise mqtt.max_connections");
    }
    let gate = Arc::new(trust::Gate::new(config.trust.clone(), registry));
    // One calendar: a question's named day is a day in the household's zone.
    config.memory.retrieval.zone =
        crate::pixie::phrase::zone(&config.pixie.time_zone).map_err(anyhow::Error::msg)?;
    match config.llm.backend {
        llm::Backend::Llama => {
            tracing::info!(model = %config.llm.model.display(), "loading the language model")
        }
        llm::Backend::Openai => {
            tracing::info!(url = %config.llm.openai.base_url, model = %config.llm.openai.model, "using the model on an OpenAI-compatible server")
        }
    }
    let (llm, llm_thread) = LlmHandle::start_with_personas(
        config.llm.clone(),
        config.roles.clone(),
        &config.personas.adapters(),
    )
    .await
    .context("cannot start the language model")?;
    for p in &config.personas.loaded {
        tracing::info!(persona = %p.name, adapter = p.has_adapter(), voice = ?p.voice(), "persona");
    }
    let mut vital = vital::Vital::default();
    let (embedder, embed_thread) = Embedder::start(config.embeddings.clone())
        .await
        .context("cannot start the embedding model")?;
    let memories = Memories::open(&config.memory.path, embedder.dim())
        .with_context(|| format!("cannot open the memory at {}", config.memory.path.display()))?;
    tracing::info!(path = %config.memory.path.display(), memories = memories.store().len(), "memory opened");
    let memories = Arc::new(memories);
    let graph = GraphWriter::new(
        llm.clone(),
        Arc::clone(&memories),
        config.memory.graph.clone(),
    )
    .context("cannot prepare the memory graph grammar")?;
    // One shutdown tree: every turn, Pixie's loop, sweeps, reflections and graph writes are
    // tasks on `tasks`, stopped by `stop`.
    let (stop, tasks) = (shutdown.child_token(), TaskTracker::new());
    let subconscious = Subconscious::new(Arc::clone(&memories), embedder, config.memory.clone())
        .with_emotion(config.emotion.clone())
        .with_graph(graph, stop.clone(), tasks.clone());
    let pixie = crate::pixie::Pixie::open(config.pixie.clone(), hearth_shared::now_ms())
        .context("cannot open the reminders")?;
    tracing::info!(path = %config.pixie.path.display(), pending = pixie.reminders().pending().map(|p| p.len()).unwrap_or(0), zone = pixie.zone().iana_name().unwrap_or("system"), "reminders opened");
    vital.watch("embedding", embed_thread);
    if config.mqtt.embedded_broker {
        let broker = broker::start(&config.mqtt, Arc::clone(&gate))?;
        vital.watch("embedded MQTT broker", broker.thread);
    } else {
        tracing::info!(host = %config.mqtt.host, port = config.mqtt.port, "using an external MQTT broker");
    }
    // The OpenAI-compatible endpoint and the dashboard, when enabled: bound before serving,
    // so that a port in use stops the start with a clear error.
    let api = listen(config.api.enabled, &config.api.bind, "api.bind").await?;
    let dashboard = listen(
        config.dashboard.enabled,
        &config.dashboard.bind,
        "dashboard.bind",
    )
    .await?;
    let acceptor = dashboard::acceptor(&config).context("cannot serve the dashboard over TLS")?;
    let (pipeline, runner, outgoing) =
        assemble(config, llm, subconscious, Arc::new(pixie), stop, tasks);
    runner.start();
    if let Some(listener) = api {
        let (pipeline, stop) = (Arc::clone(&pipeline), pipeline.stop.clone());
        pipeline.tasks.clone().spawn(async move {
            if let Err(e) = api::serve(pipeline, listener, stop).await {
                tracing::error!(error = %e, "the OpenAI-compatible API stopped");
            }
        });
    }
    if let Some(listener) = dashboard {
        let (pipeline, stop) = (Arc::clone(&pipeline), pipeline.stop.clone());
        pipeline.tasks.clone().spawn(async move {
            if let Err(e) = dashboard::serve(pipeline, listener, acceptor, stop).await {
                tracing::error!(error = %e, "the dashboard stopped");
            }
        });
    }
    // A vital thread that dies stops the service like a signal would, and the hub then exits
    // non-zero so that systemd restarts it.
    let serving = CancellationToken::new();
    vital.watch("inference", llm_thread);
    let watcher = tokio::spawn({
        let (serving, shutdown) = (serving.clone(), shutdown.clone());
        async move {
            let died = tokio::select! {
                _ = shutdown.cancelled() => None,
                (_, reason) = vital.ended() => Some(reason),
            };
            serving.cancel();
            (died, vital)
        }
    });
    service::serve(pipeline, gate, outgoing, serving).await?;
    let (died, mut vital) = watcher.await?;
    if let Some(reason) = died {
        tracing::error!(%reason, "a thread the hub needs has stopped; exiting so that the service manager restarts the hub");
        anyhow::bail!("{reason}");
    }
    // The pipeline held the last LLM handles; the inference thread ends once it has finished
    // the generation in hand, which the cancelled turns have already asked it to stop.
    let inference_ended = async { while vital.ended().await.0 != "inference" {} };
    if tokio::time::timeout(Duration::from_secs(10), inference_ended)
        .await
        .is_err()
    {
        tracing::warn!("the inference thread did not stop within 10 s");
    }
    tracing::info!("hub stopped");
    Ok(())
}

/// A listener on `bind` when `enabled`; the error names the setting (`key`).
async fn listen(
    enabled: bool,
    bind: &str,
    key: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if !enabled {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {key} {bind}"))?;
    Ok(Some(listener))
}

/// Builds the household, the outbox, Pixie's runner and the turn pipeline over the models
/// and stores, on one shutdown tree (`stop`, `tasks`). Returns them with what reads the
/// outbox; the runner is not started yet.
pub fn assemble(
    config: HubConfig,
    llm: LlmHandle,
    subconscious: Subconscious,
    pixie: Arc<Pixie>,
    stop: CancellationToken,
    tasks: TaskTracker,
) -> (Arc<Pipeline>, Arc<Runner>, mpsc::Receiver<Outgoing>) {
    let llm = llm.with_roles(config.roles.clone());
    if let Err(e) = subconscious
        .memories()
        .role_log()
        .keep(config.roles.log_entries)
    {
        tracing::error!(error = %e, "cannot trim the role log to roles.log_entries");
    }
    let conversation = &config.conversation;
    let home = Arc::new(Home::new(Household::new(
        Conversations::new(conversation.history_turns, conversation.max_rooms)
            .with_budget(conversation.budget()),
        Mood::resting(&config.emotion, hearth_shared::now_ms()),
    )));
    let (out, outgoing) = Outbox::new(256);
    let wake = Arc::new(Notify::new());
    let runner = Arc::new(Runner {
        pixie: Arc::clone(&pixie),
        memory: config.memory.clone(),
        llm: llm.clone(),
        subconscious: subconscious.clone(),
        home: Arc::clone(&home),
        out: out.clone(),
        wake: Arc::clone(&wake),
        tasks: tasks.clone(),
        stop: stop.clone(),
        personas: config.personas.clone(),
    });
    let pipeline = Arc::new(Pipeline {
        config,
        llm,
        subconscious,
        pixie,
        home,
        out,
        wake,
        tasks,
        stop,
        in_flight: std::sync::atomic::AtomicUsize::new(0),
    });
    (pipeline, runner, outgoing)
}
