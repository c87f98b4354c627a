//! The embedded MQTT broker: rumqttd on its own thread, configured from the hub's config.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use serde::{Deserialize, Serialize};

use crate::trust::Gate;

/// Where the broker runs and how the hub connects to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Run rumqttd inside the hub. When false, connect to `host:port` (mosquitto, say).
    pub embedded_broker: bool,
    /// Where the embedded broker listens. Loopback by default; set `0.0.0.0:1883` to serve
    /// terminals in other rooms.
    pub listen: SocketAddr,
    /// A second listener of the embedded broker, with TLS, for terminals on the network
    /// (`"0.0.0.0:8883"`, say); empty for none. Terminals pin its certificate.
    pub tls_listen: String,
    /// The TLS listener's certificate (PEM); made, self-signed, when missing.
    pub tls_cert: PathBuf,
    /// Its private key (PEM, mode 0600); made with the certificate.
    pub tls_key: PathBuf,
    /// The broker the hub's own client connects to. With the embedded broker this is normally
    /// the listen address.
    pub host: String,
    /// The broker port for the hub's own client.
    pub port: u16,
    /// The username every client (hub and terminals) logs in with.
    pub username: String,
    /// The password for `username`. Change it.
    pub password: String,
    /// Topic prefix, shared with the terminals.
    pub topic_prefix: String,
    /// The largest MQTT payload the broker carries, in bytes.
    pub broker_max_payload: usize,
    /// The largest utterance payload the hub accepts, in bytes. Larger ones are answered with a
    /// `too_large` error. Keep it below `broker_max_payload` so that the hub sees them.
    pub max_payload: usize,
    /// The hub's MQTT client id.
    pub client_id: String,
    /// MQTT keep-alive, in seconds.
    pub keep_alive_s: u64,
    /// The embedded broker's limit on clients connected at once (a household has a few
    /// terminals, the hub and the odd tool).
    pub max_connections: usize,
    /// The embedded broker waits this long between accepting two connections, in ms, which
    /// bounds the rate of new connections (and of login checks).
    pub connection_delay_ms: u64,
    /// The first wait before reconnecting to a lost broker, in ms; it doubles each try...
    pub reconnect_min_ms: u64,
    /// ...up to this many ms.
    pub reconnect_max_ms: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            embedded_broker: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            tls_listen: String::new(),
            tls_cert: PathBuf::from("~/.local/share/hearth/tls/broker-cert.pem"),
            tls_key: PathBuf::from("~/.local/share/hearth/tls/broker-key.pem"),
            host: "127.0.0.1".to_string(),
            port: 1883,
            username: "hearth".to_string(),
            password: "change-me".to_string(),
            topic_prefix: "hearth".to_string(),
            broker_max_payload: 256 * 1024,
            max_payload: hearth_shared::DEFAULT_MAX_PAYLOAD,
            client_id: "hearth-hub".to_string(),
            keep_alive_s: 5,
            max_connections: 64,
            connection_delay_ms: 20,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5000,
        }
    }
}

impl MqttConfig {
    /// The TLS listener's address, if there is one (`tls_listen` is checked by validation).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_listen.parse().ok()
    }
}

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address is taken or not ours to bind.
    #[error("the embedded MQTT broker cannot listen on {addr}: {source}; stop whatever uses it or change mqtt.listen")]
    Bind {
        /// `mqtt.listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS certificate could not be made or read.
    #[error(transparent)]
    Tls(crate::tls::TlsError),
    /// The broker thread could not be spawned.
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
}

/// A running embedded broker. rumqttd has no stop call: the broker lives as long as the
/// process, which is how the hub uses it.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The broker's thread; it ends only if the broker fails.
    pub thread: std::thread::JoinHandle<()>,
}

