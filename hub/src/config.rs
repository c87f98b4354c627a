//! The hub's configuration: the sections each subsystem defines (`MqttConfig` in `broker`,
//! `LlmConfig` in `llm`, `PixieConfig` in `pixie`, ...), composed into one serde struct with
//! defaults, loaded from TOML, validated to an error and never to a panic. `hearth-hub config` prints the defaults
//! (`config/hub.toml` in the repository).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::broker::MqttConfig;
pub use crate::conversation::ConversationConfig;
pub use crate::llm::embed::EmbeddingConfig;
pub use crate::llm::LlmConfig;
pub use crate::memory::MemoryConfig;
pub use crate::pixie::PixieConfig;

/// The shipped default configuration, with comments. It parses to `HubConfig::default()`.
pub const DEFAULT_TOML: &str = include_str!("../../config/hub.toml");

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

/// A secret from the environment variable `env`, else `value`; `None` when neither holds
/// more than spaces. Trimmed.
pub fn secret_from(env: &str, value: &str) -> Option<String> {
    std::env::var(env)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| Some(value.to_string()).filter(|t| !t.trim().is_empty()))
        .map(|t| t.trim().to_string())
}

/// The whole hub configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// MQTT: the embedded broker or an external one, and the hub's client.
    pub mqtt: MqttConfig,
    /// The language model.
    pub llm: LlmConfig,
    /// Conversation behaviour.
    pub conversation: ConversationConfig,
    /// The sentence-embedding model (for memory retrieval).
    pub embeddings: EmbeddingConfig,
    /// Where memories are stored.
    pub memory: MemoryConfig,
    /// Reminders, timers and speaking first.
    pub pixie: PixieConfig,
    /// Emotion scoring and what it shapes.
    pub emotion: crate::emotion::EmotionConfig,
    /// Pairing, sealed messages and load limits.
    pub trust: crate::trust::TrustConfig,
    /// What each language-model job (answers, history compression, graph writes, Pixie)
    /// runs with.
    pub roles: crate::llm::RolesConfig,
    /// Who answers in which room, and how each persona sounds.
    pub personas: crate::persona::PersonasConfig,
    /// The OpenAI-compatible endpoint (off by default).
    pub api: crate::api::ApiConfig,
    /// The household's web dashboard (off by default).
    pub dashboard: crate::dashboard::DashboardConfig,
}

