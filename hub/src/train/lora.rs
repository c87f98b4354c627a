//! CPU LoRA fine-tuning for llama-architecture GGUF models, built on candle.
//!
//! The base model is read from a GGUF file and dequantized to `f32`; its weights are plain
//! tensors that never receive gradients. A [`Lora`] adds trainable low-rank updates to selected
//! projection matrices, [`fit`] trains them with AdamW on chat examples, and
//! [`Lora::to_gguf`] writes them as a llama.cpp LoRA adapter.
//!
//! Everything works in the GGUF weight space: the forward pass applies RoPE exactly as llama.cpp
//! does to the tensors as they are stored (for `llama` that is the interleaved, "normal" RoPE on
//! the converter-permuted q/k weights), so an adapter trained here is correct for llama.cpp.
//!
//! Every operation in the forward pass has a backward pass in candle. candle-nn's fused
//! `rms_norm`, `rope`, `rope_i` and `softmax_last_dim` kernels have none (they silently cut the
//! gradient), so those are written here from elementary tensor operations.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use candle_core::backend::BackendStorage;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Storage, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::llm::adapters::SplitMix64;
use crate::llm::gguf::{self, AdapterTensor};

/// Hyperparameters of the base model, read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct Hparams {
    /// Value of `general.architecture` (always `llama` for now).
    pub architecture: String,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of query heads.
    pub n_head: usize,
    /// Number of key/value heads (grouped-query attention when smaller than `n_head`).
    pub n_head_kv: usize,
    /// Dimension of one attention head.
    pub head_dim: usize,
    /// Hidden width of the feed-forward network.
    pub n_ff: usize,
    /// Vocabulary size (rows of `token_embd.weight`).
    pub n_vocab: usize,
    /// Epsilon of every RMSNorm.
    pub rms_eps: f64,
    /// RoPE base frequency.
    pub rope_base: f64,
    /// Multiplier applied to positions before RoPE (`1 / factor` for linear RoPE scaling).
    pub rope_position_scale: f64,
}

/// A projection matrix of a transformer block that a LoRA can adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// `attn_q`: query projection.
    AttnQ,
    /// `attn_k`: key projection.
    AttnK,
    /// `attn_v`: value projection.
    AttnV,
    /// `attn_output`: attention output projection.
    AttnOutput,
    /// `ffn_gate`: gate projection of the SwiGLU feed-forward network.
    FfnGate,
    /// `ffn_up`: up projection of the feed-forward network.
    FfnUp,
    /// `ffn_down`: down projection of the feed-forward network.
    FfnDown,
}

impl Target {
    /// Every target, in tensor-name order.
    pub const ALL: [Target; 7] = [
        Target::AttnQ,
        Target::AttnK,
        Target::AttnV,
        Target::AttnOutput,
        Target::FfnGate,
        Target::FfnUp,
        Target::FfnDown,
    ];

    /// The GGUF tensor-name component, e.g. `attn_q` in `blk.3.attn_q.weight`.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Target::AttnQ => "attn_q",
            Target::AttnK => "attn_k",
            Target::AttnV => "attn_v",
            Target::AttnOutput => "attn_output",
            Target::FfnGate => "ffn_gate",
            Target::FfnUp => "ffn_up",
            Target::FfnDown => "ffn_down",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.gguf_name())
    }
}

impl FromStr for Target {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Target::ALL
            .into_iter()
            .find(|t| t.gguf_name() == s)
            .with_context(|| {
                let known: Vec<_> = Target::ALL.iter().map(|t| t.gguf_name()).collect();
                format!(
                    "unknown LoRA target `{s}` (expected one of {})",
                    known.join(", ")
                )
            })
    }
}

/// The weights of one transformer block, dequantized to `f32`.
struct Block {
    attn_norm: Tensor,
    ffn_norm: Tensor,
    /// Projection matrices (out × in), indexed like [`Target::ALL`].
    proj: [Tensor; 7],
}

impl Block {
    fn weight(&self, target: Target) -> &Tensor {
        &self.proj[target as usize]
    }
}

