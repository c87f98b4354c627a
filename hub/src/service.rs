//! The hub's MQTT side: connects to the broker, decodes what terminals send, answers
//! utterances with the language model and streams the reply back sentence by sentence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_shared::{
    decode, encode, now_ms, Channel, ErrorCode, ErrorReport, HubPresence, Presence, ReplyChunk,
    Topics, Utterance, WireMessage,
};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HubConfig;
use crate::controls::{self, Control};
use crate::conversation::Conversations;
use crate::emotion::{self, Mood};
use crate::llm::{GenerateRequest, LlmError, LlmEvent, LlmHandle};
use crate::memory::MemoryId;
use crate::pixie::reminders::{self, Request};
use crate::pixie::tasks::{self, Task, Work};
use crate::pixie::{Delivery, Pixie};
use crate::rooms::Rooms;
use crate::subconscious::{Recall, Subconscious};

/// State shared by the event loop and the answer tasks.
struct Shared {
    config: HubConfig,
    topics: Topics,
    client: AsyncClient,
    llm: LlmHandle,
    subconscious: Subconscious,
    /// The memory last stored from each room, for "forget that".
    last_stored: Mutex<HashMap<String, MemoryId>>,
    conversations: Mutex<Conversations>,
    /// Terminals, where the user was heard, where the hub is answering.
    rooms: Mutex<Rooms>,
    /// Reminders and speaking first.
    pixie: Arc<Pixie>,
    /// Wakes the Pixie loop early (a terminal came online, a reminder was set).
    wake: tokio::sync::Notify,
    /// Hearth's mood and each room's last user turn (for topic switches).
    feelings: Mutex<Feelings>,
    /// Pixie tasks being run now.
    running: Mutex<std::collections::HashSet<u64>>,
}

/// Hearth's emotional state between turns.
struct Feelings {
    mood: Mood,
    last_turn: HashMap<String, String>,
}

/// MQTT options for the hub's own client: credentials, a Last Will that marks the hub offline,
/// and a packet limit large enough to receive (and then refuse) oversized payloads.
fn mqtt_options(config: &HubConfig, topics: &Topics) -> MqttOptions {
    let m = &config.mqtt;
    let mut opts = MqttOptions::new(&m.client_id, &m.host, m.port);
    opts.set_credentials(&m.username, &m.password)
        .set_keep_alive(Duration::from_secs(m.keep_alive_s))
        .set_clean_session(true)
        .set_max_packet_size(m.broker_max_payload + 1024, m.broker_max_payload + 1024)
        .set_last_will(LastWill::new(
            topics.hub_presence(),
            encode(&HubPresence {
                online: false,
                at_ms: 0,
            }),
            QoS::AtLeastOnce,
            true,
        ));
    opts
}

/// Runs the MQTT loop until `shutdown` is cancelled.
pub async fn serve(
    config: HubConfig,
    llm: LlmHandle,
    subconscious: Subconscious,
    pixie: Arc<Pixie>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = Topics::new(&config.mqtt.topic_prefix)?;
    let (client, mut eventloop) = AsyncClient::new(mqtt_options(&config, &topics), 256);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let shared = Arc::new(Shared {
        conversations: Mutex::new(Conversations::new(config.conversation.history_turns)),
        rooms: Mutex::new(Rooms::default()),
        pixie,
        wake: tokio::sync::Notify::new(),
        feelings: Mutex::new(Feelings {
            mood: Mood::resting(&config.emotion, now_ms()),
            last_turn: HashMap::new(),
        }),
        running: Mutex::new(std::collections::HashSet::new()),
        config,
        topics,
        client,
        llm,
        subconscious,
        last_stored: Mutex::new(HashMap::new()),
    });
    if shared.config.memory.sweep_interval_minutes == 0 {
        tracing::info!("memory sweeps are off (memory.sweep_interval_minutes = 0)");
    } else if let Err(e) = shared
        .pixie
        .tasks()
        .schedule(Work::Sweep, now_ms(), now_ms())
    {
        tracing::error!(error = %e, "cannot schedule the memory sweep");
    }
    let tasks = TaskTracker::new();
    let answers = shutdown.child_token();
    tasks.spawn(speak_first(Arc::clone(&shared), answers.clone()));
    let mut backoff = Backoff::default();

    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                tracing::info!(host = %shared.config.mqtt.host, port = shared.config.mqtt.port, "connected to the MQTT broker");
                on_connected(&shared);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                on_publish(&shared, &tasks, &answers, &p.topic, &p.payload);
            }
            Ok(_) => {}
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "MQTT broker connection lost; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    tracing::info!("shutting down: finishing replies in flight");
    answers.cancel();
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some replies did not finish within 5 s");
    }
    let offline = encode(&HubPresence {
        online: false,
        at_ms: now_ms(),
    });
    let _ = shared.client.try_publish(
        shared.topics.hub_presence(),
        QoS::AtLeastOnce,
        true,
        offline,
    );
    let _ = shared.client.try_disconnect();
    drain(&mut eventloop).await;
    Ok(())
}

