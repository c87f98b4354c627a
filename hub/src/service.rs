//! The hub's MQTT transport: connects to the broker, decodes and checks what terminals send,
//! hands utterances and cancels to the [turn pipeline](crate::turn), and publishes what the
//! pipeline and Pixie put in the [outbox](crate::outbox). It makes no decisions of its own.

use std::sync::Arc;
use std::time::Duration;

use hearth_shared::{
    decode, encode, now_ms, Cancel, Channel, ErrorReport, HubPresence, Presence, ReplyChunk,
    Speech, Topics, Utterance, WireMessage,
};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::HubConfig;
use crate::household::Home;
use crate::live;
use crate::outbox::{Message, Outgoing};
use crate::trust::{Gate, Refused};
use crate::turn::Pipeline;

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
                heartbeat_ms: None,
            }),
            QoS::AtLeastOnce,
            true,
        ));
    opts
}

/// Serves terminals until `shutdown` is cancelled, then stops the pipeline's work (waiting up
/// to `conversation.shutdown_wait_ms`), publishes what it sent last and the hub's offline
/// presence, and disconnects.
pub async fn serve(
    pipeline: Arc<Pipeline>,
    gate: Arc<Gate>,
    outgoing: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = &pipeline.config;
    let topics = Topics::new(&config.mqtt.topic_prefix)?;
    let (client, mut eventloop) = AsyncClient::new(mqtt_options(config, &topics), 256);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let published = CancellationToken::new();
    let publisher = tokio::spawn(publish(
        Arc::clone(&pipeline.home),
        client.clone(),
        topics.clone(),
        Arc::clone(&gate),
        outgoing,
        published.clone(),
    ));
    let heartbeat = tokio::spawn(heartbeats(
        client.clone(),
        topics.clone(),
        Arc::clone(&gate),
        published.clone(),
    ));
    let mut backoff = Backoff::new(
        Duration::from_millis(config.mqtt.reconnect_min_ms),
        Duration::from_millis(config.mqtt.reconnect_max_ms),
    );
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                tracing::info!(host = %config.mqtt.host, port = config.mqtt.port, "connected to the MQTT broker");
                on_connected(&client, &topics, &gate);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                on_publish(&pipeline, &gate, &client, &topics, &p.topic, &p.payload);
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

    tracing::info!("shutting down: stopping replies and background work in flight");
    let wait = Duration::from_millis(config.conversation.shutdown_wait_ms);
    if !pipeline.shutdown(wait).await {
        tracing::warn!(
            wait_ms = wait.as_millis() as u64,
            "some work did not stop in time"
        );
    }
    // The last chunks go out before the hub says it is offline.
    published.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), publisher).await;
    let _ = heartbeat.await;
    let offline = HubPresence {
        online: false,
        at_ms: now_ms(),
        heartbeat_ms: None,
    };
    announce(&client, &topics, &gate, &offline);
    let _ = client.try_publish(
        topics.hub_presence(),
        QoS::AtLeastOnce,
        true,
        encode(&offline),
    );
    let _ = client.try_disconnect();
    drain(&mut eventloop).await;
    Ok(())
}

/// Publishes the outbox in order until `done`, then what is left in it.
async fn publish(
    home: Arc<Home>,
    client: AsyncClient,
    topics: Topics,
    gate: Arc<Gate>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    done: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            biased;
            next = outgoing.recv() => next,
            _ = done.cancelled() => outgoing.try_recv().ok(),
        };
        let Some(o) = next else { return };
        if live::is_dashboard(&o.terminal) {
            // A reply to a question typed on the dashboard: for its watchers only.
            tap(&home, &o.terminal, &o.message);
            if let Some(handed_over) = o.handed_over {
                let _ = handed_over.send(());
            }
            continue;
        }
        let (channel, payload, kind) = match &o.message {
            Message::Reply(m) => (Channel::Reply, encode(m), ReplyChunk::KIND),
            Message::Speech(m) => (Channel::Speech, encode(m), Speech::KIND),
            Message::Error(m) => (Channel::Error, encode(m), ErrorReport::KIND),
        };
        match topics.terminal(&o.terminal, channel) {
            Ok(topic) => {
                let payload = gate.seal(&o.terminal, &topic, payload);
                if let Err(e) = client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                {
                    tracing::error!(error = %e, terminal = %o.terminal, kind, "cannot publish");
                    continue;
                }
                tap(&home, &o.terminal, &o.message);
                if let Some(handed_over) = o.handed_over {
                    let _ = handed_over.send(());
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot address terminal"),
        }
    }
}