/// A frozen llama-architecture base model held in memory as `f32` tensors (4 bytes per
/// parameter: about 540 MB for a 135M-parameter model).
pub struct Base {
    hparams: Hparams,
    token_embd: Tensor,
    blocks: Vec<Block>,
    output_norm: Tensor,
    /// Output head (vocab × n_embd); shares storage with `token_embd` when the GGUF has no
    /// `output.weight`.
    output: Tensor,
    /// Inverse RoPE frequencies, one per rotated pair (`head_dim / 2`).
    rope_inv_freq: Vec<f64>,
    device: Device,
}

impl Base {
    /// Loads a llama-architecture GGUF model: dequantizes every weight to `f32` and reads the
    /// hyperparameters.
    pub fn load(path: impl AsRef<Path>) -> Result<Base> {
        let path = path.as_ref();
        let device = Device::Cpu;
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader)
            .with_context(|| format!("{} is not a readable GGUF file", path.display()))?;
        let md = &content.metadata;

        let architecture = meta_str(md, "general.architecture")?.to_string();
        ensure!(
            architecture == "llama",
            "unsupported architecture `{architecture}`: only `llama` is supported"
        );
        let key = |k: &str| format!("{architecture}.{k}");
        let n_layer = meta_usize(md, &key("block_count"))?;
        let n_embd = meta_usize(md, &key("embedding_length"))?;
        let n_head = meta_usize(md, &key("attention.head_count"))?;
        let n_head_kv = match md.get(&key("attention.head_count_kv")) {
            Some(v) => value_usize(v).context("attention.head_count_kv")?,
            None => n_head,
        };
        let n_ff = meta_usize(md, &key("feed_forward_length"))?;
        let rms_eps = f64::from(meta_f32(md, &key("attention.layer_norm_rms_epsilon"))?);
        let rope_base = match md.get(&key("rope.freq_base")) {
            Some(v) => f64::from(v.to_f32().context("rope.freq_base")?),
            None => 10_000.0,
        };
        ensure!(
            n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0,
            "invalid head counts: {n_head} query heads, {n_head_kv} key/value heads"
        );
        let head_dim = match md.get(&key("attention.key_length")) {
            Some(v) => value_usize(v).context("attention.key_length")?,
            None => n_embd / n_head,
        };
        ensure!(
            head_dim * n_head == n_embd && head_dim % 2 == 0,
            "unsupported head layout: {n_head} heads of dimension {head_dim} for width {n_embd}"
        );
        if let Some(v) = md.get(&key("rope.dimension_count")) {
            let n_rot = value_usize(v).context("rope.dimension_count")?;
            ensure!(
                n_rot == head_dim,
                "partial RoPE ({n_rot} of {head_dim} dimensions) is not supported"
            );
        }
        let rope_position_scale = match md.get(&key("rope.scaling.type")) {
            None => 1.0,
            Some(v) => match v.to_string().context("rope.scaling.type")?.as_str() {
                "none" => 1.0,
                "linear" => {
                    let factor = meta_f32(md, &key("rope.scaling.factor"))?;
                    ensure!(factor > 0.0, "invalid rope.scaling.factor {factor}");
                    1.0 / f64::from(factor)
                }
                other => bail!("unsupported RoPE scaling type `{other}`"),
            },
        };

        // Biases, experts and the like are not in this forward pass: refuse rather than
        // train against a model it does not compute.
        let known = |name: &str| {
            name.starts_with("token_embd.")
                || name.starts_with("output")
                || name == "rope_freqs.weight"
                || name.strip_prefix("blk.").is_some_and(|rest| {
                    rest.split_once('.').is_some_and(|(_, t)| {
                        Target::ALL
                            .iter()
                            .any(|target| t == format!("{}.weight", target.gguf_name()))
                            || t == "attn_norm.weight"
                            || t == "ffn_norm.weight"
                    })
                })
        };
        if let Some(other) = content.tensor_infos.keys().find(|n| !known(n)) {
            bail!("{} holds tensor `{other}`, which training does not model (only plain llama-architecture models, without biases or experts, can be trained)", path.display());
        }
        let mut load = |name: &str| -> Result<Tensor> {
            let qt = content
                .tensor(&mut reader, name, &device)
                .with_context(|| format!("cannot read tensor `{name}`"))?;
            Ok(qt.dequantize(&device)?)
        };
        let token_embd = load("token_embd.weight")?;
        let (n_vocab, embd_cols) = token_embd.dims2()?;
        ensure!(
            embd_cols == n_embd,
            "token_embd.weight has {embd_cols} columns, expected {n_embd}"
        );
        let output_norm = load("output_norm.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            load("output.weight")?
        } else {
            token_embd.clone()
        };
        let rope_inv_freq = {
            let mut inv_freq: Vec<f64> = (0..head_dim / 2)
                .map(|i| rope_base.powf(-2.0 * i as f64 / head_dim as f64))
                .collect();
            // Llama 3 style per-frequency factors: llama.cpp divides each theta by its factor.
            if content.tensor_infos.contains_key("rope_freqs.weight") {
                let factors = load("rope_freqs.weight")?.flatten_all()?.to_vec1::<f32>()?;
                ensure!(
                    factors.len() == inv_freq.len(),
                    "rope_freqs.weight has {} entries, expected {}",
                    factors.len(),
                    inv_freq.len()
                );
                for (f, factor) in inv_freq.iter_mut().zip(factors) {
                    *f /= f64::from(factor);
                }
            }
            inv_freq
        };