impl HubConfig {
    /// Loads and validates a TOML file. Missing fields take their defaults.
    pub fn load(path: &Path) -> Result<HubConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: HubConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        config.expand_paths();
        config.personas.load().map_err(ConfigError::Invalid)?;
        config.validate()?;
        Ok(config)
    }

    /// The file at `path` (the defaults without one), with `model` in place of `llm.model`
    /// when given, validated: what each binary runs with.
    pub fn from_args(path: Option<&Path>, model: Option<&Path>) -> Result<HubConfig, ConfigError> {
        let mut config = match path {
            Some(path) => HubConfig::load(path)?,
            None => HubConfig::with_defaults(),
        };
        if let Some(model) = model {
            config.llm.model = model.to_path_buf();
        }
        config.validate()?;
        Ok(config)
    }

    /// Expands a leading `~` in every path setting.
    fn expand_paths(&mut self) {
        for path in [
            &mut self.llm.model,
            &mut self.embeddings.model,
            &mut self.memory.path,
            &mut self.pixie.path,
            &mut self.trust.registry,
            &mut self.mqtt.tls_cert,
            &mut self.mqtt.tls_key,
            &mut self.personas.dir,
        ] {
            *path = expand_home(path);
        }
        for path in self.roles.adapter_paths() {
            if !path.as_os_str().is_empty() {
                *path = expand_home(path);
            }
        }
    }

    /// The defaults, with `~` expanded.
    pub fn with_defaults() -> HubConfig {
        let mut config = HubConfig::default();
        config.expand_paths();
        config
    }

    /// Refuses to serve beyond this machine with a login anyone could guess: the embedded
    /// broker listening beyond loopback needs a changed `mqtt.password` and
    /// `trust.allow_unpaired = false`. The error says which key to change.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        let m = &self.mqtt;
        let beyond = |addr: std::net::SocketAddr| !addr.ip().is_loopback();
        let exposed = beyond(m.listen) || m.tls_addr().is_some_and(beyond);
        if !m.embedded_broker || !exposed {
            return Ok(());
        }
        let mut fix = Vec::new();
        if m.password == crate::broker::MqttConfig::default().password || m.password.len() < 12 {
            fix.push("set mqtt.password to a long random password (the default, or anything under 12 characters, is refused)");
        }
        if self.trust.allow_unpaired {
            fix.push("set trust.allow_unpaired = false and pair each terminal (hearth-hub pair <id> --room <room>)");
        }
        if fix.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Invalid(format!(
            "the embedded broker listens beyond this machine ({}{}), so every room's microphone would open to anyone on the network: {}; or listen on 127.0.0.1",
            m.listen,
            if m.tls_listen.is_empty() { String::new() } else { format!(", TLS {}", m.tls_listen) },
            fix.join("; and ")
        )))
    }

    /// Checks every value that could make the hub misbehave later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        hearth_shared::Topics::new(&self.mqtt.topic_prefix)
            .map_err(|e| ConfigError::Invalid(format!("mqtt.topic_prefix: {e}")))?;
        if self.mqtt.username.is_empty() || self.mqtt.password.is_empty() {
            return bad(
                "mqtt.username and mqtt.password must be set: the broker always requires a login"
                    .into(),
            );
        }
        if self.mqtt.max_payload == 0 || self.mqtt.max_payload >= self.mqtt.broker_max_payload {
            return bad(format!(
                "mqtt.max_payload ({}) must be above 0 and below mqtt.broker_max_payload ({})",
                self.mqtt.max_payload, self.mqtt.broker_max_payload
            ));
        }
        if self.mqtt.keep_alive_s == 0 {
            return bad("mqtt.keep_alive_s must be at least 1".into());
        }
        if self.mqtt.reconnect_min_ms == 0
            || self.mqtt.reconnect_max_ms < self.mqtt.reconnect_min_ms
        {
            return bad(
                "mqtt.reconnect_min_ms must be at least 1 and at most mqtt.reconnect_max_ms".into(),
            );
        }
        let llm = &self.llm;
        if !(1..=64).contains(&llm.parallel) || llm.parallel > llm.batch_tokens {
            return bad(format!(
                "llm.parallel ({}) must be 1 to 64, and at most llm.batch_tokens ({}): each step's batch holds a token of each",
                llm.parallel, llm.batch_tokens
            ));
        }
        if llm.backend == crate::llm::Backend::Openai {
            llm.openai.check().map_err(ConfigError::Invalid)?;
        }
        self.api.check().map_err(ConfigError::Invalid)?;
        self.dashboard
            .check(!self.mqtt.tls_listen.is_empty())
            .map_err(ConfigError::Invalid)?;
        if llm.threads == 0 || llm.threads_batch == 0 {
            return bad("llm.threads and llm.threads_batch must be at least 1".into());
        }
        if llm.context_tokens < 256 {
            return bad(format!(
                "llm.context_tokens ({}) must be at least 256",
                llm.context_tokens
            ));
        }
        if llm.batch_tokens == 0 {
            return bad("llm.batch_tokens must be at least 1".into());
        }
        if llm.max_reply_tokens == 0 || llm.max_reply_tokens >= llm.context_tokens / 2 {
            return bad(format!(
                "llm.max_reply_tokens ({}) must be between 1 and half of llm.context_tokens ({})",
                llm.max_reply_tokens, llm.context_tokens
            ));
        }
        if !(0.0..=5.0).contains(&llm.temperature) || !(0.0..=1.0).contains(&llm.top_p) {
            return bad("llm.temperature must be in 0..=5 and llm.top_p in 0..=1".into());
        }
        if llm.queue_capacity == 0 {
            return bad("llm.queue_capacity must be at least 1".into());
        }
        self.roles.check().map_err(ConfigError::Invalid)?;
        self.personas.check().map_err(ConfigError::Invalid)?;
        let c = &self.conversation;
        if c.history_budget_tokens > 0
            && (c.keep_recent_turns == 0
                || c.summary_tokens == 0
                || c.summary_tokens >= c.history_budget_tokens)
        {
            return bad(format!(
                "with conversation.history_budget_tokens ({}) set, conversation.keep_recent_turns must be at least 1 and conversation.summary_tokens ({}) between 1 and the budget",
                c.history_budget_tokens, c.summary_tokens
            ));
        }
        let l = &self.memory.lifecycle;
        if !(l.short_term_ttl_hours > 0.0
            && l.base_strength_days > 0.0
            && l.recall_strength_factor >= 1.0
            && (0.0..1.0).contains(&l.archive_floor)
            && l.ttl_salience_gain >= 0.0
            && l.strength_salience_gain >= 0.0
            && (0.0..=1.0).contains(&l.rational_weight))
        {
            return bad("memory.lifecycle: TTL and strength must be positive, recall_strength_factor at least 1, archive_floor in [0, 1), gains non-negative, rational_weight in [0, 1]".into());
        }
        let r = &self.memory.retrieval;
        if !(0.0..=1.0).contains(&r.unnamed_share) {
            return bad(format!(
                "memory.retrieval.unnamed_share ({}) must be in [0, 1]: the share of the way a question's embedding moves towards the question without its names",
                r.unnamed_share
            ));
        }
        let e = &self.embeddings;
        if e.threads == 0 || e.max_tokens < 8 || e.queue_capacity == 0 {
            return bad("embeddings.threads and embeddings.queue_capacity must be at least 1, embeddings.max_tokens at least 8".into());
        }
        if !self.mqtt.tls_listen.is_empty() && self.mqtt.tls_addr().is_none() {
            return bad(format!(
                "mqtt.tls_listen ({:?}) must be an address and port such as \"0.0.0.0:8883\", or empty",
                self.mqtt.tls_listen
            ));
        }
        let t = &self.trust;
        if t.replay_window_s == 0
            || t.heartbeat_s == 0
            || t.burst == 0
            || t.per_minute == 0
            || t.max_turns == 0
        {
            return bad("trust.replay_window_s, heartbeat_s, burst, per_minute and max_turns must be at least 1".into());
        }
        if self.conversation.max_utterance_chars == 0 {
            return bad("conversation.max_utterance_chars must be at least 1".into());
        }
        let p = &self.pixie;
        crate::pixie::phrase::zone(&p.time_zone)
            .map_err(|e| ConfigError::Invalid(format!("pixie.time_zone: {e}")))?;
        crate::pixie::interrupt::QuietHours::parse(&p.quiet_hours)
            .map_err(|e| ConfigError::Invalid(format!("pixie.quiet_hours: {e}")))?;
        if p.tick_ms == 0 {
            return bad("pixie.tick_ms must be at least 1".into());
        }
        let e = &self.emotion;
        if !((0.0..=1.0).contains(&e.inertia)
            && (-1.0..=1.0).contains(&e.baseline_valence)
            && e.half_life_minutes > 0.0
            && e.concern_recency_factor > 0.0
            && (0.0..=1.0).contains(&e.neutral_salience))
        {
            return bad("emotion: inertia and neutral_salience must be in [0, 1], baseline_valence in [-1, 1], half_life_minutes and concern_recency_factor above 0".into());
        }
        Ok(())
    }
}

