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

/// Where `scripts/fetch-models` puts the models, and so where the defaults point.
pub const MODELS_DIR: &str = "~/.cache/hearth/models";
// The file names `scripts/fetch-models` gives the terminal's models.
const WHISPER: &str = "ggml-tiny.en.bin";
const MOONSHINE: &str = "moonshine-tiny-en";
const ONNXRUNTIME: &str = "libonnxruntime.so.1.31.1";
const WAKE_WORD: &str = "hey_jarvis_v0.1.onnx";
const WAKE_MEL: &str = "oww-melspectrogram.onnx";
const WAKE_EMBEDDING: &str = "oww-embedding.onnx";
const PIPER_VOICE: &str = "en_US-joe-medium.onnx";

fn fetched(file: &str) -> PathBuf {
    Path::new(MODELS_DIR).join(file)
}

/// The whole terminal configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TerminalConfig {
    /// Who and where this terminal is.
    pub terminal: Identity,
    /// How to reach the hub.
    pub hub: HubConnection,
    /// Speech to text.
    pub stt: SttConfig,
    /// The voice front end: audio source and sink, runtime library.
    pub voice: VoiceConfig,
    /// The wake word.
    pub wake: WakeConfig,
    /// Listening for an utterance: endpointing and the follow-up window.
    pub listen: ListenConfig,
    /// Speech out (a Piper voice).
    pub tts: TtsConfig,
}

/// Speech out: a Piper voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsConfig {
    /// The voice's ONNX model.
    pub voice: PathBuf,
    /// The voice's JSON config; unset, the model's path with `.json` added.
    pub voice_config: Option<PathBuf>,
    /// The folder that holds `espeak-ng-data`; unset, Debian's places are searched.
    pub espeak_data: Option<PathBuf>,
    /// onnxruntime threads for synthesis.
    pub threads: u32,
    /// Longer sentences are synthesized in parts of at most this many words, cut after a
    /// comma where there is one: synthesis memory grows with a part's length (about 30 MB per
    /// second of speech with the medium voice).
    pub max_piece_words: usize,
    /// Speaking pace: above 1 is slower, below faster.
    pub length_scale: f32,
    /// How much the voice varies its sound (VITS `noise_scale`); unset, the voice's own. 0
    /// speaks the same text the same way every time.
    pub noise_scale: Option<f32>,
    /// How much the voice varies its timing (VITS `noise_w`); unset, the voice's own.
    pub noise_w: Option<f32>,
    /// The speaker, for voices with several.
    pub speaker: Option<i64>,
    /// A reply's first words are synthesized alone, up to its first clause or this many words
    /// (0: whole sentences), so that the first audio comes sooner.
    pub first_piece_words: usize,
    /// More Piper voices, by the name a persona's voice gives (`model` in the hub's persona
    /// file): each an ONNX model with its `.onnx.json` beside it, loaded at start.
    pub voices: std::collections::BTreeMap<String, PathBuf>,
}

impl TtsConfig {
    /// This voice without its noise (`noise_scale` and `noise_w` 0): a text is spoken the
    /// same way every time.
    pub fn without_noise(&self) -> TtsConfig {
        TtsConfig {
            noise_scale: Some(0.0),
            noise_w: Some(0.0),
            ..self.clone()
        }
    }
}

impl Default for TtsConfig {
    fn default() -> Self {
        TtsConfig {
            voice: fetched(PIPER_VOICE),
            voice_config: None,
            espeak_data: None,
            threads: 2,
            max_piece_words: 8,
            length_scale: 1.0,
            noise_scale: None,
            noise_w: None,
            speaker: None,
            first_piece_words: 3,
            voices: Default::default(),
        }
    }
}