/// rumqttd's settings for our config: one MQTT 3.1.1 listener; every login goes through
/// [`Gate::login`] (the hub's own, each paired terminal's bound to its client id, and the
/// shared one only while unpaired terminals are allowed).
pub fn rumqttd_config(cfg: &MqttConfig, gate: Arc<Gate>) -> Config {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 5_000,
        max_payload_size: cfg.broker_max_payload,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let mqtt = cfg.clone();
    connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
        let (gate, mqtt) = (Arc::clone(&gate), mqtt.clone());
        async move {
            // An argon2 check takes tens of milliseconds: off the broker's async threads.
            let checked = tokio::task::spawn_blocking(move || {
                let verdict = gate.login(&mqtt, &client_id, &user, &pass);
                (verdict, client_id, user)
            })
            .await;
            match checked {
                Ok((Ok(who), client_id, user)) => {
                    tracing::debug!(client_id, user, who, "MQTT login admitted");
                    true
                }
                Ok((Err(why), client_id, user)) => {
                    tracing::warn!(client_id, user, reason = why, "MQTT login refused");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "MQTT login check failed");
                    false
                }
            }
        }
    });
    let mut servers = HashMap::new();
    if let Some(addr) = cfg.tls_addr() {
        servers.insert(
            "2".to_string(),
            ServerSettings {
                name: "hearth-tls".to_string(),
                listen: addr,
                tls: Some(rumqttd::TlsConfig::Rustls {
                    capath: None,
                    certpath: cfg.tls_cert.display().to_string(),
                    keypath: cfg.tls_key.display().to_string(),
                }),
                next_connection_delay_ms: cfg.connection_delay_ms,
                connections: connections.clone(),
            },
        );
    }
    servers.insert(
        "1".to_string(),
        ServerSettings {
            name: "hearth-v4".to_string(),
            listen: cfg.listen,
            tls: None,
            next_connection_delay_ms: cfg.connection_delay_ms,
            connections,
        },
    );
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: 200,
            // A segment must hold at least one largest payload.
            max_segment_size: (cfg.broker_max_payload * 4).max(1 << 20),
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(servers),
        ..Config::default()
    }
}

/// Starts the broker on its own thread. The listen address is bound once first, so that a
/// taken port is a clear error here rather than a log line from inside rumqttd.
pub fn start(cfg: &MqttConfig, gate: Arc<Gate>) -> Result<EmbeddedBroker, BrokerError> {
    for addr in std::iter::once(cfg.listen).chain(cfg.tls_addr()) {
        let probe = TcpListener::bind(addr).map_err(|source| BrokerError::Bind { addr, source })?;
        drop(probe);
    }
    if cfg.tls_addr().is_some() {
        let fingerprint = crate::tls::ensure_cert(cfg).map_err(BrokerError::Tls)?;
        tracing::info!(addr = %cfg.tls_listen, %fingerprint, "the embedded broker also listens with TLS");
    }
    let mut broker = Broker::new(rumqttd_config(cfg, gate));
    let thread = std::thread::Builder::new()
        .name("mqtt-broker".to_string())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    tracing::info!(addr = %cfg.listen, "embedded MQTT broker started");
    Ok(EmbeddedBroker {
        addr: cfg.listen,
        thread,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Registry, TrustConfig};
    use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet};
    use std::time::Duration;

    /// Connects as `id` with the shared login: the event loop once the broker's ConnAck came,
    /// or `None` if the connection ended (or nothing came) first.
    async fn connect(cfg: &MqttConfig, id: &str) -> Option<(AsyncClient, EventLoop)> {
        let mut opts = MqttOptions::new(id, "127.0.0.1", cfg.listen.port());
        opts.set_credentials(&cfg.username, &cfg.password);
        let (client, mut events) = AsyncClient::new(opts, 4);
        let acked = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        });
        acked.await.unwrap_or(false).then_some((client, events))
    }

    /// Tries to connect as `id` up to `tries` times, 100 ms apart.
    async fn connect_within(
        cfg: &MqttConfig,
        id: &str,
        tries: usize,
    ) -> Option<(AsyncClient, EventLoop)> {
        for _ in 0..tries {
            if let Some(connected) = connect(cfg, id).await {
                return Some(connected);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// rumqttd 0.20 panicked with its will handlers' lock held when a client it had refused
    /// (the router full) connected again, and from then on refused every client; the patched
    /// copy in `vendor/rumqttd` (bytebeamio/rumqtt#1062) keeps the listener serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_refused_at_the_limit_can_try_again_without_breaking_the_broker() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = MqttConfig {
            listen: ([127, 0, 0, 1], port).into(),
            max_connections: 2,
            connection_delay_ms: 0,
            ..MqttConfig::default()
        };
        let registry = Registry::open(&dir.path().join("terminals.json")).unwrap();
        let gate = Arc::new(Gate::new(TrustConfig::default(), registry));
        let _broker = start(&cfg, gate).unwrap();

        // The broker thread starts listening a moment after `start` returns.
        let first = connect_within(&cfg, "kitchen", 50).await;
        let first = first.expect("the broker admits a first client");
        let _second = connect(&cfg, "study").await.expect("and a second");
        for _ in 0..2 {
            assert!(
                connect(&cfg, "hall").await.is_none(),
                "a third is over the limit"
            );
        }
        drop(first);
        // The router frees the place when it reads the closed connection.
        let again = connect_within(&cfg, "landing", 30).await;
        assert!(
            again.is_some(),
            "a client is admitted once a place is free again"
        );
    }
}
