//! Pixie: what the hub does between conversations. Reminders and timers, the "worth
//! interrupting?" decision, and the scheduler that speaks first in the right room.
//!
//! [`Pixie`] is plain logic over the reminder store with time passed in: `plan(now, rooms)`
//! says what to say where, `delivered` records it once the service has published it. The
//! service's loop calls them every `pixie.tick_ms`; tests call them with any clock they like.

pub mod interrupt;
pub mod phrase;
pub mod reminders;
pub mod runner;
pub mod spoken;
pub mod tasks;

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use hearth_shared::{Speech, SpeechReason};
use jiff::tz::TimeZone;

use crate::llm::{json_schema_grammar, ChatMessage, GenerateRequest, JobRole, LlmHandle, Role};
use crate::rooms::Rooms;
use interrupt::{decide, Decision, QuietHours, Situation};
use phrase::PhraseError;
use reminders::{Kind, NewReminder, Reminder, ReminderError, Reminders};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tasks::{Task, Tasks, Work};

/// Reminders, timers and when the hub may speak first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PixieConfig {
    /// The reminder store (sled). `~/` is expanded.
    pub path: PathBuf,
    /// The household's time zone, an IANA name such as "Europe/Berlin"; empty: the system's.
    pub time_zone: String,
    /// How often the scheduler looks for due work, in ms.
    pub tick_ms: u64,
    /// Quiet hours in the household zone, "HH:MM-HH:MM" (may wrap past midnight); empty: none.
    pub quiet_hours: String,
    /// Speech at least this urgent is said in quiet hours too.
    pub quiet_hours_min_urgency: f32,
    /// Seconds between two proactive speeches.
    pub cooldown_s: u64,
    /// Speech at least this urgent skips the cooldown.
    pub cooldown_min_urgency: f32,
    /// The hub does not speak first in a room within this many seconds of the user speaking
    /// there, nor while it answers there.
    pub conversation_grace_s: u64,
    /// How urgent a reminder is.
    pub reminder_urgency: f32,
    /// How urgent a timer is (and a reminder "in N minutes" within `timer_within_minutes`).
    pub timer_urgency: f32,
    /// A reminder for a time this many minutes ahead or less ("in 20 minutes") is as urgent
    /// as a timer.
    pub timer_within_minutes: u64,
    /// A reminder said this many seconds or more after it fell due is said as late.
    pub late_after_s: u64,
    /// Pixie reflects on a room's conversation once it has been quiet this long (0: never).
    pub reflect_after_idle_s: u64,
    /// A reflection due while a room is being answered is tried again this many seconds later.
    pub reflect_retry_s: u64,
    /// A follow-up question from a reflection is asked this many minutes later.
    pub follow_up_after_minutes: u64,
    /// A follow-up not asked within this many hours is dropped.
    pub follow_up_expire_hours: u64,
    /// How urgent a follow-up question is.
    pub follow_up_urgency: f32,
    /// While the user sounds stressed, speech below this urgency waits.
    pub stressed_min_urgency: f32,
    /// The user counts as stressed for this many minutes after a turn that sounded so.
    pub stressed_window_minutes: u64,
    /// Speech below this urgency waits until the user was heard within
    /// `contact_window_minutes` (nobody would hear it).
    pub contact_min_urgency: f32,
    /// See `contact_min_urgency`.
    pub contact_window_minutes: u64,
}

impl Default for PixieConfig {
    fn default() -> Self {
        PixieConfig {
            path: PathBuf::from("~/.local/share/hearth/pixie"),
            time_zone: String::new(),
            tick_ms: 1000,
            quiet_hours: "22:30-07:00".to_string(),
            quiet_hours_min_urgency: 0.9,
            cooldown_s: 60,
            cooldown_min_urgency: 1.0,
            conversation_grace_s: 10,
            reminder_urgency: 0.7,
            timer_urgency: 1.0,
            timer_within_minutes: 60,
            late_after_s: 120,
            reflect_after_idle_s: 300,
            reflect_retry_s: 30,
            follow_up_after_minutes: 180,
            follow_up_expire_hours: 24,
            follow_up_urgency: 0.3,
            stressed_min_urgency: 0.5,
            stressed_window_minutes: 30,
            contact_min_urgency: 0.5,
            contact_window_minutes: 240,
        }
    }
}

/// "reminder #3: water the plants", for the decision log.
fn reminder_what(r: &Reminder) -> String {
    let kind = match r.kind {
        Kind::Timer => "timer",
        Kind::Reminder => "reminder",
    };
    format!("{kind} #{}: {}", r.id, r.what)
}

