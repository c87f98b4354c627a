//! The seam between the hub and its language model: the [`Model`] trait, and the job loop that
//! serves an [`LlmHandle`](super::LlmHandle)'s queue with any model. The llama.cpp engine
//! implements it in production; tests run the same loop over a scripted model, so the turn
//! pipeline, the fairness lanes and background preemption are tested in-process without
//! loading a GGUF.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{GenerateRequest, GenerationStats, Job, JobRole, LlmError, LlmEvent};

/// A language model on the inference thread. One request at a time; every call happens on
/// that thread.
pub trait Model {
    /// Generates the reply to `request`: each complete sentence goes to `events` as it is
    /// written (not for background work), and the stats (with the whole text) are returned.
    /// Stops early when `cancel` fires or `events` closes (stats say `cancelled`), and, for
    /// background work, when `preempt` says a conversation waits (stats say `preempted`).
    fn generate(
        &mut self,
        request: &GenerateRequest,
        events: &mpsc::Sender<LlmEvent>,
        cancel: &CancellationToken,
        preempt: &mut dyn FnMut() -> bool,
    ) -> Result<GenerationStats, LlmError>;

    /// How many conversations it decodes together (`llm.parallel`); 1: one at a time.
    fn parallel(&self) -> usize {
        1
    }

    /// Generates several conversations' replies together, each as [`Model::generate`] would
    /// (no preemption: they are all conversations), and sends each its `Done` or `Failed`
    /// as soon as it ends, not when the last one does. Returns, per job, whether it ran:
    /// `false` when it could not join this time (it runs with another adapter); it then goes
    /// back to the front of its room's queue.
    /// Without an engine that batches, they run one after the other.
    fn generate_together(&mut self, jobs: &[Together<'_>], _join: &mut Join<'_>) -> Vec<bool> {
        jobs.iter()
            .map(|j| {
                let last = match self.generate(j.request, j.events, j.cancel, &mut || false) {
                    Ok(stats) => LlmEvent::Done(stats),
                    Err(e) => {
                        self.reset();
                        LlmEvent::Failed(e)
                    }
                };
                let _ = j.events.blocking_send(last);
                true
            })
            .collect()
    }

    /// A generation failed: drop any state it may have left half-written.
    fn reset(&mut self) {}

    /// Background work is about to run: remember the conversation's state.
    fn checkpoint(&mut self) {}

    /// Background work is done: put the conversation's state back, giving way to `preempt`.
    fn restore(&mut self, _preempt: &mut dyn FnMut() -> bool) {}
}

/// Asked by [`Model::generate_together`] while one of its sequences is free: the next
/// conversation job waiting, if it `fits` (the group's adapter), to join the group.
pub type Join<'a> = dyn FnMut(&dyn Fn(&GenerateRequest) -> bool) -> Option<Job> + 'a;

/// One of the conversation jobs given to [`Model::generate_together`].
pub struct Together<'a> {
    /// What to generate.
    pub request: &'a GenerateRequest,
    /// Where its sentences go.
    pub events: &'a mpsc::Sender<LlmEvent>,
    /// Its cancellation.
    pub cancel: &'a CancellationToken,
}

/// Serves jobs until every handle is gone: conversations first, the rooms in turn, background
/// work only while no conversation waits. A job cancelled (or abandoned) while it waited is
/// answered at once without touching the model.
/// More than `max_background` background jobs waiting and the oldest is dropped.
pub(crate) fn serve(model: &mut dyn Model, mut jobs: mpsc::Receiver<Job>, max_background: usize) {
    let mut queue = JobQueue {
        max_background: max_background.max(1),
        ..JobQueue::default()
    };
    while let Some(job) = queue.next(&mut jobs) {
        if answered_unwanted(&job) {
            continue;
        }
        let Job {
            request,
            events,
            cancel,
        } = job;
        let background = request.background;
        if !background && model.parallel() > 1 {
            let mut group = vec![Job {
                request,
                events,
                cancel,
            }];
            queue.drain(&mut jobs);
            while group.len() < model.parallel() {
                let Some(job) = queue.conversation.pop() else {
                    break;
                };
                if !answered_unwanted(&job) {
                    group.push(job);
                }
            }
            together(model, group, &mut queue, &mut jobs);
            continue;
        }
        if background {
            model.checkpoint();
        }
        let mut preempt = || background && queue.conversation_waiting(&mut jobs);
        let result = model.generate(&request, &events, &cancel, &mut preempt);
        let last = match result {
            Ok(stats) if stats.preempted => {
                tracing::debug!("background generation gave way to a conversation");
                queue.retry(Job {
                    request,
                    events,
                    cancel,
                });
                continue;
            }
            Ok(stats) => LlmEvent::Done(stats),
            Err(e) => {
                model.reset();
                LlmEvent::Failed(e)
            }
        };
        let _ = events.blocking_send(last);
        if background {
            model.restore(&mut || queue.conversation_waiting(&mut jobs));
        }
    }
    tracing::debug!("inference thread stopping");
}

/// Answers a job cancelled (or abandoned) while it waited, without touching the model;
/// false when it is still wanted.
fn answered_unwanted(job: &Job) -> bool {
    if !job.cancel.is_cancelled() && !job.events.is_closed() {
        return false;
    }
    tracing::debug!(lane = %job.request.lane, "a job was cancelled before it started");
    let _ = job.events.blocking_send(LlmEvent::Done(GenerationStats {
        cancelled: true,
        ..GenerationStats::default()
    }));
    true
}

