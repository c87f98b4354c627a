//! Several rooms' conversations decoded together (`llm.parallel` > 1). Each job gets a
//! sequence of the context (1 to `parallel`), the room's own when it has one: it keeps the
//! room's last prompt and answer (a [`Slot`]), so that the next turn evaluates only what is
//! new. When sequence 0 (the one-at-a-time path's cache) shares more of the prompt, that
//! prefix is copied in instead. The prompts are evaluated in shared batches, then every step
//! decodes one batch holding each live sequence's next token, so the model's weights are read
//! once per step for all of them. Each sequence samples with its own sampler (its grammar, its
//! temperature), streams its own sentences, and stops on its own: its last sentences and its
//! `Done` go out at once, its room's slot keeps what it holds, and a room that asks while the
//! others are still being answered joins at the next step (its new prompt tokens in that
//! step's batch), rather than waiting for the whole group. With `llm.kv_per_room` each
//! sequence's KV cache is a stream of its own, so a token's attention runs over its own
//! room's cells only, not over every room's.

use super::super::model::{Join, Together};
use super::super::Job;
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
    /// What goes into the next step's batch: its sampled token, or (a room that just
    /// joined) its new prompt tokens.
    queued: Queued,
    generated: usize,
    text: String,
    utf8: Utf8Stream,
    splitter: SentenceSplitter,
    live: bool,
    ended: bool,
    cancelled: bool,
    /// Its `Done` (or `Failed`) has been sent.
    answered: bool,
    /// How long its prompt took (the group's, for those that started together; for a room
    /// that joined, from its seat to its first token: the step that evaluated its prompt
    /// beside the others' tokens).
    prompt_eval: Duration,
    /// When its first token was sampled (until then, when it was seated).
    generation_started: Instant,
    /// How many sequences were live when it started.
    together: usize,
}

/// One group's jobs: those it started with and those that joined, and what every sequence
/// of it shares.
struct Group<'g> {
    jobs: &'g [Together<'g>],
    joined: Vec<Job>,
    adapter_switch: Duration,
    /// The adapter variant of the group: only jobs with it join.
    variant: Option<usize>,
    /// The slots' clock for this group.
    clock: u64,
}

impl Group<'_> {
    /// Job `i`: one the group started with, or one that joined.
    fn job(&self, i: usize) -> Together<'_> {
        match self.jobs.get(i) {
            Some(j) => Together {
                request: j.request,
                events: j.events,
                cancel: j.cancel,
            },
            None => {
                let j = &self.joined[i - self.jobs.len()];
                Together {
                    request: &j.request,
                    events: &j.events,
                    cancel: &j.cancel,
                }
            }
        }
    }
}

