//! The hub's configuration: a serde struct with defaults, loaded from TOML, validated to an
//! error and never to a panic. `hearth-hub config` prints the defaults
//! (`config/hub.toml` in the repository).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
}

/// Reminders, timers and when the hub may speak first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PixieConfig {
    /// The reminder store (sled). `~/` is expanded.
    pub path: PathBuf,
    /// The household's time zone, an IANA name such as "Europe/Berlin"; empty: the system's.
    pub time_zone: String,
    /// How often the scheduler looks for due work, in ms.
    pub tick_ms: u64,
    /// Quiet hours in the household zone, "HH:MM-HH:MM" (may wrap past midnight); empty: none.
    pub quiet_hours: String,
    /// Speech at least this urgent is said in quiet hours too.
    pub quiet_hours_min_urgency: f32,
    /// Seconds between two proactive speeches.
    pub cooldown_s: u64,
    /// Speech at least this urgent skips the cooldown.
    pub cooldown_min_urgency: f32,
    /// The hub does not speak first in a room within this many seconds of the user speaking
    /// there, nor while it answers there.
    pub conversation_grace_s: u64,
    /// How urgent a reminder is.
    pub reminder_urgency: f32,
    /// How urgent a timer is (and a reminder "in N minutes" under an hour).
    pub timer_urgency: f32,
    /// A reminder said this many seconds or more after it fell due is said as late.
    pub late_after_s: u64,
    /// Pixie reflects on a room's conversation once it has been quiet this long (0: never).
    pub reflect_after_idle_s: u64,
    /// A follow-up question from a reflection is asked this many minutes later.
    pub follow_up_after_minutes: u64,
    /// A follow-up not asked within this many hours is dropped.
    pub follow_up_expire_hours: u64,
    /// How urgent a follow-up question is.
    pub follow_up_urgency: f32,
    /// While the user sounds stressed, speech below this urgency waits.
    pub stressed_min_urgency: f32,
    /// Speech below this urgency waits until the user was heard within
    /// `contact_window_minutes` (nobody would hear it).
    pub contact_min_urgency: f32,
    /// See `contact_min_urgency`.
    pub contact_window_minutes: u64,
}

impl Default for PixieConfig {
    fn default() -> Self {
        PixieConfig {
            path: PathBuf::from("~/.local/share/hearth/pixie"),
            time_zone: String::new(),
            tick_ms: 1000,
            quiet_hours: "22:30-07:00".to_string(),
            quiet_hours_min_urgency: 0.9,
            cooldown_s: 60,
            cooldown_min_urgency: 1.0,
            conversation_grace_s: 10,
            reminder_urgency: 0.7,
            timer_urgency: 1.0,
            late_after_s: 120,
            reflect_after_idle_s: 300,
            follow_up_after_minutes: 180,
            follow_up_expire_hours: 24,
            follow_up_urgency: 0.3,
            stressed_min_urgency: 0.5,
            contact_min_urgency: 0.5,
            contact_window_minutes: 240,
        }
    }
}

/// Where memories are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// The memory folder: `store/` (sled, the source of truth) and `fulltext/` (tantivy,
    /// derived). `~/` is expanded. Back it up with `hearth-hub memory export`.
    pub path: PathBuf,
    /// Salience, TTL, promotion, decay and archiving.
    pub lifecycle: crate::memory::lifecycle::LifecycleConfig,
    /// Hybrid retrieval weights.
    pub retrieval: crate::memory::retrieval::RetrievalConfig,
    /// Memories recalled into each prompt.
    pub recall_k: usize,
    /// The most characters of recalled memories in a prompt.
    pub context_chars: usize,
    /// Turns below this salience are not stored.
    pub min_salience: f32,
    /// A new turn this similar (cosine) to a stored memory re-warms it instead of being stored.
    pub recurrence_similarity: f32,
    /// ...and shares at least this share of its words with it (Jaccard).
    pub recurrence_word_overlap: f32,
    /// A spoken correction ("actually, ...") replaces the stored memory most similar to it,
    /// if at least this similar (cosine); otherwise it is stored as a new fact.
    pub correction_similarity: f32,
    /// Embed each memory together with what was said just before it in the room, so that an
    /// answer is found by the words of its question.
    pub embed_context: bool,
    /// Also embed each passage (sentence) of a memory on its own, and of a one-sentence
    /// memory its text without the context: retrieval scores a memory by its best passage
    /// too (`memory.retrieval.w_passage`).
    pub passage_vectors: bool,
    /// A sentence of fewer words joins the next one in a passage.
    pub passage_min_words: usize,
    /// Minutes between lifecycle sweeps (expiry, decay, consolidation); 0 turns them off.
    pub sweep_interval_minutes: u64,
    /// The memory graph.
    pub graph: crate::extract::GraphConfig,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            path: PathBuf::from("~/.local/share/hearth/memory"),
            lifecycle: crate::memory::lifecycle::LifecycleConfig::default(),
            retrieval: crate::memory::retrieval::RetrievalConfig::default(),
            recall_k: 5,
            context_chars: 1200,
            min_salience: 0.1,
            recurrence_similarity: 0.92,
            recurrence_word_overlap: 0.5,
            correction_similarity: 0.5,
            embed_context: true,
            passage_vectors: true,
            passage_min_words: 4,
            sweep_interval_minutes: 60,
            graph: crate::extract::GraphConfig::default(),
        }
    }
}

