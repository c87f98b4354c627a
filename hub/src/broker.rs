//! The embedded MQTT broker: rumqttd on its own thread, configured from the hub's config.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::config::MqttConfig;

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
}

/// rumqttd's settings for our config: one MQTT 3.1.1 listener, username/password required.
pub fn rumqttd_config(cfg: &MqttConfig) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 5_000,
        max_payload_size: cfg.broker_max_payload,
        max_inflight_count: 100,
        auth: Some(HashMap::from([(
            cfg.username.clone(),
            cfg.password.clone(),
        )])),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "hearth-v4".to_string(),
        listen: cfg.listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1024,
            max_outgoing_packet_count: 200,
            // A segment must hold at least one largest payload.
            max_segment_size: (cfg.broker_max_payload * 4).max(1 << 20),
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    }
}

/// Starts the broker on its own thread. The listen address is bound once first, so that a
/// taken port is a clear error here rather than a log line from inside rumqttd.
pub fn start(cfg: &MqttConfig) -> Result<EmbeddedBroker, BrokerError> {
    let probe = TcpListener::bind(cfg.listen).map_err(|source| BrokerError::Bind {
        addr: cfg.listen,
        source,
    })?;
    drop(probe);
    let mut broker = Broker::new(rumqttd_config(cfg));
    std::thread::Builder::new()
        .name("mqtt-broker".to_string())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    tracing::info!(addr = %cfg.listen, "embedded MQTT broker started");
    Ok(EmbeddedBroker { addr: cfg.listen })
}