/// Listening for an utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// The utterance ends after this much silence following speech, unless an early
    /// transcript moved the wait (below).
    pub silence_ms: u32,
    /// When the early transcript reads as a finished request, the utterance ends after this
    /// much silence instead (0: always wait `silence_ms`). A person who pauses longer after
    /// words that read as finished ("tell me a short story ... about a lighthouse keeper") is
    /// cut off there; README's spoken-turn section measures how often.
    pub complete_silence_ms: u32,
    /// When it stops on a word another must follow ("remind me to", "and"), or is a timer or
    /// reminder without its time ("set a timer"), wait this long.
    pub incomplete_silence_ms: u32,
    /// Start transcribing after this much silence, while the endpointer still waits for
    /// `silence_ms`: if the person says no more, the transcript is ready that much sooner.
    /// 0 (or `silence_ms` and above) waits for the end. Speech going on drops it, and no other
    /// starts until a dropped one has finished.
    pub early_decode_ms: u32,
    /// The longest utterance; longer speech is cut here.
    pub max_utterance_ms: u32,
    /// Give up listening when nobody speaks for this long after the wake word.
    pub no_speech_ms: u32,
    /// Voice-activity score (0 to 1) that counts as speech.
    pub vad_threshold: f32,
    /// After a reply (or Pixie's question), listen this long for an answer without the wake
    /// word. 0 turns it off.
    pub follow_up_ms: u32,
    /// Listen all the time, without a wake word (a quiet room, a headset).
    pub always: bool,
    /// Push-to-talk: Enter on stdin starts listening, as the wake word does (which still works).
    pub push_to_talk: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            silence_ms: 800,
            complete_silence_ms: 400,
            incomplete_silence_ms: 1200,
            early_decode_ms: 80,
            max_utterance_ms: 15_000,
            no_speech_ms: 5_000,
            vad_threshold: 0.5,
            follow_up_ms: 6_000,
            always: false,
            push_to_talk: false,
        }
    }
}

/// The voice front end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceConfig {
    /// onnxruntime's shared library (the wake word runs on it).
    pub onnxruntime: PathBuf,
    /// Read the microphone from this WAV file instead of a sound card.
    pub input_wav: Option<PathBuf>,
    /// Read `input_wav` at the pace of a live microphone rather than as fast as the models go.
    pub input_realtime: bool,
    /// Play into this WAV file instead of a sound card.
    pub output_wav: Option<PathBuf>,
    /// The sound card to listen on, by id or a word of its description (`hearth-terminal
    /// devices` lists them); unset, the default.
    pub input_device: Option<String>,
    /// The sound card to speak on; unset, the default.
    pub output_device: Option<String>,
    /// Audio handed to the sound card ahead of playing it, so that a late listener step does
    /// not leave a gap in the middle of a word (a barge-in drops it at once).
    pub playback_lead_ms: u32,
    /// Take the terminal's own speech out of what the microphone hears (speexdsp's acoustic
    /// echo canceller, with what the speaker plays as the reference), so that the wake word
    /// still works while it speaks and its words are never taken for the user's. For a sound
    /// card only: a WAV file (`--input-wav`) does not hear the speaker.
    pub echo_cancel: bool,
    /// The canceller's filter length: it cancels echoes that arrive up to this long after the
    /// sound played (the sound card's latency and the room's reverberation together).
    pub echo_filter_ms: u32,
    /// After the canceller, Speex's preprocessor suppresses the echo left (and noise, with it):
    /// 15-33 dB of echo reduction on speech instead of 10-20.
    pub echo_preprocess: bool,
    /// Delay the reference by this much: a sound card's own output and input latency, when it
    /// is known and takes the echo beyond the filter.
    pub echo_delay_ms: u32,
}

impl VoiceConfig {
    /// The echo canceller's settings, if it is on.
    pub fn echo(&self) -> Option<crate::audio::echo::EchoSettings> {
        self.echo_cancel
            .then_some(crate::audio::echo::EchoSettings {
                filter_ms: self.echo_filter_ms,
                preprocess: self.echo_preprocess,
                delay_ms: self.echo_delay_ms,
            })
    }
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            onnxruntime: fetched(ONNXRUNTIME),
            input_wav: None,
            input_realtime: false,
            output_wav: None,
            input_device: None,
            output_device: None,
            playback_lead_ms: 160,
            echo_cancel: true,
            echo_filter_ms: 100,
            echo_preprocess: false,
            echo_delay_ms: 0,
        }
    }
}

