//! Pixie's loop: every `pixie.tick_ms`, or when woken, say what is due where it should be
//! said, then start due background work (memory sweeps, reflections). Every task it starts is
//! tracked and stops at shutdown.

use std::sync::Arc;
use std::time::Duration;

use hearth_shared::{now_ms, Speech};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tasks::{self, Task, Work};
use super::{Delivery, Pixie};
use crate::household::Home;
use crate::llm::{json_schema_grammar, GenerateRequest, JobRole, LlmHandle};
use crate::memory::rolelog::Signal;
use crate::memory::Memories;
use crate::memory::MemoryConfig;
use crate::outbox::{Message, Outbox};
use crate::persona::{Persona, PersonasConfig};
use crate::subconscious::Subconscious;

/// What Pixie's loop works with.
#[derive(Debug)]
pub struct Runner {
    /// Reminders, the task queue and the decision to speak.
    pub pixie: Arc<Pixie>,
    /// The memory settings (sweep interval, lifecycle).
    pub memory: MemoryConfig,
    /// For reflections.
    pub llm: LlmHandle,
    /// Where reflections are stored.
    pub subconscious: Subconscious,
    /// The household state (rooms, conversations, running tasks).
    pub home: Arc<Home>,
    /// Where speech goes.
    pub out: Outbox,
    /// Wakes the loop early.
    pub wake: Arc<Notify>,
    /// Background work is tracked here, for shutdown.
    pub tasks: TaskTracker,
    /// Cancelled at shutdown.
    pub stop: CancellationToken,
    /// Whose voice speaks in each room.
    pub personas: PersonasConfig,
}

impl Runner {
    /// Schedules the first memory sweep (it catches up on downtime) and runs the loop on
    /// `tasks` until `stop`.
    pub fn start(self: Arc<Self>) {
        if self.memory.sweep_interval_minutes == 0 {
            tracing::info!("memory sweeps are off (memory.sweep_interval_minutes = 0)");
        } else if let Err(e) = self.pixie.tasks().schedule(Work::Sweep, now_ms(), now_ms()) {
            tracing::error!(error = %e, "cannot schedule the memory sweep");
        }
        let tasks = self.tasks.clone();
        tasks.spawn(self.run());
    }

