//! Sentence embeddings through llama.cpp, on a thread of their own: all-MiniLM-L6-v2 as GGUF by
//! default (384 dimensions, mean pooling from the GGUF), any embedding GGUF by config.
//!
//! Vectors come back L2-normalised, so cosine similarity is a dot product.

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use tokio::sync::{mpsc, oneshot};

use super::engine::{backend, load_model};
use super::LlmError;
use crate::config::{EmbeddingConfig, LlmConfig};

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, LlmError>>,
}

/// A cloneable handle to the embedding thread. The thread ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Embedder {
    jobs: mpsc::Sender<Job>,
    dim: usize,
}

impl Embedder {
    /// Loads the model (validated first) on a new thread and waits until it is ready.
    pub async fn start(
        config: EmbeddingConfig,
    ) -> Result<(Embedder, std::thread::JoinHandle<()>), LlmError> {
        let (jobs_tx, jobs_rx) = mpsc::channel(config.queue_capacity.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("embed".to_string())
            .spawn(move || run(config, jobs_rx, ready_tx))
            .map_err(|e| LlmError::Inference(format!("cannot start the embedding thread: {e}")))?;
        let dim = ready_rx.await.map_err(|_| LlmError::Stopped)??;
        Ok((Embedder { jobs: jobs_tx, dim }, thread))
    }

    /// The vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds each text; one normalised vector per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, LlmError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { texts, reply })
            .await
            .map_err(|_| LlmError::Stopped)?;
        rx.await.map_err(|_| LlmError::Stopped)?
    }

    /// Embeds one text.
    pub async fn embed_one(&self, text: &str) -> Result<Option<Vec<f32>>, LlmError> {
        Ok(self.embed(vec![text.to_string()]).await?.pop())
    }
}

/// Cosine similarity of two normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn run(
    config: EmbeddingConfig,
    mut jobs: mpsc::Receiver<Job>,
    ready: oneshot::Sender<Result<usize, LlmError>>,
) {
    // Reuse the LLM loader (validation included) with this model's path.
    let llm_config = LlmConfig {
        model: config.model.clone(),
        gpu_layers: config.gpu_layers,
        ..LlmConfig::default()
    };
    let model = match load_model(&llm_config) {
        Ok((m, _)) => m,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // A BERT-style encoder sees the whole input at once: context, batch and micro-batch are
    // all the per-text token limit.
    let n = config.max_tokens;
    let params = LlamaContextParams::default()
        .with_embeddings(true)
        .with_n_ctx(NonZeroU32::new(n))
        .with_n_batch(n)
        .with_n_ubatch(n)
        .with_n_threads(config.threads as i32)
        .with_n_threads_batch(config.threads as i32);
    let ctx = backend(false).and_then(|b| {
        model.new_context(b, params).map_err(|e| LlmError::Load {
            path: config.model.clone(),
            reason: format!("cannot create an embedding context: {e}"),
        })
    });
    let mut ctx = match ctx {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let dim = model.n_embd() as usize;
    tracing::info!(model = %config.model.display(), dim, "embedding model loaded");
    if ready.send(Ok(dim)).is_err() {
        return;
    }
    let vocab = model.vocab();
    let mut batch = LlamaBatch::new(n as usize, 1);
    while let Some(job) = jobs.blocking_recv() {
        let started = Instant::now();
        let mut out = Vec::with_capacity(job.texts.len());
        let mut result = Ok(());
        for text in &job.texts {
            let mut tokens = vocab.tokenize(text.as_bytes(), true, false);
            if tokens.len() > n as usize {
                tracing::debug!(
                    tokens = tokens.len(),
                    limit = n,
                    "text truncated for embedding"
                );
                // Keep the final separator token that BERT expects.
                let last = *tokens.last().expect("non-empty");
                tokens.truncate(n as usize - 1);
                tokens.push(last);
            }
            batch.clear();
            if let Err(e) = batch.add_sequence(&tokens, 0, false) {
                result = Err(LlmError::Inference(e.to_string()));
                break;
            }
            ctx.clear_kv_cache();
            if let Err(e) = ctx.encode(&mut batch) {
                result = Err(LlmError::Inference(format!("embedding failed: {e}")));
                break;
            }
            match ctx.embeddings_seq_ith(0) {
                Ok(v) => out.push(normalised(v)),
                Err(e) => {
                    result = Err(LlmError::Inference(format!(
                        "the model gave no pooled embedding ({e}); is it an embedding model?"
                    )));
                    break;
                }
            }
        }
        tracing::debug!(
            texts = job.texts.len(),
            ms = started.elapsed().as_millis() as u64,
            "embedded"
        );
        let _ = job.reply.send(result.map(|()| out));
    }
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x / norm).collect()
}