/// Expands a leading `~/` to `$HOME/`.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_is_the_default() {
        let parsed: HubConfig = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed, HubConfig::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn empty_file_gives_defaults_and_unknown_keys_are_refused() {
        assert_eq!(
            toml::from_str::<HubConfig>("").unwrap(),
            HubConfig::default()
        );
        let err = toml::from_str::<HubConfig>("[llm]\nthreds = 2\n").unwrap_err();
        assert!(err.to_string().contains("threds"), "{err}");
    }

    #[test]
    fn invalid_values_are_errors() {
        type Mutation = Box<dyn Fn(&mut HubConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "topic_prefix",
                Box::new(|c| c.mqtt.topic_prefix = "a/#".into()),
            ),
            ("password", Box::new(|c| c.mqtt.password.clear())),
            (
                "max_payload",
                Box::new(|c| c.mqtt.max_payload = c.mqtt.broker_max_payload),
            ),
            ("threads", Box::new(|c| c.llm.threads = 0)),
            ("context_tokens", Box::new(|c| c.llm.context_tokens = 10)),
            (
                "max_reply_tokens",
                Box::new(|c| c.llm.max_reply_tokens = 4000),
            ),
            ("temperature", Box::new(|c| c.llm.temperature = -1.0)),
            ("queue_capacity", Box::new(|c| c.llm.queue_capacity = 0)),
            (
                "pixie.time_zone",
                Box::new(|c| c.pixie.time_zone = "Mars/Olympus".into()),
            ),
            (
                "pixie.quiet_hours",
                Box::new(|c| c.pixie.quiet_hours = "late".into()),
            ),
            (
                "summary_tokens",
                Box::new(|c| c.conversation.summary_tokens = 900),
            ),
            (
                "keep_recent_turns",
                Box::new(|c| c.conversation.keep_recent_turns = 0),
            ),
            (
                "roles.pixie.temperature",
                Box::new(|c| c.roles.pixie.temperature = 7.0),
            ),
            (
                "unnamed_share",
                Box::new(|c| c.memory.retrieval.unnamed_share = 1.5),
            ),
        ];
        for (needle, mutate) in cases {
            let mut c = HubConfig::default();
            mutate(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn load_names_the_file_on_errors() {
        let err = HubConfig::load(Path::new("/nonexistent/hub.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/hub.toml"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "[mqtt]\nport = \"x\"\n").unwrap();
        let err = HubConfig::load(&path).unwrap_err();
        assert!(err.to_string().contains("hub.toml"), "{err}");
    }

    #[test]
    fn listening_beyond_loopback_needs_a_real_password_and_pairing() {
        let mut config = HubConfig::default();
        assert!(
            config.check_exposure().is_ok(),
            "loopback with the defaults"
        );
        config.mqtt.listen = "0.0.0.0:1883".parse().unwrap();
        let err = config.check_exposure().unwrap_err().to_string();
        assert!(
            err.contains("mqtt.password") && err.contains("trust.allow_unpaired"),
            "{err}"
        );
        config.mqtt.password = "a long household secret".into();
        let err = config.check_exposure().unwrap_err().to_string();
        assert!(
            !err.contains("mqtt.password") && err.contains("allow_unpaired"),
            "{err}"
        );
        config.trust.allow_unpaired = false;
        assert!(config.check_exposure().is_ok());
        config.mqtt.password = "change-me".into();
        assert!(config.check_exposure().is_err());
    }
}
