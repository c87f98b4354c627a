//! The inference thread: owns the llama.cpp model and context, and serves jobs one at a time.

use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::{LlamaStateSeqFlags, SeqState};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};

use super::adapters::{self, Plan};
use super::sentence::SentenceSplitter;
use super::LlmConfig;
use super::{
    gguf, ChatMessage, GenerateRequest, GenerationStats, Job, LlmError, LlmEvent, ModelInfo, Role,
    TemplateSource,
};

mod batch;

/// llama.cpp's backend may be initialised once per process; every model shares it.
pub(crate) fn backend(log_native: bool) -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(log_native),
            );
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Inference(format!("cannot initialise llama.cpp: {e}")))
}

/// Validates the file, then loads it. The validation is what keeps a corrupt file from
/// aborting the process inside llama.cpp.
pub(crate) fn load_model(config: &LlmConfig) -> Result<(LlamaModel, gguf::GgufSummary), LlmError> {
    if config.gpu_layers > 0 && !backend(config.log_native)?.supports_gpu_offload() {
        tracing::warn!(model = %config.model.display(), gpu_layers = config.gpu_layers,
            "gpu_layers is set, and llama.cpp has no GPU to offload to (this hearth-hub was built without a GPU backend, or found no device): every layer runs on the CPU (a GPU build is cargo's --features cuda or vulkan; see README)");
    }
    let params = LlamaModelParams::default().with_n_gpu_layers(config.gpu_layers);
    load_with(config, &params)
}

/// The compute devices this build of llama.cpp found, one line each ("CUDA0: NVIDIA H200
/// (GPU)"), and whether it can offload layers to one of them.
pub fn devices() -> Result<(Vec<String>, bool), LlmError> {
    let offload = backend(false)?.supports_gpu_offload();
    let lines = llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| {
            format!(
                "{}: {} ({:?}, backend {})",
                d.name, d.description, d.device_type, d.backend
            )
        })
        .collect();
    Ok((lines, offload))
}

/// Where a model's layers run: the GPUs this build of llama.cpp found, and how many of its
/// `layers` go to them with `gpu_layers` asked for (as llama.cpp places them: the first
/// `gpu_layers` blocks); "CPU" and 0 when none do.
pub(crate) fn placement(gpu_layers: u32, layers: u32) -> (String, u32) {
    use llama_cpp_2::LlamaBackendDeviceType as Kind;
    let gpus: Vec<String> = llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .filter(|d| matches!(d.device_type, Kind::Gpu | Kind::IntegratedGpu))
        .map(|d| format!("{} ({})", d.backend, d.description))
        .collect();
    if gpus.is_empty() || gpu_layers == 0 {
        ("CPU".to_string(), 0)
    } else {
        (gpus.join(", "), gpu_layers.min(layers))
    }
}

/// `config.model`, validated, then loaded with `params`.
fn load_with(
    config: &LlmConfig,
    params: &LlamaModelParams,
) -> Result<(LlamaModel, gguf::GgufSummary), LlmError> {
    let summary = gguf::validate(&config.model)?;
    let backend = backend(config.log_native)?;
    let model =
        LlamaModel::load_from_file(backend, &config.model, params).map_err(|e| LlmError::Load {
            path: config.model.clone(),
            reason: e.to_string(),
        })?;
    Ok((model, summary))
}

pub(crate) fn new_context<'m>(
    model: &'m LlamaModel,
    config: &LlmConfig,
) -> Result<LlamaContext<'m>, LlmError> {
    // Decoding together, each conversation (and sequence 0, the one-at-a-time cache) has
    // `context_tokens` of its own in the shared buffer.
    let cells = config.context_tokens * (config.parallel.max(1) + u32::from(config.parallel > 1));
    let mut params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(cells))
        .with_n_batch(config.batch_tokens)
        .with_n_threads(config.threads as i32)
        .with_n_threads_batch(config.threads_batch as i32);
    if config.parallel > 1 {
        // Sequence 0 and one per conversation decoded together, each with a KV stream of
        // `context_tokens` cells: a token attends over its own sequence's cells only, not
        // over every room's (a shared buffer made each step's attention grow with the
        // number of rooms).
        params = params
            .with_n_seq_max(config.parallel + 1)
            .with_kv_unified(!config.kv_per_room);
    }
    model
        .new_context(backend(config.log_native)?, params)
        .map_err(|e| LlmError::Load {
            path: config.model.clone(),
            reason: format!(
                "cannot create a context of {} tokens: {e}",
                config.context_tokens
            ),
        })
}

