//! The terminal's link to the hub over MQTT: presence with a Last Will, reconnects with
//! backoff, and one stream of [`LinkEvent`]s for whatever front end is attached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_shared::seal::{self, Replay, SealKey, Sealer, Secret};
use hearth_shared::{
    decode, encode, now_ms, Cancel, Channel, ErrorReport, HubPresence, Presence, ReplyChunk,
    Speech, Topics, Utterance,
};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::TerminalConfig;

/// What the link reports. Reachability events come only on changes.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// Connected to the broker and the hub says it is online.
    HubReachable,
    /// The broker connection is down, or the hub said it went offline.
    HubUnreachable {
        /// Why, for the log and the user.
        reason: String,
    },
    /// A chunk of a reply.
    Reply(ReplyChunk),
    /// The hub speaks first.
    Speech(Speech),
    /// The hub reports an error.
    Error(ErrorReport),
}

/// Why an utterance could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The hub is not reachable right now; the link keeps trying in the background.
    #[error("the hub is unreachable")]
    Unreachable,
    /// The link's task has stopped (the terminal is shutting down).
    #[error("the hub link has stopped")]
    Stopped,
}

/// A paired terminal's seal: its key, its counters, and the hub's counters seen.
#[derive(Debug)]
struct Seal {
    key: SealKey,
    sealer: Sealer,
    replay: Mutex<Replay>,
}

impl Seal {
    fn seal(&self, topic: &str, payload: Vec<u8>) -> Vec<u8> {
        self.sealer.seal(&self.key, topic, &payload)
    }

    /// Opens what came on `topic`: sealed by the hub for this terminal, and new.
    fn open(&self, topic: &str, payload: &[u8]) -> Result<Vec<u8>, seal::SealError> {
        let opened = seal::open(&self.key, topic, payload)?;
        self.replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(opened.counter)?;
        Ok(opened.plaintext)
    }
}

/// A handle for sending to the hub.
#[derive(Clone)]
pub struct HubLink {
    client: AsyncClient,
    topics: Topics,
    terminal: String,
    reachable: Arc<AtomicBool>,
    seal: Option<Arc<Seal>>,
}

impl std::fmt::Debug for HubLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubLink")
            .field("terminal", &self.terminal)
            .finish()
    }
}

