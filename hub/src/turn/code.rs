//! The "in code" stage: reminder requests and memory controls, answered without the model
//! (it only splits a reminder phrasing the parser does not know, under a grammar).

use hearth_shared::{now_ms, Utterance};

use super::{Outcome, Pipeline, Turn};
use crate::controls::{self, Control};
use crate::pixie::reminders::{self, Request};
use crate::say;

impl Pipeline {
    /// Answers the turn in code if it is a reminder request or a memory control; false when
    /// it is for the model.
    pub(super) async fn in_code(&self, turn: &mut Turn) -> bool {
        let text = turn.utterance.text.clone();
        let known = self.home.with(|h| h.rooms.known());
        if let Some(request) = reminders::parse_request(&text, &known) {
            let reply = self.reminder(&turn.utterance, request).await;
            self.say(turn, reply).await;
            turn.outcome = Outcome::InCode("reminder");
            return true;
        }
        let Some(control) = controls::parse(&text) else {
            return false;
        };
        if control == Control::Stop {
            // Admitting this utterance already cancelled the reply in flight; end quietly.
            tracing::info!(id = %turn.utterance.id, "stop: nothing more is said");
            self.chunk(turn, String::new(), true).await;
            turn.outcome = Outcome::InCode("stop");
            return true;
        }
        match self.control(&turn.utterance, control).await {
            Some(reply) => {
                self.say(turn, reply).await;
                turn.outcome = Outcome::InCode("memory control");
                true
            }
            None => false,
        }
    }

    /// Answers a memory control; `None` when the utterance turned out not to be one (a
    /// "correction" of nothing stored), to be answered as usual.
    async fn control(&self, u: &Utterance, control: Control) -> Option<String> {
        let s = &self.subconscious;
        let reply = match control {
            Control::Stop => String::new(),
            Control::Correct(fact) => match s.correct(u, &fact, now_ms()).await {
                Ok(Some((old, new))) => {
                    self.home
                        .with(|h| h.last_stored.insert(u.room.clone(), new.id));
                    tracing::info!(old = old.id, new = new.id, "memory corrected");
                    say::corrected(new.text.trim())
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(error = %e, "correction failed");
                    say::CORRECTION_FAILED.to_string()
                }
            },
            Control::ForgetLast => {
                let last = self.home.with(|h| h.last_stored.remove(&u.room));
                match last {
                    Some(id) => match s.forget(id).await {
                        Ok(_) => say::FORGOTTEN.to_string(),
                        Err(e) => {
                            tracing::error!(error = %e, "forget failed");
                            say::FORGET_FAILED.to_string()
                        }
                    },
                    None => say::NOTHING_TO_FORGET.to_string(),
                }
            }
            Control::ForgetAbout(topic) => match s.mentioning(&topic).await {
                Ok(found) if found.is_empty() => say::nothing_about(&topic),
                Ok(found) => {
                    let mut forgotten = 0;
                    for m in &found {
                        if matches!(s.forget(m.id).await, Ok(true)) {
                            forgotten += 1;
                        }
                    }
                    self.home.with(|h| {
                        h.last_stored
                            .retain(|_, id| found.iter().all(|m| m.id != *id))
                    });
                    say::forgot_about(forgotten, &topic)
                }
                Err(e) => {
                    tracing::error!(error = %e, "memory search failed");
                    say::MEMORY_FAILED.to_string()
                }
            },
            Control::Recall(topic) => match s.mentioning(&topic).await {
                Ok(found) if found.is_empty() => say::nothing_about(&topic),
                Ok(found) => {
                    let items: Vec<String> = found
                        .iter()
                        .take(5)
                        .map(|m| m.text.trim().to_string())
                        .collect();
                    say::remembered(&topic, &items)
                }
                Err(e) => {
                    tracing::error!(error = %e, "memory search failed");
                    say::MEMORY_FAILED.to_string()
                }
            },
        };
        Some(reply)
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
