//! The terminal's configuration: serde with defaults, loaded from TOML, validated to an error.
//! `hearth-terminal config` prints the defaults (`config/terminal.toml` in the repository).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The shipped default configuration. It parses to `TerminalConfig::default()`.
pub const DEFAULT_TOML: &str = include_str!("../../config/terminal.toml");

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("config file {path} is invalid: {source}")]
    Parse {
        /// The config path.
        path: PathBuf,
        /// What the TOML parser said.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole terminal configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TerminalConfig {
    /// Who and where this terminal is.
    pub terminal: Identity,
    /// How to reach the hub.
    pub hub: HubConnection,
}

/// Who and where this terminal is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    /// Unique terminal id, used in topics.
    pub id: String,
    /// The room, such as "kitchen".
    pub room: String,
}

/// How to reach the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConnection {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Broker username.
    pub username: String,
    /// Broker password.
    pub password: String,
    /// Topic prefix, the same as the hub's.
    pub topic_prefix: String,
    /// MQTT keep-alive in seconds.
    pub keep_alive_s: u64,
    /// First reconnect delay.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    pub reconnect_max_ms: u64,
    /// The longest wait for the first chunk of a reply.
    pub first_chunk_timeout_s: u64,
    /// The longest wait between chunks of a reply.
    pub chunk_timeout_s: u64,
    /// Largest payload accepted from the hub.
    pub max_payload: usize,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            id: "kitchen".to_string(),
            room: "kitchen".to_string(),
        }
    }
}

impl Default for HubConnection {
    fn default() -> Self {
        HubConnection {
            host: "127.0.0.1".to_string(),
            port: 1883,
            username: "hearth".to_string(),
            password: "change-me".to_string(),
            topic_prefix: "hearth".to_string(),
            keep_alive_s: 5,
            reconnect_min_ms: 200,
            reconnect_max_ms: 5000,
            first_chunk_timeout_s: 60,
            chunk_timeout_s: 30,
            max_payload: hearth_shared::DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl HubConnection {
    /// The first reconnect delay.
    pub fn reconnect_min(&self) -> Duration {
        Duration::from_millis(self.reconnect_min_ms)
    }

    /// The longest reconnect delay.
    pub fn reconnect_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_ms)
    }
}

impl TerminalConfig {
    /// Loads and validates a TOML file. Missing fields take their defaults.
    pub fn load(path: &Path) -> Result<TerminalConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: TerminalConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that could make the terminal misbehave later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !hearth_shared::valid_terminal_id(&self.terminal.id) {
            return bad(format!(
                "terminal.id {:?} must be 1 to 64 ASCII letters, digits, '-' or '_'",
                self.terminal.id
            ));
        }
        if self.terminal.room.trim().is_empty() || self.terminal.room.len() > 64 {
            return bad("terminal.room must be 1 to 64 bytes".into());
        }
        hearth_shared::Topics::new(&self.hub.topic_prefix)
            .map_err(|e| ConfigError::Invalid(format!("hub.topic_prefix: {e}")))?;
        let h = &self.hub;
        if h.keep_alive_s == 0 {
            return bad("hub.keep_alive_s must be at least 1".into());
        }
        if h.reconnect_min_ms == 0 || h.reconnect_min_ms > h.reconnect_max_ms {
            return bad(
                "hub.reconnect_min_ms must be above 0 and at most hub.reconnect_max_ms".into(),
            );
        }
        if h.first_chunk_timeout_s == 0 || h.chunk_timeout_s == 0 {
            return bad(
                "hub.first_chunk_timeout_s and hub.chunk_timeout_s must be at least 1".into(),
            );
        }
        if h.max_payload == 0 {
            return bad("hub.max_payload must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_is_the_default() {
        let parsed: TerminalConfig = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed, TerminalConfig::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn invalid_values_are_errors() {
        let mut c = TerminalConfig::default();
        c.terminal.id = "living room".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("terminal.id"));
        let mut c = TerminalConfig::default();
        c.hub.reconnect_min_ms = 10_000;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("reconnect_min_ms"));
        let err = toml::from_str::<TerminalConfig>("[hub]\nprot = 1\n").unwrap_err();
        assert!(err.to_string().contains("prot"));
    }
}
