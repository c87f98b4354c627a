//! The language model: a dedicated inference thread that owns llama.cpp, behind a small
//! cloneable handle with a bounded job queue.
//!
//! A request is a list of chat messages. The thread renders them with the model's chat template,
//! reuses whatever prefix of the prompt is still in the KV cache (the fixed system prompt at
//! least), and streams the reply back as whole sentences while it generates.

pub mod adapters;
pub mod embed;
mod engine;
mod fair;
pub mod gguf;
pub mod model;
pub mod openai;
pub mod roles;
#[cfg(test)]
pub mod scripted;
pub mod sentence;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use engine::{bare_generation_loop, devices, Tokenizer};
use gguf::GgufError;
pub use roles::{JobRole, RoleConfig, RolesConfig};
use serde::{Deserialize, Serialize};

/// Where the language model runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// llama.cpp inside the hub, on `llm.model`.
    #[default]
    Llama,
    /// An OpenAI-compatible server, `[llm.openai]` (vLLM, llama.cpp's server, Ollama, another
    /// hub): the hub loads no model of its own.
    Openai,
}

/// The language model and how it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Where the model runs: `"llama"` (in the hub) or `"openai"` (a server, `[llm.openai]`).
    /// With `"openai"`, `model`, the threads, `batch_tokens` and `gpu_layers` are the
    /// server's business; the sampling settings, `max_reply_tokens` and the queue still apply.
    pub backend: Backend,
    /// The OpenAI-compatible server, when `backend = "openai"`.
    pub openai: openai::OpenAiConfig,
    /// The GGUF model file. `~/` is expanded. Production: a Gemma 4 GGUF.
    pub model: PathBuf,
    /// A llama.cpp template name (`chatml`, `gemma`, `llama3`, ...) used when the GGUF carries
    /// no `tokenizer.chat_template`. Empty: such a model is refused with an error.
    pub chat_template_fallback: String,
    /// Use this template name even when the GGUF has its own.
    pub chat_template_override: String,
    /// Threads for generation. Set it: llama.cpp's default oversubscribes small machines. Each
    /// token's graph has hundreds of steps at which the threads wait for each other, and
    /// waiting passively (`OMP_WAIT_POLICY=passive`, which keeps idle threads off the CPU) costs
    /// a wake-up each time: on 2 shared cores one thread generates faster than two.
    pub threads: u32,
    /// Threads for prompt evaluation.
    pub threads_batch: u32,
    /// Context window in tokens.
    pub context_tokens: u32,
    /// Prompt evaluation batch size in tokens.
    pub batch_tokens: u32,
    /// Layers to offload to a GPU. A build without a GPU backend (no `cuda` or `vulkan`
    /// feature) runs them all on the CPU, and says so at start.
    pub gpu_layers: u32,
    /// The most tokens in one reply.
    pub max_reply_tokens: u32,
    /// A reply's first chunk goes to the terminal at its first clause (a comma, semicolon or
    /// dash after this many words or more), so that speech starts before a long first
    /// sentence is written; 0: whole sentences only.
    pub first_clause_words: u32,
    /// A reply's first chunk goes to the terminal after at most this many words when its
    /// first clause is longer (cut at a shorter clause's mark if there is one, else before a
    /// joining word such as "and" or "which" that comes after `first_clause_words`), so that
    /// a long first sentence does not hold back the first words heard; 0: no limit.
    pub first_chunk_words: u32,
    /// Once a reply's first token is this many ms old, its first chunk goes to the terminal
    /// at the next word from `first_clause_words` words on (cut as a long first chunk is),
    /// so that a busy model, writing slowly, does not hold back the first words heard; a
    /// model with time to spare ends its first clause sooner; 0: no limit.
    pub first_chunk_ms: u64,
    /// Sampling temperature; 0 means greedy (deterministic).
    pub temperature: f32,
    /// Nucleus sampling threshold, used when temperature > 0.
    pub top_p: f32,
    /// Sampling seed.
    pub seed: u32,
    /// How many requests may wait for the model before new ones get a `busy` error.
    pub queue_capacity: usize,
    /// Route llama.cpp's own log lines into the hub's log (at debug level).
    pub log_native: bool,
    /// Background jobs (graph writes, reflections, folds) waiting for a quiet moment;
    /// beyond this the oldest is dropped (a room's fold goes first and last).
    pub background_queue: usize,
    /// Rooms take turns on the model (round-robin lanes, one per room). False: first come,
    /// first served, as `hearth-bench rooms` compares.
    pub fair_rooms: bool,
    /// Conversations (rooms) decoded together, each its own sequence in the context, in one
    /// batch per step; 1: one at a time. Above 1 the context holds `context_tokens` for each
    /// of them and one more (the KV cache's memory grows as much). Several rooms asking
    /// at once then share each step's pass over the weights, and a room that asks while
    /// others are being answered joins at the next step while a sequence is free
    /// (`hearth-bench rooms --concurrent` compares).
    pub parallel: u32,
    /// With `parallel` above 1: each sequence keeps its KV cache in a stream of its own, so
    /// that a token attends over its own room's cells only. False: one buffer for all, over
    /// whose cells every token's attention runs (masked), which grows with the rooms.
    pub kv_per_room: bool,
    /// With `parallel` above 1: a step takes another joining room only while the new prompt
    /// tokens of those it holds are under this many; the first always goes in. Rooms that
    /// ask at the same moment then start a step apart, each waiting for its own prompt
    /// rather than for everyone's, and their answers stop ending in lockstep. On a GPU,
    /// where a step's cost is mostly its pass over the weights, raise it (up to
    /// `batch_tokens`).
    pub join_tokens_per_step: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            backend: Backend::Llama,
            openai: openai::OpenAiConfig::default(),
            model: PathBuf::from("~/.cache/hearth/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            chat_template_fallback: "chatml".to_string(),
            chat_template_override: String::new(),
            threads: 1,
            threads_batch: 2,
            context_tokens: 4096,
            batch_tokens: 512,
            gpu_layers: 0,
            max_reply_tokens: 256,
            first_clause_words: 4,
            first_chunk_words: 8,
            first_chunk_ms: 500,
            temperature: 0.0,
            top_p: 0.95,
            seed: 42,
            queue_capacity: 16,
            log_native: false,
            background_queue: 64,
            fair_rooms: true,
            parallel: 1,
            kv_per_room: true,
            join_tokens_per_step: 64,
        }
    }
}

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The fixed instructions.
    System,
    /// The person.
    User,
    /// The assistant (the hub).
    Assistant,
}