impl Session<'_> {
    /// [`Model::generate_together`](super::super::model::Model::generate_together) on
    /// llama.cpp: the jobs with the first one's adapter, and those that `join` while a
    /// sequence is free.
    pub(super) fn together(&mut self, jobs: &[Together<'_>], join: &mut Join<'_>) -> Vec<bool> {
        let mut ran = vec![false; jobs.len()];
        let answer = |ran: &mut Vec<bool>, i: usize, event: LlmEvent| {
            let _ = jobs[i].events.blocking_send(event);
            ran[i] = true;
        };
        let variant = self.variant_of(jobs[0].request);
        let adapter_switch = match self.switch_to(variant) {
            Ok(took) => took,
            Err(e) => {
                answer(&mut ran, 0, LlmEvent::Failed(e));
                return ran;
            }
        };
        let mut group = Group {
            jobs,
            joined: Vec::new(),
            adapter_switch,
            variant,
            clock: self.slots.iter().map(|s| s.used).max().unwrap_or(0) + 1,
        };
        let mut seqs: Vec<Seq> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            if self.variant_of(job.request) != variant {
                continue;
            }
            let taken: Vec<i32> = seqs.iter().map(|q| q.id).collect();
            match self.seat(i, job, &taken) {
                Ok(Some(seq)) => seqs.push(seq),
                Ok(None) => {}
                Err(event) => answer(&mut ran, i, event),
            }
        }
        if seqs.is_empty() {
            return ran;
        }
        let outcome = self.prefill_together(&mut seqs).and_then(|prompt_eval| {
            let (started, together) = (Instant::now(), seqs.len());
            for s in seqs.iter_mut() {
                (s.prompt_eval, s.generation_started) = (prompt_eval, started);
                s.together = together;
            }
            self.decode_together(&mut group, &mut seqs, join)
        });
        for s in seqs.iter().filter(|s| s.job < jobs.len()) {
            ran[s.job] = true;
        }
        if let Err(e) = outcome {
            // The context may hold half a step: start the next job from nothing.
            self.reset();
            for s in seqs.iter().filter(|s| !s.answered) {
                let failed = LlmEvent::Failed(LlmError::Inference(e.to_string()));
                let _ = group.job(s.job).events.blocking_send(failed);
            }
            return ran;
        }
        ran
    }

    /// The adapter variant a request runs with.
    fn variant_of(&self, request: &GenerateRequest) -> Option<usize> {
        let persona = request.persona.as_ref().map(|p| p.name.as_str());
        self.plan.variant_for(request.role, persona)
    }

    /// A sequence for job `i`: the room's own, else a free one, else the one used longest
    /// ago, none of them `taken`. `Ok(None)` when every sequence is taken; `Err` holds the
    /// job's answer when it cannot run (cancelled, or its prompt does not render).
    fn seat(&self, i: usize, job: &Together<'_>, taken: &[i32]) -> Result<Option<Seq>, LlmEvent> {
        if job.cancel.is_cancelled() || job.events.is_closed() {
            return Err(LlmEvent::Done(GenerationStats {
                cancelled: true,
                together: 1,
                ..GenerationStats::default()
            }));
        }
        let max_tokens = job
            .request
            .max_tokens
            .unwrap_or(self.config.max_reply_tokens) as usize;
        let (sampler, tokens) = self
            .sampler(job.request)
            .and_then(|s| Ok((s, self.fit_prompt(job.request, max_tokens)?)))
            .and_then(|(s, tokens)| match tokens.is_empty() {
                true => Err(LlmError::Inference(
                    "the prompt rendered to no tokens".into(),
                )),
                false => Ok((s, tokens)),
            })
            .map_err(LlmEvent::Failed)?;
        let max_tokens = max_tokens.min(self.window().saturating_sub(tokens.len()));
        // The context holds a window for each sequence and for sequence 0, so whatever they
        // keep fits.
        let parallel = self.config.parallel.max(1) as i32;
        let is_taken = |id: i32| taken.contains(&id);
        let own = (self.slots.iter())
            .find(|k| k.lane == job.request.lane && !is_taken(k.id))
            .map(|k| (k.id, &k.tokens[..]));
        let free = (1..=parallel)
            .find(|id| !is_taken(*id) && !self.slots.iter().any(|k| k.id == *id))
            .or_else(|| {
                (self.slots.iter().filter(|k| !is_taken(k.id)))
                    .min_by_key(|k| k.used)
                    .map(|k| k.id)
            });
        let Some((id, kept)) = own.or(free.map(|id| (id, &[][..]))) else {
            return Ok(None);
        };
        let (from_slot, from_zero) = (
            common_prefix(kept, &tokens),
            common_prefix(&self.cached, &tokens),
        );
        Ok(Some(Seq {
            job: i,
            id,
            from_zero: from_zero > from_slot,
            out: Vec::new(),
            sampler,
            pos: tokens.len(),
            shared: from_slot.max(from_zero).min(tokens.len() - 1),
            tokens,
            max_tokens,
            logits_at: 0,
            queued: Queued::Nothing,
            generated: 0,
            text: String::new(),
            utf8: Utf8Stream::default(),
            splitter: SentenceSplitter::for_reply(self.config),
            live: true,
            ended: false,
            cancelled: false,
            answered: false,
            prompt_eval: Duration::ZERO,
            generation_started: Instant::now(),
            together: 1,
        }))
    }

    /// Prepares each sequence's cells ([`Session::prepare_cells`]) and evaluates all but the
    /// last token of its prompt, in batches across sequences.
    fn prefill_rest(&mut self, seqs: &[Seq]) -> Result<(), LlmError> {
        self.prepare_cells(seqs)?;
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
            add_token(&mut batch, token, pos, id, false)?;
        }
        if batch.n_tokens() > 0 {
            self.decode(&mut batch)?;
        }
        Ok(())
    }

    /// Each sequence's cells before its prompt: its shared prefix copied from sequence 0, or
    /// what its slot kept beyond the shared prefix cleared.
    fn prepare_cells(&mut self, seqs: &[Seq]) -> Result<(), LlmError> {
        let kv = |e: llama_cpp_2::context::kv_cache::KvCacheConversionError| {
            LlmError::Inference(e.to_string())
        };
        for s in seqs.iter() {
            if s.from_zero {
                // Each sequence has a KV stream of its own, and llama.cpp copies only a whole
                // one across (a part aborts): all of sequence 0, then what it holds beyond
                // the shared prefix cleared below.
                self.ctx
                    .clear_kv_cache_seq(Some(s.id as u32), None, None)
                    .map_err(kv)?;
                self.ctx
                    .copy_kv_cache_seq(0, s.id, None, None)
                    .map_err(kv)?;
            }
            // What the sequence holds beyond the prompt it shares goes.
            self.ctx
                .clear_kv_cache_seq(Some(s.id as u32), Some(s.shared as u32), None)
                .map_err(kv)?;
        }
        Ok(())
    }

    /// [`Session::prefill_rest`], then the last token of each prompt in one batch, whose
    /// logits they sample first.
    fn prefill_together(&mut self, seqs: &mut [Seq]) -> Result<Duration, LlmError> {
        let started = Instant::now();
        self.prefill_rest(seqs)?;
        // The config keeps `parallel` within `batch_tokens`, so the last tokens fit one batch.
        let mut batch = LlamaBatch::new(seqs.len(), 1);
        for (k, s) in seqs.iter_mut().enumerate() {
            let last = s.tokens.len() - 1;
            add_token(&mut batch, s.tokens[last], last, s.id, true)?;
            s.logits_at = k as i32;
        }
        self.decode(&mut batch)?;
        Ok(started.elapsed())
    }

    /// Samples every live sequence's next token and decodes them in one batch, until none is
    /// live. A sequence that stops is answered there and then, and its room's slot keeps
    /// what it holds; while a sequence is free, a room that asked meanwhile joins.
    fn decode_together(
        &mut self,
        group: &mut Group<'_>,
        seqs: &mut Vec<Seq>,
        join: &mut Join<'_>,
    ) -> Result<(), LlmError> {
        let parallel = self.config.parallel.max(1) as usize;
        // Room for the live sequences' tokens and the prompts of those that join.
        let n_batch = (self.config.batch_tokens as usize).max(parallel);
        let mut batch = LlamaBatch::new(n_batch, 1);
        // What the group's steps held and cost, for the debug log.
        let (mut steps, mut tokens, mut decoding) = (0usize, 0usize, Duration::ZERO);
        loop {
            for s in seqs.iter_mut().filter(|s| s.live) {
                let job = group.job(s.job);
                if !self.advance(s, &job) {
                    finish(s, &job, group.adapter_switch);
                    self.keep(s, &job.request.lane, group.clock);
                }
            }
            self.join_now(group, seqs, join)?;
            batch.clear();
            self.fill_step(&mut batch, seqs)?;
            if batch.n_tokens() == 0 {
                tracing::debug!(
                    jobs = group.jobs.len(),
                    joined = group.joined.len(),
                    steps,
                    tokens,
                    decode_ms = decoding.as_millis() as u64,
                    "decoded together"
                );
                return Ok(());
            }
            let started = Instant::now();
            self.decode(&mut batch)?;
            (steps, tokens) = (steps + 1, tokens + batch.n_tokens() as usize);
            decoding += started.elapsed();
        }
    }

    /// Samples `s`'s next token from the last decoded batch, streams it, and queues it for
    /// the next step; false when `s` stopped instead (its end, its limit, or cancelled).
    fn advance(&self, s: &mut Seq, job: &Together<'_>) -> bool {
        let vocab = self.model.vocab();
        if job.cancel.is_cancelled() || job.events.is_closed() {
            s.cancelled = true;
        } else if s.generated < s.max_tokens {
            if s.generated == 0 {
                // A room that joined had its prompt evaluated in the step just decoded.
                if s.prompt_eval.is_zero() {
                    s.prompt_eval = s.generation_started.elapsed();
                }
                s.generation_started = Instant::now();
            }
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
                s.queued = Queued::Token(token);
                s.out.push(token);
                return true;
            }
            s.ended = true;
        }
        s.live = false;
        false
    }

    /// Seats the rooms that asked meanwhile while sequences are free, and while the step's
    /// joining prompts are under `llm.join_tokens_per_step` tokens. Their new prompt tokens
    /// are queued for the next step, beside the live sequences' tokens; when they do not
    /// fit its batch, they are evaluated now, as a group's are
    /// ([`Session::prefill_together`]), and each one's first token is queued.
    fn join_now(
        &mut self,
        group: &mut Group<'_>,
        seqs: &mut Vec<Seq>,
        join: &mut Join<'_>,
    ) -> Result<(), LlmError> {
        let parallel = self.config.parallel.max(1) as usize;
        let fits = |r: &GenerateRequest| self.variant_of(r) == group.variant;
        let mut ready: Vec<Seq> = Vec::new();
        let budget = (self.config.join_tokens_per_step as usize).max(1);
        while seqs.iter().filter(|s| s.live).count() + ready.len() < parallel {
            // Past `llm.join_tokens_per_step` the others wait for the next step.
            if new_tokens(&ready) >= budget {
                break;
            }
            let Some(job) = join(&fits) else {
                break;
            };
            let i = group.jobs.len() + group.joined.len();
            group.joined.push(job);
            let taken: Vec<i32> = (seqs.iter().filter(|s| s.live))
                .chain(ready.iter())
                .map(|s| s.id)
                .collect();
            match self.seat(i, &group.job(i), &taken) {
                Ok(Some(seq)) => ready.push(seq),
                Ok(None) => {
                    // Not while a sequence is free (each one not taken can be given), but the
                    // inference thread answers rather than panics.
                    let busy = LlmError::Busy { capacity: parallel };
                    let _ = group.job(i).events.blocking_send(LlmEvent::Failed(busy));
                }
                Err(event) => {
                    let _ = group.job(i).events.blocking_send(event);
                }
            }
        }
        if ready.is_empty() {
            return Ok(());
        }
        let live = seqs.iter().filter(|s| s.live).count() + ready.len();
        // When their new tokens fit beside the live sequences' in the next step's batch,
        // they go there: one pass over the weights evaluates them and decodes the others
        // (what a GPU gains most from). Else they are evaluated first, as a group's are.
        // Beside them, each other sequence puts at most one token in the step (its next, or
        // its slot's last, see `fill_step`).
        if new_tokens(&ready) + parallel <= self.config.batch_tokens as usize {
            self.prepare_cells(&ready)?;
            for mut s in ready {
                s.queued = Queued::Prompt;
                s.generation_started = Instant::now();
                s.together = live;
                seqs.push(s);
            }
            return Ok(());
        }
        let prompt_eval = self.prefill_together(&mut ready)?;
        for mut s in ready {
            (s.prompt_eval, s.generation_started) = (prompt_eval, Instant::now());
            s.together = live;
            let job = group.job(s.job);
            if !self.advance(&mut s, &job) {
                finish(&mut s, &job, group.adapter_switch);
                self.keep(&mut s, &job.request.lane, group.clock);
            }
            seqs.push(s);
        }
        Ok(())
    }

    /// The next step's batch: what each sequence queued, in the order of their ids. With a
    /// KV stream per sequence, llama.cpp splits a batch into passes over sequences whose ids
    /// follow each other, so a room between two live ones that has nothing queued (its
    /// answer ended, its next question not yet here) would split the step in two: its
    /// slot's last token is evaluated again instead (its cell removed, then the same token
    /// at the same position), which costs a token rather than a pass over the weights.
    fn fill_step(&mut self, batch: &mut LlamaBatch, seqs: &mut [Seq]) -> Result<(), LlmError> {
        let mut order: Vec<usize> = (0..seqs.len())
            .filter(|&k| seqs[k].queued != Queued::Nothing)
            .collect();
        order.sort_by_key(|&k| seqs[k].id);
        let (Some(&first), Some(&last)) = (order.first(), order.last()) else {
            return Ok(());
        };
        let (low, high) = match self.config.kv_per_room {
            true => (seqs[first].id, seqs[last].id),
            false => (0, 0),
        };
        let mut bridges: Vec<(i32, LlamaToken, usize)> = Vec::new();
        for id in low + 1..high {
            if order.iter().any(|&k| seqs[k].id == id) {
                continue;
            }
            let Some(slot) = self.slots.iter().find(|k| k.id == id) else {
                continue;
            };
            let Some(&token) = slot.tokens.last() else {
                continue;
            };
            let pos = slot.tokens.len() - 1;
            let removed = self
                .ctx
                .clear_kv_cache_seq(Some(id as u32), Some(pos as u32), None)
                .map_err(|e| LlmError::Inference(e.to_string()))?;
            if removed {
                bridges.push((id, token, pos));
            }
        }
        let mut bridges = bridges.into_iter().peekable();
        for k in order {
            let s = &mut seqs[k];
            while let Some((id, token, pos)) = bridges.next_if(|b| b.0 < s.id) {
                add_token(batch, token, pos, id, false)?;
            }
            match std::mem::replace(&mut s.queued, Queued::Nothing) {
                Queued::Nothing => {}
                Queued::Token(token) => {
                    s.logits_at = batch.n_tokens();
                    add_token(batch, token, s.pos, s.id, true)?;
                    s.pos += 1;
                }
                Queued::Prompt => {
                    let last = s.tokens.len() - 1;
                    for pos in s.shared..last {
                        add_token(batch, s.tokens[pos], pos, s.id, false)?;
                    }
                    s.logits_at = batch.n_tokens();
                    add_token(batch, s.tokens[last], last, s.id, true)?;
                }
            }
        }
        Ok(())
    }

    /// A stopped sequence's room keeps what it holds (its prompt and its answer), for its
    /// next turn.
    fn keep(&mut self, s: &mut Seq, lane: &str, clock: u64) {
        let mut tokens = std::mem::take(&mut s.tokens);
        tokens.extend(std::mem::take(&mut s.out));
        self.slots.retain(|k| k.id != s.id);
        self.slots.push(Slot {
            id: s.id,
            lane: lane.to_string(),
            tokens,
            used: clock,
        });
    }
}

