//! The hearth hub: the embedded MQTT broker, the local language model, and the service that
//! answers the room terminals.
//!
//! `main.rs` is a thin CLI over [`run`]; everything worth testing lives here.

pub mod bench;
pub mod broker;
pub mod config;
pub mod controls;
pub mod conversation;
pub mod emotion;
pub mod extract;
pub mod llm;
pub mod locomo;
pub mod memory;
pub mod pixie;
pub mod rooms;
pub mod service;
pub mod subconscious;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::HubConfig;
use crate::extract::GraphWriter;
use crate::llm::embed::Embedder;
use crate::llm::LlmHandle;
use crate::memory::Memories;
use crate::subconscious::Subconscious;

/// Runs the hub until `shutdown` is cancelled: loads the model (failing fast on a bad file),
/// starts the embedded broker if configured, then serves terminals.
pub async fn run(config: HubConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.validate()?;
    tracing::info!(model = %config.llm.model.display(), "loading the language model");
    let (llm, llm_thread) = LlmHandle::start(config.llm.clone())
        .await
        .context("cannot start the language model")?;
    let (embedder, _embed_thread) = Embedder::start(config.embeddings.clone())
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
    let subconscious = Subconscious::new(Arc::clone(&memories), embedder, config.memory.clone())
        .with_emotion(config.emotion.clone())
        .with_graph(graph, shutdown.child_token());
    let pixie = crate::pixie::Pixie::open(config.pixie.clone(), hearth_shared::now_ms())
        .context("cannot open the reminders")?;
    tracing::info!(path = %config.pixie.path.display(), pending = pixie.reminders().pending().map(|p| p.len()).unwrap_or(0), zone = pixie.zone().iana_name().unwrap_or("system"), "reminders opened");
    if config.mqtt.embedded_broker {
        broker::start(&config.mqtt)?;
    } else {
        tracing::info!(host = %config.mqtt.host, port = config.mqtt.port, "using an external MQTT broker");
    }
    service::serve(config, llm, subconscious, Arc::new(pixie), shutdown).await?;
    // The service held the last LLM handle; the inference thread ends once it has finished the
    // generation in hand, which the cancelled answer tasks have already asked it to stop.
    let joined = tokio::task::spawn_blocking(move || llm_thread.join());
    if tokio::time::timeout(Duration::from_secs(10), joined)
        .await
        .is_err()
    {
        tracing::warn!("the inference thread did not stop within 10 s");
    }
    tracing::info!("hub stopped");
    Ok(())
}

/// One lifecycle sweep (expiry, decay, archiving, the profile), logged. Pixie's task queue
/// runs it at start (catching up on downtime) and every `memory.sweep_interval_minutes`.
pub(crate) async fn sweep_once(
    memories: Arc<Memories>,
    lifecycle: crate::memory::lifecycle::LifecycleConfig,
) {
    let started = std::time::Instant::now();
    let swept =
        tokio::task::spawn_blocking(move || memories.sweep(&lifecycle, hearth_shared::now_ms()))
            .await;
    match swept {
        Ok(Ok((report, profile))) => tracing::info!(
            kept = report.kept,
            expired = report.expired,
            faded = report.faded,
            profile = %profile.prompt_line(),
            ms = started.elapsed().as_millis() as u64,
            "memory sweep"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "memory sweep failed"),
        Err(e) => tracing::error!(error = %e, "memory sweep panicked"),
    }
}