impl HubLink {
    /// Starts the link's event loop. Events arrive on the returned receiver until `shutdown`.
    pub fn start(
        config: &TerminalConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(
        HubLink,
        mpsc::Receiver<LinkEvent>,
        tokio::task::JoinHandle<()>,
    )> {
        let topics = Topics::new(&config.hub.topic_prefix)?;
        let id = &config.terminal.id;
        let h = &config.hub;
        let presence_topic = topics.terminal(id, Channel::Presence)?;
        // A paired terminal logs in with the password its secret gives, and seals.
        let (password, seal) = if h.secret.is_empty() {
            (h.password.clone(), None)
        } else {
            let secret =
                Secret::from_text(&h.secret).map_err(|e| anyhow::anyhow!("hub.secret: {e}"))?;
            let seal = Arc::new(Seal {
                key: secret.key(),
                sealer: Sealer::default(),
                replay: Mutex::new(Replay::new(h.replay_window_s)),
            });
            (secret.password(), Some(seal))
        };
        // A paired terminal's Last Will is sealed now, and its online presence names the
        // Will's counter so that the hub takes it when the broker delivers it later.
        let will = seal.as_ref().map(|s| s.sealer.next_counter());
        let (owned_id, room) = (id.clone(), config.terminal.room.clone());
        let presence_seal = seal.clone();
        let presence_at = presence_topic.clone();
        let presence = move |online: bool, at_ms: u64, counter: Option<u64>| {
            let plain = encode(&Presence {
                terminal: owned_id.clone(),
                room: room.clone(),
                online,
                at_ms,
                capabilities: vec![
                    "text".to_string(),
                    hearth_shared::CAPABILITY_CANCEL.to_string(),
                ],
                will: if online { will } else { None },
            });
            match (&presence_seal, counter) {
                (Some(s), Some(c)) => seal::seal_with(&s.key, &presence_at, c, &plain),
                (Some(s), None) => s.seal(&presence_at, plain),
                (None, _) => plain,
            }
        };
        let mut opts = MqttOptions::new(format!("hearth-terminal-{id}"), &h.host, h.port);
        opts.set_credentials(&h.username, &password)
            .set_keep_alive(Duration::from_secs(h.keep_alive_s))
            .set_clean_session(true)
            .set_max_packet_size(h.max_payload + 1024, h.max_payload + 1024)
            .set_last_will(LastWill::new(
                &presence_topic,
                presence(false, 0, will),
                QoS::AtLeastOnce,
                true,
            ));
        if !h.tls_fingerprint.is_empty() {
            let tls = crate::pin::client_config(&h.tls_fingerprint)
                .map_err(|e| anyhow::anyhow!("hub.tls_fingerprint: {e}"))?;
            opts.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(2);
        eventloop.set_network_options(net);

        let (events_tx, events_rx) = mpsc::channel(256);
        let reachable = Arc::new(AtomicBool::new(false));
        let link = HubLink {
            client: client.clone(),
            topics: topics.clone(),
            terminal: id.clone(),
            reachable: Arc::clone(&reachable),
            seal: seal.clone(),
        };
        // A paired terminal hears the hub's presence on its own sealed channel; the shared,
        // unsealed one could be written by anyone with a login.
        let hub_presence = match seal {
            Some(_) => topics.terminal(id, Channel::Hub)?,
            None => topics.hub_presence(),
        };
        let subscriptions = [
            topics.terminal(id, Channel::Reply)?,
            topics.terminal(id, Channel::Speech)?,
            topics.terminal(id, Channel::Error)?,
            hub_presence,
        ];
        let max_payload = h.max_payload;
        let (min_wait, max_wait) = (h.reconnect_min(), h.reconnect_max());
        let endpoint = format!("{}:{}", h.host, h.port);
        let link_seal = link.seal.clone();

        // The event loop runs on a task of its own and is never cancelled mid-poll (a poll
        // dropped while connecting opens a second connection with the same client id, which
        // the broker answers by closing the first); this loop reads its events beside the
        // heartbeat watchdog.
        let (polled_tx, mut polled) = mpsc::channel(64);
        let poller = tokio::spawn(async move {
            let mut wait = min_wait;
            loop {
                let event = eventloop.poll().await;
                let (failed, done) = match &event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        wait = min_wait;
                        (false, false)
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => (false, true),
                    Ok(_) => (false, false),
                    Err(_) => (true, false),
                };
                if polled_tx.send(event).await.is_err() || done {
                    return;
                }
                if failed {
                    tracing::debug!(retry_in_ms = wait.as_millis() as u64, "reconnecting");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(max_wait);
                }
            }
        });
        let task = tokio::spawn(async move {
            let mut state = Reachability::default();
            // The hub's heartbeat (paired terminals): its period and when it was last heard.
            let mut heartbeat: Option<(Duration, Instant)> = None;
            let mut watchdog = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let emit = |event: LinkEvent| {
                // A full queue means the front end is stuck; dropping a status line then beats
                // blocking the MQTT keep-alive. Replies are small and few per second.
                if events_tx.try_send(event).is_err() {
                    tracing::warn!("front end is not reading link events; one was dropped");
                }
            };
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    e = polled.recv() => match e {
                        Some(e) => e,
                        None => break,
                    },
                    _ = watchdog.tick() => {
                        let silent = heartbeat.filter(|(every, at)| at.elapsed() > *every * 3);
                        if let Some((every, at)) = silent {
                            heartbeat = None;
                            let reason = format!(
                                "no word from the hub for {} s (it says it is there every {} s)",
                                at.elapsed().as_secs(),
                                every.as_secs()
                            );
                            if let Some(change) = state.hub_lost(reason) {
                                reachable.store(false, Ordering::SeqCst);
                                emit(change);
                            }
                        }
                        continue;
                    }
                };
                let change = match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(broker = %endpoint, "connected to the broker");
                        for topic in &subscriptions {
                            if let Err(e) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                                tracing::error!(error = %e, topic, "cannot subscribe");
                            }
                        }
                        let _ = client.try_publish(
                            &presence_topic,
                            QoS::AtLeastOnce,
                            true,
                            presence(true, now_ms(), None),
                        );
                        state.broker(true)
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = match &link_seal {
                            Some(s) => match s.open(&p.topic, &p.payload) {
                                Ok(plain) => plain,
                                Err(e) => {
                                    tracing::warn!(topic = %p.topic, reason = %e, "dropped a message that did not come sealed from the hub");
                                    continue;
                                }
                            },
                            None => p.payload.to_vec(),
                        };
                        if p.topic == subscriptions[3] {
                            match decode::<HubPresence>(&payload, max_payload) {
                                Ok(hp) => {
                                    heartbeat = hp.heartbeat_ms.filter(|_| hp.online).map(|ms| {
                                        (Duration::from_millis(ms.max(100)), Instant::now())
                                    });
                                    let change = state.hub(hp.online);
                                    if change == Some(LinkEvent::HubReachable)
                                        && link_seal.is_some()
                                    {
                                        // A hub that restarted behind an external broker
                                        // learns this room is here.
                                        let _ = client.try_publish(
                                            &presence_topic,
                                            QoS::AtLeastOnce,
                                            true,
                                            presence(true, now_ms(), None),
                                        );
                                    }
                                    change
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "bad hub presence");
                                    None
                                }
                            }
                        } else {
                            match topics.parse(&p.topic) {
                                Some((_, Channel::Reply)) => {
                                    forward(&payload, max_payload, LinkEvent::Reply, &emit)
                                }
                                Some((_, Channel::Speech)) => {
                                    forward(&payload, max_payload, LinkEvent::Speech, &emit)
                                }
                                Some((_, Channel::Error)) => {
                                    forward(&payload, max_payload, LinkEvent::Error, &emit)
                                }
                                _ => {}
                            }
                            None
                        }
                    }
                    Ok(_) => None,
                    Err(e) => {
                        heartbeat = None;
                        let change = state.broker_lost(format!("cannot reach {endpoint}: {e}"));
                        if let Some(change) = change {
                            reachable.store(false, Ordering::SeqCst);
                            emit(change);
                        }
                        tracing::debug!(error = %e, "broker connection lost");
                        None
                    }
                };
                if let Some(change) = change {
                    reachable.store(change == LinkEvent::HubReachable, Ordering::SeqCst);
                    emit(change);
                }
            }
            // Leave cleanly: mark ourselves offline and let the queue drain briefly.
            let _ = client.try_publish(
                &presence_topic,
                QoS::AtLeastOnce,
                true,
                presence(false, now_ms(), None),
            );
            let _ = client.try_disconnect();
            // The poller ends once the disconnect is out.
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while polled.recv().await.is_some() {}
            })
            .await;
            poller.abort();
        });
        Ok((link, events_rx, task))
    }

    /// Whether the hub is reachable right now.
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::SeqCst)
    }

    /// Sends an utterance (QoS 1). Refused at once, not queued, while the hub is unreachable:
    /// a question answered minutes later would only confuse.
    pub async fn send(&self, utterance: &Utterance) -> Result<(), LinkError> {
        self.publish(Channel::Utterance, encode(utterance)).await
    }

    /// Tells the hub that the person cut a reply short.
    pub async fn cancel(&self, cancel: &Cancel) -> Result<(), LinkError> {
        self.publish(Channel::Cancel, encode(cancel)).await
    }

    async fn publish(&self, channel: Channel, payload: Vec<u8>) -> Result<(), LinkError> {
        if !self.is_reachable() {
            return Err(LinkError::Unreachable);
        }
        let topic = self
            .topics
            .terminal(&self.terminal, channel)
            .map_err(|_| LinkError::Stopped)?;
        let payload = match &self.seal {
            Some(seal) => seal.seal(&topic, payload),
            None => payload,
        };
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|_| LinkError::Stopped)
    }
}