/// Tells the household's watchers what went to `terminal`.
fn tap(home: &Home, terminal: &str, message: &Message) {
    let room = home
        .with(|h| h.rooms.room_of(terminal).map(str::to_string))
        .unwrap_or_default();
    let terminal = terminal.to_string();
    home.live.send(match message {
        Message::Reply(m) => live::Event::Reply {
            terminal,
            room,
            utterance_id: m.utterance_id.clone(),
            seq: m.seq,
            text: m.text.clone(),
            last: m.is_final,
        },
        Message::Speech(m) => live::Event::Speech {
            terminal,
            room,
            text: m.text.clone(),
        },
        Message::Error(m) => live::Event::Error {
            terminal,
            room,
            message: m.message.clone(),
        },
    });
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
fn on_connected(client: &AsyncClient, topics: &Topics, gate: &Gate) {
    for channel in [Channel::Utterance, Channel::Presence, Channel::Cancel] {
        if let Err(e) = client.try_subscribe(topics.every_terminal(channel), QoS::AtLeastOnce) {
            tracing::error!(error = %e, %channel, "cannot subscribe");
        }
    }
    let online = HubPresence {
        online: true,
        at_ms: now_ms(),
        heartbeat_ms: None,
    };
    if let Err(e) = client.try_publish(
        topics.hub_presence(),
        QoS::AtLeastOnce,
        true,
        encode(&online),
    ) {
        tracing::error!(error = %e, "cannot publish hub presence");
    }
    announce(client, topics, gate, &beat(gate));
}

/// The hub's sealed presence for paired terminals, with the heartbeat period.
fn beat(gate: &Gate) -> HubPresence {
    HubPresence {
        online: true,
        at_ms: now_ms(),
        heartbeat_ms: Some(gate.config.heartbeat_s * 1000),
    }
}

/// Tells every paired terminal, each on its own hub channel and sealed with its key, what
/// `presence` says. Unsealed, the hub's presence could be forged by any terminal; this one
/// cannot. Queued without waiting (it also runs inside the event loop).
fn announce(client: &AsyncClient, topics: &Topics, gate: &Gate, presence: &HubPresence) {
    for terminal in gate.registry.list() {
        tell_presence(client, topics, gate, &terminal.id, presence);
    }
}

/// Queues the hub's `presence` for one paired terminal, sealed on its hub channel.
fn tell_presence(
    client: &AsyncClient,
    topics: &Topics,
    gate: &Gate,
    terminal: &str,
    presence: &HubPresence,
) {
    if let Ok(topic) = topics.terminal(terminal, Channel::Hub) {
        let payload = gate.seal(terminal, &topic, encode(presence));
        if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
            tracing::warn!(terminal, error = %e, "cannot queue the hub's presence");
        }
    }
}

/// Repeats the hub's presence to paired terminals every `trust.heartbeat_s` until `done`.
async fn heartbeats(client: AsyncClient, topics: Topics, gate: Arc<Gate>, done: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(gate.config.heartbeat_s));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = every.tick() => announce(&client, &topics, &gate, &beat(&gate)),
        }
    }
}