/// The sentence-embedding model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// An embedding GGUF (BERT-style, with pooling). `~/` is expanded.
    pub model: PathBuf,
    /// Threads for embedding.
    pub threads: u32,
    /// The most tokens of one text; longer texts are truncated.
    pub max_tokens: u32,
    /// Layers to offload to a GPU.
    pub gpu_layers: u32,
    /// How many embedding requests may wait.
    pub queue_capacity: usize,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            model: PathBuf::from("~/.cache/hearth/models/all-MiniLM-L6-v2.f16.gguf"),
            threads: 1,
            max_tokens: 256,
            gpu_layers: 0,
            queue_capacity: 64,
        }
    }
}

/// Where the broker runs and how the hub connects to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Run rumqttd inside the hub. When false, connect to `host:port` (mosquitto, say).
    pub embedded_broker: bool,
    /// Where the embedded broker listens. Loopback by default; set `0.0.0.0:1883` to serve
    /// terminals in other rooms.
    pub listen: SocketAddr,
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
}

/// The language model and how it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// The GGUF model file. `~/` is expanded. Production: a Gemma 4 GGUF.
    pub model: PathBuf,
    /// A llama.cpp template name (`chatml`, `gemma`, `llama3`, ...) used when the GGUF carries
    /// no `tokenizer.chat_template`. Empty: such a model is refused with an error.
    pub chat_template_fallback: String,
    /// Use this template name even when the GGUF has its own.
    pub chat_template_override: String,
    /// Threads for generation. Set it: llama.cpp's default oversubscribes small machines.
    pub threads: u32,
    /// Threads for prompt evaluation.
    pub threads_batch: u32,
    /// Context window in tokens.
    pub context_tokens: u32,
    /// Prompt evaluation batch size in tokens.
    pub batch_tokens: u32,
    /// Layers to offload to a GPU (0 on a CPU-only build).
    pub gpu_layers: u32,
    /// The most tokens in one reply.
    pub max_reply_tokens: u32,
    /// Sampling temperature; 0 means greedy (deterministic).
    pub temperature: f32,
    /// Nucleus sampling threshold, used when temperature > 0.
    pub top_p: f32,
    /// Sampling seed.
    pub seed: u32,
    /// How many requests may wait for the model before new ones get a `busy` error.
    pub queue_capacity: usize,
    /// Route llama.cpp's own log lines into the hub's log (at debug level).
    pub log_native: bool,
}

/// Conversation behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationConfig {
    /// The fixed system prompt. Its tokens are evaluated once and kept in the KV cache.
    pub system_prompt: String,
    /// How many past exchanges (user + assistant) per room go into the prompt.
    pub history_turns: usize,
    /// The most characters of utterance text the hub accepts.
    pub max_utterance_chars: usize,
    /// When another room is being answered and this one's answer has not started after this
    /// many ms, the hub says `one_moment_text` first; 0 never does.
    pub one_moment_ms: u64,
    /// What it says then.
    pub one_moment_text: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            embedded_broker: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            host: "127.0.0.1".to_string(),
            port: 1883,
            username: "hearth".to_string(),
            password: "change-me".to_string(),
            topic_prefix: "hearth".to_string(),
            broker_max_payload: 256 * 1024,
            max_payload: hearth_shared::DEFAULT_MAX_PAYLOAD,
            client_id: "hearth-hub".to_string(),
            keep_alive_s: 5,
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            model: PathBuf::from("~/.cache/hearth/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            chat_template_fallback: "chatml".to_string(),
            chat_template_override: String::new(),
            threads: 2,
            threads_batch: 2,
            context_tokens: 4096,
            batch_tokens: 512,
            gpu_layers: 0,
            max_reply_tokens: 256,
            temperature: 0.0,
            top_p: 0.95,
            seed: 42,
            queue_capacity: 16,
            log_native: false,
        }
    }
}

impl Default for ConversationConfig {
    fn default() -> Self {
        ConversationConfig {
            system_prompt: "You are Hearth, a warm and concise voice assistant for a household. \
                Answer in a few short spoken sentences, without lists or markup."
                .to_string(),
            history_turns: 6,
            max_utterance_chars: 2000,
            one_moment_ms: 1000,
            one_moment_text: "One moment.".to_string(),
        }
    }
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
        config.llm.model = expand_home(&config.llm.model);
        config.embeddings.model = expand_home(&config.embeddings.model);
        config.memory.path = expand_home(&config.memory.path);
        config.pixie.path = expand_home(&config.pixie.path);
        config.validate()?;
        Ok(config)
    }

    /// The defaults, with `~` expanded.
    pub fn with_defaults() -> HubConfig {
        let mut config = HubConfig::default();
        config.llm.model = expand_home(&config.llm.model);
        config.embeddings.model = expand_home(&config.embeddings.model);
        config.memory.path = expand_home(&config.memory.path);
        config.pixie.path = expand_home(&config.pixie.path);
        config
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
        let llm = &self.llm;
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
        let e = &self.embeddings;
        if e.threads == 0 || e.max_tokens < 8 || e.queue_capacity == 0 {
            return bad("embeddings.threads and embeddings.queue_capacity must be at least 1, embeddings.max_tokens at least 8".into());
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
}
