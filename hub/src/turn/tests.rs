//! The turn pipeline in-process: real stores (sled, tantivy, the vector index), the real job
//! queue and emotion scoring, a scripted model and a bag-of-words embedder. No sockets; the
//! outbox is read directly.

use std::sync::Arc;
use std::time::Duration;

use hearth_shared::{Cancel, CancelReason, ErrorCode, Presence, Speech, Utterance};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Outcome, Pipeline, Turn};
use crate::config::HubConfig;
use crate::household::{Cancelled, Why};
use crate::llm::embed::Embedder;
use crate::llm::scripted::{Gate, HashedWords, Scripted, Seen};
use crate::llm::{GenerateRequest, LlmError, LlmHandle, Role};
use crate::memory::Memories;
use crate::outbox::{Message, Outgoing};
use crate::pixie::runner::Runner;
use crate::pixie::tasks::Work;
use crate::pixie::Pixie;
use crate::subconscious::Subconscious;

/// The reply the scripted model gives a chat request.
const STORY: &str = "Once there was a fox. It lived by a river. The end.";

struct Hub {
    pipeline: Arc<Pipeline>,
    runner: Arc<Runner>,
    outgoing: mpsc::Receiver<Outgoing>,
    gate: Gate,
    seen: Seen,
    _dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path) -> HubConfig {
    let mut c = HubConfig::default();
    c.memory.path = dir.join("memory");
    c.memory.sweep_interval_minutes = 0;
    c.pixie.path = dir.join("pixie");
    c.pixie.time_zone = "UTC".into();
    c.pixie.quiet_hours = String::new();
    c.pixie.reflect_after_idle_s = 0;
    c.pixie.cooldown_s = 0;
    c.pixie.conversation_grace_s = 0;
    c.pixie.tick_ms = 20;
    c.conversation.one_moment_ms = 0;
    c
}

