//! The turn pipeline: one utterance from admission to memory, as named stages over one
//! [`Turn`] value that carries what each stage learnt.
//!
//! ```text
//! admit ─▶ in code? ──(reminder, memory control, stop)──────────────▶ settle
//!              │ no
//!              ▼
//!            feel ─▶ recall ─▶ compose ─▶ generate (stream chunks) ─▶ settle ─▶ remember
//! ```
//!
//! - **admit** ([`Pipeline::accept`]): the household marks the room as answering, and a newer
//!   utterance from the same terminal cancels the older one.
//! - **in code**: reminder requests and memory controls are answered without the model.
//! - **feel**: the user's emotion, Hearth's mood, the tone line and the recall shape.
//! - **recall**: the subconscious retrieves memories (reads only).
//! - **compose**: the prompt: system prompt, the room's history, recalled lines, the turn.
//! - **generate**: the model streams sentences; each goes out as a reply chunk until the
//!   turn is cancelled (barge-in, a newer utterance, shutdown).
//! - **settle**: the household learns the turn is over, and how much of it was heard.
//! - **remember**: re-warm the recall, keep the heard part in the room's history, schedule a
//!   reflection, and store the user's turn (never the unheard part of a reply).
//!
//! The pipeline talks to the world only through the [`Outbox`], the [`Home`], the model
//! handles and the stores, so `tests.rs` runs it in-process with a scripted model.

mod code;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hearth_shared::{now_ms, Cancel, ErrorCode, ErrorReport, ReplyChunk, Utterance};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HubConfig;
use crate::conversation::{Fold, SUMMARY_LABEL};
use crate::emotion;
use crate::guard::{Guard, Pass};
use crate::household::{Cancelled, Home, LoggedAnswer, Why};
use crate::live;
use crate::llm::{
    ChatMessage, GenerateRequest, JobRole, LlmError, LlmEvent, LlmHandle, PersonaJob, Role,
};
use crate::memory::retrieval::RetrievalConfig;
use crate::memory::rolelog::Signal;
use crate::memory::MemoryId;
use crate::outbox::{Message, Outbox};
use crate::persona::Persona;
use crate::pixie::tasks::Work;
use crate::pixie::Pixie;
use crate::preprocess::Folded;
use crate::say;
use crate::subconscious::{Recall, Subconscious};