fn forward<M: hearth_shared::WireMessage>(
    payload: &[u8],
    limit: usize,
    wrap: fn(M) -> LinkEvent,
    emit: &impl Fn(LinkEvent),
) {
    match decode::<M>(payload, limit) {
        Ok(m) => emit(wrap(m)),
        Err(e) => tracing::warn!(error = %e, "ignoring a bad message from the hub"),
    }
}

/// Broker connection and hub presence, combined into one reachable/unreachable state.
#[derive(Debug, Default)]
struct Reachability {
    broker_up: bool,
    hub_online: bool,
    /// What was last reported; `None` before the first report.
    reported: Option<bool>,
}

impl Reachability {
    fn broker(&mut self, up: bool) -> Option<LinkEvent> {
        self.broker_up = up;
        if !up {
            self.hub_online = false;
        }
        self.report("the broker connection closed".into())
    }

    fn broker_lost(&mut self, reason: String) -> Option<LinkEvent> {
        self.broker_up = false;
        self.hub_online = false;
        self.report(reason)
    }

    fn hub(&mut self, online: bool) -> Option<LinkEvent> {
        self.hub_online = online;
        self.report("the hub went offline".into())
    }

    fn hub_lost(&mut self, reason: String) -> Option<LinkEvent> {
        self.hub_online = false;
        self.report(reason)
    }

    fn report(&mut self, reason: String) -> Option<LinkEvent> {
        let now = self.broker_up && self.hub_online;
        // Connected to the broker but no hub presence yet: wait for it rather than report.
        if self.broker_up && !self.hub_online && self.reported.is_none() {
            return None;
        }
        if self.reported == Some(now) {
            return None;
        }
        self.reported = Some(now);
        Some(if now {
            LinkEvent::HubReachable
        } else {
            LinkEvent::HubUnreachable { reason }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_reports_only_changes() {
        let mut r = Reachability::default();
        assert_eq!(r.broker(true), None, "waits for the hub's presence");
        assert_eq!(r.hub(true), Some(LinkEvent::HubReachable));
        assert_eq!(r.hub(true), None);
        assert!(matches!(
            r.broker_lost("x".into()),
            Some(LinkEvent::HubUnreachable { .. })
        ));
        assert_eq!(r.broker_lost("x".into()), None);
        assert_eq!(r.broker(true), None, "broker back, hub presence not yet");
        assert_eq!(r.hub(true), Some(LinkEvent::HubReachable));
        assert!(
            matches!(r.hub(false), Some(LinkEvent::HubUnreachable { reason }) if reason.contains("offline"))
        );
    }

    #[test]
    fn first_failure_is_reported() {
        let mut r = Reachability::default();
        assert!(
            matches!(r.broker_lost("refused".into()), Some(LinkEvent::HubUnreachable { reason }) if reason == "refused")
        );
    }
}