fn choose_template(
    model: &LlamaModel,
    config: &LlmConfig,
) -> Result<(LlamaChatTemplate, TemplateSource), LlmError> {
    let named = |name: &str| {
        LlamaChatTemplate::new(name).map_err(|e| LlmError::Template {
            template: name.to_string(),
            reason: e.to_string(),
        })
    };
    if !config.chat_template_override.is_empty() {
        let name = &config.chat_template_override;
        return Ok((named(name)?, TemplateSource::Override(name.clone())));
    }
    match model.chat_template(None) {
        Ok(t) => Ok((t, TemplateSource::Gguf)),
        Err(_) if config.chat_template_fallback.is_empty() => Err(LlmError::NoChatTemplate {
            path: config.model.clone(),
        }),
        Err(_) => {
            let name = &config.chat_template_fallback;
            Ok((named(name)?, TemplateSource::Fallback(name.clone())))
        }
    }
}

/// Checks and loads every adapter of `plan`, in its order.
fn load_adapters(
    model: &mut LlamaModel,
    summary: &gguf::GgufSummary,
    plan: &Plan,
) -> Result<Vec<LlamaLoraAdapter>, LlmError> {
    plan.files
        .iter()
        .map(|(path, setting)| {
            adapters::check(path, setting, summary)?;
            let adapter = model
                .lora_adapter_init(path)
                .map_err(|e| LlmError::Adapter {
                    setting: setting.clone(),
                    path: path.clone(),
                    reason: format!(
                        "llama.cpp refused it ({e}); set llm.log_native = true to log its reason"
                    ),
                })?;
            tracing::info!(adapter = %path.display(), %setting, "LoRA adapter loaded");
            Ok(adapter)
        })
        .collect()
}