        let kv_dim = n_head_kv * head_dim;
        let mut blocks = Vec::with_capacity(n_layer);
        for layer in 0..n_layer {
            let mut tensor = |suffix: &str, shape: &[usize]| -> Result<Tensor> {
                let name = format!("blk.{layer}.{suffix}.weight");
                let t = load(&name)?;
                ensure!(
                    t.dims() == shape,
                    "{name} has shape {:?}, expected {shape:?}",
                    t.dims()
                );
                Ok(t)
            };
            blocks.push(Block {
                attn_norm: tensor("attn_norm", &[n_embd])?,
                ffn_norm: tensor("ffn_norm", &[n_embd])?,
                proj: [
                    tensor("attn_q", &[n_embd, n_embd])?,
                    tensor("attn_k", &[kv_dim, n_embd])?,
                    tensor("attn_v", &[kv_dim, n_embd])?,
                    tensor("attn_output", &[n_embd, n_embd])?,
                    tensor("ffn_gate", &[n_ff, n_embd])?,
                    tensor("ffn_up", &[n_ff, n_embd])?,
                    tensor("ffn_down", &[n_embd, n_ff])?,
                ],
            });
        }

        Ok(Base {
            hparams: Hparams {
                architecture,
                n_layer,
                n_embd,
                n_head,
                n_head_kv,
                head_dim,
                n_ff,
                n_vocab,
                rms_eps,
                rope_base,
                rope_position_scale,
            },
            token_embd,
            blocks,
            output_norm,
            output,
            rope_inv_freq,
            device,
        })
    }

    /// The model hyperparameters.
    pub fn hparams(&self) -> &Hparams {
        &self.hparams
    }

    /// Next-token logits for every position of `tokens` (shape `seq_len × n_vocab`), using
    /// causal attention over the whole sequence, optionally with a LoRA applied.
    pub fn logits(&self, tokens: &[u32], lora: Option<&Lora>) -> Result<Tensor> {
        let hidden = self.hidden(tokens, lora)?;
        frozen_matmul(&hidden, &self.output)
    }

    /// Mean cross-entropy (nats per token) of `example`'s learnable tokens, as a scalar tensor
    /// that can be back-propagated to the LoRA. Tokens before `learn_from` are context only.
    pub fn loss(&self, example: &Example, lora: Option<&Lora>) -> Result<Tensor> {
        let tokens = &example.tokens;
        // Position p predicts token p + 1; learn from targets at index >= max(learn_from, 1).
        let first = example.learn_from.max(1);
        ensure!(
            first < tokens.len(),
            "example of {} tokens has nothing to learn from (learn_from = {})",
            tokens.len(),
            example.learn_from
        );
        let count = tokens.len() - first;
        let hidden = self.hidden(tokens, lora)?.narrow(0, first - 1, count)?;
        let logits = frozen_matmul(&hidden, &self.output)?;
        let targets = Tensor::new(&tokens[first..], &self.device)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
    }

    /// Final normalized hidden states (`seq_len × n_embd`).
    fn hidden(&self, tokens: &[u32], lora: Option<&Lora>) -> Result<Tensor> {
        let hp = &self.hparams;
        let seq = tokens.len();
        ensure!(seq > 0, "empty token sequence");
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            bail!(
                "token id {bad} is out of range for a vocabulary of {}",
                hp.n_vocab
            );
        }
        if let Some(lora) = lora {
            ensure!(
                lora.n_layer == hp.n_layer && lora.n_embd == hp.n_embd,
                "the LoRA was built for a different base model"
            );
        }

        let (cos, sin) = self.rope_tables(seq)?;
        let mask = causal_mask(seq, &self.device)?;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.token_embd.index_select(&ids, 0)?;
        let n_rep = hp.n_head / hp.n_head_kv;
        let scale = 1.0 / (hp.head_dim as f64).sqrt();

        for (layer, block) in self.blocks.iter().enumerate() {
            let proj = |target: Target, input: &Tensor| -> Result<Tensor> {
                let y = frozen_matmul(input, block.weight(target))?;
                match lora.and_then(|l| l.pair(layer, target).map(|p| (l.scale(), p))) {
                    Some((s, pair)) => {
                        let delta = input.matmul(&pair.a.t()?)?.matmul(&pair.b.t()?)?;
                        Ok((y + (delta * s)?)?)
                    }
                    None => Ok(y),
                }
            };

            let h = rms_norm(&x, &block.attn_norm, hp.rms_eps)?;
            let q = proj(Target::AttnQ, &h)?.reshape((seq, hp.n_head, hp.head_dim))?;
            let k = proj(Target::AttnK, &h)?.reshape((seq, hp.n_head_kv, hp.head_dim))?;
            let v = proj(Target::AttnV, &h)?.reshape((seq, hp.n_head_kv, hp.head_dim))?;
            let q = self.rope(&q, &cos, &sin)?.transpose(0, 1)?.contiguous()?;
            let k = repeat_kv(self.rope(&k, &cos, &sin)?.transpose(0, 1)?, n_rep)?;
            let v = repeat_kv(v.transpose(0, 1)?, n_rep)?;
            // (n_head, seq, seq) attention weights, causal.
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = softmax_last_dim(&att)?;
            let o = att.matmul(&v)?.transpose(0, 1)?.reshape((seq, hp.n_embd))?;
            x = (x + proj(Target::AttnOutput, &o)?)?;

            let h = rms_norm(&x, &block.ffn_norm, hp.rms_eps)?;
            let gate = proj(Target::FfnGate, &h)?.silu()?;
            let up = proj(Target::FfnUp, &h)?;
            x = (x + proj(Target::FfnDown, &(gate * up)?)?)?;
        }
        rms_norm(&x, &self.output_norm, hp.rms_eps)
    }

    /// RoPE cosine and sine tables, each `seq × 1 × head_dim / 2`.
    fn rope_tables(&self, seq: usize) -> Result<(Tensor, Tensor)> {
        let half = self.rope_inv_freq.len();
        let mut cos = Vec::with_capacity(seq * half);
        let mut sin = Vec::with_capacity(seq * half);
        for pos in 0..seq {
            let p = pos as f64 * self.hparams.rope_position_scale;
            for &f in &self.rope_inv_freq {
                let (s, c) = (p * f).sin_cos();
                cos.push(c as f32);
                sin.push(s as f32);
            }
        }
        Ok((
            Tensor::from_vec(cos, (seq, 1, half), &self.device)?,
            Tensor::from_vec(sin, (seq, 1, half), &self.device)?,
        ))
    }

    /// Applies RoPE to `x` of shape `seq × n_heads × head_dim`, rotating adjacent pairs
    /// `(2i, 2i + 1)`: llama.cpp's "normal" RoPE, which the `llama` architecture uses on the
    /// q/k weights as its converter stores them.
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (seq, n_heads, head_dim) = x.dims3()?;
        let x = x.reshape((seq, n_heads, head_dim / 2, 2))?;
        let (x0, x1) = (x.narrow(3, 0, 1)?, x.narrow(3, 1, 1)?);
        let cos = cos.unsqueeze(3)?;
        let sin = sin.unsqueeze(3)?;
        let y0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
        let y1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
        Ok(Tensor::cat(&[y0, y1], 3)?.reshape((seq, n_heads, head_dim))?)
    }
}

