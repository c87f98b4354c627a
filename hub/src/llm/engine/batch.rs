//! Several rooms' conversations decoded together (`llm.parallel` > 1). Each job gets a
//! sequence of the context (1 to `parallel`), the room's own when it has one: it keeps the
//! room's last prompt and answer between groups (a [`Slot`]), so that the next turn evaluates
//! only what is new. When sequence 0 (the one-at-a-time path's cache) shares more of the
//! prompt, that prefix is copied in instead. The prompts are evaluated in shared
//! batches, then every step decodes one batch holding each live sequence's next token, so the
//! model's weights are read once per step for all of them. Each sequence samples with its own
//! sampler (its grammar, its temperature), streams its own sentences, and stops on its own:
//! its last sentences and its `Done` go out at once, and its cells are freed.

use super::super::model::Together;
use super::*;

/// A sequence a room's conversation keeps between groups, so that its next turn
/// evaluates only what is new (as sequence 0 does for the one-at-a-time path).
pub(super) struct Slot {
    /// The sequence (1 to `llm.parallel`).
    id: i32,
    /// The room (lane) whose turns it holds.
    lane: String,
    /// The tokens whose KV entries the sequence holds, in order.
    tokens: Vec<LlamaToken>,
    /// When it was last used (a counter): the oldest goes first when cells run short.
    used: u64,
}

/// One job's sequence.
struct Seq {
    /// Its index in the jobs given.
    job: usize,
    id: i32,
    sampler: LlamaSampler,
    tokens: Vec<LlamaToken>,
    /// Prompt tokens already in its sequence (kept from the room's last turn, or copied from
    /// sequence 0).
    shared: usize,
    /// Copy the shared prefix from sequence 0 (else the slot kept it).
    from_zero: bool,
    /// The tokens generated and decoded, which the slot keeps after the prompt.
    out: Vec<LlamaToken>,
    max_tokens: usize,
    /// The position of its next token.
    pos: usize,
    /// Where its logits are in the last decoded batch.
    logits_at: i32,
    generated: usize,
    text: String,
    utf8: Utf8Stream,
    splitter: SentenceSplitter,
    live: bool,
    ended: bool,
    cancelled: bool,
    /// Its `Done` (or `Failed`) has been sent.
    answered: bool,
}

/// What every sequence of one group shares in its stats.
struct Shared {
    prompt_eval: Duration,
    adapter_switch: Duration,
    together: usize,
    generation_started: Instant,
}