/// Lets the event loop send what is queued (the offline presence, the disconnect).
async fn drain(eventloop: &mut EventLoop) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Outgoing(rumqttc::Outgoing::Disconnect) = event {
                break;
            }
        }
    })
    .await;
}

/// Subscribes and announces the hub. Runs inside the event loop, so it only queues requests
/// (`try_*`): awaiting queue space here would wait on the loop itself.
fn on_connected(shared: &Shared) {
    let t = &shared.topics;
    for channel in [Channel::Utterance, Channel::Presence] {
        if let Err(e) = shared
            .client
            .try_subscribe(t.every_terminal(channel), QoS::AtLeastOnce)
        {
            tracing::error!(error = %e, %channel, "cannot subscribe");
        }
    }
    let online = encode(&HubPresence {
        online: true,
        at_ms: now_ms(),
    });
    if let Err(e) = shared
        .client
        .try_publish(t.hub_presence(), QoS::AtLeastOnce, true, online)
    {
        tracing::error!(error = %e, "cannot publish hub presence");
    }
}

fn on_publish(
    shared: &Arc<Shared>,
    tasks: &TaskTracker,
    answers: &CancellationToken,
    topic: &str,
    payload: &[u8],
) {
    let Some((terminal, channel)) = shared.topics.parse(topic) else {
        tracing::debug!(topic, "ignoring message on a foreign topic");
        return;
    };
    match channel {
        Channel::Presence => on_presence(shared, terminal, payload),
        Channel::Utterance => match accept_utterance(shared, terminal, payload) {
            Ok(u) => {
                shared.rooms.lock().expect("lock").heard(&u.room, now_ms());
                let shared = Arc::clone(shared);
                let cancel = answers.child_token();
                tasks.spawn(async move { answer(shared, u, cancel).await });
            }
            Err(report) => {
                tracing::warn!(terminal, code = ?report.code, error = %report.message, "rejected utterance");
                // Inside the event loop: queue without waiting, and say so if the queue is full.
                match shared.topics.terminal(terminal, Channel::Error) {
                    Ok(topic) => {
                        if let Err(e) = shared.client.try_publish(
                            topic,
                            QoS::AtLeastOnce,
                            false,
                            encode(&report),
                        ) {
                            tracing::warn!(terminal, error = %e, "outgoing queue full; error report not sent");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot address terminal"),
                }
            }
        },
        // The hub's own outputs; it does not subscribe to them.
        Channel::Reply | Channel::Speech | Channel::Error => {}
    }
}

fn on_presence(shared: &Shared, terminal: &str, payload: &[u8]) {
    if payload.is_empty() {
        // A cleared retained message.
        shared.rooms.lock().expect("lock").remove(terminal);
        return;
    }
    match decode::<Presence>(payload, shared.config.mqtt.max_payload) {
        Ok(p) if p.terminal == terminal => {
            tracing::info!(terminal, room = %p.room, online = p.online, "terminal presence");
            shared.rooms.lock().expect("lock").presence(p);
            shared.wake.notify_one();
        }
        Ok(p) => {
            tracing::warn!(terminal, claimed = %p.terminal, "presence names another terminal; ignored")
        }
        Err(e) => tracing::warn!(terminal, code = ?e.code(), error = %e, "rejected presence"),
    }
}

/// Decodes and checks an utterance; the error is what to tell the terminal.
fn accept_utterance(
    shared: &Shared,
    terminal: &str,
    payload: &[u8],
) -> Result<Utterance, ErrorReport> {
    let u =
        decode::<Utterance>(payload, shared.config.mqtt.max_payload).map_err(|e| ErrorReport {
            utterance_id: None,
            code: e.code(),
            message: e.to_string(),
        })?;
    let invalid = |code, message: String| ErrorReport {
        utterance_id: Some(u.id.clone()),
        code,
        message,
    };
    if u.terminal != terminal {
        return Err(invalid(
            ErrorCode::Invalid,
            format!(
                "utterance names terminal {:?} but came on the topic of {terminal:?}",
                u.terminal
            ),
        ));
    }
    if u.id.is_empty() || u.id.len() > 128 {
        return Err(invalid(
            ErrorCode::Invalid,
            "utterance id must be 1 to 128 bytes".into(),
        ));
    }
    if u.room.trim().is_empty() || u.room.len() > 64 {
        return Err(invalid(
            ErrorCode::Invalid,
            "room must be 1 to 64 bytes".into(),
        ));
    }
    if u.text.trim().is_empty() {
        return Err(invalid(
            ErrorCode::Invalid,
            "utterance text is empty".into(),
        ));
    }
    let chars = u.text.chars().count();
    let limit = shared.config.conversation.max_utterance_chars;
    if chars > limit {
        return Err(invalid(
            ErrorCode::TooLarge,
            format!("utterance text has {chars} characters, the limit is {limit}"),
        ));
    }
    Ok(u)
}

async fn publish<M: WireMessage>(shared: &Shared, terminal: &str, channel: Channel, msg: &M) {
    let topic = match shared.topics.terminal(terminal, channel) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot address terminal");
            return;
        }
    };
    if let Err(e) = shared
        .client
        .publish(topic, QoS::AtLeastOnce, false, encode(msg))
        .await
    {
        tracing::error!(error = %e, terminal, kind = M::KIND, "cannot publish");
    }
}