/// Which matrices a LoRA adapts, and how it is initialized.
#[derive(Debug, Clone)]
pub struct LoraConfig {
    /// Rank `r` of every update.
    pub rank: usize,
    /// Scaling numerator: the update is multiplied by `alpha / rank` (as in llama.cpp).
    pub alpha: f32,
    /// Matrices to adapt in every block.
    pub targets: Vec<Target>,
    /// Seed of the deterministic initialization.
    pub seed: u64,
}

/// One low-rank update `ΔW = (alpha / rank) · B A` of a weight `W` (out × in).
struct LoraPair {
    /// `A`, rank × in.
    a: Var,
    /// `B`, out × rank.
    b: Var,
}

/// Trainable low-rank adapters for a [`Base`] model.
///
/// For each adapted weight `W` (out × in) the projection becomes
/// `y = x Wᵀ + (alpha / rank) · (x Aᵀ) Bᵀ`, which is llama.cpp's formula at adapter scale 1.
pub struct Lora {
    rank: usize,
    alpha: f32,
    architecture: String,
    n_layer: usize,
    n_embd: usize,
    pairs: BTreeMap<(usize, Target), LoraPair>,
}

impl Lora {
    /// Creates a LoRA that does not change the model yet: `A` is drawn uniformly from
    /// `±1/√in` (PEFT's Kaiming-uniform initialization) and `B` is zero.
    pub fn new(base: &Base, config: &LoraConfig) -> Result<Lora> {
        ensure!(config.rank > 0, "LoRA rank must be positive");
        ensure!(
            !config.targets.is_empty(),
            "LoRA needs at least one target matrix"
        );
        ensure!(
            config.alpha.is_finite() && config.alpha > 0.0,
            "LoRA alpha must be positive (llama.cpp treats 0 as 'no scaling')"
        );
        let mut rng = SplitMix64::new(config.seed);
        let mut pairs = BTreeMap::new();
        for layer in 0..base.hparams.n_layer {
            for &target in &config.targets {
                let (n_out, n_in) = base.blocks[layer].weight(target).dims2()?;
                ensure!(
                    config.rank <= n_in.min(n_out),
                    "rank {} exceeds the size of {target} ({n_out} × {n_in})",
                    config.rank
                );
                let a = uniform_tensor(&mut rng, (config.rank, n_in), 1.0 / (n_in as f32).sqrt())?;
                let b = Tensor::zeros((n_out, config.rank), DType::F32, &Device::Cpu)?;
                let pair = LoraPair {
                    a: Var::from_tensor(&a)?,
                    b: Var::from_tensor(&b)?,
                };
                pairs.insert((layer, target), pair);
            }
        }
        Ok(Lora {
            rank: config.rank,
            alpha: config.alpha,
            architecture: base.hparams.architecture.clone(),
            n_layer: base.hparams.n_layer,
            n_embd: base.hparams.n_embd,
            pairs,
        })
    }