impl Role {
    /// The role name chat templates expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The conversation, oldest first. A leading system message is kept when old turns are
    /// dropped to fit the context window.
    pub messages: Vec<ChatMessage>,
    /// The most tokens to generate; `None` takes `llm.max_reply_tokens`.
    pub max_tokens: Option<u32>,
    /// Keep generating past end-of-turn tokens (benchmarks only: it fixes the token count).
    pub ignore_eos: bool,
    /// The JSON schema (and llama.cpp's grammar for it, from [`json_schema_grammar`]) that
    /// the output must fit.
    pub grammar: Option<Grammar>,
    /// Background work (memory extraction): it runs only while no conversation waits, gives
    /// way to one at once and starts again later, and sends no sentences, only `Done`.
    pub background: bool,
    /// The lane (the room) of a conversation: lanes take turns, so no room starves.
    pub lane: String,
    /// What the job is for; `[roles.<name>]` applies to it as it is queued.
    pub role: JobRole,
    /// Sampling temperature; `None` takes `llm.temperature`.
    pub temperature: Option<f32>,
    /// The persona that answers: its adapter and settings go over its role's.
    pub persona: Option<PersonaJob>,
}

/// A persona's answer: what of it goes over the consciousness role's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonaJob {
    /// The persona's name (its adapter, when it has one, is loaded under it).
    pub name: String,
    /// Its temperature, when it sets one.
    pub temperature: Option<f32>,
    /// Its reply length, when it sets one.
    pub max_tokens: Option<u32>,
}