/// Runs `group` together; a job that could not join goes back to the front of its lane.
fn together(
    model: &mut dyn Model,
    group: Vec<Job>,
    queue: &mut JobQueue,
    receiver: &mut mpsc::Receiver<Job>,
) {
    let ran = {
        let jobs: Vec<Together<'_>> = group
            .iter()
            .map(|j| Together {
                request: &j.request,
                events: &j.events,
                cancel: &j.cancel,
            })
            .collect();
        // A room that asks while the group runs joins it (in the rooms' turn order), unless
        // it needs another adapter: then it waits for the group to end.
        let mut join = |fits: &dyn Fn(&GenerateRequest) -> bool| loop {
            queue.drain(receiver);
            let job = queue.conversation.pop()?;
            if answered_unwanted(&job) {
                continue;
            }
            if fits(&job.request) {
                return Some(job);
            }
            let lane = job.request.lane.clone();
            queue.conversation.push_front(&lane, job);
            return None;
        };
        model.generate_together(&jobs, &mut join)
    };
    tracing::debug!(jobs = group.len(), "conversations decoded together");
    let later: Vec<Job> = group
        .into_iter()
        .zip(ran)
        .filter_map(|(job, ran)| (!ran).then_some(job))
        .collect();
    // In reverse, so that each lane's own order is kept at its front.
    for job in later.into_iter().rev() {
        let lane = job.request.lane.clone();
        queue.conversation.push_front(&lane, job);
    }
}

/// A room's fold (the preprocessor's summary of its older exchanges).
fn is_fold(job: &Job) -> bool {
    job.request.role == JobRole::Preprocessor
}

/// The two job classes: conversations first, background work only when none waits.
#[derive(Default)]
struct JobQueue {
    /// Conversations, round-robin by room.
    conversation: super::fair::Lanes<Job>,
    background: VecDeque<Job>,
    /// `llm.background_queue`.
    max_background: usize,
}

impl JobQueue {
    /// Moves every job already sent into the queue.
    fn drain(&mut self, jobs: &mut mpsc::Receiver<Job>) {
        while let Ok(job) = jobs.try_recv() {
            self.push(job);
        }
    }

    fn push(&mut self, job: Job) {
        if !job.request.background {
            let lane = job.request.lane.clone();
            self.conversation.push(&lane, job);
            return;
        }
        // A room's fold goes ahead of other background work, and is dropped last: until it
        // is written the room's prompt grows with every turn (and its history is cut when
        // it passes twice `conversation.history_turns`), while a late graph write costs
        // nothing meanwhile.
        let folds = |q: &VecDeque<Job>| q.iter().take_while(|j| is_fold(j)).count();
        if self.background.len() >= self.max_background {
            let oldest = (self.background.iter())
                .position(|j| !is_fold(j))
                .unwrap_or(0);
            if let Some(dropped) = self.background.remove(oldest) {
                tracing::warn!(
                    waiting = self.max_background,
                    role = dropped.request.role.name(),
                    "too much background work is waiting; dropping the oldest"
                );
                let _ = dropped.events.try_send(LlmEvent::Failed(LlmError::Busy {
                    capacity: self.max_background,
                }));
            }
        }
        match is_fold(&job) {
            true => self.background.insert(folds(&self.background), job),
            false => self.background.push_back(job),
        }
    }

    /// Puts a preempted background job back at the front.
    fn retry(&mut self, job: Job) {
        self.background.push_front(job);
    }

    fn conversation_waiting(&mut self, jobs: &mut mpsc::Receiver<Job>) -> bool {
        self.drain(jobs);
        !self.conversation.is_empty()
    }

    /// The next job: a conversation if one waits, else background work, else it blocks.
    /// `None` once every handle is gone and nothing is left.
    fn next(&mut self, jobs: &mut mpsc::Receiver<Job>) -> Option<Job> {
        loop {
            self.drain(jobs);
            if let Some(job) = self.conversation.pop() {
                return Some(job);
            }
            if let Some(job) = self.background.pop_front() {
                if job.events.is_closed() || job.cancel.is_cancelled() {
                    continue;
                }
                return Some(job);
            }
            self.push(jobs.blocking_recv()?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(role: JobRole, tag: u32) -> (Job, mpsc::Receiver<LlmEvent>) {
        let (events, rx) = mpsc::channel(1);
        let request = GenerateRequest::background(role, Vec::new(), tag);
        let cancel = CancellationToken::new();
        let job = Job {
            request,
            events,
            cancel,
        };
        (job, rx)
    }

    #[test]
    fn folds_go_ahead_of_other_background_work_and_are_dropped_last() {
        let mut queue = JobQueue {
            max_background: 3,
            ..JobQueue::default()
        };
        let (graph1, mut graph1_rx) = job(JobRole::MemoryWriter, 1);
        let (graph2, _g2) = job(JobRole::MemoryWriter, 2);
        let (fold1, _f1) = job(JobRole::Preprocessor, 3);
        let (fold2, _f2) = job(JobRole::Preprocessor, 4);
        for j in [graph1, graph2, fold1] {
            queue.push(j);
        }
        // Full: the oldest job that is not a fold goes, and the new fold waits behind the
        // fold already there.
        queue.push(fold2);
        assert!(matches!(
            graph1_rx.try_recv(),
            Ok(LlmEvent::Failed(LlmError::Busy { capacity: 3 }))
        ));
        let order: Vec<u32> = queue
            .background
            .iter()
            .map(|j| j.request.max_tokens.unwrap())
            .collect();
        assert_eq!(order, [3, 4, 2]);
    }
}