    /// Rank of the updates.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The `alpha` scaling numerator.
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.pairs
            .values()
            .map(|p| p.a.elem_count() + p.b.elem_count())
            .sum()
    }

    /// The trainable variables, `A` then `B` for each adapted matrix in layer order.
    pub fn vars(&self) -> Vec<Var> {
        self.pairs
            .values()
            .flat_map(|p| [p.a.clone(), p.b.clone()])
            .collect()
    }

    /// The `A` and `B` matrices adapting `target` in block `layer`, if any.
    pub fn matrices(&self, layer: usize, target: Target) -> Option<(&Tensor, &Tensor)> {
        self.pair(layer, target)
            .map(|p| (p.a.as_tensor(), p.b.as_tensor()))
    }

    fn pair(&self, layer: usize, target: Target) -> Option<&LoraPair> {
        self.pairs.get(&(layer, target))
    }

    fn scale(&self) -> f64 {
        f64::from(self.alpha) / self.rank as f64
    }

    /// The adapter as llama.cpp's LoRA GGUF holds it: `<weight>.lora_a` with
    /// `ne = [in, rank]` and `<weight>.lora_b` with `ne = [rank, out]`, F32, and `alpha`.
    pub fn to_gguf(&self) -> Result<Vec<u8>> {
        let mut tensors = Vec::with_capacity(2 * self.pairs.len());
        for (&(layer, target), pair) in &self.pairs {
            let name = format!("blk.{layer}.{target}.weight");
            let (rank, n_in) = pair.a.dims2()?;
            let (n_out, _) = pair.b.dims2()?;
            for (half, dims, var) in [
                ("lora_a", [n_in, rank], &pair.a),
                ("lora_b", [rank, n_out], &pair.b),
            ] {
                tensors.push(AdapterTensor {
                    name: format!("{name}.{half}"),
                    dims: dims.map(|d| d as u64).to_vec(),
                    data: var.flatten_all()?.to_vec1::<f32>()?,
                });
            }
        }
        Ok(gguf::adapter_bytes(
            &self.architecture,
            self.alpha,
            &tensors,
        ))
    }
}

