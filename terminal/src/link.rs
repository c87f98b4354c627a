//! The terminal's link to the hub over MQTT: presence with a Last Will, reconnects with
//! backoff, and one stream of [`LinkEvent`]s for whatever front end is attached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// A handle for sending to the hub.
#[derive(Clone)]
pub struct HubLink {
    client: AsyncClient,
    topics: Topics,
    terminal: String,
    reachable: Arc<AtomicBool>,
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
        let (owned_id, room) = (id.clone(), config.terminal.room.clone());
        let presence = move |online: bool, at_ms: u64| {
            encode(&Presence {
                terminal: owned_id.clone(),
                room: room.clone(),
                online,
                at_ms,
                capabilities: vec![
                    "text".to_string(),
                    hearth_shared::CAPABILITY_CANCEL.to_string(),
                ],
            })
        };
        let mut opts = MqttOptions::new(format!("hearth-terminal-{id}"), &h.host, h.port);
        opts.set_credentials(&h.username, &h.password)
            .set_keep_alive(Duration::from_secs(h.keep_alive_s))
            .set_clean_session(true)
            .set_max_packet_size(h.max_payload + 1024, h.max_payload + 1024)
            .set_last_will(LastWill::new(
                &presence_topic,
                presence(false, 0),
                QoS::AtLeastOnce,
                true,
            ));
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
        };
        let subscriptions = [
            topics.terminal(id, Channel::Reply)?,
            topics.terminal(id, Channel::Speech)?,
            topics.terminal(id, Channel::Error)?,
            topics.hub_presence(),
        ];
        let max_payload = h.max_payload;
        let (min_wait, max_wait) = (h.reconnect_min(), h.reconnect_max());
        let endpoint = format!("{}:{}", h.host, h.port);

        let task = tokio::spawn(async move {
            let mut state = Reachability::default();
            let mut wait = min_wait;
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
                    e = eventloop.poll() => e,
                };
                let change = match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        wait = min_wait;
                        tracing::info!(broker = %endpoint, "connected to the broker");
                        for topic in &subscriptions {
                            let _ = client.subscribe(topic, QoS::AtLeastOnce).await;
                        }
                        let _ = client
                            .publish(
                                &presence_topic,
                                QoS::AtLeastOnce,
                                true,
                                presence(true, now_ms()),
                            )
                            .await;
                        state.broker(true)
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if p.topic == subscriptions[3] {
                            match decode::<HubPresence>(&p.payload, max_payload) {
                                Ok(hp) => state.hub(hp.online),
                                Err(e) => {
                                    tracing::warn!(error = %e, "bad hub presence");
                                    None
                                }
                            }
                        } else {
                            match topics.parse(&p.topic) {
                                Some((_, Channel::Reply)) => {
                                    forward(&p.payload, max_payload, LinkEvent::Reply, &emit)
                                }
                                Some((_, Channel::Speech)) => {
                                    forward(&p.payload, max_payload, LinkEvent::Speech, &emit)
                                }
                                Some((_, Channel::Error)) => {
                                    forward(&p.payload, max_payload, LinkEvent::Error, &emit)
                                }
                                _ => {}
                            }
                            None
                        }
                    }
                    Ok(_) => None,
                    Err(e) => {
                        let change = state.broker_lost(format!("cannot reach {endpoint}: {e}"));
                        if let Some(change) = change {
                            reachable.store(false, Ordering::SeqCst);
                            emit(change);
                        }
                        tracing::debug!(error = %e, retry_in_ms = wait.as_millis() as u64, "reconnecting");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(max_wait);
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
                presence(false, now_ms()),
            );
            let _ = client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while let Ok(e) = eventloop.poll().await {
                    if let Event::Outgoing(rumqttc::Outgoing::Disconnect) = e {
                        break;
                    }
                }
            })
            .await;
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