/// Everything a turn needs. Cheap to share: the pipeline is behind an `Arc` and each turn is
/// a task on `tasks`.
#[derive(Debug)]
pub struct Pipeline {
    /// The hub's settings.
    pub config: HubConfig,
    /// The language model.
    pub llm: LlmHandle,
    /// Recall and memory writes.
    pub subconscious: Subconscious,
    /// Reminders and Pixie's task queue.
    pub pixie: Arc<Pixie>,
    /// The household state (the one lock).
    pub home: Arc<Home>,
    /// Where replies go.
    pub out: Outbox,
    /// Wakes Pixie's loop (a room went quiet, a reminder was set).
    pub wake: Arc<Notify>,
    /// Every turn is tracked here, for shutdown.
    pub tasks: TaskTracker,
    /// Cancelled at shutdown; every turn's token is a child of it.
    pub stop: CancellationToken,
    /// Turns accepted and not yet ended.
    pub in_flight: AtomicUsize,
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still going.
    Open,
    /// Answered in code (a reminder, a memory control, "stop").
    InCode(&'static str),
    /// The model's reply was sent whole.
    Finished,
    /// The reply was cut short; the reason.
    Interrupted(Why),
    /// The model failed, or could not take the request; the terminal got an error.
    Failed,
}

/// How the turn's emotion shapes it.
#[derive(Debug, Clone)]
pub struct Feeling {
    /// The tone line for the prompt ("" when emotion is off or neutral).
    pub tone: String,
    /// How many memories to recall.
    pub k: usize,
    /// The retrieval weights for this turn.
    pub retrieval: RetrievalConfig,
}

/// One utterance on its way through the stages.
#[derive(Debug)]
pub struct Turn {
    /// What the person said.
    pub utterance: Utterance,
    /// When the turn began, in ms since the epoch.
    pub now_ms: u64,
    /// Fires when the reply is cancelled.
    pub cancel: CancellationToken,
    /// Whether another room was being answered when this one arrived.
    pub others_first: bool,
    /// What the emotion stage decided.
    pub feeling: Option<Feeling>,
    /// What was recalled.
    pub recall: Recall,
    /// The messages given to the model.
    pub prompt: Vec<ChatMessage>,
    /// The next chunk's `seq`.
    pub seq: u32,
    /// Whether "one moment" went out first.
    pub announced: bool,
    /// What the model wrote (all of it, heard or not).
    pub reply: String,
    /// What the person heard of the reply.
    pub heard: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The memory the turn was stored as (or the one it re-warmed).
    pub stored: Option<MemoryId>,
    /// Why the output guard ended the reply early, if it did (a loop, the model writing the
    /// user's turn).
    pub guarded: Option<&'static str>,
    /// The reply stopped at the token limit.
    pub truncated: bool,
    /// Not to be stored whatever it is: a correction ("not Paris but Rome") of nothing
    /// stored, which the model answers.
    pub no_memory: bool,
    /// Tokens of the prompt as the model's template rendered it (0 until it answered).
    pub prompt_tokens: usize,
    /// The answer's entry in the role log.
    pub logged: Option<u64>,
    /// Where the role log stood when the prompt was made: a forget since then keeps the
    /// answer out of it.
    pub log_generation: u64,
    /// The persona that answers (the room's, or the one the request named); `None`: the
    /// assistant itself.
    pub persona: Option<Persona>,
}

impl Pipeline {
    /// Admits `u` (already validated) and answers it on a task of its own.
    /// Refused, with the number in flight, when `max_turns` turns are being answered
    /// already; the caller tells the terminal that the hub is busy.
    pub fn accept(self: &Arc<Self>, u: Utterance, max_turns: usize) -> Result<(), usize> {
        let running = self.in_flight.fetch_add(1, Ordering::SeqCst);
        if running >= max_turns {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(running);
        }
        let turn = self.admit(u);
        let pipeline = Arc::clone(self);
        self.tasks.spawn(async move {
            // Counted down however the turn ends, a panic included.
            struct Done(Arc<Pipeline>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _done = Done(Arc::clone(&pipeline));
            pipeline.run(turn).await
        });
        Ok(())
    }

    /// The first stage: the household learns of `u` (a reply in flight for the same terminal
    /// is cancelled; the room counts as answering), and the turn begins.
    pub fn admit(&self, mut u: Utterance) -> Turn {
        let persona = self.address(&mut u);
        let now = now_ms();
        let admitted = self.home.with(|h| h.admit(&u, &self.stop, now));
        self.home.live.send(live::Event::Heard {
            terminal: u.terminal.clone(),
            room: u.room.clone(),
            utterance_id: u.id.clone(),
            text: u.text.clone(),
            at_ms: now,
        });
        Turn {
            utterance: u,
            now_ms: now,
            cancel: admitted.cancel,
            others_first: admitted.others_first,
            feeling: None,
            recall: Recall::default(),
            prompt: Vec::new(),
            seq: 0,
            announced: false,
            reply: String::new(),
            heard: String::new(),
            outcome: Outcome::Open,
            stored: None,
            guarded: None,
            truncated: false,
            no_memory: false,
            prompt_tokens: 0,
            logged: None,
            log_generation: 0,
            persona,
        }
    }

    /// Who answers `u`: a persona its words name at their start ("ask Brick ...", "Brick,
    /// ...", a wake phrase), which lose those words, else the room's persona, if any.
    fn address(&self, u: &mut Utterance) -> Option<Persona> {
        let picked = self.config.personas.pick(&u.room, &u.text);
        let persona = picked.persona.cloned();
        if let Some(p) = &persona {
            tracing::info!(id = %u.id, room = %u.room, persona = %p.name, addressed = picked.addressed, "persona");
        }
        if let Some(request) = picked.request {
            tracing::debug!(id = %u.id, said = %u.text, %request, "the request without the persona's name");
            u.text = request;
        }
        persona
    }

    /// A terminal cancels a reply: stop it if it is still being written, or trim what the
    /// room's history keeps of it.
    pub fn cancel(&self, c: &Cancel) -> Cancelled {
        let (done, logged) = self.home.with(|h| {
            let done = h.cancel(c);
            let logged = h
                .last_answer
                .values()
                .find(|a| a.utterance == c.utterance_id)
                .map(|a| a.id);
            (done, logged)
        });
        // A reply cut off after it was written (and logged) was not said whole.
        if let (Cancelled::Trimmed(_), Some(id)) = (&done, logged) {
            let subconscious = self.subconscious.clone();
            self.tasks
                .spawn(async move { subconscious.signal(id, Signal::Interrupted).await });
        }
        tracing::info!(terminal = %c.terminal, id = %c.utterance_id, heard_chunks = ?c.heard_chunks,
            reason = ?c.reason, result = ?done, "reply cancelled");
        done
    }

    /// Stops every turn and background task (they share `stop` and `tasks`), and waits up to
    /// `wait` for them to end. False if some did not.
    pub async fn shutdown(&self, wait: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(wait, self.tasks.wait()).await.is_ok()
    }

    /// Runs every stage of `turn` and returns it, as it ended.
    pub async fn run(self: Arc<Self>, mut turn: Turn) -> Turn {
        let in_code = self.in_code(&mut turn).await;
        if !in_code {
            self.feel(&mut turn);
            self.recall(&mut turn).await;
            self.compose(&mut turn);
            self.generate(&mut turn).await;
        }
        self.settle(&mut turn);
        if !in_code {
            self.log(&mut turn).await;
            self.remember(&mut turn).await;
            Arc::clone(&self).fold(&turn.utterance.room);
        }
        turn
    }

    /// Logs the answer for the consciousness role: the prompt, what was said of the reply,
    /// and how it ended. What follows in the room (a correction, "forget that") is added to
    /// it later.
    async fn log(&self, turn: &mut Turn) {
        if turn.prompt.is_empty() {
            return;
        }
        let (signal, output) = match turn.outcome {
            Outcome::Finished => (Signal::Finished, turn.reply.clone()),
            Outcome::Interrupted(_) => (Signal::Interrupted, turn.heard.clone()),
            Outcome::Open | Outcome::InCode(_) | Outcome::Failed => (Signal::Failed, String::new()),
        };
        let mut outcome = vec![signal];
        if turn.guarded.is_some() {
            outcome.push(Signal::Guarded);
        }
        if turn.truncated {
            outcome.push(Signal::Truncated);
        }
        let room = &turn.utterance.room;
        let logged = self
            .subconscious
            .log_job(
                JobRole::Consciousness,
                room,
                turn.persona.as_ref().map(|p| p.name.as_str()),
                turn.prompt.clone(),
                output,
                outcome,
                turn.log_generation,
            )
            .await;
        if let Some(id) = logged {
            let answer = LoggedAnswer {
                id,
                at_ms: now_ms(),
                utterance: turn.utterance.id.clone(),
            };
            self.home
                .with(|h| h.last_answer.insert(room.clone(), answer));
        }
        turn.logged = logged;
    }

    /// Adds `signal` to the room's last answer in the role log, when it came within
    /// `memory.correction_window_s`.
    async fn signal_last_answer(&self, room: &str, signal: Signal) {
        let window = self.config.memory.correction_window_s * 1000;
        let last = self.home.with(|h| h.last_answer.get(room).cloned());
        if let Some(a) = last.filter(|a| now_ms().saturating_sub(a.at_ms) <= window) {
            self.subconscious.signal(a.id, signal).await;
        }
    }

    /// Scores the user's emotion for this turn and moves Hearth's mood; logs both with their
    /// reasons. With `emotion.enabled = false` it is scored and logged, and shapes nothing.
    fn feel(&self, turn: &mut Turn) {
        let (config, u, now) = (&self.config, &turn.utterance, turn.now_ms);
        let enabled = config.emotion.enabled;
        let (user, mood, target) = self.home.with(|h| {
            let previous = h.last_turn.insert(u.room.clone(), u.text.clone());
            let user = emotion::score(&u.text, u.audio.as_ref(), previous.as_deref());
            let target = h.mood.respond(&user, now, &config.emotion);
            if enabled && !live::is_dashboard(&u.terminal) {
                h.rooms.felt(user.label() == emotion::Label::Stressed, now);
            }
            (user, h.mood, target)
        });
        let (k, retrieval, shape) = emotion::shape_recall(
            &user,
            config.memory.recall_k,
            &config.memory.retrieval,
            &config.emotion,
        );
        self.home
            .live
            .send(live::Event::Emotion(live::EmotionPoint {
                at_ms: now,
                room: u.room.clone(),
                valence: user.valence,
                arousal: user.arousal,
                engagement: user.engagement,
                label: format!("{:?}", user.label()),
                why: user.explain(),
                mood_valence: mood.valence,
                mood_arousal: mood.arousal,
            }));
        tracing::info!(id = %u.id, room = %u.room, label = ?user.label(), valence = user.valence,
            arousal = user.arousal, engagement = user.engagement, why = %user.explain(),
            mood_valence = mood.valence, mood_arousal = mood.arousal, mood_target = ?target,
            recall = shape, enabled, "emotion");
        turn.feeling = Some(if enabled {
            Feeling {
                tone: emotion::tone_line(&user, &mood).unwrap_or_default(),
                k,
                retrieval,
            }
        } else {
            Feeling {
                tone: String::new(),
                k: config.memory.recall_k,
                retrieval: config.memory.retrieval.clone(),
            }
        });
    }

    /// Recalls memories for the turn, shaped by its feeling.
    async fn recall(&self, turn: &mut Turn) {
        if turn.cancel.is_cancelled() {
            return;
        }
        let memory = &self.config.memory;
        let (k, retrieval) = match &turn.feeling {
            Some(f) => (f.k, f.retrieval.clone()),
            None => (memory.recall_k, memory.retrieval.clone()),
        };
        turn.recall = self
            .subconscious
            .recall_shaped(&turn.utterance.text, turn.now_ms, k, &retrieval)
            .await;
        let texts: Vec<&str> = turn
            .recall
            .recalled
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        tracing::info!(id = %turn.utterance.id, recalled = texts.len(), "memory context");
        tracing::debug!(id = %turn.utterance.id, recalled = ?texts, "memory context text");
    }

    /// The prompt: recalled memories go into the user turn, not the system prompt, so that
    /// the system prompt's KV cache stays valid across turns.
    fn compose(&self, turn: &mut Turn) {
        let tone = turn.feeling.as_ref().map_or("", |f| f.tone.as_str());
        let context = format!("{tone}{}", turn.recall.context);
        let u = &turn.utterance;
        let text = crate::subconscious::with_recall(&context, &u.text);
        turn.log_generation = self.subconscious.log_generation();
        let (roles, built_in) = (&self.config.roles, &self.config.conversation.system_prompt);
        let system = match &turn.persona {
            Some(p) => p.answer_prompt(roles, built_in),
            None => roles.answer_prompt(built_in).to_string(),
        };
        turn.prompt = self
            .home
            .with(|h| h.conversations.prompt(&u.room, &system, &text));
    }

    /// Streams the model's reply as chunks. With `others_first` (another room was being
    /// answered when this one arrived), a wait of over `conversation.one_moment_ms` is
    /// announced.
    async fn generate(&self, turn: &mut Turn) {
        if turn.cancel.is_cancelled() {
            turn.outcome = Outcome::Interrupted(Why::Cancelled);
            return;
        }
        let u = &turn.utterance;
        tracing::info!(terminal = %u.terminal, room = %u.room, id = %u.id, chars = u.text.len(), "answering");
        let asked = std::time::Instant::now();
        let request = GenerateRequest {
            // One lane per terminal (the topic's id, which the transport checked: a sender
            // cannot open lanes by naming rooms); one lane for all when rooms do not take
            // turns.
            lane: if self.config.llm.fair_rooms {
                u.terminal.clone()
            } else {
                String::new()
            },
            persona: turn.persona.as_ref().map(|p| PersonaJob {
                name: p.name.clone(),
                temperature: Some(p.temperature).filter(|t| *t >= 0.0),
                max_tokens: Some(p.max_tokens).filter(|n| *n > 0),
            }),
            ..GenerateRequest::chat(turn.prompt.clone())
        };
        // The guard may end the reply early (a loop, the model writing the user's turn):
        // the model's job stops, and the turn is not counted as interrupted. Every persona's
        // name is the assistant's own label.
        let job = turn.cancel.child_token();
        // The system prompt without the conversation's summary (its facts are what an answer
        // may rightly say word for word), and the tone line.
        let instructions: Vec<&str> = turn
            .prompt
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.split(SUMMARY_LABEL).next().unwrap_or(""))
            .chain(turn.feeling.as_ref().map(|f| f.tone.as_str()))
            .collect();
        let mut guard = self.guard().instructed_by(&instructions.join("\n"));
        let mut ended: Option<&'static str> = None;
        let mut said: Vec<String> = Vec::new();
        let mut events = match self.llm.generate(request, job.clone()) {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(error = %e, id = %u.id, "cannot queue utterance");
                let code = match e {
                    LlmError::Busy { .. } => ErrorCode::Busy,
                    _ => ErrorCode::Inference,
                };
                self.error(turn, code, e.spoken()).await;
                turn.outcome = Outcome::Failed;
                return;
            }
        };
        let conversation = &self.config.conversation;
        let mut announce = turn.others_first && conversation.one_moment_ms > 0;
        loop {
            let event = if announce {
                let wait = Duration::from_millis(conversation.one_moment_ms);
                match tokio::time::timeout(wait, events.recv()).await {
                    Ok(event) => event,
                    Err(_) => {
                        tracing::info!(id = %turn.utterance.id, room = %turn.utterance.room,
                            "another room is being answered; asked to wait");
                        self.chunk(turn, conversation.one_moment_text.clone(), false)
                            .await;
                        turn.announced = true;
                        announce = false;
                        continue;
                    }
                }
            } else {
                events.recv().await
            };
            announce = false;
            let Some(event) = event else {
                // The inference thread went away mid-reply.
                self.error(turn, ErrorCode::Inference, LlmError::Stopped.to_string())
                    .await;
                self.chunk(turn, String::new(), true).await;
                turn.outcome = Outcome::Failed;
                return;
            };
            match event {
                LlmEvent::Sentence(text) => {
                    // Sentences already on their way when the turn was cancelled, or after
                    // the guard ended the reply, are dropped.
                    if turn.cancel.is_cancelled() || ended.is_some() {
                        continue;
                    }
                    let (text, end) = match guard.pass(&text) {
                        Pass::Say(text) => (text, None),
                        Pass::Skip => continue,
                        Pass::End(text, why) => (text, Some(why)),
                    };
                    if !text.is_empty() {
                        said.push(text.clone());
                        self.chunk(turn, text, false).await;
                    }
                    if let Some(why) = end {
                        tracing::warn!(id = %turn.utterance.id, why, "the guard ended the reply");
                        ended = Some(why);
                        job.cancel();
                    }
                }
                LlmEvent::Done(stats) => {
                    // From the job queued to its first token: its wait for the model and its
                    // prompt (the generation runs from the first token to the last).
                    let first_token = asked.elapsed().saturating_sub(stats.generation);
                    self.llm.usage().answered(&stats);
                    // A reply the guard left nothing of (the model only echoed its prompt)
                    // still answers: the person hears that, not silence.
                    if said.is_empty()
                        && !turn.cancel.is_cancelled()
                        && (ended.is_some() || !stats.cancelled)
                    {
                        tracing::warn!(id = %turn.utterance.id, "nothing of the reply was fit to say");
                        self.chunk(turn, say::NO_WORDS.to_string(), false).await;
                        // The history keeps what was said; the role log marks the answer
                        // guarded, so no training example is made of it.
                        said.push(say::NO_WORDS.to_string());
                        ended = ended.or(Some("nothing of the reply was fit to say"));
                    }
                    // A reply always ends, even a cancelled one (the terminal ignores it then).
                    self.chunk(turn, String::new(), true).await;
                    tracing::info!(id = %turn.utterance.id, chunks = turn.seq, prompt_tokens = stats.prompt_tokens,
                        reused_tokens = stats.reused_tokens, generated_tokens = stats.generated_tokens,
                        prompt_ms = stats.prompt_eval.as_millis() as u64, first_token_ms = first_token.as_millis() as u64,
                        generation_ms = stats.generation.as_millis() as u64, cancelled = stats.cancelled, "answered");
                    turn.outcome =
                        if turn.cancel.is_cancelled() || (stats.cancelled && ended.is_none()) {
                            Outcome::Interrupted(Why::Cancelled)
                        } else {
                            Outcome::Finished
                        };
                    if stats.text.trim() != said.join(" ") {
                        tracing::info!(id = %turn.utterance.id, "the guard changed the reply");
                        tracing::debug!(id = %turn.utterance.id, written = %stats.text, "the reply as written");
                    }
                    // What the room's history keeps is what was said, never the raw text.
                    turn.reply = said.join(" ");
                    turn.prompt_tokens = stats.prompt_tokens;
                    turn.guarded = ended;
                    turn.truncated = stats.truncated;
                    return;
                }
                LlmEvent::Failed(e) => {
                    tracing::error!(error = %e, id = %turn.utterance.id, "generation failed");
                    self.error(turn, ErrorCode::Inference, e.spoken()).await;
                    // End the reply so that the terminal never waits for a chunk that won't
                    // come.
                    self.chunk(turn, String::new(), true).await;
                    turn.outcome = Outcome::Failed;
                    return;
                }
            }
        }
    }