/// One training conversation, already tokenized.
#[derive(Debug, Clone)]
pub struct Example {
    /// The full token sequence (prompt followed by the reply).
    pub tokens: Vec<u32>,
    /// Index of the first token to learn: only tokens at index `>= learn_from` are predicted
    /// in the loss (typically the first token of the assistant's reply).
    pub learn_from: usize,
}

/// Training settings for [`fit`].
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Passes over the examples.
    pub epochs: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Examples are cut to their first `max_tokens` tokens; an example left without any
    /// learnable token is skipped.
    pub max_tokens: usize,
    /// Seed of the per-epoch shuffling of the examples.
    pub seed: u64,
}

/// Progress of [`fit`], passed to its callback after every optimizer step.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Steps done so far (1-based); one step is one example.
    pub step: usize,
    /// Steps the whole fit will take.
    pub total_steps: usize,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Loss of this step's example before the update, in nats per token.
    pub loss: f32,
}

/// Summary of a finished [`fit`].
#[derive(Debug, Clone)]
pub struct FitReport {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Examples used per epoch.
    pub examples_used: usize,
    /// Examples skipped because nothing learnable was left within `max_tokens`.
    pub examples_skipped: usize,
    /// Mean loss over the first epoch (nats per token).
    pub first_epoch_loss: f32,
    /// Mean loss over the last (possibly partial) epoch.
    pub final_loss: f32,
    /// Wall-clock training time.
    pub elapsed: Duration,
}

/// Trains `lora` on `examples` with AdamW, one example per step, the examples shuffled anew
/// every epoch. The loss is the mean cross-entropy of each example's learnable tokens. Only
/// the LoRA variables are updated. `progress` runs after every step.
pub fn fit(
    base: &Base,
    lora: &mut Lora,
    examples: &[Example],
    opts: &FitOptions,
    mut progress: impl FnMut(&Progress),
) -> Result<FitReport> {
    ensure!(opts.epochs > 0, "epochs must be at least 1");
    ensure!(
        opts.learning_rate.is_finite() && opts.learning_rate > 0.0,
        "learning rate must be positive"
    );
    ensure!(opts.max_tokens >= 2, "max_tokens must be at least 2");
    let usable: Vec<Example> = examples
        .iter()
        .filter(|e| e.learn_from.max(1) < e.tokens.len().min(opts.max_tokens))
        .map(|e| Example {
            tokens: e.tokens[..e.tokens.len().min(opts.max_tokens)].to_vec(),
            learn_from: e.learn_from,
        })
        .collect();
    ensure!(
        !usable.is_empty(),
        "no example has a learnable token within max_tokens"
    );

    let start = Instant::now();
    let params = ParamsAdamW {
        lr: opts.learning_rate,
        weight_decay: opts.weight_decay,
        ..ParamsAdamW::default()
    };
    let mut optimizer = AdamW::new(lora.vars(), params)?;
    let mut rng = SplitMix64::new(opts.seed);
    let mut order: Vec<usize> = (0..usable.len()).collect();
    let total_steps = opts.epochs * usable.len();
    let (mut step, mut first_epoch_loss, mut final_loss) = (0, f32::NAN, f32::NAN);
    for epoch in 0..opts.epochs {
        rng.shuffle(&mut order);
        let mut sum = 0.0f64;
        for (i, &idx) in order.iter().enumerate() {
            let loss = base.loss(&usable[idx], Some(&*lora))?;
            let value = loss.to_scalar::<f32>()?;
            ensure!(
                value.is_finite(),
                "loss became {value} at step {}",
                step + 1
            );
            optimizer.backward_step(&loss)?;
            step += 1;
            sum += f64::from(value);
            final_loss = (sum / (i + 1) as f64) as f32;
            if epoch == 0 {
                first_epoch_loss = final_loss;
            }
            let report = Progress {
                step,
                total_steps,
                epoch,
                loss: value,
            };
            progress(&report);
        }
    }

    Ok(FitReport {
        steps: step,
        examples_used: usable.len(),
        examples_skipped: examples.len() - usable.len(),
        first_epoch_loss,
        final_loss,
        elapsed: start.elapsed(),
    })
}