async fn send_error(shared: &Shared, terminal: &str, report: ErrorReport) {
    publish(shared, terminal, Channel::Error, &report).await;
}

/// Publishes chunk `seq` of the reply to `u`.
async fn send_chunk(shared: &Shared, u: &Utterance, seq: u32, text: String, is_final: bool) {
    let chunk = ReplyChunk {
        utterance_id: u.id.clone(),
        seq,
        text,
        is_final,
    };
    publish(shared, &u.terminal, Channel::Reply, &chunk).await;
}

/// Answers one utterance: queue it for the model, stream each sentence as a reply chunk, end
/// with a final chunk, and remember the exchange.
/// Answers a memory control directly, without the language model. Returns `false` when the
/// utterance turned out not to be one (a "correction" of nothing stored), to be answered as
/// usual.
async fn control(shared: &Shared, u: &Utterance, control: Control) -> bool {
    let s = &shared.subconscious;
    let reply = match control {
        Control::Correct(fact) => match s.correct(u, &fact, now_ms()).await {
            Ok(Some((old, new))) => {
                shared
                    .last_stored
                    .lock()
                    .expect("lock")
                    .insert(u.room.clone(), new.id);
                tracing::info!(old = old.id, new = new.id, "memory corrected");
                format!(
                    "Got it, I have updated that: {} I kept the old version as history.",
                    new.text.trim()
                )
            }
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(error = %e, "correction failed");
                "Sorry, I could not update that; my memory store reported an error.".to_string()
            }
        },
        Control::ForgetLast => {
            let last = shared.last_stored.lock().expect("lock").remove(&u.room);
            match last {
                Some(id) => match s.forget(id).await {
                    Ok(_) => "Okay, I have forgotten that.".to_string(),
                    Err(e) => {
                        tracing::error!(error = %e, "forget failed");
                        "Sorry, I could not forget that; my memory store reported an error."
                            .to_string()
                    }
                },
                None => "There is nothing recent to forget.".to_string(),
            }
        }
        Control::ForgetAbout(topic) => match s.mentioning(&topic).await {
            Ok(found) if found.is_empty() => format!("I don't remember anything about {topic}."),
            Ok(found) => {
                let mut forgotten = 0;
                for m in &found {
                    if matches!(s.forget(m.id).await, Ok(true)) {
                        forgotten += 1;
                    }
                }
                shared
                    .last_stored
                    .lock()
                    .expect("lock")
                    .retain(|_, id| found.iter().all(|m| m.id != *id));
                format!(
                    "Okay, I have forgotten {forgotten} thing{} about {topic}.",
                    if forgotten == 1 { "" } else { "s" }
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "memory search failed");
                "Sorry, my memory store reported an error.".to_string()
            }
        },
        Control::Recall(topic) => match s.mentioning(&topic).await {
            Ok(found) if found.is_empty() => format!("I don't remember anything about {topic}."),
            Ok(found) => {
                let items: Vec<String> = found
                    .iter()
                    .take(5)
                    .map(|m| m.text.trim().to_string())
                    .collect();
                format!("About {topic}, I remember: {}", items.join(" "))
            }
            Err(e) => {
                tracing::error!(error = %e, "memory search failed");
                "Sorry, my memory store reported an error.".to_string()
            }
        },
    };
    tracing::info!(id = %u.id, reply = %reply, "memory control");
    send_chunk(shared, u, 0, reply, false).await;
    send_chunk(shared, u, 1, String::new(), true).await;
    true
}