/// Why a reminder could not be set. `Display` is what the hub says.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The time phrase gave no instant.
    #[error("Sorry, {0}. Say, for example: remind me to water the plants tomorrow at 8.")]
    Phrase(#[from] PhraseError),
    /// The time phrase names a time too far ahead to keep ("in 8000000 days"): a reminder
    /// or a timer.
    #[error("That is too far ahead for me to set a {0}.")]
    TooFar(&'static str),
    /// The store failed.
    #[error("Sorry, I could not save that reminder; my reminder store reported an error.")]
    Storage(#[from] ReminderError),
}

/// (terminal, room) pairs to say something to.
pub type Targets = Vec<(String, String)>;

/// One proactive speech: what to say, to which terminals, and for which reminders.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// (terminal, room) pairs.
    pub targets: Targets,
    /// The message for each target.
    pub speech: Speech,
    /// The reminders it says, each with whether it is late.
    pub reminders: Vec<(Reminder, bool)>,
    /// Whether the rooms are a fallback for offline ones.
    pub fallback: bool,
    /// Why it may speak now.
    pub why: String,
    /// The follow-up task it carries out, if it is one.
    pub task: Option<u64>,
}

/// Reminders, timers and speaking first.
#[derive(Debug)]
pub struct Pixie {
    config: PixieConfig,
    tz: TimeZone,
    quiet: Option<QuietHours>,
    reminders: Reminders,
    tasks: Tasks,
    /// When this hub started: a reminder due before it fell due while the hub was down.
    started_ms: u64,
    last_spoke_ms: Mutex<Option<u64>>,
    /// Reminders whose wait was logged, with the reason, so a held one is logged once.
    logged: Mutex<HashSet<(u64, String)>>,
    /// The latest decisions to speak or to hold back, newest last (the dashboard's).
    decisions: Mutex<std::collections::VecDeque<Decided>>,
}

/// How many decisions [`Pixie::decisions`] keeps.
const DECISIONS_KEPT: usize = 200;

/// One decision to speak first or to hold back, with its reason.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decided {
    /// When, in ms since the epoch.
    pub at_ms: u64,
    /// What it was about ("reminder #3: water the plants", "follow-up question in the
    /// kitchen").
    pub what: String,
    /// Whether it spoke.
    pub spoke: bool,
    /// Why: the decision's reason (quiet hours, cooldown, stress, nobody online, ...).
    pub why: String,
}