/// The thread body: load, report readiness, then serve jobs until every handle is gone.
pub(crate) fn run(
    config: LlmConfig,
    plan: Plan,
    jobs: mpsc::Receiver<Job>,
    ready: oneshot::Sender<Result<ModelInfo, LlmError>>,
) {
    let loaded = load_model(&config).and_then(|(mut model, summary)| {
        let (template, source) = choose_template(&model, &config)?;
        let adapters = load_adapters(&mut model, &summary, &plan)?;
        Ok((model, summary, template, source, adapters))
    });
    let (model, summary, template, source, adapters) = match loaded {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let ctx = match new_context(&model, &config) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut session = Session {
        model: &model,
        ctx,
        template,
        template_name: match &source {
            TemplateSource::Gguf => "gguf".to_string(),
            TemplateSource::Fallback(n) | TemplateSource::Override(n) => n.clone(),
        },
        cached: Vec::new(),
        saved: None,
        config: &config,
        plan,
        adapters,
        active: None,
        parked: Vec::new(),
        slots: Vec::new(),
    };
    // Render a probe conversation now, so that an unknown template name fails at start-up
    // instead of on the first question.
    if let Err(e) = session.render(&[ChatMessage::new(Role::User, "hello")]) {
        let _ = ready.send(Err(e));
        return;
    }
    let layers = model.n_layer();
    let (backend, gpu_layers) = placement(config.gpu_layers, layers);
    let info = ModelInfo {
        path: config.model.clone(),
        name: summary.name,
        architecture: summary.architecture,
        template: source,
        context_tokens: session.window() as u32,
        backend,
        layers,
        gpu_layers,
    };
    tracing::info!(model = %config.model.display(), name = ?info.name, template = ?info.template,
        context = info.context_tokens, threads = config.threads, backend = %info.backend,
        gpu_layers = info.gpu_layers, layers = info.layers, "model loaded");
    if ready.send(Ok(info)).is_err() {
        return;
    }
    super::model::serve(&mut session, jobs, config.background_queue);
}

impl super::model::Model for Session<'_> {
    fn parallel(&self) -> usize {
        self.config.parallel.max(1) as usize
    }

    fn generate_together(
        &mut self,
        jobs: &[super::model::Together<'_>],
        join: &mut super::model::Join<'_>,
    ) -> Vec<bool> {
        self.together(jobs, join)
    }

    fn generate(
        &mut self,
        request: &GenerateRequest,
        events: &mpsc::Sender<LlmEvent>,
        cancel: &tokio_util::sync::CancellationToken,
        preempt: &mut dyn FnMut() -> bool,
    ) -> Result<GenerationStats, LlmError> {
        let started = Instant::now();
        let max_tokens = request.max_tokens.unwrap_or(self.config.max_reply_tokens) as usize;
        let mut sampler = self.sampler(request)?;
        let tokens = self.fit_prompt(request, max_tokens)?;
        let persona = request.persona.as_ref().map(|p| p.name.as_str());
        let adapter_switch = self.switch_to(self.plan.variant_for(request.role, persona))?;
        // An abandoned job costs no prompt evaluation.
        if cancel.is_cancelled() || events.is_closed() {
            return Ok(GenerationStats {
                prompt_tokens: tokens.len(),
                cancelled: true,
                ..GenerationStats::default()
            });
        }

        // Reuse the KV entries of the longest common prefix (the system prompt at least, the
        // whole earlier exchange when the same room goes on).
        let keep = self.prefill(&tokens, preempt)?;
        let preempted = GenerationStats {
            prompt_tokens: tokens.len(),
            reused_tokens: keep,
            adapter_switch,
            preempted: true,
            ..GenerationStats::default()
        };
        if self.cached.len() < tokens.len() {
            return Ok(preempted);
        }
        let prompt_eval = started.elapsed();

        let vocab = self.model.vocab();
        let mut batch = LlamaBatch::new(1, 1);
        let mut splitter = SentenceSplitter::for_reply(self.config);
        let mut utf8 = Utf8Stream::default();
        let mut text = String::new();
        // The prefill asked for logits of the last prompt token only: that is index -1 of
        // its last batch, which llama.cpp resolves.
        let mut logits_at = -1;
        let mut generated = 0;
        let mut cancelled = false;
        let mut ended = false;
        let gen_started = Instant::now();
        let room = self.window().saturating_sub(tokens.len());
        while generated < max_tokens.min(room) {
            if cancel.is_cancelled() || events.is_closed() {
                cancelled = true;
                break;
            }
            if preempt() {
                return Ok(preempted);
            }
            // `sample` also accepts the token into the sampler chain: never call accept again.
            let token = sampler.sample(&self.ctx, logits_at);
            if !request.ignore_eos && vocab.is_eog(token) {
                ended = true;
                break;
            }
            generated += 1;
            let piece = utf8.push(&vocab.token_to_piece(token, false, None));
            text.push_str(&piece);
            if !request.background {
                for sentence in splitter.push(&piece) {
                    if events.blocking_send(LlmEvent::Sentence(sentence)).is_err() {
                        cancelled = true;
                    }
                }
            }
            batch.clear();
            batch
                .add(token, self.cached.len() as i32, &[0], true)
                .map_err(|e| LlmError::Inference(e.to_string()))?;
            self.decode(&mut batch)?;
            self.cached.push(token);
            logits_at = 0;
        }
        let generation = gen_started.elapsed();
        let tail = utf8.finish();
        text.push_str(&tail);
        if !request.background {
            let mut rest: Vec<String> = splitter.push(&tail);
            rest.extend(splitter.finish());
            for sentence in rest {
                let _ = events.blocking_send(LlmEvent::Sentence(sentence));
            }
        }
        Ok(GenerationStats {
            text: text.trim().to_string(),
            prompt_tokens: tokens.len(),
            reused_tokens: keep,
            generated_tokens: generated,
            prompt_eval,
            adapter_switch,
            generation,
            together: 1,
            cancelled,
            truncated: !ended && !cancelled,
            preempted: false,
        })
    }

    fn reset(&mut self) {
        Session::reset(self);
    }

    fn checkpoint(&mut self) {
        self.saved = Some((self.active, self.cached.clone()));
    }

    fn restore(&mut self, preempt: &mut dyn FnMut() -> bool) {
        let Some((variant, tokens)) = self.saved.take() else {
            return;
        };
        if variant == UNKNOWN {
            return;
        }
        // Back to the conversation's adapter first: its prefix was parked, not lost.
        if let Err(e) = self.switch_to(variant) {
            tracing::warn!(error = %e, "could not switch the adapter back");
            return;
        }
        if let Err(e) = self.prefill(&tokens, preempt) {
            tracing::debug!(error = %e, "could not restore the conversation cache");
            self.reset();
        }
    }
}

struct Session<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: LlamaChatTemplate,
    template_name: String,
    /// The tokens whose KV entries are in sequence 0 of the context, in order.
    cached: Vec<LlamaToken>,
    /// A conversation's adapter variant and tokens, saved before background work overwrote
    /// the cache.
    saved: Option<(Option<usize>, Vec<LlamaToken>)>,
    config: &'m LlmConfig,
    /// Which adapter each role runs with.
    plan: Plan,
    /// The loaded adapters, by `plan.files`.
    adapters: Vec<LlamaLoraAdapter>,
    /// The variant set on the context now (`None`: the base weights); the cache was
    /// computed with it.
    active: Option<usize>,
    /// The KV prefixes of the other variants, at most one each.
    parked: Vec<Parked>,
    /// The sequences conversations decoded together keep between groups, by room.
    slots: Vec<batch::Slot>,
}