/// Marks a room as answering while alive.
struct Answering<'a> {
    shared: &'a Shared,
    room: &'a str,
}

impl<'a> Answering<'a> {
    /// Also says whether another room was being answered already.
    fn start(shared: &'a Shared, room: &'a str) -> (Answering<'a>, bool) {
        let mut rooms = shared.rooms.lock().expect("lock");
        let elsewhere = rooms.answering_elsewhere(room);
        rooms.answering(room);
        (Answering { shared, room }, elsewhere)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if let Ok(mut rooms) = self.shared.rooms.lock() {
            rooms.answered(self.room, now_ms());
        }
        self.shared.wake.notify_one();
    }
}

async fn answer(shared: Arc<Shared>, u: Utterance, cancel: CancellationToken) {
    let (_answering, others_first) = Answering::start(&shared, &u.room);
    let known = shared.rooms.lock().expect("lock").known();
    if let Some(request) = reminders::parse_request(&u.text, &known) {
        let reply = reminder(&shared, &u, request).await;
        tracing::info!(id = %u.id, reply = %reply, "reminder request");
        send_chunk(&shared, &u, 0, reply, false).await;
        send_chunk(&shared, &u, 1, String::new(), true).await;
        return;
    }
    if let Some(c) = controls::parse(&u.text) {
        if control(&shared, &u, c).await {
            return;
        }
    }
    let now = now_ms();
    let (tone, k, retrieval) = feel(&shared, &u, now);
    let Recall {
        context,
        recalled,
        vector,
    } = shared
        .subconscious
        .recall_shaped(&u.text, now, k, &retrieval)
        .await;
    let context = format!("{tone}{context}");
    let texts: Vec<&str> = recalled.iter().map(|m| m.text.as_str()).collect();
    tracing::info!(id = %u.id, recalled = ?texts, "memory context");
    let replied = respond(&shared, &u, &context, others_first, cancel).await;
    // The reply is out: now the memory writes, each a flush and a commit.
    shared.subconscious.rewarm(recalled, now).await;
    if let Some(reply) = replied {
        let before = {
            let mut conversations = shared.conversations.lock().expect("lock");
            let before = conversations.last_reply(&u.room);
            conversations.record(&u.room, &u.text, &reply);
            before
        };
        let idle_s = shared.config.pixie.reflect_after_idle_s;
        if idle_s > 0 {
            let reflect = Work::Reflect {
                room: u.room.clone(),
            };
            if let Err(e) = shared
                .pixie
                .tasks()
                .schedule(reflect, now_ms() + idle_s * 1000, now)
            {
                tracing::error!(error = %e, "cannot schedule a reflection");
            }
        }
        let context = before.map(|b| format!("Hearth: {b}"));
        if let Some(id) = shared
            .subconscious
            .ingest(&u, vector, context.as_deref(), now)
            .await
        {
            shared
                .last_stored
                .lock()
                .expect("lock")
                .insert(u.room.clone(), id);
        }
    }
}

