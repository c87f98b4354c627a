//! The hearth hub: the embedded MQTT broker, the local language model, and the service that
//! answers the room terminals.
//!
//! `main.rs` is a thin CLI over [`run`]; everything worth testing lives here.

pub mod bench;
pub mod broker;
pub mod config;
pub mod controls;
pub mod conversation;
pub mod llm;
pub mod memory;
pub mod service;
pub mod subconscious;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::HubConfig;
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
    let subconscious = Subconscious::new(Arc::new(memories), embedder, config.memory.clone());
    if config.mqtt.embedded_broker {
        broker::start(&config.mqtt)?;
    } else {
        tracing::info!(host = %config.mqtt.host, port = config.mqtt.port, "using an external MQTT broker");
    }
    service::serve(config, llm, subconscious, shutdown).await?;
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