/// What `Session::active` says after setting an adapter failed: the context holds no known
/// variant, so the next job sets its own whatever it is.
const UNKNOWN: Option<usize> = Some(usize::MAX);

/// A variant's KV prefix, kept while another variant runs.
struct Parked {
    variant: Option<usize>,
    tokens: Vec<LlamaToken>,
    state: SeqState,
}

impl Session<'_> {
    fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
        self.slots.clear();
    }

    /// Sets `variant`'s adapter (or none) on the context, unless it is set already. The KV
    /// prefix computed with the one set now is parked, and `variant`'s own comes back, so a
    /// conversation's prefix survives another role's job. Returns the time it took.
    fn switch_to(&mut self, variant: Option<usize>) -> Result<Duration, LlmError> {
        if variant == self.active {
            return Ok(Duration::ZERO);
        }
        let started = Instant::now();
        let leaving = self.active;
        self.parked.retain(|p| p.variant != leaving);
        if !self.cached.is_empty() {
            match self.ctx.state_seq_get(0, LlamaStateSeqFlags::empty()) {
                Ok(state) => self.parked.push(Parked {
                    variant: leaving,
                    tokens: std::mem::take(&mut self.cached),
                    state,
                }),
                Err(e) => tracing::debug!(error = %e, "could not park the KV prefix"),
            }
        }
        self.reset();
        let set = match variant {
            Some(v) => {
                let (file, scale) = self.plan.variants[v];
                self.ctx
                    .lora_adapter_set(&mut self.adapters[file], scale)
                    .map_err(|e| e.to_string())
            }
            None => match self.adapters.first_mut() {
                Some(any) => self.ctx.lora_adapter_remove(any).map_err(|e| e.to_string()),
                None => Ok(()),
            },
        };
        if let Err(e) = set {
            self.active = UNKNOWN;
            return Err(LlmError::Inference(format!(
                "cannot set the LoRA adapter: {e}"
            )));
        }
        self.active = variant;
        if let Some(i) = self.parked.iter().position(|p| p.variant == variant) {
            let parked = self.parked.swap_remove(i);
            match self.ctx.state_seq_set(&parked.state, 0) {
                Ok(()) => self.cached = parked.tokens,
                Err(e) => {
                    tracing::debug!(error = %e, "could not restore a parked KV prefix");
                    self.reset();
                }
            }
        }
        Ok(started.elapsed())
    }

    /// One conversation's context window: `context_tokens`, or less if llama.cpp gave less.
    fn window(&self) -> usize {
        self.config.context_tokens.min(self.ctx.n_ctx()) as usize
    }

    fn render(&self, messages: &[ChatMessage]) -> Result<Vec<LlamaToken>, LlmError> {
        render(self.model, &self.template, &self.template_name, messages)
    }

    /// Renders the request, dropping the oldest turns after the system prompt until the prompt
    /// and the reply fit the context window.
    fn fit_prompt(
        &self,
        request: &GenerateRequest,
        reserve: usize,
    ) -> Result<Vec<LlamaToken>, LlmError> {
        let limit = self.window().saturating_sub(reserve);
        let msgs = &request.messages;
        let system = usize::from(msgs.first().is_some_and(|m| m.role == Role::System));
        let mut first = system;
        loop {
            let mut kept: Vec<ChatMessage> = msgs[..system].to_vec();
            kept.extend_from_slice(&msgs[first..]);
            let tokens = self.render(&kept)?;
            if tokens.len() <= limit {
                if first > system {
                    tracing::debug!(
                        dropped = first - system,
                        "dropped old turns to fit the context"
                    );
                }
                return Ok(tokens);
            }
            if first + 1 >= msgs.len() {
                return Err(LlmError::PromptTooLong {
                    tokens: tokens.len(),
                    limit,
                });
            }
            first += 1;
        }
    }

    /// The sampler chain. A grammar goes FIRST: llama.cpp aborts the process when top-k runs
    /// before it. Structured output is always greedy.
    fn sampler(&self, request: &GenerateRequest) -> Result<LlamaSampler, LlmError> {
        let c = self.config;
        if let Some(grammar) = request.grammar.as_ref().map(|g| g.gbnf.as_str()) {
            let constrained = LlamaSampler::grammar(self.model, grammar, "root")
                .map_err(|e| LlmError::Grammar(format!("llama.cpp refused the grammar: {e}")))?;
            return Ok(LlamaSampler::chain_simple([
                constrained,
                LlamaSampler::greedy(),
            ]));
        }
        let temperature = request.temperature.unwrap_or(c.temperature);
        Ok(if temperature <= 0.0 {
            LlamaSampler::greedy()
        } else {
            LlamaSampler::chain_simple([
                LlamaSampler::top_p(c.top_p, 1),
                LlamaSampler::temp(temperature),
                LlamaSampler::dist(c.seed),
            ])
        })
    }

    /// Evaluates `tokens` into sequence 0, reusing the longest prefix already cached, and
    /// returns how many were reused. At least one token is evaluated again so that there are
    /// fresh logits to sample from; `preempt` is asked between batches and stops early (the
    /// cache then holds a shorter prefix, which is still valid).
    fn prefill(
        &mut self,
        tokens: &[LlamaToken],
        preempt: &mut dyn FnMut() -> bool,
    ) -> Result<usize, LlmError> {
        let mut keep = common_prefix(&self.cached, tokens).min(tokens.len().saturating_sub(1));
        if keep < self.cached.len() {
            if self
                .ctx
                .clear_kv_cache_seq(Some(0), Some(keep as u32), None)
                .is_err()
            {
                self.reset();
                keep = 0;
            }
            self.cached.truncate(keep);
        }
        let n_batch = self.config.batch_tokens as usize;
        let mut batch = LlamaBatch::new(n_batch.max(1), 1);
        for start in (keep..tokens.len()).step_by(n_batch.max(1)) {
            if preempt() {
                break;
            }
            let end = (start + n_batch).min(tokens.len());
            batch.clear();
            for (i, &t) in tokens.iter().enumerate().take(end).skip(start) {
                batch
                    .add(t, i as i32, &[0], i + 1 == tokens.len())
                    .map_err(|e| LlmError::Inference(e.to_string()))?;
            }
            self.decode(&mut batch)?;
            self.cached.extend_from_slice(&tokens[start..end]);
        }
        Ok(keep)
    }

    fn decode(&mut self, batch: &mut LlamaBatch) -> Result<(), LlmError> {
        self.ctx
            .decode(batch)
            .map_err(|e| LlmError::Inference(e.to_string()))
    }
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Turns token bytes into text without splitting a multi-byte character across pieces.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"),
                    );
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next piece.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Marks where a message's content goes while the template is rendered: private-use
/// characters, which no speech or typing produces and which content is cleared of.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// The prompt's tokens: the chat template rendered around the messages, where only the
/// template's own text may become control tokens. Every message's content (what a person
/// said, recalled memories, the hub's own instructions) is tokenised as plain text, so that
/// someone saying or storing `<|im_start|>system` cannot open a turn of their own.
///
/// The template is rendered with a marker in place of each content; the text between markers
/// is the template's, the markers are replaced by the content tokenised without special
/// tokens. A template that drops or repeats a marker is an error, not a silent fallback.
pub(crate) fn render(
    model: &LlamaModel,
    template: &LlamaChatTemplate,
    template_name: &str,
    messages: &[ChatMessage],
) -> Result<Vec<LlamaToken>, LlmError> {
    let template_err = |reason: String| LlmError::Template {
        template: template_name.to_string(),
        reason,
    };
    let contents: Vec<String> = messages
        .iter()
        .map(|m| m.content.replace([OPEN, CLOSE], "").trim().to_string())
        .collect();
    let chat = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            LlamaChatMessage::new(m.role.as_str().to_string(), format!("{OPEN}{i}{CLOSE}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| template_err(e.to_string()))?;
    let rendered = model
        .apply_chat_template(template, &chat, true)
        .map_err(|e| template_err(e.to_string()))?;
    let vocab = model.vocab();
    let mut tokens = Vec::new();
    let mut seen = vec![false; messages.len()];
    let mut rest = rendered.as_str();
    loop {
        let (before, marked) = match rest.split_once(OPEN) {
            Some(split) => split,
            None => (rest, ""),
        };
        if !before.is_empty() {
            tokens.extend(vocab.tokenize(before.as_bytes(), tokens.is_empty(), true));
        }
        if marked.is_empty() {
            break;
        }
        let (index, after) = marked
            .split_once(CLOSE)
            .and_then(|(n, after)| Some((n.parse::<usize>().ok()?, after)))
            .ok_or_else(|| template_err("the template changed a message marker".into()))?;
        match seen.get_mut(index) {
            Some(seen) if !*seen => *seen = true,
            _ => {
                return Err(template_err(format!(
                    "the template repeats message {index}"
                )))
            }
        }
        let content = &contents[index];
        if !content.is_empty() {
            let plain = vocab.tokenize(content.as_bytes(), tokens.is_empty(), false);
            if plain != vocab.tokenize(content.as_bytes(), tokens.is_empty(), true) {
                warn_control_text(index + 1 == messages.len(), messages[index].role);
            }
            tokens.extend(plain);
        }
        rest = after;
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(template_err(format!(
            "the template dropped message {missing}"
        )));
    }
    // Templates that write their own BOS would otherwise get a second one.
    if tokens.len() >= 2 && tokens[0] == vocab.bos() && tokens[1] == vocab.bos() {
        tokens.remove(0);
    }
    Ok(tokens)
}

/// Says that a message holds the text of the model's control tokens, which it reads as plain
/// text: loudly for what was said this turn (an injection attempt, or an odd paste), quietly
/// for history and memory, which repeat it on every later turn.
fn warn_control_text(said_now: bool, role: Role) {
    let role = role.as_str();
    if said_now {
        tracing::warn!(
            role,
            "a message holds control-token text (such as <|im_start|>); it is read as plain text"
        );
    } else {
        tracing::debug!(
            role,
            "an earlier message holds control-token text; it is read as plain text"
        );
    }
}

/// The model's tokenizer and chat template, as the engine renders prompts: what training
/// tokenises its examples with, so that an adapter learns the very tokens it will be given.
pub struct Tokenizer {
    model: LlamaModel,
    template: LlamaChatTemplate,
}

impl Tokenizer {
    /// Loads the vocabulary and the chat template of `config.model` (not its weights).
    pub fn load(config: &LlmConfig) -> Result<Tokenizer, LlmError> {
        let params = LlamaModelParams::default().with_vocab_only(true);
        let (model, _) = load_with(config, &params)?;
        let (template, _) = choose_template(&model, config)?;
        Ok(Tokenizer { model, template })
    }

    /// How many tokens `text` is, as plain text.
    pub fn count(&self, text: &str) -> usize {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .len()
    }

    /// The tokens of `messages` followed by `reply` as the assistant's turn, and where the
    /// reply starts: the prompt is exactly what the engine would evaluate for `messages`, and
    /// the reply runs through its end-of-turn token.
    pub fn example(
        &self,
        messages: &[ChatMessage],
        reply: &str,
    ) -> Result<(Vec<u32>, usize), LlmError> {
        let prompt = render(&self.model, &self.template, "training", messages)?;
        let mut whole = messages.to_vec();
        whole.push(ChatMessage::new(Role::Assistant, reply));
        let mut tokens = render(&self.model, &self.template, "training", &whole)?;
        if !tokens.starts_with(&prompt) {
            return Err(LlmError::Template {
                template: "training".into(),
                reason:
                    "the prompt does not render as the start of the conversation with its reply"
                        .into(),
            });
        }
        let vocab = self.model.vocab();
        let end = tokens[prompt.len()..]
            .iter()
            .position(|t| vocab.is_eog(*t))
            .map(|i| prompt.len() + i + 1)
            .ok_or_else(|| LlmError::Template {
                template: "training".into(),
                reason: "the reply has no end-of-turn token after it".into(),
            })?;
        tokens.truncate(end);
        Ok((tokens.iter().map(|t| t.0 as u32).collect(), prompt.len()))
    }
}

/// The plainest generation loop llama-cpp-2 allows, for the benchmark to compare the hub's
/// engine against: greedy, no sentence splitting, no channels. Returns (prompt tokens,
/// generated tokens, generation time).
pub fn bare_generation_loop(
    config: &LlmConfig,
    prompt: &[ChatMessage],
    n_tokens: usize,
) -> Result<(usize, usize, Duration), LlmError> {
    let (model, _) = load_model(config)?;
    let (template, _) = choose_template(&model, config)?;
    let tokens = render(&model, &template, "bare", prompt)?;
    let mut ctx = new_context(&model, config)?;
    let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
    batch
        .add_sequence(&tokens, 0, false)
        .map_err(|e| LlmError::Inference(e.to_string()))?;
    ctx.decode(&mut batch)
        .map_err(|e| LlmError::Inference(e.to_string()))?;
    let mut sampler = LlamaSampler::greedy();
    let mut logits_at = batch.n_tokens() - 1;
    let started = Instant::now();
    for pos in (tokens.len() as i32..).take(n_tokens) {
        let token = sampler.sample(&ctx, logits_at);
        let _ = model.vocab().token_to_piece(token, false, None);
        batch.clear();
        batch
            .add(token, pos, &[0], true)
            .map_err(|e| LlmError::Inference(e.to_string()))?;
        ctx.decode(&mut batch)
            .map_err(|e| LlmError::Inference(e.to_string()))?;
        logits_at = 0;
    }
    Ok((tokens.len(), n_tokens, started.elapsed()))
}

#[cfg(test)]
mod tests;