/// Scores the user's emotion for this turn, moves Hearth's mood, logs both with their
/// reasons, and returns the tone line and the recall shape for the turn.
fn feel(
    shared: &Shared,
    u: &Utterance,
    now: u64,
) -> (String, usize, crate::memory::retrieval::RetrievalConfig) {
    let config = &shared.config;
    let mut feelings = shared.feelings.lock().expect("lock");
    let previous = feelings.last_turn.insert(u.room.clone(), u.text.clone());
    let user = emotion::score(&u.text, u.audio.as_ref(), previous.as_deref());
    let target = feelings.mood.respond(&user, now, &config.emotion);
    let mood = feelings.mood;
    drop(feelings);
    shared
        .rooms
        .lock()
        .expect("lock")
        .felt(user.label() == emotion::Label::Stressed, now);
    let (k, retrieval, shape) = emotion::shape_recall(
        &user,
        config.memory.recall_k,
        &config.memory.retrieval,
        &config.emotion,
    );
    tracing::info!(id = %u.id, room = %u.room, label = ?user.label(), valence = user.valence,
        arousal = user.arousal, engagement = user.engagement, why = %user.explain(),
        mood_valence = mood.valence, mood_arousal = mood.arousal, mood_target = ?target,
        recall = shape, "emotion");
    if !config.emotion.enabled {
        return (
            String::new(),
            config.memory.recall_k,
            config.memory.retrieval.clone(),
        );
    }
    let tone = emotion::tone_line(&user, &mood).unwrap_or_default();
    (tone, k, retrieval)
}

/// Streams the model's reply to one utterance, with `context` (recalled memories) in the user
/// turn. Returns the reply text when the model finished it, `None` when it failed, was
/// cancelled or could not be queued. With `others_first` (another room was being answered
/// when this one arrived), a wait of over `conversation.one_moment_ms` is announced.
async fn respond(
    shared: &Shared,
    u: &Utterance,
    context: &str,
    others_first: bool,
    cancel: CancellationToken,
) -> Option<String> {
    // Recalled memories go into the user turn, not the system prompt, so that the system
    // prompt's KV cache stays valid across turns.
    let turn = if context.is_empty() {
        u.text.clone()
    } else {
        format!("{context}[USER SAID THIS TURN] {}", u.text)
    };
    let messages = shared.conversations.lock().expect("lock").prompt(
        &u.room,
        &shared.config.conversation.system_prompt,
        &turn,
    );
    tracing::info!(terminal = %u.terminal, room = %u.room, id = %u.id, chars = u.text.len(), "answering");
    let request = GenerateRequest {
        lane: u.room.clone(),
        ..GenerateRequest::chat(messages)
    };
    let queued = std::time::Instant::now();
    let mut events = match shared.llm.generate(request, cancel) {
        Ok(rx) => rx,
        Err(e) => {
            let code = match e {
                LlmError::Busy { .. } => ErrorCode::Busy,
                _ => ErrorCode::Inference,
            };
            tracing::warn!(error = %e, id = %u.id, "cannot queue utterance");
            let report = ErrorReport {
                utterance_id: Some(u.id.clone()),
                code,
                message: e.to_string(),
            };
            send_error(shared, &u.terminal, report).await;
            return None;
        }
    };
    let mut seq = 0;
    let conversation = &shared.config.conversation;
    let mut announce = others_first && conversation.one_moment_ms > 0;
    loop {
        let event = if announce {
            let wait = Duration::from_millis(conversation.one_moment_ms);
            match tokio::time::timeout(wait, events.recv()).await {
                Ok(event) => event,
                Err(_) => {
                    tracing::info!(id = %u.id, room = %u.room, "another room is being answered; asked to wait");
                    send_chunk(shared, u, seq, conversation.one_moment_text.clone(), false).await;
                    seq += 1;
                    announce = false;
                    continue;
                }
            }
        } else {
            events.recv().await
        };
        if announce {
            tracing::debug!(id = %u.id, waited_ms = queued.elapsed().as_millis() as u64, "answer started");
        }
        announce = false;
        let Some(event) = event else { break };
        match event {
            LlmEvent::Sentence(text) => {
                send_chunk(shared, u, seq, text, false).await;
                seq += 1;
            }
            LlmEvent::Done(stats) => {
                send_chunk(shared, u, seq, String::new(), true).await;
                tracing::info!(id = %u.id, chunks = seq, prompt_tokens = stats.prompt_tokens,
                    reused_tokens = stats.reused_tokens, generated_tokens = stats.generated_tokens,
                    prompt_ms = stats.prompt_eval.as_millis() as u64,
                    generation_ms = stats.generation.as_millis() as u64, cancelled = stats.cancelled, "answered");
                return (!stats.cancelled).then_some(stats.text);
            }
            LlmEvent::Failed(e) => {
                tracing::error!(error = %e, id = %u.id, "generation failed");
                let report = ErrorReport {
                    utterance_id: Some(u.id.clone()),
                    code: ErrorCode::Inference,
                    message: e.to_string(),
                };
                send_error(shared, &u.terminal, report).await;
                // End the reply so that the terminal never waits for a chunk that won't come.
                send_chunk(shared, u, seq, String::new(), true).await;
                return None;
            }
        }
    }
    None
}