impl Pixie {
    /// Opens the reminder store in `config.path`; the hub started at `started_ms`.
    pub fn open(config: PixieConfig, started_ms: u64) -> anyhow::Result<Pixie> {
        let tz = phrase::zone(&config.time_zone).map_err(anyhow::Error::msg)?;
        let quiet = QuietHours::parse(&config.quiet_hours).map_err(anyhow::Error::msg)?;
        let reminders = Reminders::open(&config.path).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the reminders at {}: {e}",
                config.path.display()
            )
        })?;
        let tasks = Tasks::open(reminders.db())
            .map_err(|e| anyhow::anyhow!("cannot open Pixie's task queue: {e}"))?;
        Ok(Pixie {
            config,
            tz,
            quiet,
            reminders,
            tasks,
            started_ms,
            last_spoke_ms: Mutex::new(None),
            logged: Mutex::new(HashSet::new()),
            decisions: Mutex::default(),
        })
    }

    /// The household time zone.
    pub fn zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The reminder store.
    pub fn reminders(&self) -> &Reminders {
        &self.reminders
    }

    /// The task queue.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The settings.
    pub fn config(&self) -> &PixieConfig {
        &self.config
    }

    /// Due work for the service to run (sweeps, reflections); follow-ups come from `plan`.
    pub fn jobs(&self, now_ms: u64) -> Result<Vec<Task>, ReminderError> {
        let mut due = self.tasks.due(now_ms)?;
        due.retain(|t| !matches!(t.work, Work::FollowUp { .. }));
        Ok(due)
    }

    /// What the decision sees for `targets` now.
    fn situation(
        &self,
        now_ms: u64,
        targets: &Targets,
        rooms: &Rooms,
        last_spoke_ms: Option<u64>,
    ) -> Situation {
        let grace_ms = self.config.conversation_grace_s * 1000;
        Situation {
            now_ms,
            busy_until_ms: targets
                .iter()
                .filter_map(|(_, room)| rooms.busy_until(room, now_ms, grace_ms))
                .max(),
            quiet_until_ms: self.quiet.and_then(|q| q.until(now_ms, &self.tz)),
            last_spoke_ms,
            user_stressed: rooms
                .user_stressed(now_ms, self.config.stressed_window_minutes * 60_000),
            last_heard_ms: rooms.last_heard().map(|(_, at)| at),
        }
    }

    /// How often the service should call [`Pixie::plan`], in ms.
    pub fn tick_ms(&self) -> u64 {
        self.config.tick_ms
    }

    /// What to say now: due reminders, grouped by where they go, each group through the
    /// "worth interrupting?" decision. Reminders with no online terminal anywhere, or held by
    /// the decision, stay pending and are looked at again next time.
    pub fn plan(&self, now_ms: u64, rooms: &Rooms) -> Result<Vec<Delivery>, ReminderError> {
        let due = self.reminders.due(now_ms)?;
        // Where to -> (what, whether a fallback).
        let mut groups: BTreeMap<Targets, (Vec<Reminder>, bool)> = BTreeMap::new();
        for r in due {
            let route = rooms.route(&r.rooms);
            if route.targets.is_empty() {
                self.log_wait(&r, "no terminal is online");
                continue;
            }
            let group = groups.entry(route.targets).or_default();
            group.0.push(r);
            group.1 |= route.fallback;
        }
        let mut last_spoke = *self.last_spoke_ms.lock().expect("lock");
        let mut out = Vec::new();
        for (targets, (group, fallback)) in groups {
            let situation = self.situation(now_ms, &targets, rooms, last_spoke);
            // Each reminder is decided on its own urgency; those cleared share one speech.
            let mut cleared = Vec::new();
            let mut why_spoken = String::new();
            for r in group {
                match decide(r.urgency, &situation, &self.config) {
                    Decision::Wait { why, .. } => self.log_wait(&r, &why),
                    Decision::Speak { why } => {
                        why_spoken = why;
                        cleared.push(r);
                    }
                }
            }
            if cleared.is_empty() {
                continue;
            }
            last_spoke = Some(now_ms);
            let late_ms = self.config.late_after_s * 1000;
            let said: Vec<(Reminder, bool)> = cleared
                .into_iter()
                .map(|r| {
                    // Late: it fell due while the hub was down, and not just now.
                    let late =
                        r.due_ms < self.started_ms && now_ms.saturating_sub(r.due_ms) >= late_ms;
                    (r, late)
                })
                .collect();
            let text = said
                .iter()
                .map(|(r, late)| r.spoken(late.then(|| now_ms - r.due_ms)))
                .collect::<Vec<_>>()
                .join(" ");
            let id = said
                .iter()
                .map(|(r, _)| format!("r{}-{}", r.id, r.due_ms))
                .collect::<Vec<_>>()
                .join("+");
            out.push(Delivery {
                targets,
                speech: Speech {
                    id,
                    text,
                    reason: SpeechReason::Reminder,
                    expects_answer: false,
                    voice: None,
                },
                reminders: said,
                fallback,
                why: why_spoken,
                task: None,
            });
        }
        // Follow-up questions, one at a time, after the reminders.
        for task in self.tasks.due(now_ms)? {
            let Work::FollowUp {
                room,
                topic,
                question,
            } = &task.work
            else {
                continue;
            };
            let expire_ms = self.config.follow_up_expire_hours * 3_600_000;
            if now_ms.saturating_sub(task.due_ms) > expire_ms {
                tracing::info!(
                    task = task.id,
                    topic,
                    "follow-up not asked in time; dropped"
                );
                self.tasks.done(task.id)?;
                continue;
            }
            let route = rooms.route(std::slice::from_ref(room));
            if route.targets.is_empty() {
                continue;
            }
            let situation = self.situation(now_ms, &route.targets, rooms, last_spoke);
            match decide(self.config.follow_up_urgency, &situation, &self.config) {
                Decision::Wait { why, .. } => {
                    if self
                        .logged
                        .lock()
                        .expect("lock")
                        .insert((task.id, why.clone()))
                    {
                        tracing::info!(task = task.id, why, "follow-up waiting");
                        self.decided(format!("a follow-up question in the {room}"), false, &why);
                        tracing::debug!(task = task.id, topic, "the follow-up's topic");
                    }
                }
                Decision::Speak { why } => {
                    out.push(Delivery {
                        targets: route.targets,
                        speech: Speech {
                            id: format!("f{}", task.id),
                            text: question.clone(),
                            reason: SpeechReason::Pixie,
                            expects_answer: true,
                            voice: None,
                        },
                        reminders: Vec::new(),
                        fallback: route.fallback,
                        why,
                        task: Some(task.id),
                    });
                    break;
                }
            }
        }
        Ok(out)
    }

    fn log_wait(&self, r: &Reminder, why: &str) {
        if self
            .logged
            .lock()
            .expect("lock")
            .insert((r.id, why.to_string()))
        {
            tracing::info!(reminder = r.id, why, "reminder due, waiting");
            self.decided(reminder_what(r), false, why);
        }
    }

    /// Keeps a decision for [`Pixie::decisions`].
    fn decided(&self, what: String, spoke: bool, why: &str) {
        let mut kept = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == DECISIONS_KEPT {
            kept.pop_front();
        }
        kept.push_back(Decided {
            at_ms: hearth_shared::now_ms(),
            what,
            spoke,
            why: why.to_string(),
        });
    }

    /// The latest decisions to speak or to hold back, newest first. A reminder held back for
    /// the same reason again is not repeated.
    pub fn decisions(&self) -> Vec<Decided> {
        let kept = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().rev().cloned().collect()
    }

    /// Records that `d` was published at `now_ms`.
    pub fn delivered(&self, d: &Delivery, now_ms: u64) -> Result<(), ReminderError> {
        *self.last_spoke_ms.lock().expect("lock") = Some(now_ms);
        let rooms: Vec<&str> = d.targets.iter().map(|(_, r)| r.as_str()).collect();
        let what = match d.task {
            Some(_) => "a follow-up question".to_string(),
            None => d
                .reminders
                .iter()
                .map(|(r, _)| reminder_what(r))
                .collect::<Vec<_>>()
                .join("; "),
        };
        self.decided(
            format!("{what}, said in the {}", rooms.join(" and ")),
            true,
            &d.why,
        );
        let room = d.targets.first().map(|(_, r)| r.as_str()).unwrap_or("");
        for (r, late) in &d.reminders {
            self.reminders.said(r, room, now_ms, *late, &self.tz)?;
            self.logged
                .lock()
                .expect("lock")
                .retain(|(id, _)| *id != r.id);
        }
        if let Some(id) = d.task {
            self.tasks.done(id)?;
        }
        Ok(())
    }

    /// Sets a reminder from its parts, as said in `set_in`, and returns the confirmation.
    pub fn set(
        &self,
        kind: Kind,
        what: &str,
        when: &str,
        rooms: &[String],
        set_in: &str,
        now_ms: u64,
    ) -> Result<(Reminder, String), SetError> {
        let due = phrase::parse(when, now_ms, &self.tz).map_err(|e| match (e, kind) {
            (PhraseError::TooFar, Kind::Reminder) => SetError::TooFar("reminder"),
            (PhraseError::TooFar, Kind::Timer) => SetError::TooFar("timer"),
            (e, _) => SetError::Phrase(e),
        })?;
        let timer_like = kind == Kind::Timer
            || (due.relative
                && due.repeat.is_none()
                && due.at_ms.saturating_sub(now_ms) < self.config.timer_within_minutes * 60_000);
        let urgency = if timer_like {
            self.config.timer_urgency
        } else {
            self.config.reminder_urgency
        };
        let r = self.reminders.add(NewReminder {
            kind,
            what: what.trim().to_string(),
            when_said: when.to_string(),
            due_ms: due.at_ms,
            repeat: due.repeat,
            rooms: rooms.to_vec(),
            set_in: set_in.to_string(),
            created_ms: now_ms,
            urgency,
        })?;
        let when_words = self.when_words(&r, now_ms);
        let mut text = match kind {
            Kind::Timer => format!("Okay, a {} timer, starting now.", r.what),
            Kind::Reminder => {
                let place = if rooms.is_empty() {
                    String::new()
                } else {
                    format!(
                        " in the {}",
                        spoken::join_and(&rooms.iter().map(String::as_str).collect::<Vec<_>>())
                    )
                };
                format!(
                    "Okay, I'll remind you {when_words}{place}: {}.",
                    r.what.trim_end_matches('.')
                )
            }
        };
        if urgency < self.config.quiet_hours_min_urgency {
            if let Some(end) = self.quiet.and_then(|q| q.until(r.due_ms, &self.tz)) {
                text.push_str(&format!(
                    " That falls in quiet hours, so I'll say it {}.",
                    spoken::describe(end, now_ms, &self.tz)
                ));
            }
        }
        tracing::info!(
            reminder = r.id,
            when,
            due_ms = r.due_ms,
            urgency,
            "reminder set"
        );
        tracing::debug!(reminder = r.id, what = %r.what, "the reminder's text");
        Ok((r, text))
    }

    fn when_words(&self, r: &Reminder, now_ms: u64) -> String {
        match r.repeat {
            Some(rep) => rep.describe(),
            None => spoken::describe(r.due_ms, now_ms, &self.tz),
        }
    }

    /// "You have 2 reminders: ..." in words.
    pub fn list(&self, now_ms: u64) -> Result<String, ReminderError> {
        let pending = self.reminders.pending()?;
        if pending.is_empty() {
            return Ok("You have no reminders.".to_string());
        }
        let items: Vec<String> = pending
            .iter()
            .map(|r| match r.kind {
                Kind::Timer => format!("a {} timer, done {}", r.what, self.when_words(r, now_ms)),
                Kind::Reminder => format!("{}, {}", self.when_words(r, now_ms), r.what),
            })
            .collect();
        let n = items.len();
        Ok(format!(
            "You have {n} reminder{}: {}.",
            if n == 1 { "" } else { "s" },
            items.join("; ")
        ))
    }

    /// Cancels what the user named: all (`about` is `None`), the only one (`Some("")`), or
    /// the one whose words match best. Returns what to say.
    pub fn cancel(
        &self,
        about: Option<&str>,
        timers: bool,
        now_ms: u64,
    ) -> Result<String, ReminderError> {
        let noun = if timers { "timer" } else { "reminder" };
        let mut pending = self.reminders.pending()?;
        if timers {
            pending.retain(|r| r.kind == Kind::Timer);
        }
        if pending.is_empty() {
            return Ok(format!("You have no {noun}s to cancel."));
        }
        let chosen: Vec<&Reminder> = match about {
            None => pending.iter().collect(),
            Some("") if pending.len() == 1 => pending.iter().collect(),
            Some("") => return Ok(format!("Which one? {}", self.list(now_ms)?)),
            Some(words) => {
                let words = reminders::second_person(words);
                let best = pending
                    .iter()
                    .map(|r| (crate::words::overlap(&r.what, &words), r))
                    .filter(|(score, _)| *score > 0.0)
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                match best {
                    Some((_, r)) => vec![r],
                    None => return Ok(format!("I found no {noun} about {words}.")),
                }
            }
        };
        for r in &chosen {
            self.reminders.cancel(r.id, now_ms)?;
            tracing::info!(reminder = r.id, "reminder cancelled");
        }
        Ok(match chosen.as_slice() {
            [one] if one.kind == Kind::Timer => {
                format!("Okay, I've cancelled the {} timer.", one.what)
            }
            [one] => format!("Okay, I've cancelled the reminder: {}.", one.what),
            many => format!("Okay, I've cancelled all {} {noun}s.", many.len()),
        })
    }
}