impl GenerateRequest {
    /// An answer (the consciousness) with the configured reply length.
    pub fn chat(messages: Vec<ChatMessage>) -> GenerateRequest {
        GenerateRequest {
            messages,
            max_tokens: None,
            ignore_eos: false,
            grammar: None,
            background: false,
            lane: String::new(),
            role: JobRole::Consciousness,
            temperature: None,
            persona: None,
        }
    }

    /// Background work for `role`, constrained by `grammar`, at most `max_tokens` long.
    pub fn structured(
        role: JobRole,
        messages: Vec<ChatMessage>,
        grammar: Grammar,
        max_tokens: u32,
    ) -> GenerateRequest {
        GenerateRequest {
            grammar: Some(grammar),
            ..GenerateRequest::background(role, messages, max_tokens)
        }
    }

    /// Background free text for `role`, at most `max_tokens` long.
    pub fn background(
        role: JobRole,
        messages: Vec<ChatMessage>,
        max_tokens: u32,
    ) -> GenerateRequest {
        GenerateRequest {
            max_tokens: Some(max_tokens),
            background: true,
            role,
            ..GenerateRequest::chat(messages)
        }
    }
}

/// A constraint on a job's output: a JSON schema, and the GBNF grammar llama.cpp derives
/// from it. The local engine samples under the grammar; an OpenAI-compatible server is sent
/// whichever it understands (`llm.openai.constrain`).
#[derive(Debug, Clone, PartialEq)]
pub struct Grammar {
    /// llama.cpp's GBNF.
    pub gbnf: String,
    /// The schema it came from.
    pub schema: serde_json::Value,
}

/// `schema` with the GBNF grammar that llama.cpp derives from it.
pub fn json_schema_grammar(schema: &serde_json::Value) -> Result<Grammar, LlmError> {
    let gbnf = llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
        LlmError::Grammar(format!("cannot turn the JSON schema into a grammar: {e}"))
    })?;
    Ok(Grammar {
        gbnf,
        schema: schema.clone(),
    })
}

/// What the inference thread sends back for one request, in order: sentences, then exactly one
/// `Done` or `Failed`.
#[derive(Debug)]
pub enum LlmEvent {
    /// A complete sentence of the reply.
    Sentence(String),
    /// The reply is complete.
    Done(GenerationStats),
    /// Generation failed; the sentences sent so far stand.
    Failed(LlmError),
}

/// Numbers about one generation.
#[derive(Debug, Clone, Default)]
pub struct GenerationStats {
    /// The whole reply text.
    pub text: String,
    /// Tokens in the rendered prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV entries were reused from the previous request.
    pub reused_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time to evaluate the new part of the prompt.
    pub prompt_eval: Duration,
    /// Time spent switching LoRA adapters for this job (parking one adapter's KV prefix and
    /// restoring the next one's); zero when the job ran with the adapter already set.
    pub adapter_switch: Duration,
    /// Time from the first to the last generated token.
    pub generation: Duration,
    /// Conversations decoded in the same batches as this one, itself included (1: alone).
    pub together: usize,
    /// Whether the request was cancelled before the model finished.
    pub cancelled: bool,
    /// Whether generation stopped at the token limit rather than at an end-of-turn token.
    pub truncated: bool,
    /// Background work that gave way to a conversation (internal: it is queued again).
    pub(crate) preempted: bool,
}

/// Where the chat template came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// The GGUF's `tokenizer.chat_template`.
    Gguf,
    /// `llm.chat_template_fallback`, because the GGUF has none.
    Fallback(String),
    /// `llm.chat_template_override`.
    Override(String),
}