/// Answers a reminder request in code (the language model only splits what the parser
/// cannot); returns what to say.
async fn reminder(shared: &Shared, u: &Utterance, request: Request) -> String {
    let pixie = &shared.pixie;
    let now = now_ms();
    let set = |kind, what: &str, when: &str, rooms: &[String]| match pixie
        .set(kind, what, when, rooms, &u.room, now)
    {
        Ok((_, confirmation)) => {
            shared.wake.notify_one();
            confirmation
        }
        Err(e) => {
            tracing::warn!(error = ?e, when, "reminder not set");
            e.to_string()
        }
    };
    let storage = |e: reminders::ReminderError| {
        tracing::error!(error = %e, "reminder store failed");
        "Sorry, my reminder store reported an error.".to_string()
    };
    match request {
        Request::Set {
            kind,
            what,
            when,
            rooms,
        } => set(kind, &what, &when, &rooms),
        Request::Unsplit { body, rooms } => {
            match crate::pixie::split_with_llm(&shared.llm, &body).await {
                Some((what, when)) => set(reminders::Kind::Reminder, &what, &when, &rooms),
                None => "Sorry, I didn't catch when. Say, for example: remind me to water the \
                         plants tomorrow at 8."
                    .to_string(),
            }
        }
        Request::List => pixie.list(now).unwrap_or_else(storage),
        Request::Cancel { about, timers } => pixie
            .cancel(about.as_deref(), timers, now)
            .unwrap_or_else(storage),
    }
}

/// The Pixie loop: every `pixie.tick_ms` (or when woken), says what is due where it should
/// be said, and records it once published.
async fn speak_first(shared: Arc<Shared>, stop: CancellationToken) {
    let tick = Duration::from_millis(shared.pixie.tick_ms());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
            _ = shared.wake.notified() => {}
        }
        let now = now_ms();
        let plan = {
            let rooms = shared.rooms.lock().expect("lock");
            shared.pixie.plan(now, &rooms)
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the reminder store");
                continue;
            }
        };
        for d in plan {
            say(&shared, &d).await;
            if let Err(e) = shared.pixie.delivered(&d, now) {
                tracing::error!(error = %e, "said, but cannot record it; it may be said again");
            }
        }
        run_jobs(&shared, now);
    }
}