    /// The turn is over: the room is free, and the household says how much was heard.
    fn settle(&self, turn: &mut Turn) {
        let (interrupted, heard) = self.home.with(|h| h.finish(&turn.utterance, now_ms()));
        let mut heard = heard;
        if turn.announced {
            let one_moment = self.config.conversation.one_moment_text.trim();
            heard = heard
                .strip_prefix(one_moment)
                .unwrap_or(&heard)
                .trim()
                .to_string();
        }
        turn.heard = heard;
        if let Some(i) = interrupted {
            if !matches!(turn.outcome, Outcome::InCode(_)) {
                turn.outcome = Outcome::Interrupted(i.why);
            }
            tracing::info!(id = %turn.utterance.id, why = %i.why, heard_chunks = ?i.heard_chunks,
                heard_chars = turn.heard.len(), written_chars = turn.reply.len(), "reply interrupted");
        }
        self.wake.notify_one();
    }

    /// After the reply: re-warm what was recalled, keep what was heard in the room's history,
    /// schedule a reflection, and store the user's turn.
    async fn remember(&self, turn: &mut Turn) {
        let now = turn.now_ms;
        let used = match turn.outcome {
            Outcome::Finished => turn.reply.as_str(),
            _ => turn.heard.as_str(),
        };
        self.subconscious.rewarm(&turn.recall, used, now).await;
        let kept = match turn.outcome {
            Outcome::Finished => turn.reply.clone(),
            // The person moved on before hearing anything ("never mind", a new question):
            // the request is taken back, and nothing of it is kept.
            Outcome::Interrupted(Why::NewerUtterance) if turn.heard.is_empty() => return,
            Outcome::Interrupted(_) => turn.heard.clone(),
            Outcome::Open | Outcome::InCode(_) | Outcome::Failed => return,
        };
        let u = &turn.utterance;
        let persona = turn.persona.as_ref().map(|p| p.name.as_str());
        let before = self.home.with(|h| {
            let before = h.conversations.last_reply(&u.room);
            h.conversations
                .record(&u.room, &u.id, &u.text, &kept, persona);
            before
        });
        let idle_s = self.config.pixie.reflect_after_idle_s;
        if idle_s > 0 {
            let reflect = Work::Reflect {
                room: u.room.clone(),
            };
            if let Err(e) = self
                .pixie
                .tasks()
                .schedule(reflect, now_ms() + idle_s * 1000, now)
            {
                tracing::error!(error = %e, "cannot schedule a reflection");
            }
        }
        if !turn.no_memory {
            // The reply it answered, under the name of the persona that said it.
            let context =
                before.map(|(name, b)| format!("{}: {b}", name.as_deref().unwrap_or("Hearth")));
            let vector = turn.recall.vector.take();
            turn.stored = self
                .subconscious
                .ingest(u, vector, context.as_deref(), now)
                .await;
            if let Some(id) = turn.stored {
                self.home
                    .with(|h| h.last_stored.insert(u.room.clone(), (id, now)));
            }
        }
    }