/// The prompt tokens `seqs` evaluate beyond what their cells already hold.
fn new_tokens(seqs: &[Seq]) -> usize {
    seqs.iter().map(|s| s.tokens.len() - s.shared).sum()
}

/// Adds `token` at `pos` of sequence `id` to `batch`, with its logits wanted or not.
fn add_token(
    batch: &mut LlamaBatch,
    token: LlamaToken,
    pos: usize,
    id: i32,
    logits: bool,
) -> Result<(), LlmError> {
    batch
        .add(token, pos as i32, &[id], logits)
        .map_err(|e| LlmError::Inference(e.to_string()))
}

/// What a sequence puts into the next step's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    Nothing,
    /// The token it sampled, at `pos`.
    Token(LlamaToken),
    /// Its prompt from `shared` on: it joined a running group.
    Prompt,
}

/// Sends a stopped sequence's last sentences and its `Done`.
fn finish(s: &mut Seq, job: &Together<'_>, adapter_switch: Duration) {
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
        prompt_eval: s.prompt_eval,
        adapter_switch,
        generation: s.generation_started.elapsed(),
        together: s.together,
        cancelled: s.cancelled,
        truncated: !s.ended && !s.cancelled,
        preempted: false,
    };
    let _ = job.events.blocking_send(LlmEvent::Done(stats));
    s.answered = true;
}