impl Session<'_> {
    /// [`Model::generate_together`](super::super::model::Model::generate_together) on
    /// llama.cpp: the jobs with the first one's adapter.
    pub(super) fn together(&mut self, jobs: &[Together<'_>]) -> Vec<bool> {
        let mut ran = vec![false; jobs.len()];
        let answer = |ran: &mut Vec<bool>, i: usize, event: LlmEvent| {
            let _ = jobs[i].events.blocking_send(event);
            ran[i] = true;
        };
        let variant_of = |r: &GenerateRequest| {
            let persona = r.persona.as_ref().map(|p| p.name.as_str());
            self.plan.variant_for(r.role, persona)
        };
        let variant = variant_of(jobs[0].request);
        let same: Vec<bool> = jobs
            .iter()
            .map(|j| variant_of(j.request) == variant)
            .collect();
        let adapter_switch = match self.switch_to(variant) {
            Ok(took) => took,
            Err(e) => {
                answer(&mut ran, 0, LlmEvent::Failed(e));
                return ran;
            }
        };
        let window = self.window();
        let parallel = self.config.parallel.max(1) as i32;
        let clock = self.slots.iter().map(|s| s.used).max().unwrap_or(0) + 1;
        let mut seqs: Vec<Seq> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            if !same[i] {
                continue;
            }
            if job.cancel.is_cancelled() || job.events.is_closed() {
                let cancelled = GenerationStats {
                    cancelled: true,
                    together: 1,
                    ..GenerationStats::default()
                };
                answer(&mut ran, i, LlmEvent::Done(cancelled));
                continue;
            }
            let max_tokens = job
                .request
                .max_tokens
                .unwrap_or(self.config.max_reply_tokens) as usize;
            let prepared = self
                .sampler(job.request)
                .and_then(|s| Ok((s, self.fit_prompt(job.request, max_tokens)?)))
                .and_then(|(s, tokens)| match tokens.is_empty() {
                    true => Err(LlmError::Inference(
                        "the prompt rendered to no tokens".into(),
                    )),
                    false => Ok((s, tokens)),
                });
            let (sampler, tokens) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    answer(&mut ran, i, LlmEvent::Failed(e));
                    continue;
                }
            };
            let max_tokens = max_tokens.min(window.saturating_sub(tokens.len()));
            // The room's own sequence, else a free one, else the one used longest ago. The
            // context holds a window for each and for sequence 0, so whatever they keep fits.
            let taken = |id: i32| seqs.iter().any(|q: &Seq| q.id == id);
            let own = (self.slots.iter())
                .find(|k| k.lane == job.request.lane && !taken(k.id))
                .map(|k| (k.id, &k.tokens[..]));
            let free = (1..=parallel)
                .find(|id| !taken(*id) && !self.slots.iter().any(|k| k.id == *id))
                .or_else(|| {
                    (self.slots.iter().filter(|k| !taken(k.id)))
                        .min_by_key(|k| k.used)
                        .map(|k| k.id)
                });
            let Some((id, kept)) = own.or(free.map(|id| (id, &[][..]))) else {
                continue;
            };
            let (from_slot, from_zero) = (
                common_prefix(kept, &tokens),
                common_prefix(&self.cached, &tokens),
            );
            let shared = from_slot.max(from_zero).min(tokens.len() - 1);
            seqs.push(Seq {
                job: i,
                id,
                from_zero: from_zero > from_slot,
                out: Vec::new(),
                sampler,
                pos: tokens.len(),
                tokens,
                shared,
                max_tokens,
                logits_at: 0,
                generated: 0,
                text: String::new(),
                utf8: Utf8Stream::default(),
                splitter: SentenceSplitter::with_first_clause(
                    self.config.first_clause_words as usize,
                ),
                live: true,
                ended: false,
                cancelled: false,
                answered: false,
            });
        }
        if seqs.is_empty() {
            return ran;
        }
        let mut shared = Shared {
            prompt_eval: Duration::ZERO,
            adapter_switch,
            together: seqs.len(),
            generation_started: Instant::now(),
        };
        let outcome = self.prefill_together(&mut seqs).and_then(|prompt_eval| {
            shared.prompt_eval = prompt_eval;
            shared.generation_started = Instant::now();
            self.decode_together(jobs, &mut seqs, &shared)
        });
        for s in &seqs {
            ran[s.job] = true;
        }
        if let Err(e) = outcome {
            // The context may hold half a step: start the next job from nothing.
            self.reset();
            for s in seqs.iter().filter(|s| !s.answered) {
                let failed = LlmError::Inference(e.to_string());
                let _ = jobs[s.job].events.blocking_send(LlmEvent::Failed(failed));
            }
            return ran;
        }
        // Each room's sequence now holds its prompt and its answer, for its next turn.
        for s in seqs {
            let lane = jobs[s.job].request.lane.clone();
            let mut tokens = s.tokens;
            tokens.extend(s.out);
            self.slots.retain(|k| k.id != s.id);
            self.slots.push(Slot {
                id: s.id,
                lane,
                tokens,
                used: clock,
            });
        }
        tracing::debug!(jobs = shared.together, "decoded together");
        ran
    }

    /// Copies each sequence's shared prefix from sequence 0 and evaluates the rest of its
    /// prompt: all but the last tokens in batches across sequences, then the last token of
    /// each in one batch, whose logits they sample first.
    fn prefill_together(&mut self, seqs: &mut [Seq]) -> Result<Duration, LlmError> {
        let started = Instant::now();
        let kv = |e: llama_cpp_2::context::kv_cache::KvCacheConversionError| {
            LlmError::Inference(e.to_string())
        };
        for s in seqs.iter() {
            if s.from_zero {
                self.ctx
                    .clear_kv_cache_seq(Some(s.id as u32), None, None)
                    .map_err(kv)?;
                self.ctx
                    .copy_kv_cache_seq(0, s.id, Some(0), Some(s.shared as u32))
                    .map_err(kv)?;
            } else {
                // What the room's sequence kept beyond the prompt they share goes.
                self.ctx
                    .clear_kv_cache_seq(Some(s.id as u32), Some(s.shared as u32), None)
                    .map_err(kv)?;
            }
        }
        // The config keeps `parallel` within `batch_tokens`, so the last tokens fit one batch.
        let n_batch = self.config.batch_tokens as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        let rest = seqs
            .iter()
            .flat_map(|s| (s.shared..s.tokens.len() - 1).map(move |p| (s.id, p, s.tokens[p])));
        for (id, pos, token) in rest {
            if batch.n_tokens() as usize == n_batch {
                self.decode(&mut batch)?;
                batch.clear();
            }
            batch
                .add(token, pos as i32, &[id], false)
                .map_err(|e| LlmError::Inference(e.to_string()))?;
        }
        if batch.n_tokens() > 0 {
            self.decode(&mut batch)?;
        }
        batch.clear();
        for (k, s) in seqs.iter_mut().enumerate() {
            let last = s.tokens.len() - 1;
            batch
                .add(s.tokens[last], last as i32, &[s.id], true)
                .map_err(|e| LlmError::Inference(e.to_string()))?;
            s.logits_at = k as i32;
        }
        self.decode(&mut batch)?;
        Ok(started.elapsed())
    }

    /// Samples every live sequence's next token and decodes them in one batch, until none is
    /// live. A sequence that stops is answered there and then.
    fn decode_together(
        &mut self,
        jobs: &[Together<'_>],
        seqs: &mut [Seq],
        shared: &Shared,
    ) -> Result<(), LlmError> {
        let vocab = self.model.vocab();
        let mut batch = LlamaBatch::new(seqs.len(), 1);
        loop {
            batch.clear();
            for s in seqs.iter_mut().filter(|s| s.live) {
                let job = &jobs[s.job];
                if job.cancel.is_cancelled() || job.events.is_closed() {
                    s.cancelled = true;
                } else if s.generated < s.max_tokens {
                    // `sample` also accepts the token into the sampler chain.
                    let token = s.sampler.sample(&self.ctx, s.logits_at);
                    if job.request.ignore_eos || !vocab.is_eog(token) {
                        s.generated += 1;
                        let piece = s.utf8.push(&vocab.token_to_piece(token, false, None));
                        s.text.push_str(&piece);
                        if !job.request.background {
                            for sentence in s.splitter.push(&piece) {
                                if job
                                    .events
                                    .blocking_send(LlmEvent::Sentence(sentence))
                                    .is_err()
                                {
                                    s.cancelled = true;
                                }
                            }
                        }
                        s.logits_at = batch.n_tokens();
                        batch
                            .add(token, s.pos as i32, &[s.id], true)
                            .map_err(|e| LlmError::Inference(e.to_string()))?;
                        s.out.push(token);
                        s.pos += 1;
                        continue;
                    }
                    s.ended = true;
                }
                s.live = false;
                finish(s, job, shared);
            }
            if batch.n_tokens() == 0 {
                return Ok(());
            }
            self.decode(&mut batch)?;
        }
    }
}

/// Sends a stopped sequence's last sentences and its `Done`.
fn finish(s: &mut Seq, job: &Together<'_>, shared: &Shared) {
    let tail = s.utf8.finish();
    s.text.push_str(&tail);
    if !job.request.background && !s.cancelled {
        let mut rest = s.splitter.push(&tail);
        rest.extend(s.splitter.finish());
        for sentence in rest {
            let _ = job.events.blocking_send(LlmEvent::Sentence(sentence));
        }
    }
    let stats = GenerationStats {
        text: s.text.trim().to_string(),
        prompt_tokens: s.tokens.len(),
        reused_tokens: s.shared,
        generated_tokens: s.generated,
        prompt_eval: shared.prompt_eval,
        adapter_switch: shared.adapter_switch,
        generation: shared.generation_started.elapsed(),
        together: shared.together,
        cancelled: s.cancelled,
        truncated: !s.ended && !s.cancelled,
        preempted: false,
    };
    let _ = job.events.blocking_send(LlmEvent::Done(stats));
    s.answered = true;
}