    /// When the room's history is over its budget, the preprocessor folds its older
    /// exchanges into the room's summary, on a task of its own: it is background work that
    /// any conversation goes before, and shutdown stops it.
    fn fold(self: Arc<Self>, room: &str) {
        // Read before the exchanges are: a forget after it keeps the fold out of the log.
        let generation = self.subconscious.log_generation();
        let Some(fold) = self.home.with(|h| h.conversations.fold_due(room)) else {
            return;
        };
        let tasks = self.tasks.clone();
        tasks.spawn(async move {
            let limit = self.config.conversation.summary_tokens;
            let folded = tokio::select! {
                f = crate::preprocess::summarise(&self.llm, &fold, limit) => f,
                () = self.stop.cancelled() => None,
            };
            match folded {
                Some(folded) => self.folded(&fold, folded, generation).await,
                None => self.home.with(|h| h.conversations.fold_failed(&fold)),
            }
        });
    }

    /// A fold is written: the room takes the summary (unless its history was cut
    /// meanwhile), and the job is logged.
    async fn folded(&self, fold: &Fold, folded: Folded, generation: u64) {
        let room = fold.room.as_str();
        let (taken, tokens) = self.home.with(|h| {
            let taken = h.conversations.folded(fold, &folded.summary);
            (taken, h.conversations.history_tokens(room))
        });
        tracing::info!(
            room,
            folded = fold.exchanges.len(),
            summary_chars = folded.summary.len(),
            model_text_kept = folded.kept,
            taken,
            history_tokens = tokens,
            "folded older exchanges into the room's summary"
        );
        tracing::debug!(room, summary = %folded.summary, "the room's summary");
        if !taken {
            // The room forgot or was cut meanwhile: nothing of it is logged either.
            return;
        }
        let signal = if folded.kept {
            Signal::Accepted
        } else {
            Signal::Rejected
        };
        self.subconscious
            .log_job(
                JobRole::Preprocessor,
                room,
                None,
                folded.given,
                folded.written,
                vec![signal],
                generation,
            )
            .await;
    }

