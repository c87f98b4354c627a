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
use super::LlmConfig;
use super::LlmError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The sentence-embedding model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// An embedding GGUF (BERT-style, with pooling). `~/` is expanded.
    pub model: PathBuf,
    /// Threads for embedding.
    pub threads: u32,
    /// The most tokens of one text; longer texts are truncated.
    pub max_tokens: u32,
    /// Layers to offload to a GPU.
    pub gpu_layers: u32,
    /// How many embedding requests may wait.
    pub queue_capacity: usize,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            model: PathBuf::from("~/.cache/hearth/models/all-MiniLM-L6-v2.f16.gguf"),
            threads: 1,
            max_tokens: 256,
            gpu_layers: 0,
            queue_capacity: 64,
        }
    }
}

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, LlmError>>,
}

/// A sentence-embedding model on the embedding thread: llama.cpp in production, a scripted
/// one in tests.
pub trait Encoder {
    /// The vector length.
    fn dim(&self) -> usize;
    /// One vector for `text`, not yet normalised.
    fn encode(&mut self, text: &str) -> Result<Vec<f32>, LlmError>;
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

    /// Serves `encoder` on a new thread, with room for `capacity` waiting requests.
    pub fn with_encoder(
        encoder: impl Encoder + Send + 'static,
        capacity: usize,
    ) -> (Embedder, std::thread::JoinHandle<()>) {
        let (jobs_tx, jobs_rx) = mpsc::channel(capacity.max(1));
        let dim = encoder.dim();
        let thread = std::thread::Builder::new()
            .name("embed".to_string())
            .spawn(move || {
                let mut encoder = encoder;
                serve(&mut encoder, jobs_rx)
            })
            .expect("the embedding thread starts");
        (Embedder { jobs: jobs_tx, dim }, thread)
    }

    /// The vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds each text; one normalised vector per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, LlmError> {
        let (reply, rx) = oneshot::channel();
        // A full queue answers busy at once: recall then goes by words alone, and a memory
        // is stored without its vector, rather than every turn waiting behind a flood.
        match self.jobs.try_send(Job { texts, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(LlmError::Busy {
                    capacity: self.jobs.max_capacity(),
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(LlmError::Stopped),
        }
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
    jobs: mpsc::Receiver<Job>,
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
    let ctx = match ctx {
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
    let mut encoder = Llama {
        model: &model,
        ctx,
        batch: LlamaBatch::new(n as usize, 1),
        limit: n as usize,
        dim,
    };
    serve(&mut encoder, jobs);
}

/// The embedding model in llama.cpp.
struct Llama<'m> {
    model: &'m llama_cpp_2::model::LlamaModel,
    ctx: llama_cpp_2::context::LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    limit: usize,
    dim: usize,
}

impl Encoder for Llama<'_> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn encode(&mut self, text: &str) -> Result<Vec<f32>, LlmError> {
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        if tokens.len() > self.limit {
            tracing::debug!(
                tokens = tokens.len(),
                limit = self.limit,
                "text truncated for embedding"
            );
            // Keep the final separator token that BERT expects.
            let last = *tokens.last().expect("non-empty");
            tokens.truncate(self.limit - 1);
            tokens.push(last);
        }
        self.batch.clear();
        self.batch
            .add_sequence(&tokens, 0, false)
            .map_err(|e| LlmError::Inference(e.to_string()))?;
        self.ctx.clear_kv_cache();
        self.ctx
            .encode(&mut self.batch)
            .map_err(|e| LlmError::Inference(format!("embedding failed: {e}")))?;
        self.ctx
            .embeddings_seq_ith(0)
            .map(<[f32]>::to_vec)
            .map_err(|e| {
                LlmError::Inference(format!(
                    "the model gave no pooled embedding ({e}); is it an embedding model?"
                ))
            })
    }
}

/// Answers embedding jobs with `encoder` until every handle is gone.
fn serve(encoder: &mut dyn Encoder, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.blocking_recv() {
        let started = Instant::now();
        let out: Result<Vec<Vec<f32>>, LlmError> = job
            .texts
            .iter()
            .map(|t| encoder.encode(t).map(|v| normalised(&v)))
            .collect();
        tracing::debug!(
            texts = job.texts.len(),
            ms = started.elapsed().as_millis() as u64,
            "embedded"
        );
        let _ = job.reply.send(out);
    }
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x / norm).collect()
}