/// The wake word (openWakeWord models).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WakeConfig {
    /// The wake-word classifier ("hey jarvis" by default).
    pub model: PathBuf,
    /// openWakeWord's mel-spectrogram model.
    pub mel_model: PathBuf,
    /// openWakeWord's speech-embedding model.
    pub embedding_model: PathBuf,
    /// The score (0 to 1) at which the wake word counts as heard.
    pub threshold: f32,
    /// After a detection, no other for this long (one utterance of the word scores high for
    /// several 80 ms steps).
    pub refractory_ms: u32,
    /// Interleaved scoring streams, 1 to 8: phase `p` scores `p * 80 / phases` ms behind the
    /// newest audio, so that where the 80 ms steps fall matters less. Each costs an embedding
    /// and a classifier run per step while the model runs.
    pub phases: u32,
    /// A step scoring at least this (but under `threshold`) is a candidate: speech to text
    /// checks the audio around it for `phrase`. 0 turns the check off.
    pub verify_threshold: f32,
    /// The wake phrase as speech to text writes it; its last word is what the check and the
    /// transcript's trimming look for.
    pub phrase: String,
    /// The utterance starts this long before the wake word was detected, so that a request
    /// run straight on from the wake word keeps its first words; the wake phrase is then cut
    /// from the transcript.
    pub pre_roll_ms: u32,
    /// Run the model only around speech (voice activity in the last two seconds, replayed
    /// when speech starts); idle listening then costs the voice-activity detector alone.
    pub vad_gate: bool,
    /// The speech-to-text engine that checks low scores. whisper, told the phrase, spells
    /// the name far more reliably than Moonshine, which takes no prompt ("Hey Jarvis" came out
    /// as "Hey, John"); with `stt.engine = "moonshine"` this loads whisper's `stt.model` too,
    /// for the checks alone.
    pub check_engine: SttEngine,
}

impl Default for WakeConfig {
    fn default() -> Self {
        WakeConfig {
            model: fetched(WAKE_WORD),
            mel_model: fetched(WAKE_MEL),
            embedding_model: fetched(WAKE_EMBEDDING),
            threshold: 0.5,
            refractory_ms: 2000,
            phases: 2,
            verify_threshold: 0.025,
            phrase: "hey jarvis".to_string(),
            pre_roll_ms: 1500,
            vad_gate: true,
            check_engine: SttEngine::Whisper,
        }
    }
}

/// Which speech-to-text engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SttEngine {
    /// whisper.cpp on a ggml model (`stt.model`).
    #[default]
    Whisper,
    /// Moonshine's ONNX Runtime models (`stt.moonshine_model`), on onnxruntime.
    Moonshine,
}

impl std::fmt::Display for SttEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SttEngine::Whisper => "whisper",
            SttEngine::Moonshine => "moonshine",
        })
    }
}

/// Speech to text (whisper.cpp or Moonshine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttConfig {
    /// The engine: "whisper" or "moonshine".
    pub engine: SttEngine,
    /// A whisper ggml model file; `~` is the home folder.
    pub model: PathBuf,
    /// A Moonshine model folder holding `encoder_model.ort`, `decoder_model_merged.ort` and
    /// `tokenizer.bin`, as Moonshine's own packages ship them.
    pub moonshine_model: PathBuf,
    /// onnxruntime's shared library, for Moonshine. One process loads one onnxruntime, so it
    /// must be `voice.onnxruntime` (the config check says so).
    pub onnxruntime: PathBuf,
    /// The spoken language, as a whisper code ("en"); "auto" detects it (multilingual models).
    pub language: String,
    /// Decoder threads (whisper.cpp's, or onnxruntime's intra-op threads for Moonshine).
    pub threads: u32,
    /// Encoder window in frames, 50 a second (1500 is whisper's full 30 s; 0 keeps the
    /// model's). Smaller is faster and takes less memory; too small mishears. Audio longer than
    /// the window gets the full one.
    pub audio_ctx: u32,
    /// Fit the encoder window to each utterance's length (plus a margin) instead: several
    /// times faster on short requests, with as few misheard words (README, the word error
    /// rate). Overrides `audio_ctx`, which then bounds nothing.
    pub fit_audio_ctx: bool,
}

impl Default for SttConfig {
    fn default() -> Self {
        SttConfig {
            engine: SttEngine::Whisper,
            model: fetched(WHISPER),
            moonshine_model: fetched(MOONSHINE),
            onnxruntime: fetched(ONNXRUNTIME),
            language: "en".to_string(),
            threads: 2,
            audio_ctx: 768,
            fit_audio_ctx: true,
        }
    }
}

