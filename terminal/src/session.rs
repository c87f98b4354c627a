//! The terminal's conversation state machine. It joins a front end to the hub link, and every
//! state has a timeout, so that the terminal can never get stuck waiting for a reply.

use std::time::Duration;

use hearth_shared::{Cancel, CancelReason, Utterance};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::TerminalConfig;
use crate::frontend::{Frontend, Input, Output};
use crate::link::{HubLink, LinkError, LinkEvent};

/// Where the conversation stands.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Nothing in flight.
    Idle,
    /// An utterance was sent; its reply has not ended.
    Awaiting {
        /// The utterance id.
        id: String,
        /// The next chunk sequence number expected.
        next_seq: u32,
        /// When the state times out.
        deadline: Instant,
    },
}

/// Runs the conversation until `shutdown`, or until the front end closes and nothing is in
/// flight.
pub async fn run<F: Frontend>(
    config: &TerminalConfig,
    link: HubLink,
    mut events: mpsc::Receiver<LinkEvent>,
    mut frontend: F,
    shutdown: CancellationToken,
) {
    let first_chunk = Duration::from_secs(config.hub.first_chunk_timeout_s);
    let next_chunk = Duration::from_secs(config.hub.chunk_timeout_s);
    let mut state = State::Idle;
    let mut input_open = true;
    // Input waits until the link has said whether the hub is reachable, so that a line typed
    // (or piped) at start-up is not refused while the first connection is still being made.
    let mut link_known = false;
    let mut counter: u64 = 0;
    // The last reply that ended: a barge-in while it still plays cancels it.
    let mut last_reply: Option<String> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let set = |state: &mut State, next: State| {
        if *state != next {
            tracing::debug!(from = ?state, to = ?next, "session state");
            *state = next;
        }
    };

    loop {
        if !input_open && state == State::Idle {
            // Done: let the front end finish presenting (speech plays out).
            frontend.finish().await;
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            input = frontend.next_input(), if input_open && link_known => match input {
                Input::Closed => input_open = false,
                Input::Interrupted { heard_chunks } => {
                    // The reply being written, or the last one, which may still be playing.
                    let id = match &state {
                        State::Awaiting { id, .. } => Some(id.clone()),
                        State::Idle => last_reply.take(),
                    };
                    if let Some(id) = id {
                        tracing::info!(id = %id, ?heard_chunks, "reply interrupted; the rest of it is ignored");
                        set(&mut state, State::Idle);
                        let cancel = Cancel {
                            utterance_id: id,
                            terminal: config.terminal.id.clone(),
                            heard_chunks,
                            reason: CancelReason::BargeIn,
                        };
                        if let Err(e) = link.cancel(&cancel).await {
                            tracing::warn!(error = %e, "cannot tell the hub about the interruption");
                        }
                    }
                }
                Input::Said { text, started_at_ms, ended_at_ms, audio } => {
                    counter += 1;
                    let id = format!("{}-{}-{counter}", config.terminal.id, ended_at_ms);
                    let utterance = Utterance {
                        id: id.clone(),
                        terminal: config.terminal.id.clone(),
                        room: config.terminal.room.clone(),
                        text,
                        started_at_ms,
                        ended_at_ms,
                        audio,
                        speaker: None,
                    };
                    if let State::Awaiting { id: old, .. } = &state {
                        tracing::info!(old = %old, "new utterance supersedes the reply in flight");
                    }
                    last_reply = None;
                    match link.send(&utterance).await {
                        Ok(()) => {
                            tracing::info!(id = %id, "utterance sent");
                            crate::timeline::mark("sent");
                            set(&mut state, State::Awaiting { id, next_seq: 0, deadline: Instant::now() + first_chunk });
                        }
                        Err(LinkError::Unreachable) => {
                            frontend.present(Output::Problem(
                                "the hub is unreachable, so I could not send that; I keep trying to reconnect, please say it again in a moment".into(),
                            ));
                            set(&mut state, State::Idle);
                        }
                        Err(LinkError::Stopped) => break,
                    }
                }
            },
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    LinkEvent::HubReachable => {
                        link_known = true;
                        frontend.present(Output::HubReachable);
                    }
                    LinkEvent::HubUnreachable { reason } => {
                        link_known = true;
                        tracing::warn!(%reason, "hub unreachable");
                        frontend.present(Output::HubUnreachable { reason });
                        if let State::Awaiting { .. } = state {
                            frontend.present(Output::Problem("the hub went away before it finished answering".into()));
                            set(&mut state, State::Idle);
                        }
                    }
                    LinkEvent::Reply(chunk) => {
                        let State::Awaiting { id, next_seq, .. } = &state else {
                            tracing::debug!(id = %chunk.utterance_id, "late reply chunk ignored");
                            continue;
                        };
                        if &chunk.utterance_id != id {
                            tracing::debug!(id = %chunk.utterance_id, "reply chunk for an older utterance ignored");
                            continue;
                        }
                        if chunk.seq != *next_seq {
                            tracing::warn!(expected = next_seq, got = chunk.seq, "reply chunk out of order");
                        }
                        let first = *next_seq == 0;
                        if !chunk.text.is_empty() {
                            // A bad voice is logged once per reply.
                            let voice = checked(chunk.voice, first);
                            frontend.present(Output::ReplyChunk { text: chunk.text, first, voice });
                        }
                        if chunk.is_final {
                            frontend.present(Output::ReplyEnd);
                            last_reply = Some(id.clone());
                            set(&mut state, State::Idle);
                        } else {
                            let id = id.clone();
                            set(&mut state, State::Awaiting { id, next_seq: chunk.seq + 1, deadline: Instant::now() + next_chunk });
                        }
                    }
                    LinkEvent::Speech(speech) => frontend.present(Output::Speech {
                        text: speech.text,
                        reason: speech.reason,
                        expects_answer: speech.expects_answer,
                        voice: checked(speech.voice, true),
                    }),
                    LinkEvent::Error(report) => {
                        tracing::warn!(code = ?report.code, message = %report.message, "hub reported an error");
                        let ours = matches!((&state, &report.utterance_id), (State::Awaiting { id, .. }, Some(u)) if id == u);
                        frontend.present(Output::Problem(format!("the hub could not answer: {}", report.message)));
                        if ours {
                            set(&mut state, State::Idle);
                        }
                    }
                }
            },
            _ = tick.tick() => {
                if let State::Awaiting { deadline, id, .. } = &state {
                    if Instant::now() >= *deadline {
                        tracing::warn!(id = %id, "reply timed out");
                        frontend.present(Output::Problem("the hub did not answer in time".into()));
                        set(&mut state, State::Idle);
                    }
                }
            }
        }
    }
}

/// A persona's voice from the hub, when its values are ones the synthesizer takes; else the
/// terminal's own voice speaks, and with `log` the reason is logged.
fn checked(voice: Option<hearth_shared::Voice>, log: bool) -> Option<hearth_shared::Voice> {
    voice.filter(|v| match v.check() {
        Ok(()) => true,
        Err(reason) => {
            if log {
                tracing::warn!(%reason, "the hub sent a voice this terminal cannot use; speaking with its own");
            }
            false
        }
    })
}