/// `x Wᵀ` for a frozen weight `W` (out × in).
///
/// candle's matmul backward always computes the gradient of both operands; for a frozen
/// weight that wastes a full matmul and a weight-sized buffer per layer and step. This op
/// only back-propagates to `x`.
fn frozen_matmul(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(FrozenMatmul {
        weight: weight.clone(),
    })?)
}

struct FrozenMatmul {
    /// Contiguous `f32` weight, out × in.
    weight: Tensor,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = x_layout.shape().dims2()?;
        let (n, k_w) = self.weight.dims2()?;
        if k != k_w {
            candle_core::bail!("frozen-matmul: input has {k} features, the weight expects {k_w}");
        }
        let (storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*storage else {
            candle_core::bail!("frozen-matmul: the weight is not in CPU memory");
        };
        let out = x.matmul(w, (1, m, n, k), x_layout, &w_layout.transpose(0, 1)?)?;
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.weight)?))
    }
}

/// RMSNorm over the last dimension, from differentiable elementary ops.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let inv_rms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv_rms)?.broadcast_mul(weight)?)
}

/// Softmax over the last dimension, from differentiable elementary ops. The row maximum is
/// a constant shift (softmax is invariant to it), so it is detached from the graph.
fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// `seq × seq` additive mask: 0 on and below the diagonal, -∞ above it.
fn causal_mask(seq: usize, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(mask, (seq, seq), device)?)
}

/// Repeats each key/value head `n_rep` times (`n_kv × seq × d` → `n_kv·n_rep × seq × d`), so
/// query head `h` meets key/value head `h / n_rep`, as in llama.cpp.
fn repeat_kv(x: Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.contiguous()?);
    }
    let (n_kv, seq, d) = x.dims3()?;
    Ok(x.unsqueeze(1)?
        .broadcast_as((n_kv, n_rep, seq, d))?
        .reshape((n_kv * n_rep, seq, d))?)
}

fn meta<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value> {
    md.get(key)
        .with_context(|| format!("GGUF metadata key `{key}` is missing"))
}

fn meta_str<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a str> {
    Ok(meta(md, key)?
        .to_string()
        .with_context(|| format!("`{key}` is not a string"))?)
}

fn meta_f32(md: &HashMap<String, Value>, key: &str) -> Result<f32> {
    meta(md, key)?
        .to_f32()
        .with_context(|| format!("`{key}` is not an f32"))
}

fn meta_usize(md: &HashMap<String, Value>, key: &str) -> Result<usize> {
    value_usize(meta(md, key)?).with_context(|| format!("`{key}`"))
}

/// Reads any non-negative GGUF integer as `usize`.
fn value_usize(v: &Value) -> Result<usize> {
    let n: i128 = match *v {
        Value::U8(n) => n.into(),
        Value::I8(n) => n.into(),
        Value::U16(n) => n.into(),
        Value::I16(n) => n.into(),
        Value::U32(n) => n.into(),
        Value::I32(n) => n.into(),
        Value::U64(n) => n.into(),
        Value::I64(n) => n.into(),
        _ => bail!("expected an integer, found {v:?}"),
    };
    usize::try_from(n).with_context(|| format!("integer {n} out of range"))
}