/// Starts Pixie's due work (sweeps, reflections), each once, off the loop.
fn run_jobs(shared: &Arc<Shared>, now: u64) {
    let jobs = match shared.pixie.jobs(now) {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::error!(error = %e, "cannot read Pixie's task queue");
            return;
        }
    };
    for task in jobs {
        if !shared.running.lock().expect("lock").insert(task.id) {
            continue;
        }
        let shared = Arc::clone(shared);
        match task.work.clone() {
            Work::Sweep => {
                tokio::spawn(async move {
                    let memories = Arc::clone(shared.subconscious.memories());
                    crate::sweep_once(memories, shared.config.memory.lifecycle.clone()).await;
                    let every_ms = shared.config.memory.sweep_interval_minutes * 60_000;
                    let pixie = shared.pixie.tasks();
                    // Scheduling the next sweep replaces this one in its slot.
                    if let Err(e) = pixie.schedule(Work::Sweep, now_ms() + every_ms, now_ms()) {
                        tracing::error!(error = %e, "cannot schedule the next memory sweep");
                    }
                    shared.running.lock().expect("lock").remove(&task.id);
                });
            }
            Work::Reflect { room } => {
                // The language model is busy with a conversation: later.
                if shared.rooms.lock().expect("lock").answering_anywhere() {
                    if let Err(e) = shared.pixie.tasks().postpone(&task, now + 30_000) {
                        tracing::error!(error = %e, "cannot postpone a reflection");
                    }
                    shared.running.lock().expect("lock").remove(&task.id);
                    continue;
                }
                tokio::spawn(reflect(shared, task, room));
            }
            Work::FollowUp { .. } => {
                shared.running.lock().expect("lock").remove(&task.id);
            }
        }
    }
}

/// Pixie reflects on a quiet room's conversation: background LLM work under a grammar, which
/// gives way to any conversation. The reflection becomes a memory; an open topic becomes a
/// follow-up question, asked later through the "worth interrupting?" decision.
async fn reflect(shared: Arc<Shared>, task: Task, room: String) {
    let exchanges = shared.conversations.lock().expect("lock").exchanges(&room);
    if !exchanges.is_empty() {
        let request = crate::llm::json_schema_grammar(&tasks::reflection_schema())
            .map(|g| GenerateRequest::structured(tasks::reflection_prompt(&exchanges), g, 160));
        let written = match request {
            Ok(request) => shared.llm.complete(request).await,
            Err(e) => Err(e),
        };
        match written.map(|(_, stats)| (tasks::parse_reflection(&stats.text), stats.text)) {
            Ok((Some(r), _)) => {
                let now = now_ms();
                let text = format!(
                    "Reflection on a conversation in the {room}: {}",
                    r.reflection
                );
                let stored = shared
                    .subconscious
                    .remember_derived(&text, &room, 0.5, now)
                    .await;
                let follow_up = !r.question.is_empty() && !r.topic.is_empty();
                if follow_up {
                    let work = Work::FollowUp {
                        room: room.clone(),
                        topic: r.topic.clone(),
                        question: r.question.clone(),
                    };
                    let due = now + shared.config.pixie.follow_up_after_minutes * 60_000;
                    if let Err(e) = shared.pixie.tasks().schedule(work, due, now) {
                        tracing::error!(error = %e, "cannot schedule a follow-up");
                    }
                }
                tracing::info!(room, reflection = %r.reflection, topic = %r.topic,
                    question = %r.question, memory = ?stored.ok(), follow_up, "pixie reflected");
            }
            Ok((None, text)) => {
                tracing::warn!(room, output = %text, "the reflection was not usable; dropped")
            }
            Err(e) => tracing::warn!(room, error = %e, "cannot reflect now; dropped"),
        }
    }
    if let Err(e) = shared.pixie.tasks().done(task.id) {
        tracing::error!(error = %e, "cannot finish a reflection task");
    }
    shared.running.lock().expect("lock").remove(&task.id);
}

async fn say(shared: &Shared, d: &Delivery) {
    for (terminal, room) in &d.targets {
        tracing::info!(terminal, room, fallback = d.fallback, why = %d.why, text = %d.speech.text, "speaking first");
        publish(shared, terminal, Channel::Speech, &d.speech).await;
    }
}

/// Exponential backoff for broker reconnects: 100 ms doubling to 5 s.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    pub(crate) fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        now
    }

    pub(crate) fn reset(&mut self) {
        *self = Backoff::default();
    }
}