/// The scripted answer: structured work gets a fixed reflection, chat gets [`STORY`] unless
/// the user asks to "fail".
fn script(request: &GenerateRequest) -> Result<String, LlmError> {
    let last = request
        .messages
        .last()
        .map(|m| m.content.as_str())
        .unwrap_or("");
    let system = request
        .messages
        .first()
        .map(|m| m.content.as_str())
        .unwrap_or("");
    if request.grammar.is_some() && system.contains("forget or delete") {
        // A forget request the parser does not know: "purge X".
        let topic = last.split("purge ").nth(1).unwrap_or("");
        let request = if topic.is_empty() { "none" } else { "topic" };
        return Ok(format!(r#"{{"request": "{request}", "topic": "{topic}"}}"#));
    }
    if request.grammar.is_some() {
        return Ok(
            r#"{"reflection": "They talked about foxes.", "topic": "", "question": ""}"#
                .to_string(),
        );
    }
    if last.contains("echo your labels") {
        return Ok("[USER SAID THIS TURN] Hearth: Leeds is lovely. \
            User: [PROFILE, CONSOLIDATED FROM MEMORY] what about York?"
            .to_string());
    }
    if last.contains("echo your tone") {
        // The tone line as the model read it, without its label, then an answer.
        let all: String = request
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        let tone = all
            .split("[TONE] ")
            .nth(1)
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        if last.contains("only") {
            return Ok(tone.to_string());
        }
        return Ok(format!("{tone} I am here with you."));
    }
    if last.to_lowercase().contains("name yourself") {
        return Ok("Brick: Walls stand.".to_string());
    }
    if last.contains("say it again") {
        return Ok(format!("Sure! {}", "I am always here for you. ".repeat(20)));
    }
    if last.contains("please fail") {
        return Err(LlmError::Inference("scripted failure".into()));
    }
    Ok(STORY.to_string())
}

fn hub_with(
    tweak: impl FnOnce(&mut HubConfig),
    model: impl FnOnce(Gate) -> (LlmHandle, Seen),
    gate: Gate,
) -> Hub {
    hub_at(tempfile::tempdir().unwrap(), tweak, model, gate)
}

/// A hub over the stores in `dir` (a restart when they are there already).
fn hub_at(
    dir: tempfile::TempDir,
    tweak: impl FnOnce(&mut HubConfig),
    model: impl FnOnce(Gate) -> (LlmHandle, Seen),
    gate: Gate,
) -> Hub {
    let (llm, seen) = model(gate.clone());
    let (embedder, _thread) = Embedder::with_encoder(HashedWords::new(64), 16);
    hub_over(dir, tweak, llm, seen, embedder, gate)
}

/// A hub over the stores in `dir` with the given model and embedder.
fn hub_over(
    dir: tempfile::TempDir,
    tweak: impl FnOnce(&mut HubConfig),
    llm: LlmHandle,
    seen: Seen,
    embedder: Embedder,
    gate: Gate,
) -> Hub {
    let mut config = config(dir.path());
    tweak(&mut config);
    let memories = Arc::new(Memories::open(&config.memory.path, embedder.dim()).unwrap());
    let subconscious = Subconscious::new(memories, embedder, config.memory.clone())
        .with_emotion(config.emotion.clone());
    let pixie = Arc::new(Pixie::open(config.pixie.clone(), hearth_shared::now_ms()).unwrap());
    let (pipeline, runner, outgoing) = crate::assemble(
        config,
        llm,
        subconscious,
        pixie,
        CancellationToken::new(),
        TaskTracker::new(),
    );
    Hub {
        pipeline,
        runner,
        outgoing,
        gate,
        seen,
        _dir: dir,
    }
}

fn hub() -> Hub {
    hub_with(|_| {}, |g| Scripted::start(script, g), Gate::default())
}

fn utterance(terminal: &str, room: &str, id: &str, text: &str) -> Utterance {
    Utterance {
        id: id.into(),
        terminal: terminal.into(),
        room: room.into(),
        text: text.into(),
        started_at_ms: 0,
        ended_at_ms: 0,
        audio: None,
        speaker: None,
    }
}

/// What a terminal received for one reply.
#[derive(Debug, Default)]
struct Received {
    chunks: Vec<String>,
    errors: Vec<ErrorCode>,
    /// Each chunk's voice (the final one's too): the persona's name and its pace.
    voices: Vec<Option<(String, Option<f32>)>>,
}

impl Hub {
    /// Runs one whole turn from the kitchen and returns it.
    async fn ask(&self, id: &str, text: &str) -> Turn {
        let turn = self.pipeline.admit(utterance("k1", "kitchen", id, text));
        Arc::clone(&self.pipeline).run(turn).await
    }

    /// Starts a turn on a task.
    fn start(&self, u: Utterance) -> tokio::task::JoinHandle<Turn> {
        let turn = self.pipeline.admit(u);
        tokio::spawn(Arc::clone(&self.pipeline).run(turn))
    }

    /// Reads the outbox until the final chunk (or an error) for `id`.
    async fn received(&mut self, id: &str) -> Received {
        let mut r = Received::default();
        loop {
            let o = tokio::time::timeout(Duration::from_secs(10), self.outgoing.recv())
                .await
                .expect("the reply ends")
                .expect("the outbox is open");
            match o.message {
                Message::Reply(c) if c.utterance_id == id => {
                    r.voices.push(c.voice.map(|v| (v.persona, v.length_scale)));
                    if !c.text.is_empty() {
                        r.chunks.push(c.text);
                    }
                    if c.is_final {
                        return r;
                    }
                }
                Message::Error(e) if e.utterance_id.as_deref() == Some(id) => {
                    r.errors.push(e.code);
                    return r;
                }
                _ => {}
            }
        }
    }

    fn history(&self) -> Vec<(String, String)> {
        self.pipeline
            .home
            .with(|h| h.conversations.exchanges("kitchen"))
    }

    fn stored(&self) -> Vec<String> {
        let store = self.pipeline.subconscious.memories().store();
        store.iter().map(|m| m.unwrap().text).collect()
    }

    fn cancel(&self, id: &str, heard_chunks: Option<u32>) -> Cancelled {
        self.pipeline.cancel(&Cancel {
            utterance_id: id.into(),
            terminal: "k1".into(),
            heard_chunks,
            reason: CancelReason::BargeIn,
        })
    }

    /// Starts Pixie's loop with the kitchen's terminal online and a reminder due there in a
    /// second, and returns the speech it sends ("water the plants").
    async fn reminder_said(&mut self) -> Speech {
        self.pipeline.home.with(|h| {
            h.rooms.presence(Presence {
                terminal: "k1".into(),
                room: "kitchen".into(),
                online: true,
                at_ms: 0,
                capabilities: vec![],
                will: None,
            })
        });
        let now = hearth_shared::now_ms();
        (self.pipeline.pixie)
            .set(
                crate::pixie::reminders::Kind::Reminder,
                "water the plants",
                "in 1 second",
                &[],
                "kitchen",
                now,
            )
            .unwrap();
        Arc::clone(&self.runner).start();
        loop {
            let o = tokio::time::timeout(Duration::from_secs(10), self.outgoing.recv())
                .await
                .expect("the reminder is said")
                .unwrap();
            if let Message::Speech(s) = o.message {
                assert_eq!(o.terminal, "k1");
                return s;
            }
        }
    }

    /// Waits until the model has been asked `n` requests.
    async fn model_asked(&self, n: usize) {
        for _ in 0..2000 {
            if self.seen.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the model was not asked {n} requests");
    }
}

#[tokio::test]
async fn a_reply_streams_sentence_by_sentence_and_is_remembered() {
    let mut hub = hub();
    let turn = hub.ask("u1", "Tell me a story about a fox").await;
    assert_eq!(turn.outcome, Outcome::Finished);
    let r = hub.received("u1").await;
    assert_eq!(
        r.chunks,
        ["Once there was a fox.", "It lived by a river.", "The end."]
    );
    assert_eq!(
        hub.history(),
        [("Tell me a story about a fox".to_string(), STORY.to_string())]
    );
    // A request to the assistant is not a fact about the household.
    assert!(hub.stored().is_empty());
    assert!(!hub.pipeline.home.with(|h| h.rooms.answering_anywhere()));
}

#[tokio::test]
async fn a_reminder_is_set_in_code_without_the_model() {
    let mut hub = hub();
    let turn = hub
        .ask("u1", "Remind me to water the plants in 20 minutes")
        .await;
    assert_eq!(turn.outcome, Outcome::InCode("reminder"));
    let r = hub.received("u1").await;
    assert!(r.chunks[0].contains("water the plants"), "{r:?}");
    assert!(hub.seen.lock().unwrap().is_empty(), "the model was asked");
    assert_eq!(hub.pipeline.pixie.reminders().pending().unwrap().len(), 1);
    // Neither stored as a memory nor kept as conversation.
    assert!(hub.stored().is_empty());
    assert!(hub.history().is_empty());
}

/// Issue 16: "in 8000000 days" panicked the answer task (jiff's span limit) and the terminal
/// heard nothing until its timeout. Now it hears why, and nothing is set.
#[tokio::test]
async fn a_reminder_too_far_ahead_is_answered_with_an_error() {
    let mut hub = hub();
    for (id, text, what) in [
        ("u1", "Remind me to call Anna in 8000000 days", "reminder"),
        ("u2", "Set a timer for 4294967295 hours", "timer"),
    ] {
        let turn = hub.ask(id, text).await;
        assert_eq!(turn.outcome, Outcome::InCode("reminder"));
        let r = hub.received(id).await;
        assert_eq!(
            r.chunks,
            [format!("That is too far ahead for me to set a {what}.")]
        );
    }
    assert!(hub.pipeline.pixie.reminders().pending().unwrap().is_empty());
    assert!(hub.seen.lock().unwrap().is_empty(), "the model was asked");
}

#[tokio::test]
async fn forget_that_removes_the_last_stored_memory() {
    let mut hub = hub();
    hub.ask("u1", "My locker code is 4711").await;
    hub.received("u1").await;
    assert_eq!(hub.stored(), ["My locker code is 4711"]);
    let turn = hub.ask("u2", "Forget that.").await;
    assert_eq!(turn.outcome, Outcome::InCode("memory control"));
    assert_eq!(hub.received("u2").await.chunks, [crate::say::FORGOTTEN]);
    assert!(hub.stored().is_empty());
    hub.ask("u3", "Forget that.").await;
    assert_eq!(
        hub.received("u3").await.chunks,
        [crate::say::NOTHING_TO_FORGET]
    );
}

/// Issue 16: "forget everything" (asked first) wipes every store the household's words are
/// in: memories, the graph, pending reminders, Pixie's queued work and every room's history.
#[tokio::test]
async fn forget_everything_asks_then_wipes_memories_reminders_and_history() {
    let mut hub = hub();
    hub.ask("u1", "My locker code is 4711").await;
    hub.received("u1").await;
    hub.ask("u2", "Remind me to water the plants in 20 minutes")
        .await;
    hub.received("u2").await;
    hub.ask("u3", "Tell me a story about a fox").await;
    hub.received("u3").await;
    assert!(!hub.history().is_empty());
    let log = hub.pipeline.subconscious.memories().role_log().clone();
    assert!(!log.is_empty());
    hub.ask("u4", "Forget everything.").await;
    let question = hub.received("u4").await.chunks.join(" ");
    assert!(
        question.contains("1 thing I remember, 1 reminder") && question.contains("yes or no"),
        "{question}"
    );
    assert_eq!(
        hub.stored(),
        ["My locker code is 4711"],
        "nothing before the yes"
    );
    hub.ask("u5", "Yes.").await;
    assert_eq!(
        hub.received("u5").await.chunks,
        ["Okay, I have forgotten everything: 1 memory and 1 reminder."]
    );
    assert!(hub.stored().is_empty());
    assert!(hub.pipeline.pixie.reminders().pending().unwrap().is_empty());
    assert!(hub.pipeline.pixie.tasks().pending().unwrap().is_empty());
    assert!(hub.history().is_empty());
    assert!(hub.pipeline.subconscious.memories().graph().is_empty());
    assert!(log.is_empty(), "the role log says what was said");
}

/// Issue 18: every answer goes into the role log with its prompt, what was said and how it
/// ended; a correction in the room is added to the answer before it, and "forget that"
/// takes the answer that said it out of the log.
#[tokio::test]
async fn every_answer_is_logged_with_what_followed_it() {
    use crate::llm::JobRole;
    use crate::memory::rolelog::Signal;
    let mut hub = hub();
    let log = hub.pipeline.subconscious.memories().role_log().clone();
    let turn = hub.ask("u1", "Tell me a story about a fox").await;
    hub.received("u1").await;
    let entries = log.entries(Some(JobRole::Consciousness)).unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!((e.room.as_str(), e.output.as_str()), ("kitchen", STORY));
    let contents: Vec<&str> = e.messages.iter().map(|m| m.content.as_str()).collect();
    let prompt: Vec<&str> = turn.prompt.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, prompt);
    assert_eq!(e.outcome, [Signal::Finished]);
    assert_eq!(turn.logged, Some(e.id));

    let told = hub.ask("u2", "My locker code is 4711").await;
    hub.received("u2").await;
    hub.ask("u3", "Actually, my locker code is 4712.").await;
    hub.received("u3").await;
    let outcome = log.get(told.logged.unwrap()).unwrap().unwrap().outcome;
    assert_eq!(outcome, [Signal::Finished, Signal::Corrected]);
    assert_eq!(
        log.get(e.id).unwrap().unwrap().outcome,
        [Signal::Finished],
        "only the room's last answer"
    );

    let told = hub.ask("u4", "My bike lock code is 3321").await;
    hub.received("u4").await;
    hub.ask("u5", "Forget that.").await;
    hub.received("u5").await;
    assert!(hub.stored().iter().all(|m| !m.contains("3321")));
    assert!(
        log.get(told.logged.unwrap()).unwrap().is_none(),
        "the answer that said it left the log"
    );
    assert!(log.get(e.id).unwrap().is_some());
    assert_eq!(log.entries(Some(JobRole::Preprocessor)).unwrap().len(), 0);
}

#[tokio::test]
async fn what_do_you_remember_lists_stored_facts() {
    let mut hub = hub();
    hub.ask("u1", "My sister Anna lives in Porto.").await;
    hub.received("u1").await;
    hub.ask("u2", "What do you remember about Anna?").await;
    let r = hub.received("u2").await;
    assert!(r.chunks[0].contains("Anna lives in Porto"), "{r:?}");
    // The control itself is not a memory.
    assert_eq!(hub.stored().len(), 1);
}

#[tokio::test]
async fn recalled_memories_go_into_the_user_turn_not_the_system_prompt() {
    let mut hub = hub();
    hub.ask("u1", "My sister Anna lives in Porto.").await;
    hub.received("u1").await;
    let turn = hub.ask("u2", "Where does Anna live?").await;
    assert!(turn
        .recall
        .context
        .contains("My sister Anna lives in Porto."));
    let system = &turn.prompt[0];
    assert_eq!(system.role, Role::System);
    assert!(!system.content.contains("Porto"));
    let user = turn.prompt.last().unwrap();
    assert!(user.content.contains("Anna lives in Porto"), "{user:?}");
    assert!(user
        .content
        .ends_with("[USER SAID THIS TURN] Where does Anna live?"));
    // History: the first exchange comes before the new turn.
    assert_eq!(turn.prompt[1].content, "My sister Anna lives in Porto.");
    assert_eq!(turn.prompt[2].content, STORY);
}

#[tokio::test]
async fn a_stressed_turn_gets_a_tone_line_and_holds_pixie_back() {
    let hub = hub();
    let text = "I'm so stressed, everything is going wrong and I can't cope!!";
    let turn = hub.ask("u1", text).await;
    let feeling = turn.feeling.unwrap();
    assert!(
        feeling.tone.starts_with("[TONE] The user sounds stressed"),
        "{feeling:?}"
    );
    assert!(turn.prompt.last().unwrap().content.starts_with("[TONE]"));
    let stressed = hub
        .pipeline
        .home
        .with(|h| h.rooms.user_stressed(hearth_shared::now_ms(), 60_000));
    assert!(stressed);
}

#[tokio::test]
async fn emotion_off_shapes_nothing() {
    let hub = hub_with(
        |c| c.emotion.enabled = false,
        |g| Scripted::start(script, g),
        Gate::default(),
    );
    let text = "I'm so stressed, everything is going wrong and I can't cope!!";
    let turn = hub.ask("u1", text).await;
    assert_eq!(turn.feeling.unwrap().tone, "");
    assert!(!turn.prompt.last().unwrap().content.contains("[TONE]"));
    let stressed = hub
        .pipeline
        .home
        .with(|h| h.rooms.user_stressed(hearth_shared::now_ms(), 60_000));
    assert!(!stressed, "emotion off must not hold Pixie back");
    // Salience gets the neutral emotional share: the same as a calm turn.
    let calm = hub.ask("u2", "I will paint the fence on Saturday.").await;
    let store = hub.pipeline.subconscious.memories().store();
    let salience = |id| store.get(id).unwrap().unwrap().salience;
    let (a, b) = (turn.stored.unwrap(), calm.stored.unwrap());
    let lifecycle = &hub.pipeline.config.memory.lifecycle;
    let neutral = hub.pipeline.config.emotion.neutral_salience;
    assert_eq!(salience(a), lifecycle.salience(text, neutral));
    assert_eq!(
        salience(b),
        lifecycle.salience("I will paint the fence on Saturday.", neutral)
    );
}

#[tokio::test]
async fn a_full_queue_answers_busy() {
    // Room for one waiting request; the model holds the first one mid-reply.
    let mut hub = hub_with(
        |_| {},
        |g| Scripted::start_with(script, g, 1),
        Gate::closed(),
    );
    let first = hub.start(utterance("k1", "kitchen", "u1", "Tell me a story"));
    hub.model_asked(1).await;
    let second = hub.start(utterance("s1", "study", "u2", "Tell me a story"));
    let third = hub.start(utterance("b1", "bedroom", "u3", "Tell me a story"));
    // One of the two waiting requests finds the queue full and hears so.
    let busy = loop {
        let o = hub.outgoing.recv().await.unwrap();
        if let Message::Error(e) = o.message {
            assert_eq!(e.code, ErrorCode::Busy);
            break e.utterance_id.unwrap();
        }
    };
    hub.gate.open();
    for turn in [first, second, third] {
        let turn = turn.await.unwrap();
        let (id, outcome) = (turn.utterance.id, turn.outcome);
        let want = if id == busy {
            Outcome::Failed
        } else {
            Outcome::Finished
        };
        assert_eq!(outcome, want, "{id}");
    }
}

#[tokio::test]
async fn a_cancel_mid_reply_stops_the_model_and_keeps_only_what_was_heard() {
    let mut hub = hub_with(|_| {}, |g| Scripted::start(script, g), Gate::closed());
    let turn = hub.start(utterance("k1", "kitchen", "u1", "Tell me a story"));
    hub.gate.release(1);
    let first = hub.outgoing.recv().await.unwrap();
    assert!(matches!(&first.message, Message::Reply(c) if c.text == "Once there was a fox."));
    assert_eq!(hub.cancel("u1", Some(1)), Cancelled::InFlight);
    let turn = turn.await.unwrap();
    assert_eq!(turn.outcome, Outcome::Interrupted(Why::BargeIn));
    assert_eq!(turn.heard, "Once there was a fox.");
    // The model stopped after the first sentence.
    assert_eq!(turn.reply, "Once there was a fox.");
    assert_eq!(
        hub.history(),
        [(
            "Tell me a story".to_string(),
            "Once there was a fox.".to_string()
        )]
    );
    // The model is free for the next question at once.
    hub.gate.open();
    assert_eq!(hub.ask("u2", "And then?").await.outcome, Outcome::Finished);
}

#[tokio::test]
async fn an_unheard_reply_is_stored_nowhere() {
    let mut hub = hub_with(|_| {}, |g| Scripted::start(script, g), Gate::closed());
    let turn = hub.start(utterance("k1", "kitchen", "u1", "Tell me a story"));
    hub.gate.release(2);
    hub.model_asked(1).await;
    // Both sentences were sent, but the person heard only the first.
    for _ in 0..2 {
        hub.outgoing.recv().await.unwrap();
    }
    hub.cancel("u1", Some(1));
    let turn = turn.await.unwrap();
    assert_eq!(turn.heard, "Once there was a fox.");
    hub.gate.open();
    let next = hub.ask("u2", "What did the fox do?").await;
    // Not in history, not in the next prompt, not in memory.
    let unheard = "It lived by a river.";
    assert_eq!(hub.history()[0].1, "Once there was a fox.");
    assert!(next.prompt.iter().all(|m| !m.content.contains(unheard)));
    assert!(hub.stored().iter().all(|t| !t.contains(unheard)));
}

#[tokio::test]
async fn a_newer_utterance_cancels_the_older_one() {
    let mut hub = hub_with(|_| {}, |g| Scripted::start(script, g), Gate::closed());
    let older = hub.start(utterance("k1", "kitchen", "u1", "Tell me a story"));
    hub.model_asked(1).await;
    let newer = hub.start(utterance("k1", "kitchen", "u2", "What time is it?"));
    let older = older.await.unwrap();
    assert_eq!(older.outcome, Outcome::Interrupted(Why::NewerUtterance));
    hub.gate.open();
    let newer = newer.await.unwrap();
    assert_eq!(newer.outcome, Outcome::Finished);
    assert_eq!(hub.received("u2").await.chunks.len(), 3);
    // Only the newer exchange is in the history.
    let history = hub.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].0, "What time is it?");
}