/// `shape` values uniform in `[-bound, bound)`, from `rng`.
fn uniform_tensor(rng: &mut SplitMix64, shape: (usize, usize), bound: f32) -> Result<Tensor> {
    let data: Vec<f32> = (0..shape.0 * shape.1).map(|_| rng.uniform(bound)).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: (usize, usize, usize), seed: u64) -> Result<Tensor> {
        let mut rng = SplitMix64::new(seed);
        let n = shape.0 * shape.1 * shape.2;
        let data: Vec<f32> = (0..n).map(|_| rng.uniform(1.0)).collect();
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?)
    }

    /// The hand-written ops (which have gradients) compute what candle's fused kernels
    /// (which have none) do.
    #[test]
    fn differentiable_ops_match_candle_kernels() -> Result<()> {
        let x = random((1, 5, 16), 1)?.squeeze(0)?;
        let w = random((1, 1, 16), 2)?.flatten_all()?;
        let fused = candle_nn::ops::rms_norm(&x, &w, 1e-5)?;
        assert!(max_diff(&rms_norm(&x, &w, 1e-5)?, &fused)? < 1e-5);

        let x = Var::from_tensor(&random((2, 3, 7), 3)?)?;
        let ours = softmax_last_dim(&x)?;
        assert!(max_diff(&ours, &candle_nn::ops::softmax_last_dim(&x)?)? < 1e-6);
        let grads = (ours * random((2, 3, 7), 4)?)?.sum_all()?.backward()?;
        assert!(grads.get(&x).is_some());

        let x = Var::from_tensor(&random((1, 4, 6), 7)?.squeeze(0)?)?;
        let w = random((1, 5, 6), 8)?.squeeze(0)?;
        let plain = x.matmul(&w.t()?)?;
        let frozen = frozen_matmul(&x, &w)?;
        assert!(max_diff(&plain, &frozen)? < 1e-6);
        let g_plain = plain.sqr()?.sum_all()?.backward()?;
        let g_frozen = frozen.sqr()?.sum_all()?.backward()?;
        assert!(max_diff(g_plain.get(&x).unwrap(), g_frozen.get(&x).unwrap())? < 1e-5);

        let m = causal_mask(3, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!((m[0][0], m[2][1], m[0][1]), (0.0, 0.0, f32::NEG_INFINITY));
        Ok(())
    }

    #[test]
    fn targets_parse_by_gguf_name() {
        for t in Target::ALL {
            assert_eq!(t.gguf_name().parse::<Target>().unwrap(), t);
        }
        assert!("attn_qkv".parse::<Target>().is_err());
    }

    /// The test model: RoPE rotates adjacent pairs, as llama.cpp does for `llama` (the
    /// other pairing reads English far worse), a fit lowers the loss of what it learns, and
    /// the adapter it writes fits the model as llama.cpp will check it.
    #[test]
    fn a_fit_on_the_test_model_learns_and_writes_an_adapter_that_fits() -> Result<()> {
        let model = hearth_tests::smollm2();
        let base = Base::load(&model)?;
        let config = crate::llm::LlmConfig {
            model: model.clone(),
            ..crate::llm::LlmConfig::default()
        };
        let tokenizer = crate::llm::Tokenizer::load(&config)?;
        let text = "The cat sat on the mat. Paris is the capital of France. Water boils at one hundred degrees.";
        let (tokens, _) = tokenizer.example(
            &[crate::llm::ChatMessage::new(crate::llm::Role::User, text)],
            "Indeed.",
        )?;
        let sentence = Example {
            tokens,
            learn_from: 1,
        };
        let loss = base.loss(&sentence, None)?.to_scalar::<f32>()?;
        assert!(loss < 4.0, "a correct forward reads English: {loss}");

        let example = |user: &str| -> Result<Example> {
            let (tokens, learn_from) = tokenizer.example(
                &[crate::llm::ChatMessage::new(crate::llm::Role::User, user)],
                "Indeed, old friend. Here it is.",
            )?;
            Ok(Example { tokens, learn_from })
        };
        let examples = [example("What is the moon?")?, example("Tell me a joke.")?];
        let lora_config = LoraConfig {
            rank: 8,
            alpha: 16.0,
            targets: vec![Target::AttnQ, Target::AttnV],
            seed: 0,
        };
        let mut lora = Lora::new(&base, &lora_config)?;
        let before = base.loss(&examples[0], Some(&lora))?.to_scalar::<f32>()?;
        let opts = FitOptions {
            epochs: 3,
            learning_rate: 2e-3,
            weight_decay: 0.0,
            max_tokens: 256,
            seed: 0,
        };
        let mut steps = 0;
        let report = fit(&base, &mut lora, &examples, &opts, |_| steps += 1)?;
        assert_eq!((report.steps, steps), (6, 6));
        let after = base.loss(&examples[0], Some(&lora))?.to_scalar::<f32>()?;
        assert!(after < before * 0.7, "loss {before} -> {after}");

        let dir = tempfile::tempdir()?;
        let path = dir.path().join("taught.gguf");
        std::fs::write(&path, lora.to_gguf()?)?;
        let fits = crate::llm::adapters::check(
            &path,
            "roles.consciousness.adapter",
            &gguf::validate(&model)?,
        );
        assert!(fits.is_ok(), "{fits:?}");
        Ok(())
    }
}