fn on_publish(
    pipeline: &Arc<Pipeline>,
    gate: &Gate,
    client: &AsyncClient,
    topics: &Topics,
    topic: &str,
    payload: &[u8],
) {
    let Some((terminal, channel)) = topics.parse(topic) else {
        tracing::debug!(topic, "ignoring message on a foreign topic");
        return;
    };
    if matches!(
        channel,
        Channel::Reply | Channel::Speech | Channel::Error | Channel::Hub
    ) {
        // The hub's own outputs; it does not subscribe to them.
        return;
    }
    let opened = match gate.open(terminal, channel, topic, payload) {
        Ok(opened) => opened,
        Err(why) => {
            tracing::warn!(terminal, %channel, reason = %why, "dropped a message that did not pass");
            return;
        }
    };
    let limit = pipeline.config.mqtt.max_payload;
    let payload = &opened.payload[..];
    match channel {
        Channel::Presence => on_presence(pipeline, gate, client, topics, terminal, &opened),
        Channel::Utterance => {
            if let Err(why) = gate.admit(terminal) {
                if let Refused::RateLimited { told: false, .. } = why {
                    tracing::warn!(terminal, reason = %why, "utterances dropped until the terminal slows down");
                    let busy = ErrorReport {
                        utterance_id: None,
                        code: hearth_shared::ErrorCode::Busy,
                        message: format!("too many utterances: {why}"),
                    };
                    report_error(client, topics, gate, terminal, &busy);
                }
                return;
            }
            let limit_chars = pipeline.config.conversation.max_utterance_chars;
            let accepted = accept_utterance(terminal, payload, limit, limit_chars);
            match accepted {
                Ok(mut u) => {
                    if let Some(room) = opened.room {
                        // A paired terminal's room is the registry's, whatever it wrote.
                        u.room = room;
                    }
                    let id = u.id.clone();
                    if let Err(running) = pipeline.accept(u, gate.config.max_turns) {
                        tracing::warn!(terminal, running, "too many turns at once; answered busy");
                        let busy = ErrorReport {
                            utterance_id: Some(id),
                            code: hearth_shared::ErrorCode::Busy,
                            message: format!(
                                "{running} turns are being answered; try again in a moment"
                            ),
                        };
                        report_error(client, topics, gate, terminal, &busy);
                    }
                }
                Err(report) => {
                    tracing::warn!(terminal, code = ?report.code, error = %report.message, "rejected utterance");
                    report_error(client, topics, gate, terminal, &report);
                }
            }
        }
        Channel::Cancel => match decode::<Cancel>(payload, limit) {
            Ok(c) if c.terminal == terminal => {
                pipeline.cancel(&c);
            }
            Ok(c) => {
                tracing::warn!(terminal, claimed = %c.terminal, "cancel names another terminal; ignored")
            }
            Err(e) => tracing::warn!(terminal, code = ?e.code(), error = %e, "rejected cancel"),
        },
        Channel::Reply | Channel::Speech | Channel::Error | Channel::Hub => {}
    }
}

/// Queues an error report without waiting (this runs inside the event loop), and says so if
/// the queue is full.
fn report_error(
    client: &AsyncClient,
    topics: &Topics,
    gate: &Gate,
    terminal: &str,
    report: &ErrorReport,
) {
    match topics.terminal(terminal, Channel::Error) {
        Ok(topic) => {
            let payload = gate.seal(terminal, &topic, encode(report));
            if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
                tracing::warn!(terminal, error = %e, "outgoing queue full; error report not sent");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot address terminal"),
    }
}

fn on_presence(
    pipeline: &Pipeline,
    gate: &Gate,
    client: &AsyncClient,
    topics: &Topics,
    terminal: &str,
    opened: &crate::trust::Opened,
) {
    if opened.payload.is_empty() {
        // A cleared retained message.
        pipeline.home.with(|h| h.rooms.remove(terminal));
        return;
    }
    let limit = pipeline.config.mqtt.max_payload;
    match decode::<Presence>(&opened.payload, limit) {
        Ok(mut p) if p.terminal == terminal => {
            if let Some(room) = &opened.room {
                p.room = room.clone();
                if let (true, Some(will)) = (p.online, p.will) {
                    gate.will(terminal, will);
                }
                if p.online {
                    // A terminal that just came tells the hub; it hears back at once.
                    tell_presence(client, topics, gate, terminal, &beat(gate));
                }
            }
            tracing::info!(terminal, room = %p.room, online = p.online, paired = opened.room.is_some(), capabilities = ?p.capabilities, "terminal presence");
            // Watchers hear of it once the household knows it (a page reloaded on the event
            // shows the terminal).
            let event = live::Event::Presence {
                terminal: p.terminal.clone(),
                room: p.room.clone(),
                online: p.online,
                at_ms: p.at_ms,
            };
            pipeline.home.with(|h| h.rooms.presence(p));
            pipeline.home.live.send(event);
            pipeline.wake.notify_one();
        }
        Ok(p) => {
            tracing::warn!(terminal, claimed = %p.terminal, "presence names another terminal; ignored")
        }
        Err(e) => tracing::warn!(terminal, code = ?e.code(), error = %e, "rejected presence"),
    }
}

/// Decodes and checks an utterance; the error is what to tell the terminal.
fn accept_utterance(
    terminal: &str,
    payload: &[u8],
    limit: usize,
    limit_chars: usize,
) -> Result<Utterance, ErrorReport> {
    let u = decode::<Utterance>(payload, limit).map_err(|e| ErrorReport {
        utterance_id: None,
        code: e.code(),
        message: e.to_string(),
    })?;
    u.check(terminal, limit_chars)?;
    Ok(u)
}

/// Exponential backoff for broker reconnects: from `min`, doubling up to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}