#[tokio::test]
async fn another_terminal_does_not_cancel() {
    let hub = hub_with(|_| {}, |g| Scripted::start(script, g), Gate::closed());
    let kitchen = hub.start(utterance("k1", "kitchen", "u1", "Tell me a story"));
    hub.model_asked(1).await;
    let study = hub.start(utterance("s1", "study", "u2", "Tell me a story"));
    hub.gate.open();
    assert_eq!(kitchen.await.unwrap().outcome, Outcome::Finished);
    assert_eq!(study.await.unwrap().outcome, Outcome::Finished);
}

#[tokio::test]
async fn a_late_cancel_trims_the_history_of_a_finished_reply() {
    let mut hub = hub();
    let turn = hub.ask("u1", "Tell me a story").await;
    hub.received("u1").await;
    assert_eq!(
        hub.cancel("u1", Some(2)),
        Cancelled::Trimmed("Once there was a fox. It lived by a river.".into())
    );
    assert_eq!(
        hub.history()[0].1,
        "Once there was a fox. It lived by a river."
    );
    assert_eq!(hub.cancel("nope", Some(1)), Cancelled::Unknown);
    // The role log learns that the answer was not heard whole.
    let log = hub.pipeline.subconscious.memories().role_log().clone();
    let id = turn.logged.unwrap();
    for _ in 0..500 {
        if log.get(id).unwrap().unwrap().outcome.len() > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    use crate::memory::rolelog::Signal;
    let entry = log.get(id).unwrap().unwrap();
    assert_eq!(entry.outcome, [Signal::Finished, Signal::Interrupted]);
    assert!(!entry.good());
}

#[tokio::test]
async fn never_mind_stops_the_reply_and_is_not_stored() {
    let mut hub = hub_with(|_| {}, |g| Scripted::start(script, g), Gate::closed());
    let story = hub.start(utterance("k1", "kitchen", "u1", "Tell me a story"));
    hub.model_asked(1).await;
    let stop = hub.ask("u2", "Never mind.").await;
    assert_eq!(stop.outcome, Outcome::InCode("stop"));
    assert_eq!(
        story.await.unwrap().outcome,
        Outcome::Interrupted(Why::NewerUtterance)
    );
    assert!(hub.received("u2").await.chunks.is_empty());
    assert!(hub.stored().is_empty());
    assert!(hub.history().is_empty());
}

#[tokio::test]
async fn a_failed_generation_reports_an_error_and_ends_the_reply() {
    let mut hub = hub();
    let turn = hub.ask("u1", "please fail now").await;
    assert_eq!(turn.outcome, Outcome::Failed);
    let r = hub.received("u1").await;
    assert_eq!(r.errors, [ErrorCode::Inference]);
    assert!(hub.history().is_empty());
    // The hub keeps serving.
    assert_eq!(hub.ask("u2", "Hello").await.outcome, Outcome::Finished);
}

#[tokio::test]
async fn a_dead_model_thread_is_an_error_not_a_hang() {
    let mut hub = hub_with(
        |_| {},
        |g| {
            Scripted::start(
                |r: &GenerateRequest| {
                    if r.messages.last().unwrap().content.contains("crash") {
                        panic!("scripted crash of the inference thread");
                    }
                    Ok("Fine.".into())
                },
                g,
            )
        },
        Gate::default(),
    );
    let turn = hub.ask("u1", "crash please").await;
    assert_eq!(turn.outcome, Outcome::Failed);
    assert_eq!(hub.received("u1").await.errors, [ErrorCode::Inference]);
    let turn = hub.ask("u2", "Hello?").await;
    assert_eq!(turn.outcome, Outcome::Failed);
    assert_eq!(hub.received("u2").await.errors, [ErrorCode::Inference]);
}

#[tokio::test]
async fn a_room_waiting_for_another_hears_one_moment_first() {
    let mut hub = hub_with(
        |c| c.conversation.one_moment_ms = 20,
        |g| Scripted::start(script, g),
        Gate::closed(),
    );
    let kitchen = hub.start(utterance("k1", "kitchen", "u1", "Tell me a story"));
    hub.model_asked(1).await;
    let study = hub.start(utterance("s1", "study", "u2", "Tell me a story"));
    // The study's first chunk is the announcement, before the model writes anything for it.
    let first = hub.outgoing.recv().await.unwrap();
    assert_eq!(first.terminal, "s1");
    assert!(matches!(&first.message, Message::Reply(c) if c.text == "One moment." && c.seq == 0));
    hub.gate.open();
    kitchen.await.unwrap();
    let study = study.await.unwrap();
    assert!(study.announced);
    assert_eq!(study.outcome, Outcome::Finished);
    let history = hub
        .pipeline
        .home
        .with(|h| h.conversations.exchanges("study"));
    assert_eq!(
        history[0].1, STORY,
        "the announcement is not part of the reply"
    );
}

#[tokio::test]
async fn each_room_has_its_own_history() {
    let hub = hub();
    hub.ask("u1", "Hello from the kitchen").await;
    let turn = hub
        .pipeline
        .admit(utterance("s1", "study", "u2", "Hello from the study"));
    let turn = Arc::clone(&hub.pipeline).run(turn).await;
    // The system prompt and this turn: no kitchen exchange. (Memories are the household's,
    // so the kitchen's words may still be recalled into the turn itself.)
    assert_eq!(turn.prompt.len(), 2, "{:?}", turn.prompt);
    assert_eq!(turn.prompt[0].role, Role::System);
    let kitchen = hub
        .pipeline
        .home
        .with(|h| h.conversations.exchanges("kitchen"));
    assert_eq!(kitchen.len(), 1);
}

#[tokio::test]
async fn pixie_says_a_due_reminder_in_the_room_it_was_set_for() {
    let mut hub = hub();
    let said = hub.reminder_said().await;
    assert!(said.text.contains("water the plants"), "{said:?}");
    assert!(hub.pipeline.shutdown(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn shutdown_with_a_reflection_in_flight_takes_under_two_seconds() {
    let hub = hub();
    hub.ask("u1", "Tell me a story").await;
    // From now on the model holds every sentence: the reflection hangs mid-generation.
    hub.gate.close();
    let reflect = Work::Reflect {
        room: "kitchen".into(),
    };
    hub.pipeline.pixie.tasks().schedule(reflect, 0, 0).unwrap();
    Arc::clone(&hub.runner).start();
    hub.model_asked(2).await;
    assert!(hub.seen.lock().unwrap()[1].grammar.is_some());
    // A requirement, not a speed figure: systemd gives a unit a stop timeout.
    assert!(
        hub.pipeline.shutdown(Duration::from_secs(2)).await,
        "shutdown waited for the reflection"
    );
    // The reflection did not run to its end: it is still queued for the next start.
    let pending = hub.pipeline.pixie.tasks().pending().unwrap();
    assert!(pending
        .iter()
        .any(|t| matches!(t.work, Work::Reflect { .. })));
}

#[tokio::test]
async fn with_the_transport_gone_a_turn_still_ends_and_is_remembered() {
    // The broker link is down and the publisher has stopped: nothing can reach the terminal,
    // and the turn must neither hang nor lose what was said.
    let Hub {
        pipeline,
        outgoing,
        _dir,
        ..
    } = hub();
    drop(outgoing);
    let turn = pipeline.admit(utterance("k1", "kitchen", "u1", "My bike is in the shed."));
    let turn = tokio::time::timeout(Duration::from_secs(10), Arc::clone(&pipeline).run(turn))
        .await
        .expect("the turn ends");
    assert_eq!(turn.outcome, Outcome::Finished);
    assert!(turn.stored.is_some());
    assert!(!pipeline.home.with(|h| h.rooms.answering_anywhere()));
}

#[tokio::test]
async fn no_prompt_label_or_role_marker_reaches_the_terminal() {
    let mut hub = hub();
    let turn = hub
        .ask("u1", "Tell me about Leeds and echo your labels")
        .await;
    assert_eq!(turn.outcome, Outcome::Finished);
    let r = hub.received("u1").await;
    assert_eq!(r.chunks, ["Leeds is lovely."]);
    // The history, which the next prompt is built from, keeps what was said.
    assert_eq!(hub.history()[0].1, "Leeds is lovely.");
}

#[tokio::test]
async fn the_tone_line_echoed_without_its_label_never_reaches_the_terminal() {
    let mut hub = hub();
    let turn = hub
        .ask("u1", "I miss her terribly and I am so sad, echo your tone")
        .await;
    assert_eq!(turn.outcome, Outcome::Finished);
    assert!(
        turn.prompt.iter().any(|m| m.content.contains("[TONE]")),
        "the turn had no tone line: {:?}",
        turn.prompt
    );
    let r = hub.received("u1").await;
    assert_eq!(r.chunks, ["I am here with you."]);
    // A reply that was nothing but the echo still answers, in words of the hub's own.
    let turn = hub
        .ask(
            "u2",
            "I miss her terribly and I am so sad, echo only your tone",
        )
        .await;
    assert_eq!(turn.outcome, Outcome::Finished);
    let r = hub.received("u2").await;
    assert_eq!(r.chunks, [crate::say::NO_WORDS]);
    assert_eq!(turn.guarded, Some("nothing of the reply was fit to say"));
    assert_eq!(hub.history()[1].1, crate::say::NO_WORDS);
}

#[tokio::test]
async fn a_reply_that_repeats_itself_is_said_once_and_the_model_stops() {
    let mut hub = hub();
    let turn = hub.ask("u1", "Please say it again and again").await;
    assert_eq!(turn.outcome, Outcome::Finished);
    let r = hub.received("u1").await;
    assert_eq!(r.chunks, ["Sure!", "I am always here for you."]);
    assert_eq!(hub.history()[0].1, "Sure! I am always here for you.");
}

#[tokio::test]
async fn each_persona_answers_with_its_codex_in_its_voice_and_the_room_keeps_its_name() {
    use crate::persona::{Persona, VoiceSettings};
    let persona = |name: &str, pace: f32| Persona {
        name: name.into(),
        codex: format!("You are {name}."),
        voice: VoiceSettings {
            length_scale: Some(pace),
            ..VoiceSettings::default()
        },
        ..Persona::default()
    };
    let brick = Persona {
        temperature: 0.2,
        max_tokens: 40,
        ..persona("Brick", 1.6)
    };
    let mut hub = hub_with(
        |c| {
            c.personas.loaded = vec![brick, persona("Nova", 0.8)];
            c.personas.default = "Nova".into();
            c.personas.check().unwrap();
        },
        |g| Scripted::start(script, g),
        Gate::default(),
    );
    // The room's persona answers, with its codex after the role's prompt, in its voice.
    let turn = hub.ask("u1", "Tell me a story about a fox").await;
    assert_eq!(turn.persona.as_ref().map(|p| p.name.as_str()), Some("Nova"));
    let r = hub.received("u1").await;
    assert_eq!(r.chunks.len(), 3);
    assert!(
        r.voices
            .iter()
            .all(|v| *v == Some(("Nova".into(), Some(0.8)))),
        "{:?}",
        r.voices
    );
    let asked = hub.seen.lock().unwrap()[0].clone();
    let system = &asked.messages[0].content;
    assert!(system.ends_with("\n\nYou are Nova."), "{system}");
    assert_eq!((asked.temperature, asked.max_tokens), (None, None));

    // "Ask Brick ..." picks Brick for this turn: the request loses his name, his settings go
    // over the role's, and his own label in the reply is not said.
    let turn = hub.ask("u2", "Ask Brick to name yourself").await;
    assert_eq!(
        turn.persona.as_ref().map(|p| p.name.as_str()),
        Some("Brick")
    );
    assert_eq!(turn.utterance.text, "Name yourself");
    let r = hub.received("u2").await;
    assert_eq!(r.chunks, ["Walls stand."]);
    assert_eq!(r.voices[0], Some(("Brick".into(), Some(1.6))));
    let asked = hub.seen.lock().unwrap()[1].clone();
    assert!(asked.messages[0].content.ends_with("You are Brick."));
    let user = &asked.messages.last().unwrap().content;
    assert!(user.ends_with("] Name yourself"), "{user}");
    assert_eq!((asked.temperature, asked.max_tokens), (Some(0.2), Some(40)));
    assert_eq!(asked.persona.map(|p| p.name), Some("Brick".into()));

    // Memory is shared: the history holds both, and Brick's reply is his.
    assert_eq!(
        hub.history(),
        [
            ("Tell me a story about a fox".to_string(), STORY.to_string()),
            ("Name yourself".to_string(), "Walls stand.".to_string()),
        ]
    );
    let last = hub
        .pipeline
        .home
        .with(|h| h.conversations.last_reply("kitchen"));
    assert_eq!(last, Some((Some("Brick".into()), "Walls stand.".into())));
    // The role log keeps whose answer each was.
    let log = hub.pipeline.subconscious.memories().role_log();
    let personas: Vec<Option<String>> = (log.entries(Some(crate::llm::JobRole::Consciousness)))
        .unwrap()
        .into_iter()
        .map(|e| e.persona)
        .collect();
    assert_eq!(personas, [Some("Nova".into()), Some("Brick".into())]);
    // The next turn is the room's persona's again.
    let turn = hub.ask("u3", "Tell me a story about a fox").await;
    assert_eq!(turn.persona.map(|p| p.name), Some("Nova".into()));
    hub.received("u3").await;

    // Pixie speaks in the room's persona's voice.
    let said = hub.reminder_said().await;
    assert_eq!(said.voice.map(|v| v.persona), Some("Nova".into()));
    assert!(hub.pipeline.shutdown(Duration::from_secs(2)).await);
}

mod history;
mod scenarios;