/// `~/x` as `$HOME/x`; other paths as they are.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
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
    /// Broker password (unpaired terminals only; a paired one logs in with its secret).
    pub password: String,
    /// The pairing secret `hearth-hub pair` wrote for this terminal. Set, the terminal logs
    /// in as `username` = its id with a password derived from it, seals everything it sends
    /// and accepts only what the hub sealed for it. Empty: an unpaired terminal.
    pub secret: String,
    /// A sealed message must be this fresh by this terminal's clock, in seconds.
    pub replay_window_s: u64,
    /// Connect with TLS and accept only the hub's certificate with this fingerprint
    /// (`sha256:` and hex, written by `hearth-hub pair`). Empty: plain TCP.
    pub tls_fingerprint: String,
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
            secret: String::new(),
            replay_window_s: 120,
            tls_fingerprint: String::new(),
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
    /// The same config with every model path pointing at its fetched file in `dir` (a model
    /// cache other than [`MODELS_DIR`]).
    pub fn with_models_in(mut self, dir: &Path) -> TerminalConfig {
        self.stt.model = dir.join(WHISPER);
        self.stt.moonshine_model = dir.join(MOONSHINE);
        self.stt.onnxruntime = dir.join(ONNXRUNTIME);
        self.voice.onnxruntime = dir.join(ONNXRUNTIME);
        self.wake.model = dir.join(WAKE_WORD);
        self.wake.mel_model = dir.join(WAKE_MEL);
        self.wake.embedding_model = dir.join(WAKE_EMBEDDING);
        self.tts.voice = dir.join(PIPER_VOICE);
        self
    }

    /// The defaults with every model where `scripts/fetch-models` put it:
    /// `$HEARTH_MODELS_DIR` (as the script reads it), else [`MODELS_DIR`]. For tests and
    /// benchmarks that run beside the project's setup.
    pub fn with_fetched_models() -> TerminalConfig {
        let dir = std::env::var_os("HEARTH_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| expand_home(Path::new(MODELS_DIR)));
        TerminalConfig::default().with_models_in(&dir)
    }

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
        if !h.secret.is_empty() {
            hearth_shared::seal::Secret::from_text(&h.secret)
                .map_err(|e| ConfigError::Invalid(format!("hub.secret: {e}")))?;
            if h.username != self.terminal.id {
                return bad(format!(
                    "hub.username ({:?}) must be the terminal id ({:?}) for a paired terminal",
                    h.username, self.terminal.id
                ));
            }
        }
        if !h.tls_fingerprint.is_empty() {
            crate::pin::parse_fingerprint(&h.tls_fingerprint)
                .map_err(|e| ConfigError::Invalid(format!("hub.tls_fingerprint: {e}")))?;
        }
        if h.replay_window_s == 0 {
            return bad("hub.replay_window_s must be at least 1".into());
        }
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
        let s = &self.stt;
        if s.model.as_os_str().is_empty() {
            return bad("stt.model must name a whisper ggml file".into());
        }
        if s.threads == 0 || s.threads > 64 {
            return bad("stt.threads must be 1 to 64".into());
        }
        if s.language.is_empty() || s.language.len() > 8 {
            return bad("stt.language must be a whisper language code such as \"en\"".into());
        }
        if s.audio_ctx > 1500 {
            return bad("stt.audio_ctx must be 0 (the model's) to 1500".into());
        }
        if s.engine == SttEngine::Moonshine {
            if s.moonshine_model.as_os_str().is_empty() {
                return bad("stt.moonshine_model must name a Moonshine model folder".into());
            }
            if s.language != "en" {
                return bad(format!(
                    "stt.language is {:?}, but the Moonshine engine has English models only (\"en\")",
                    s.language
                ));
            }
            if expand_home(&s.onnxruntime) != expand_home(&self.voice.onnxruntime) {
                return bad(format!(
                    "stt.onnxruntime ({}) must be voice.onnxruntime ({}): one process loads one onnxruntime",
                    s.onnxruntime.display(),
                    self.voice.onnxruntime.display()
                ));
            }
        }
        let w = &self.wake;
        if !(w.threshold > 0.0 && w.threshold < 1.0) {
            return bad("wake.threshold must be between 0 and 1".into());
        }
        if !(w.verify_threshold >= 0.0 && w.verify_threshold <= w.threshold) {
            return bad("wake.verify_threshold must be 0 (off) to wake.threshold".into());
        }
        if !(1..=8).contains(&w.phases) {
            return bad("wake.phases must be 1 to 8".into());
        }
        if w.pre_roll_ms > 4000 {
            return bad("wake.pre_roll_ms must be at most 4000".into());
        }
        if w.verify_threshold > 0.0 && !w.phrase.chars().any(char::is_alphanumeric) {
            return bad("wake.phrase must have a word when wake.verify_threshold is set".into());
        }
        let t = &self.tts;
        if t.voice.as_os_str().is_empty() || t.threads == 0 || t.threads > 64 {
            return bad("tts.voice must name a Piper voice and tts.threads be 1 to 64".into());
        }
        if t.max_piece_words < 4 {
            return bad("tts.max_piece_words must be at least 4".into());
        }
        if !(t.length_scale >= 0.25 && t.length_scale <= 4.0) {
            return bad("tts.length_scale must be 0.25 to 4".into());
        }
        if [t.noise_scale, t.noise_w]
            .into_iter()
            .flatten()
            .any(|n| !(0.0..=2.0).contains(&n))
        {
            return bad("tts.noise_scale and tts.noise_w must be 0 to 2".into());
        }
        for (name, path) in &t.voices {
            let named = hearth_shared::Voice {
                persona: "tts.voices".into(),
                model: Some(name.clone()),
                ..Default::default()
            };
            if named.check().is_err() || path.as_os_str().is_empty() {
                return bad(format!(
                    "tts.voices.{name:?} must be named with 1 to 64 letters, digits, '-', '_' or '.' and name a Piper voice"
                ));
            }
        }
        let v = &self.voice;
        if !(10..=500).contains(&v.echo_filter_ms) || v.echo_delay_ms > 500 {
            return bad(
                "voice.echo_filter_ms must be 10 to 500 and voice.echo_delay_ms at most 500".into(),
            );
        }
        let l = &self.listen;
        if !(l.vad_threshold > 0.0 && l.vad_threshold < 1.0) {
            return bad("listen.vad_threshold must be between 0 and 1".into());
        }
        if l.complete_silence_ms > l.silence_ms || l.incomplete_silence_ms < l.silence_ms {
            return bad(
                "listen.complete_silence_ms must be at most silence_ms, and incomplete_silence_ms at least it"
                    .into(),
            );
        }
        if l.silence_ms < 100 || l.max_utterance_ms < 1000 || l.no_speech_ms < 500 {
            return bad(
                "listen.silence_ms must be at least 100, max_utterance_ms 1000 and no_speech_ms 500"
                    .into(),
            );
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
        let mut c = TerminalConfig::default();
        c.voice.echo_filter_ms = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("echo_filter_ms"));
        let mut c = TerminalConfig::default();
        c.tts.voices.insert("../amy".into(), "amy.onnx".into());
        assert!(c.validate().unwrap_err().to_string().contains("tts.voices"));
        let err = toml::from_str::<TerminalConfig>("[hub]\nprot = 1\n").unwrap_err();
        assert!(err.to_string().contains("prot"));
        let err = toml::from_str::<TerminalConfig>("[stt]\nengine = \"vosk\"\n").unwrap_err();
        assert!(err.to_string().contains("vosk"), "{err}");
    }

    #[test]
    fn the_moonshine_engine_is_checked() {
        let c: TerminalConfig = toml::from_str("[stt]\nengine = \"moonshine\"\n").unwrap();
        assert_eq!(c.stt.engine, SttEngine::Moonshine);
        c.validate().unwrap();
        let mut german = c.clone();
        german.stt.language = "de".into();
        let err = german.validate().unwrap_err().to_string();
        assert!(err.contains("English"), "{err}");
        let mut two = c.clone();
        two.voice.onnxruntime = "/usr/lib/libonnxruntime.so".into();
        let err = two.validate().unwrap_err().to_string();
        assert!(err.contains("voice.onnxruntime"), "{err}");
        // Whisper does not use stt.onnxruntime, so it does not have to match.
        two.stt.engine = SttEngine::Whisper;
        two.validate().unwrap();
    }
}