    async fn run(self: Arc<Self>) {
        let tick = Duration::from_millis(self.pixie.tick_ms());
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
                _ = self.wake.notified() => {}
            }
            let now = now_ms();
            // A copy: planning reads the reminder store, which the household lock must not
            // wait on.
            let rooms = self.home.with(|h| h.rooms.clone());
            let plan = match self.pixie.plan(now, &rooms) {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the reminder store");
                    continue;
                }
            };
            for d in plan {
                self.say(&d).await;
                if let Err(e) = self.pixie.delivered(&d, now) {
                    tracing::error!(error = %e, "said, but cannot record it; it may be said again");
                }
            }
            self.start_jobs(now);
        }
    }

    /// Hands one proactive speech to the transport for each target, in the voice of the
    /// target room's persona, and waits until it has.
    async fn say(&self, d: &Delivery) {
        for (terminal, room) in &d.targets {
            tracing::info!(terminal, room, fallback = d.fallback, why = %d.why, "speaking first");
            tracing::debug!(terminal, text = %d.speech.text, "what is said first");
            let speech = Speech {
                voice: self.personas.of_room(room).map(Persona::voice),
                ..d.speech.clone()
            };
            if !self
                .out
                .send_confirmed(terminal, Message::Speech(speech))
                .await
            {
                tracing::warn!(terminal, "the transport is gone; speech not sent");
            }
        }
    }

    /// Starts Pixie's due work (sweeps, reflections), each once.
    fn start_jobs(self: &Arc<Self>, now: u64) {
        let jobs = match self.pixie.jobs(now) {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = %e, "cannot read Pixie's task queue");
                return;
            }
        };
        for task in jobs {
            let Some(running) = Running::start(&self.home, task.id) else {
                continue;
            };
            match task.work.clone() {
                Work::Sweep => {
                    let runner = Arc::clone(self);
                    self.tasks.spawn(async move { runner.sweep(running).await });
                }
                Work::Reflect { room } => {
                    // The language model is busy with a conversation: later.
                    if self.home.with(|h| h.rooms.answering_anywhere()) {
                        let retry = self.pixie.config().reflect_retry_s * 1000;
                        if let Err(e) = self.pixie.tasks().postpone(&task, now + retry) {
                            tracing::error!(error = %e, "cannot postpone a reflection");
                        }
                        continue;
                    }
                    let runner = Arc::clone(self);
                    self.tasks
                        .spawn(async move { runner.reflect(task, room, running).await });
                }
                // Said by the plan, not run here.
                Work::FollowUp { .. } => {}
            }
        }
    }

    async fn sweep(&self, _running: Running) {
        sweep_once(
            Arc::clone(self.subconscious.memories()),
            self.memory.lifecycle.clone(),
        )
        .await;
        let every_ms = self.memory.sweep_interval_minutes * 60_000;
        // Scheduling the next sweep replaces this one in its slot.
        if let Err(e) = self
            .pixie
            .tasks()
            .schedule(Work::Sweep, now_ms() + every_ms, now_ms())
        {
            tracing::error!(error = %e, "cannot schedule the next memory sweep");
        }
    }

    /// Pixie reflects on a quiet room's conversation: background LLM work under a grammar,
    /// which gives way to any conversation and stops at shutdown. The reflection becomes a
    /// memory; an open topic becomes a follow-up question, asked later through the "worth
    /// interrupting?" decision.
    async fn reflect(&self, task: Task, room: String, _running: Running) {
        let generation = self.subconscious.log_generation();
        let exchanges = self.home.with(|h| h.conversations.exchanges(&room));
        if !exchanges.is_empty() {
            let request = json_schema_grammar(&tasks::reflection_schema()).map(|g| {
                GenerateRequest::structured(
                    JobRole::Pixie,
                    tasks::reflection_prompt(&exchanges),
                    g,
                    160,
                )
            });
            let mut given = Vec::new();
            let written = match request {
                Ok(request) => {
                    given = self.llm.given(&request);
                    self.llm
                        .complete_until(request, self.stop.child_token())
                        .await
                }
                Err(e) => Err(e),
            };
            match written {
                _ if self.stop.is_cancelled() => {
                    tracing::info!(room, "reflection stopped by shutdown; it runs again later");
                    // Not done: the task stays in the queue for the next start.
                    return;
                }
                Ok((_, stats)) => {
                    let reflection = tasks::parse_reflection(&stats.text);
                    let signal = if reflection.is_some() {
                        Signal::Accepted
                    } else {
                        Signal::Rejected
                    };
                    self.subconscious
                        .log_job(
                            JobRole::Pixie,
                            &room,
                            None,
                            given,
                            stats.text.clone(),
                            vec![signal],
                            generation,
                        )
                        .await;
                    match reflection {
                        Some(r) => self.reflected(&room, r).await,
                        None => {
                            tracing::warn!(room, "the reflection was not usable; dropped");
                            tracing::debug!(room, output = %stats.text, "the unusable reflection");
                        }
                    }
                }
                Err(e) => tracing::warn!(room, error = %e, "cannot reflect now; dropped"),
            }
        }
        if let Err(e) = self.pixie.tasks().done(task.id) {
            tracing::error!(error = %e, "cannot finish a reflection task");
        }
    }

    async fn reflected(&self, room: &str, r: tasks::Reflection) {
        let now = now_ms();
        let text = format!(
            "Reflection on a conversation in the {room}: {}",
            r.reflection
        );
        let stored = self
            .subconscious
            .remember_derived(&text, room, 0.5, now)
            .await;
        let follow_up = !r.question.is_empty() && !r.topic.is_empty();
        if follow_up {
            let work = Work::FollowUp {
                room: room.to_string(),
                topic: r.topic.clone(),
                question: r.question.clone(),
            };
            let due = now + self.pixie.config().follow_up_after_minutes * 60_000;
            if let Err(e) = self.pixie.tasks().schedule(work, due, now) {
                tracing::error!(error = %e, "cannot schedule a follow-up");
            }
        }
        tracing::info!(room, memory = ?stored.ok(), follow_up, "pixie reflected");
        tracing::debug!(room, reflection = %r.reflection, topic = %r.topic,
            question = %r.question, "the reflection");
    }
}

/// A Pixie task marked as running in the household until this is dropped, however its work
/// ends, so that it is started once at a time.
#[derive(Debug)]
struct Running {
    home: Arc<Home>,
    id: u64,
}

impl Running {
    /// Marks task `id` as running; `None` when it already is.
    fn start(home: &Arc<Home>, id: u64) -> Option<Running> {
        home.with(|h| h.running.insert(id)).then(|| Running {
            home: Arc::clone(home),
            id,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.home.with(|h| h.running.remove(&self.id));
    }
}

/// One lifecycle sweep (expiry, decay, archiving, the profile), logged. Pixie's task queue
/// runs it at start (catching up on downtime) and every `memory.sweep_interval_minutes`.
pub async fn sweep_once(
    memories: Arc<Memories>,
    lifecycle: crate::memory::lifecycle::LifecycleConfig,
) {
    let started = std::time::Instant::now();
    let swept = tokio::task::spawn_blocking(move || memories.sweep(&lifecycle, now_ms())).await;
    match swept {
        Ok(Ok((report, profile))) => tracing::info!(
            kept = report.kept,
            expired = report.expired,
            faded = report.faded,
            pruned_questions = report.pruned,
            profile = %profile.prompt_line(),
            ms = started.elapsed().as_millis() as u64,
            "memory sweep"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "memory sweep failed"),
        Err(e) => tracing::error!(error = %e, "memory sweep panicked"),
    }
}