/// What the loaded model is.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// `general.name` from the GGUF.
    pub name: Option<String>,
    /// `general.architecture` from the GGUF.
    pub architecture: Option<String>,
    /// Where the chat template came from.
    pub template: TemplateSource,
    /// The context window in tokens.
    pub context_tokens: u32,
    /// Where it runs: the GPUs this build found, or "CPU".
    pub backend: String,
    /// Its layers (blocks).
    pub layers: u32,
    /// How many of them run on a GPU (0 on a CPU build, whatever `llm.gpu_layers` says).
    pub gpu_layers: u32,
}

/// Errors of the language model subsystem.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model file is missing, unreadable or malformed.
    #[error(transparent)]
    Model(#[from] GgufError),
    /// llama.cpp refused the model or the context.
    #[error("llama.cpp could not load {path}: {reason}")]
    Load {
        /// The model path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The model has no chat template and no fallback is configured.
    #[error("model {path} has no chat template; set llm.chat_template_fallback to a llama.cpp template name such as \"gemma\" or \"chatml\"")]
    NoChatTemplate {
        /// The model path.
        path: PathBuf,
    },
    /// The chat template could not render the conversation.
    #[error("chat template {template:?} failed: {reason}")]
    Template {
        /// The template name, or "gguf".
        template: String,
        /// What failed.
        reason: String,
    },
    /// Too many requests are queued.
    #[error("the language model is busy with {capacity} queued requests; try again shortly")]
    Busy {
        /// `llm.queue_capacity`.
        capacity: usize,
    },
    /// Even the newest message alone does not fit the context window.
    #[error("the prompt needs {tokens} tokens but the context window leaves room for {limit}; shorten it or raise llm.context_tokens")]
    PromptTooLong {
        /// Tokens needed.
        tokens: usize,
        /// Tokens available.
        limit: usize,
    },
    /// A role's or a persona's LoRA adapter does not fit the model, or llama.cpp refused it.
    #[error("{setting} {path} cannot be used: {reason}; point it at a LoRA adapter trained for this model, or leave it empty")]
    Adapter {
        /// The setting that names it ("roles.pixie.adapter", "persona Brick's adapter").
        setting: String,
        /// The adapter path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The OpenAI-compatible model server could not be reached (after the retries).
    #[error("the model server at {url} is unreachable ({reason})")]
    Unreachable {
        /// `llm.openai.base_url`.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The model server answered with an error.
    #[error("the model server at {url} refused the request ({status}: {message})")]
    Server {
        /// `llm.openai.base_url`.
        url: String,
        /// The HTTP status (200 for an error inside a stream).
        status: u16,
        /// What it said.
        message: String,
    },
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// llama.cpp failed while evaluating.
    #[error("llama.cpp failed during inference: {0}")]
    Inference(String),
    /// The inference thread has stopped.
    #[error("the inference thread has stopped")]
    Stopped,
    /// A grammar (or the schema behind it) was refused.
    #[error("{0}")]
    Grammar(String),
}

impl LlmError {
    /// The error as a room hears it: the model server's failures without the address and
    /// the socket's words (the log has them).
    pub fn spoken(&self) -> String {
        match self {
            LlmError::Unreachable { .. } => "the model server is unreachable".to_string(),
            LlmError::Server { .. } => "the model server refused the request".to_string(),
            e => e.to_string(),
        }
    }
}

/// A request on its way to the inference thread, with where its events go and its
/// cancellation (opaque outside the engine).
pub struct Job {
    request: GenerateRequest,
    events: mpsc::Sender<LlmEvent>,
    cancel: CancellationToken,
}

/// A cloneable handle to the inference thread. The thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct LlmHandle {
    jobs: mpsc::Sender<Job>,
    info: Arc<ModelInfo>,
    capacity: usize,
    roles: Arc<RolesConfig>,
    usage: Arc<Usage>,
}

/// What the model has been asked for, for the dashboard's health page.
#[derive(Debug, Default)]
pub struct Usage {
    inner: std::sync::Mutex<UsageCounts>,
}

/// [`Usage`]'s counts.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct UsageCounts {
    /// Jobs queued, by role name.
    pub jobs: std::collections::BTreeMap<String, u64>,
    /// Jobs refused because the queue was full.
    pub refused: u64,
    /// The last answer's tokens per second (generation only), 0 before one.
    pub last_tokens_per_s: f32,
    /// Tokens generated by answers since start.
    pub answer_tokens: u64,
}

impl Usage {
    fn queued(&self, role: JobRole, refused: bool) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if refused {
            c.refused += 1;
        } else {
            *c.jobs.entry(role.name().to_string()).or_default() += 1;
        }
    }

    /// An answer ended with `stats`.
    pub fn answered(&self, stats: &GenerationStats) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.answer_tokens += stats.generated_tokens as u64;
        let secs = stats.generation.as_secs_f32();
        if stats.generated_tokens > 1 && secs > 0.0 {
            c.last_tokens_per_s = stats.generated_tokens as f32 / secs;
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> UsageCounts {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for LlmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmHandle")
            .field("info", &self.info)
            .finish()
    }
}

impl LlmHandle {
    /// Starts the inference thread and waits until the model is loaded (or failed to load).
    /// Every role runs with the base weights and its job's own settings.
    pub async fn start(
        config: LlmConfig,
    ) -> Result<(LlmHandle, std::thread::JoinHandle<()>), LlmError> {
        LlmHandle::start_with_roles(config, RolesConfig::default()).await
    }

    /// [`LlmHandle::start`] with `[roles.<name>]`: each role's adapter is checked and loaded
    /// before the handle is ready, and each role's settings apply to its jobs.
    pub async fn start_with_roles(
        config: LlmConfig,
        roles: RolesConfig,
    ) -> Result<(LlmHandle, std::thread::JoinHandle<()>), LlmError> {
        LlmHandle::start_with_personas(config, roles, &[]).await
    }

    /// [`LlmHandle::start_with_roles`] with each persona's adapter, as (name, file, scale),
    /// checked and loaded too; a persona's answers run with it.
    pub async fn start_with_personas(
        config: LlmConfig,
        roles: RolesConfig,
        personas: &[(String, PathBuf, f32)],
    ) -> Result<(LlmHandle, std::thread::JoinHandle<()>), LlmError> {
        if config.backend == Backend::Openai {
            return LlmHandle::start_openai(config, roles, personas);
        }
        let capacity = config.queue_capacity;
        let (jobs_tx, jobs_rx) = mpsc::channel(capacity);
        let (ready_tx, ready_rx) = oneshot::channel();
        let plan = adapters::Plan::from_roles(&roles).with_personas(personas);
        let thread = std::thread::Builder::new()
            .name("llm".to_string())
            .spawn(move || engine::run(config, plan, jobs_rx, ready_tx))
            .map_err(|e| LlmError::Inference(format!("cannot start the inference thread: {e}")))?;
        let info = ready_rx.await.map_err(|_| LlmError::Stopped)??;
        Ok((LlmHandle::over(jobs_tx, info, capacity, roles), thread))
    }

    /// A handle on the queue `jobs` of a started inference thread.
    fn over(
        jobs: mpsc::Sender<Job>,
        info: ModelInfo,
        capacity: usize,
        roles: RolesConfig,
    ) -> LlmHandle {
        LlmHandle {
            jobs,
            info: Arc::new(info),
            capacity,
            roles: Arc::new(roles),
            usage: Arc::default(),
        }
    }

    /// The model behind an OpenAI-compatible server (`llm.backend = "openai"`), served by
    /// the same job loop. Adapters cannot be loaded into a server from here: a role's or a
    /// persona's is a start error. An unreachable server is only a warning at start.
    fn start_openai(
        config: LlmConfig,
        roles: RolesConfig,
        personas: &[(String, PathBuf, f32)],
    ) -> Result<(LlmHandle, std::thread::JoinHandle<()>), LlmError> {
        let plan = adapters::Plan::from_roles(&roles).with_personas(personas);
        if let Some((path, setting)) = plan.files.first() {
            return Err(LlmError::Adapter {
                setting: setting.clone(),
                path: path.clone(),
                reason: "llm.backend = \"openai\" runs the model on a server, which hearth cannot load an adapter into (serve the adapter from the server instead)".to_string(),
            });
        }
        let capacity = config.queue_capacity;
        let max_background = config.background_queue;
        let model = openai::OpenAiModel::new(config)?;
        let info = model.info();
        let (jobs_tx, jobs_rx) = mpsc::channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("llm".to_string())
            .spawn(move || {
                let mut model = model;
                model.probe();
                model::serve(&mut model, jobs_rx, max_background)
            })
            .map_err(|e| LlmError::Inference(format!("cannot start the inference thread: {e}")))?;
        Ok((LlmHandle::over(jobs_tx, info, capacity, roles), thread))
    }

    /// Serves `model` on a new inference thread, with room for `capacity` waiting requests:
    /// the same queue, lanes and preemption as the llama.cpp engine (and room for four times
    /// as many background jobs).
    pub fn with_model(
        model: impl model::Model + Send + 'static,
        info: ModelInfo,
        capacity: usize,
    ) -> LlmHandle {
        let (jobs_tx, jobs_rx) = mpsc::channel(capacity.max(1));
        std::thread::Builder::new()
            .name("llm".to_string())
            .spawn(move || {
                let mut model = model;
                model::serve(&mut model, jobs_rx, capacity.max(1) * 4)
            })
            .expect("the inference thread starts");
        LlmHandle {
            jobs: jobs_tx,
            info: Arc::new(info),
            capacity,
            roles: Arc::default(),
            usage: Arc::default(),
        }
    }

    /// The same model, with `[roles.<name>]` applied to every job queued through it.
    pub fn with_roles(self, roles: RolesConfig) -> LlmHandle {
        LlmHandle {
            roles: Arc::new(roles),
            ..self
        }
    }

    /// What model is loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// What the model has been asked for.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Requests waiting for the inference thread, and how many may wait.
    pub fn queue(&self) -> (usize, usize) {
        let max = self.jobs.max_capacity();
        (max - self.jobs.capacity(), max)
    }

    /// The messages the model is given for `request`, its role's settings applied (what
    /// the role log keeps).
    pub fn given(&self, request: &GenerateRequest) -> Vec<ChatMessage> {
        let mut seen = request.clone();
        self.roles.apply(&mut seen);
        seen.messages
    }

    /// Queues a request. Events arrive on the returned receiver; dropping it, or cancelling
    /// `cancel`, stops the generation early.
    pub fn generate(
        &self,
        mut request: GenerateRequest,
        cancel: CancellationToken,
    ) -> Result<mpsc::Receiver<LlmEvent>, LlmError> {
        self.roles.apply(&mut request);
        let role = request.role;
        let (events, rx) = mpsc::channel(64);
        let job = Job {
            request,
            events,
            cancel,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.usage.queued(role, false);
                Ok(rx)
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.usage.queued(role, true);
                Err(LlmError::Busy {
                    capacity: self.capacity,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(LlmError::Stopped),
        }
    }

    /// Generates a whole reply and returns its sentences and stats.
    pub async fn complete(
        &self,
        request: GenerateRequest,
    ) -> Result<(Vec<String>, GenerationStats), LlmError> {
        self.complete_until(request, CancellationToken::new()).await
    }

    /// [`LlmHandle::complete`], stopped early when `cancel` fires (the stats then say
    /// `cancelled`).
    pub async fn complete_until(
        &self,
        request: GenerateRequest,
        cancel: CancellationToken,
    ) -> Result<(Vec<String>, GenerationStats), LlmError> {
        let mut rx = self.generate(request, cancel)?;
        let mut sentences = Vec::new();
        while let Some(event) = rx.recv().await {
            match event {
                LlmEvent::Sentence(s) => sentences.push(s),
                LlmEvent::Done(stats) => return Ok((sentences, stats)),
                LlmEvent::Failed(e) => return Err(e),
            }
        }
        Err(LlmError::Stopped)
    }
}
