//! The "in code" stage: reminder requests and memory controls, answered without the model
//! (it only splits a reminder phrasing the parser does not know, under a grammar).

use std::sync::Arc;

use hearth_shared::{now_ms, Utterance};

use super::{Outcome, Pipeline, Turn};
use crate::controls::{self, Control};
use crate::household::PendingForget;
use crate::llm::{ChatMessage, GenerateRequest, JobRole, Role};
use crate::memory::rolelog::Signal;
use crate::memory::{MemoriesError, Memory, MemoryId};
use crate::pixie::reminders::{self, Request};
use crate::say;
use crate::subconscious::{spoken, Corrected};

impl Pipeline {
    /// Answers the turn in code if it is a reminder request or a memory control; false when
    /// it is for the model.
    pub(super) async fn in_code(&self, turn: &mut Turn) -> bool {
        let text = turn.utterance.text.clone();
        // A forget question asked in this room is answered first.
        if let Some(reply) = self.pending_answer(&turn.utterance).await {
            self.say(turn, reply).await;
            turn.outcome = Outcome::InCode("memory control");
            return true;
        }
        let known = self.home.with(|h| h.rooms.known());
        if let Some(request) = reminders::parse_request(&text, &known) {
            let reply = self.reminder(&turn.utterance, request).await;
            self.say(turn, reply).await;
            turn.outcome = Outcome::InCode("reminder");
            return true;
        }
        let (control, by_model) = match controls::parse(&text) {
            Some(control) => (control, false),
            None if controls::mentions_forgetting(&text) => match self.forget_by_model(&text).await
            {
                Some(control) => (control, true),
                None => return false,
            },
            None => return false,
        };
        if control == Control::Stop {
            // Admitting this utterance already cancelled the reply in flight; end quietly.
            tracing::info!(id = %turn.utterance.id, "stop: nothing more is said");
            self.chunk(turn, String::new(), true).await;
            turn.outcome = Outcome::InCode("stop");
            return true;
        }
        // A correction that only names values ("not Paris but Rome", "I meant 4813") is
        // no fact of its own when it corrects nothing.
        let partial = matches!(&control, Control::Correct(c)
            if c.wrong.is_some() || crate::words::words(&c.said).len() <= 3);
        match self.control(&turn.utterance, control, by_model).await {
            Some(reply) => {
                self.say(turn, reply).await;
                turn.outcome = Outcome::InCode("memory control");
                true
            }
            None => {
                turn.no_memory = partial;
                false
            }
        }
    }

