//! Teaching a role: the examples `hearth-hub train export` wrote become tokens exactly as the
//! engine renders prompts ([`Tokenizer`]), a LoRA is fitted to the replies on the CPU
//! ([`lora`]), and the adapter is written as a llama.cpp LoRA GGUF that
//! `roles.<name>.adapter` loads.
//!
//! It runs offline, with the hub stopped or beside it, from the command line only: errors are
//! `anyhow` with the file and line they concern.

pub mod lora;

use std::path::Path;

use anyhow::{ensure, Context};

use crate::llm::{gguf, ChatMessage, LlmConfig, Role, Tokenizer};
use lora::{Base, Example, FitOptions, FitReport, Lora, LoraConfig, Progress, Target};

/// How an adapter is fitted.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The adapter's rank.
    pub rank: usize,
    /// Its scaling numerator (the update is scaled by alpha / rank).
    pub alpha: f32,
    /// The projections adapted in every block.
    pub targets: Vec<Target>,
    /// Passes over the examples.
    pub epochs: usize,
    /// AdamW's learning rate.
    pub learning_rate: f64,
    /// Examples are cut to this many tokens.
    pub max_tokens: usize,
    /// Seeds the adapter's initial values and the examples' order.
    pub seed: u64,
    /// The role's minimal prompt in place of its full one in every example, so that the
    /// adapter learns to act on the minimal prompt as the model did on the full one (what
    /// lets a role's prompt shrink).
    pub shorten: Option<Shorten>,
}

/// How an example's system message becomes the one the role gets with an adapter, as
/// [`crate::llm::RolesConfig::apply`] and the turn pipeline make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shorten {
    /// A message that starts with `full` starts with `minimal` instead, the rest kept (the
    /// consciousness: the room's summary follows its prompt).
    Prefix {
        /// The full prompt.
        full: String,
        /// The minimal one.
        minimal: String,
    },
    /// The whole system message is `minimal` (every other role).
    Whole {
        /// The minimal prompt.
        minimal: String,
    },
}

impl Shorten {
    /// `system` as the role gets it with its adapter, or `None` when this does not apply.
    fn apply(&self, system: &str) -> Option<String> {
        match self {
            Shorten::Prefix { full, minimal } => system
                .strip_prefix(full.as_str())
                .map(|rest| format!("{minimal}{rest}")),
            Shorten::Whole { minimal } => Some(minimal.clone()),
        }
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            rank: 8,
            alpha: 16.0,
            targets: Target::ALL.to_vec(),
            epochs: 3,
            learning_rate: 1e-3,
            max_tokens: 512,
            seed: 0,
            shorten: None,
        }
    }
}

/// Reads chat-format JSON lines (`{"messages": [{"role", "content"}, ...]}`, the last
/// message the assistant's reply) and tokenises each as the engine would render it, the
/// system prompt shortened as `shorten` says. A reply that stopped at the token limit
/// (`provenance.outcome` says `truncated`) is learnt without an end after it. Returns the
/// examples and how many were shortened.
pub fn read_examples(
    path: &Path,
    tokenizer: &Tokenizer,
    shorten: Option<&Shorten>,
) -> anyhow::Result<(Vec<Example>, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut examples = Vec::new();
    let mut shortened = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let (mut messages, truncated) = chat_messages(line).with_context(at)?;
        if let (Some(shorten), Some(first)) = (shorten, messages.first_mut()) {
            if first.role == Role::System {
                if let Some(short) = shorten.apply(&first.content) {
                    first.content = short;
                    shortened += 1;
                }
            }
        }
        let Some((reply, prompt)) = messages.split_last() else {
            anyhow::bail!("{}: no messages", at());
        };
        ensure!(
            reply.role == Role::Assistant && !prompt.is_empty(),
            "{}: the last message must be the assistant's reply, after at least one other",
            at()
        );
        let (mut tokens, learn_from) =
            tokenizer.example(prompt, &reply.content).with_context(at)?;
        if truncated {
            tokens.pop();
        }
        examples.push(Example { tokens, learn_from });
    }
    ensure!(
        !examples.is_empty(),
        "{} holds no examples (write them with `hearth-hub train export`)",
        path.display()
    );
    Ok((examples, shortened))
}

/// An example's messages, and whether its reply stopped at the token limit.
fn chat_messages(line: &str) -> anyhow::Result<(Vec<ChatMessage>, bool)> {
    let value: serde_json::Value = serde_json::from_str(line).context("not JSON")?;
    let truncated = value["provenance"]["outcome"]
        .as_array()
        .is_some_and(|o| o.iter().any(|s| s == "truncated"));
    let messages = value["messages"]
        .as_array()
        .context("no \"messages\" array")?;
    let messages = messages
        .iter()
        .map(|m| {
            let role = match m["role"].as_str() {
                Some("system") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                other => anyhow::bail!("a message has role {other:?}"),
            };
            let content = m["content"].as_str().context("a message has no content")?;
            Ok(ChatMessage::new(role, content))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((messages, truncated))
}

/// What [`fit_adapter`] did.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The training run.
    pub report: FitReport,
    /// Examples whose system prompt was shortened.
    pub shortened: usize,
}

/// Fits an adapter for `llm.model` to the examples in `data` and writes it to `out`
/// (replacing it whole, never half-written). `progress` hears each step.
pub fn fit_adapter(
    llm: &LlmConfig,
    data: &Path,
    out: &Path,
    opts: &TrainOptions,
    mut progress: impl FnMut(&Progress),
) -> anyhow::Result<Fitted> {
    let tokenizer = Tokenizer::load(llm)?;
    let (examples, shortened) = read_examples(data, &tokenizer, opts.shorten.as_ref())?;
    drop(tokenizer);
    let base = Base::load(&llm.model)
        .with_context(|| format!("cannot load {} for training", llm.model.display()))?;
    let mut lora = Lora::new(
        &base,
        &LoraConfig {
            rank: opts.rank,
            alpha: opts.alpha,
            targets: opts.targets.clone(),
            seed: opts.seed,
        },
    )?;
    let fit = FitOptions {
        epochs: opts.epochs,
        learning_rate: opts.learning_rate,
        weight_decay: 0.0,
        max_tokens: opts.max_tokens,
        seed: opts.seed,
    };
    let report = lora::fit(&base, &mut lora, &examples, &fit, &mut progress)?;
    crate::files::replace(out, &lora.to_gguf()?)
        .with_context(|| format!("cannot write the adapter to {}", out.display()))?;
    gguf::validate(out)?;
    Ok(Fitted { report, shortened })
}