/// Asks the language model to split a reminder request the parser could not, under a grammar
/// that admits only `{"what": ..., "when": ...}`. The time phrase it writes is parsed by
/// [`phrase::parse`] like any other.
pub async fn split_with_llm(llm: &LlmHandle, body: &str) -> Option<(String, String)> {
    let grammar = json_schema_grammar(&reminders::split_schema()).ok()?;
    let messages = vec![
        ChatMessage::new(
            Role::System,
            "Split a reminder request into what to do and when. Copy the words of the request. \
             'when' is the time phrase only, such as 'tomorrow at 8' or 'in 20 minutes'.",
        ),
        ChatMessage::new(Role::User, format!("Remind me {body}")),
    ];
    let request = GenerateRequest {
        background: false,
        ..GenerateRequest::structured(JobRole::Pixie, messages, grammar, 80)
    };
    let (_, stats) = llm.complete(request).await.ok()?;
    #[derive(serde::Deserialize)]
    struct Split {
        what: String,
        when: String,
    }
    let split: Split = serde_json::from_str(stats.text.trim()).ok()?;
    tracing::info!("reminder split by the language model");
    tracing::debug!(body, what = %split.what, when = %split.when, "the reminder as split");
    Some((
        reminders::second_person(&split.what.to_lowercase()),
        split.when,
    ))
}

#[cfg(test)]
mod tests;