    /// Answers a memory control; `None` when the utterance turned out not to be one (a
    /// "correction" of nothing stored), to be answered as usual. With `ask_first` (the model
    /// read the request) nothing is forgotten before a yes.
    async fn control(&self, u: &Utterance, control: Control, ask_first: bool) -> Option<String> {
        let s = &self.subconscious;
        let only_if_stored = matches!(control, Control::DeleteIfStored(_));
        // Said alone, a request for one memory is done at once; said with more, asked.
        let alone = !ask_first && controls::alone(&u.text);
        let reply = match control {
            Control::Stop => String::new(),
            Control::Correct(c) => {
                let window = self.config.memory.correction_window_s * 1000;
                let now = now_ms();
                let last = self.home.with(|h| h.last_stored.get(&u.room).copied());
                let last = last
                    .filter(|(_, at)| now.saturating_sub(*at) <= window)
                    .map(|(id, _)| id);
                match s.correct(u, &c, last, now).await {
                    Ok(Corrected::Done { old, new }) => {
                        // The old value leaves the room's history and summaries too.
                        self.home.with(|h| {
                            h.last_stored.insert(u.room.clone(), (new.id, now));
                            h.conversations.forget(&[spoken(&old.text).to_string()]);
                        });
                        self.signal_last_answer(&u.room, Signal::Corrected).await;
                        tracing::info!(old = old.id, new = new.id, "memory corrected");
                        say::corrected(spoken(&new.text).trim())
                    }
                    Ok(Corrected::Ambiguous(a, b)) => {
                        say::which_one(spoken(&a.text).trim(), spoken(&b.text).trim())
                    }
                    Ok(Corrected::Nothing) => return None,
                    Err(e) => {
                        tracing::error!(error = %e, "correction failed");
                        say::CORRECTION_FAILED.to_string()
                    }
                }
            }
            Control::ForgetLast => {
                let last = self.home.with(|h| h.last_stored.get(&u.room).copied());
                let found = match last {
                    Some((id, _)) => s.get(id).await,
                    None => Ok(None),
                };
                match found {
                    Ok(Some(m)) => {
                        self.signal_last_answer(&u.room, Signal::Forgotten).await;
                        self.forget_or_ask(u, vec![m], Forgot::Last, alone).await
                    }
                    Ok(None) => say::NOTHING_TO_FORGET.to_string(),
                    Err(e) => {
                        tracing::error!(error = %e, "memory search failed");
                        say::MEMORY_FAILED.to_string()
                    }
                }
            }
            Control::ForgetAll => match s.all_ids().await {
                Ok((ids, n)) => {
                    let reminders = self.pixie.reminders().pending().map_or(0, |r| r.len());
                    if ids.is_empty() && reminders == 0 {
                        return Some(say::NOTHING_TO_FORGET.to_string());
                    }
                    self.ask_to_forget(u, ids, String::new(), true);
                    say::forget_everything_question(n, reminders)
                }
                Err(e) => {
                    tracing::error!(error = %e, "memory search failed");
                    say::MEMORY_FAILED.to_string()
                }
            },
            Control::ForgetAbout(topic) | Control::DeleteIfStored(topic) => {
                match s.about(&topic, true, now_ms()).await {
                    Ok(found) if found.is_empty() && only_if_stored => return None,
                    Ok(found) if found.is_empty() => {
                        // Nothing stored (it may have faded), but a room's summary may
                        // still say it.
                        self.home
                            .with(|h| h.conversations.forget(std::slice::from_ref(&topic)));
                        say::nothing_about(&topic)
                    }
                    // "Delete X" may be meant for an app: asked about first, always.
                    Ok(found) => {
                        let at_once = alone && !only_if_stored;
                        self.forget_or_ask(u, found, Forgot::About(&topic), at_once)
                            .await
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "memory search failed");
                        say::MEMORY_FAILED.to_string()
                    }
                }
            }
            // "What do you know about me?" names no topic: the model answers from what it
            // recalls.
            Control::Recall(topic) if crate::memory::facts::topic_words(&topic).is_empty() => {
                return None;
            }
            Control::Recall(topic) => match s.about(&topic, false, now_ms()).await {
                Ok(found) if found.is_empty() => say::nothing_about(&topic),
                Ok(found) => say::remembered(&topic, &spoken_items(&found, 5)),
                Err(e) => {
                    tracing::error!(error = %e, "memory search failed");
                    say::MEMORY_FAILED.to_string()
                }
            },
        };
        Some(reply)
    }

    /// Asks the language model, under a grammar, whether `text` is a forget request the
    /// parser did not know; `None` when it is not (or the model's answer is unusable).
    async fn forget_by_model(&self, text: &str) -> Option<Control> {
        let grammar = crate::llm::json_schema_grammar(&controls::forget_schema()).ok()?;
        let messages = vec![
            ChatMessage::new(
                Role::System,
                "Does the user ask the assistant to forget or delete something it remembers? \
                 request: none (not a request to forget), last (what they just said), topic \
                 (the memories about a topic), everything. topic: the words of the request \
                 that name what to forget, or \"\".",
            ),
            ChatMessage::new(Role::User, text.to_string()),
        ];
        let request = GenerateRequest {
            background: false,
            ..GenerateRequest::structured(JobRole::MemoryWriter, messages, grammar, 48)
        };
        let (_, stats) = self.llm.complete(request).await.ok()?;
        let control = controls::parse_forget_answer(&stats.text, text);
        tracing::info!(
            understood = control.is_some(),
            "forget request read by the language model"
        );
        tracing::debug!(text, answer = %stats.text, control = ?control, "the forget request as read");
        control
    }

    /// Forgets `found` at once when `at_once` and it is one thing (logged questions about it
    /// go along uncounted, see [`crate::subconscious::things`]); otherwise says how many and
    /// which would go, and asks.
    async fn forget_or_ask(
        &self,
        u: &Utterance,
        found: Vec<Memory>,
        what: Forgot<'_>,
        at_once: bool,
    ) -> String {
        let ids: Vec<MemoryId> = found.iter().map(|m| m.id).collect();
        let shown: Vec<Memory> = crate::subconscious::things(&found)
            .into_iter()
            .cloned()
            .collect();
        if at_once && shown.len() == 1 {
            return self.forget_now(&ids, what).await;
        }
        let topic = match what {
            Forgot::About(topic) => topic.to_string(),
            Forgot::Last | Forgot::Everything => String::new(),
        };
        let items = spoken_items(&shown, 3);
        self.ask_to_forget(u, ids, topic.clone(), false);
        say::forget_how_many(shown.len(), (!topic.is_empty()).then_some(&topic), &items)
    }

    /// Remembers that the room was asked whether to forget `ids`.
    fn ask_to_forget(&self, u: &Utterance, ids: Vec<MemoryId>, topic: String, everything: bool) {
        let pending = PendingForget {
            everything,
            ids,
            topic,
            asked_ms: now_ms(),
        };
        self.home
            .with(|h| h.pending_forget.insert(u.room.clone(), pending));
    }

    /// Forgets `ids` everywhere: the store, both indexes, the graph, the profile's evidence
    /// and the rooms' conversation history. Returns what to say.
    async fn forget_now(&self, ids: &[MemoryId], what: Forgot<'_>) -> String {
        let (forgotten, said) = match self.subconscious.forget_all(ids.to_vec(), now_ms()).await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "forget failed");
                return say::FORGET_FAILED.to_string();
            }
        };
        let everything = matches!(what, Forgot::Everything);
        let dropped = self.forgotten_at_home(ids, &said, everything);
        let reminders = if everything {
            match self.forget_the_rest().await {
                Ok(reminders) => reminders,
                Err(e) => {
                    tracing::error!(error = %e, "forgetting everything failed after the memories");
                    return say::FORGET_FAILED.to_string();
                }
            }
        } else {
            0
        };
        tracing::info!(
            forgotten,
            dropped,
            everything,
            "memories forgotten on request"
        );
        tracing::debug!(what = ?what, "what was forgotten");
        match what {
            Forgot::Everything => say::forgot_everything(forgotten, reminders),
            Forgot::Last => say::FORGOTTEN.to_string(),
            Forgot::About(topic) => say::forgot_about(forgotten, topic),
        }
    }

    /// Forgets `ids` everywhere, as [`forget_now`](Self::forget_now) does for a request in
    /// words (the dashboard's forget). Returns how many existed.
    pub async fn forget_memories(&self, ids: &[MemoryId]) -> Result<usize, MemoriesError> {
        let (forgotten, said) = self.subconscious.forget_all(ids.to_vec(), now_ms()).await?;
        let dropped = self.forgotten_at_home(ids, &said, false);
        tracing::info!(forgotten, dropped, "memories forgotten from the dashboard");
        Ok(forgotten)
    }

    /// The household forgets what was forgotten: the rooms' last stored memories and the
    /// history lines that said it (all of it, for "forget everything"). Returns how many
    /// history lines went.
    fn forgotten_at_home(&self, ids: &[MemoryId], said: &[String], everything: bool) -> usize {
        self.home.with(|h| {
            h.last_stored.retain(|_, (id, _)| !ids.contains(id));
            if everything {
                h.last_stored.clear();
                h.last_answer.clear();
                h.conversations.clear()
            } else {
                h.conversations.forget(said)
            }
        })
    }

    /// After the memories, the rest of "forget everything": the memory graph (nodes learnt
    /// from no memory included), every pending reminder and Pixie's queued work (follow-up
    /// questions carry what was said). Returns how many reminders went.
    async fn forget_the_rest(&self) -> anyhow::Result<usize> {
        let memories = Arc::clone(self.subconscious.memories());
        let pixie = Arc::clone(&self.pixie);
        let now = now_ms();
        tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
            let nodes = memories.graph().clear()?;
            let logged = memories.role_log().clear().unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot clear the role log");
                0
            });
            let pending = pixie.reminders().pending()?;
            for r in &pending {
                pixie.reminders().cancel(r.id, now)?;
            }
            let tasks = pixie.tasks().pending()?;
            for t in &tasks {
                pixie.tasks().done(t.id)?;
            }
            tracing::info!(
                nodes,
                logged,
                reminders = pending.len(),
                tasks = tasks.len(),
                "forgot everything else"
            );
            Ok(pending.len())
        })
        .await?
    }

    /// The answer to a forget question asked in `u`'s room, if `u` is one: yes forgets,
    /// no keeps. Anything else (or a question older than `memory.confirm_within_s`) drops
    /// the question, and the turn goes on as usual.
    async fn pending_answer(&self, u: &Utterance) -> Option<String> {
        let pending = self.home.with(|h| h.pending_forget.remove(&u.room))?;
        let fresh =
            now_ms().saturating_sub(pending.asked_ms) <= self.config.memory.confirm_within_s * 1000;
        match controls::answer(&u.text) {
            Some(true) if fresh => {
                let what = match pending.topic.as_str() {
                    _ if pending.everything => Forgot::Everything,
                    "" => Forgot::Last,
                    topic => Forgot::About(topic),
                };
                Some(self.forget_now(&pending.ids, what).await)
            }
            Some(false) if fresh => Some(say::KEPT.to_string()),
            _ => None,
        }
    }

    /// Answers a reminder request in code; returns what to say.
    async fn reminder(&self, u: &Utterance, request: Request) -> String {
        let pixie = &self.pixie;
        let now = now_ms();
        let set = |kind, what: &str, when: &str, rooms: &[String]| match pixie
            .set(kind, what, when, rooms, &u.room, now)
        {
            Ok((_, confirmation)) => {
                self.wake.notify_one();
                confirmation
            }
            Err(e) => {
                tracing::warn!(error = ?e, when, "reminder not set");
                e.to_string()
            }
        };
        let storage = |e: reminders::ReminderError| {
            tracing::error!(error = %e, "reminder store failed");
            say::REMINDERS_FAILED.to_string()
        };
        match request {
            Request::Set {
                kind,
                what,
                when,
                rooms,
            } => set(kind, &what, &when, &rooms),
            Request::Unsplit { body, rooms } => {
                match crate::pixie::split_with_llm(&self.llm, &body).await {
                    Some((what, when)) => set(reminders::Kind::Reminder, &what, &when, &rooms),
                    None => say::NO_WHEN.to_string(),
                }
            }
            Request::List => pixie.list(now).unwrap_or_else(storage),
            Request::Cancel { about, timers } => pixie
                .cancel(about.as_deref(), timers, now)
                .unwrap_or_else(storage),
        }
    }
}

/// What a forget removed, for what is said back.
#[derive(Debug, Clone, Copy)]
enum Forgot<'a> {
    /// The last thing said.
    Last,
    /// The memories about a topic.
    About(&'a str),
    /// Everything.
    Everything,
}

/// The first `n` memories' texts as said (without a speaker's name), for a reply.
fn spoken_items(found: &[Memory], n: usize) -> Vec<String> {
    found
        .iter()
        .take(n)
        .map(|m| spoken(&m.text).trim().to_string())
        .collect()
}