    /// Sends chunk `turn.seq` of the reply.
    async fn chunk(&self, turn: &mut Turn, text: String, is_final: bool) {
        let u = &turn.utterance;
        if !text.is_empty() {
            self.home.with(|h| h.sent(&u.terminal, &u.id, &text));
        }
        let chunk = ReplyChunk {
            utterance_id: u.id.clone(),
            seq: turn.seq,
            text,
            is_final,
            voice: turn.persona.as_ref().map(Persona::voice),
        };
        turn.seq += 1;
        self.out.send(&u.terminal, Message::Reply(chunk)).await;
    }

    /// Reports an error about the turn to its terminal.
    async fn error(&self, turn: &Turn, code: ErrorCode, message: String) {
        let u = &turn.utterance;
        let report = ErrorReport {
            utterance_id: Some(u.id.clone()),
            code,
            message,
        };
        self.out.send(&u.terminal, Message::Error(report)).await;
    }

    /// The output guard for one reply: the assistant's names and every persona's are its own
    /// labels.
    pub fn guard(&self) -> Guard {
        let names: Vec<String> = (self.config.conversation.assistant_names.iter().cloned())
            .chain(self.config.personas.names().map(String::from))
            .collect();
        Guard::with_names(&names)
    }

    /// Says `text` as the whole reply (answers made in code).
    async fn say(&self, turn: &mut Turn, text: String) {
        tracing::info!(id = %turn.utterance.id, chars = text.len(), "answered in code");
        tracing::debug!(id = %turn.utterance.id, reply = %text, "the answer made in code");
        self.chunk(turn, text, false).await;
        self.chunk(turn, String::new(), true).await;
    }
}
