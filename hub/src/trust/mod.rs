//! Trust between the hub and the rooms: which terminals are paired ([`registry`]), the MQTT
//! logins the embedded broker admits ([`Gate::login`]), sealing and opening every message of
//! a paired terminal ([`Gate::open`], [`Gate::seal`]), and the per-terminal rate limit.
//!
//! The rule everywhere: what a paired terminal sends counts only if it opens with that
//! terminal's key, on that terminal's topic, and was not accepted before; its room is the
//! registry's. Unpaired terminals (one shared login, plain JSON) are served only when
//! `trust.allow_unpaired` is set, which the hub refuses beyond loopback.

pub mod cli;
pub mod registry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use hearth_shared::seal::{self, Replay, SealError, Sealer};
use hearth_shared::Channel;
use serde::{Deserialize, Serialize};

pub use registry::{Paired, Registry, RegistryError, TerminalRecord};

/// `[trust]`: pairing, sealing and load limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustConfig {
    /// The terminal registry (`hearth-hub pair` writes it).
    pub registry: PathBuf,
    /// Serve terminals that are not paired, with the shared `mqtt` login and plain messages.
    /// Only on loopback: the hub refuses to start with this set and `mqtt.listen` beyond it.
    pub allow_unpaired: bool,
    /// A sealed message must have been sealed within this many seconds of the receiver's
    /// clock (the hub's and the terminals' clocks must agree this well: use NTP).
    pub replay_window_s: u64,
    /// The hub tells each paired terminal it is there this often, in seconds; a terminal
    /// that hears nothing for three times as long says the hub is away.
    pub heartbeat_s: u64,
    /// Utterances one terminal may send in a burst...
    pub burst: u32,
    /// ...and then this many per minute. Beyond that they are dropped, and the terminal is
    /// told once that the hub is busy.
    pub per_minute: u32,
    /// Turns being answered at once, all rooms together; beyond this an utterance is answered
    /// with "busy".
    pub max_turns: usize,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            registry: PathBuf::from("~/.local/share/hearth/terminals.json"),
            allow_unpaired: true,
            replay_window_s: 120,
            heartbeat_s: 10,
            burst: 5,
            per_minute: 20,
            max_turns: 8,
        }
    }
}

/// Why a message from a terminal was dropped. Logged with the terminal and the topic.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The seal did not hold.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// An unpaired terminal, and unpaired terminals are not served.
    #[error("terminal is not paired (pair it: hearth-hub pair <id> --room <room>)")]
    NotPaired,
    /// A sealed message from a terminal the registry does not know (revoked, say).
    #[error("sealed message from a terminal that is not paired (revoked?)")]
    UnknownSealed,
    /// Over the terminal's rate limit.
    #[error("over the rate limit of {burst} utterances at once and {per_minute} a minute")]
    RateLimited {
        /// `trust.burst`.
        burst: u32,
        /// `trust.per_minute`.
        per_minute: u32,
        /// Whether the terminal has been told already since its last accepted utterance.
        told: bool,
    },
}

/// What a terminal sent, opened: the JSON message and, for a paired terminal, its room.
#[derive(Debug)]
pub struct Opened {
    /// The versioned JSON payload.
    pub payload: Vec<u8>,
    /// The registry's room; `None` for an unpaired terminal.
    pub room: Option<String>,
    /// The seal counter (0 for an unpaired terminal).
    pub counter: u64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    told: bool,
}

#[derive(Debug, Default)]
struct Seen {
    replay: HashMap<String, Replay>,
    /// Each paired terminal's announced Last Will counter.
    wills: HashMap<String, u64>,
    buckets: HashMap<String, Bucket>,
}

/// The hub's side of trust for one running hub.
#[derive(Debug)]
pub struct Gate {
    /// The settings.
    pub config: TrustConfig,
    /// The registry.
    pub registry: Registry,
    sealer: Sealer,
    seen: Mutex<Seen>,
}

impl Gate {
    /// A gate over `registry`.
    pub fn new(config: TrustConfig, registry: Registry) -> Gate {
        Gate {
            config,
            registry,
            sealer: Sealer::default(),
            seen: Mutex::new(Seen::default()),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the embedded broker admits this login: the hub's own (with its client id),
    /// a paired terminal's (its id as username, its own password, and client id
    /// `hearth-terminal-<id>`), or, with `allow_unpaired`, the shared login under any client
    /// id that is not the hub's or a paired terminal's. The error is what to log.
    pub fn login(
        &self,
        mqtt: &crate::broker::MqttConfig,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<&'static str, &'static str> {
        let shared = username == mqtt.username && constant_eq(password, &mqtt.password);
        let claimed = client_id
            .strip_prefix("hearth-terminal-")
            .filter(|id| self.registry.get(id).is_some());
        if shared && client_id == mqtt.client_id {
            return Ok("the hub");
        }
        if self.registry.get(username).is_some() {
            if !self.registry.verify_login(username, password) {
                return Err("wrong password for a paired terminal");
            }
            if client_id != format!("hearth-terminal-{username}") {
                return Err("a paired terminal must use its own client id");
            }
            return Ok("a paired terminal");
        }
        if !shared {
            return Err("unknown username or wrong password");
        }
        if !self.config.allow_unpaired {
            return Err("the shared login is for the hub alone (trust.allow_unpaired = false)");
        }
        if claimed.is_some() || client_id == mqtt.client_id {
            return Err(
                "the shared login cannot take the client id of the hub or of a paired terminal",
            );
        }
        Ok("an unpaired client")
    }

    /// Opens what terminal `id` sent on `topic` (`channel`): sealed with its key and not seen
    /// before if it is paired, plain if it is not and unpaired terminals are served.
    pub fn open(
        &self,
        id: &str,
        channel: Channel,
        topic: &str,
        payload: &[u8],
    ) -> Result<Opened, Refused> {
        let Some(paired) = self.registry.get(id) else {
            if seal::is_sealed(payload) {
                return Err(Refused::UnknownSealed);
            }
            if !self.config.allow_unpaired {
                return Err(Refused::NotPaired);
            }
            return Ok(Opened {
                payload: payload.to_vec(),
                room: None,
                counter: 0,
            });
        };
        if payload.is_empty() && channel == Channel::Presence {
            // A cleared retained presence carries nothing to forge.
            return Ok(Opened {
                payload: Vec::new(),
                room: Some(paired.room),
                counter: 0,
            });
        }
        let opened = seal::open(&paired.key, topic, payload)?;
        let mut seen = self.seen();
        // The connection's Last Will was sealed before the messages that followed it; it is
        // accepted once, out of order, when the online presence announced it.
        let is_will = channel == Channel::Presence && seen.wills.get(id) == Some(&opened.counter);
        let window = self.config.replay_window_s;
        let replay = seen
            .replay
            .entry(id.to_string())
            .or_insert_with(|| Replay::new(window));
        if is_will {
            replay.remember(opened.counter);
            seen.wills.remove(id);
        } else {
            replay.check(opened.counter)?;
        }
        Ok(Opened {
            payload: opened.plaintext,
            room: Some(paired.room),
            counter: opened.counter,
        })
    }

    /// Remembers the Last Will counter a paired terminal's online presence announced.
    pub fn will(&self, id: &str, counter: u64) {
        self.seen().wills.insert(id.to_string(), counter);
    }

    /// Takes one utterance token from terminal `id`'s bucket.
    pub fn admit(&self, id: &str) -> Result<(), Refused> {
        let (burst, per_minute) = (self.config.burst, self.config.per_minute);
        let mut seen = self.seen();
        let now = Instant::now();
        let bucket = seen.buckets.entry(id.to_string()).or_insert(Bucket {
            tokens: f64::from(burst),
            at: now,
            told: false,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * f64::from(per_minute) / 60.0;
        bucket.tokens = (bucket.tokens + refill).min(f64::from(burst));
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.told = false;
            return Ok(());
        }
        let told = std::mem::replace(&mut bucket.told, true);
        Err(Refused::RateLimited {
            burst,
            per_minute,
            told,
        })
    }

    /// The payload to publish to terminal `id` on `topic`: sealed with its key if it is
    /// paired, as it is otherwise.
    pub fn seal(&self, id: &str, topic: &str, payload: Vec<u8>) -> Vec<u8> {
        match self.registry.get(id) {
            Some(paired) => self.sealer.seal(&paired.key, topic, &payload),
            None => payload,
        }
    }
}

/// Compares two strings in time that does not depend on where they differ.
fn constant_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::MqttConfig;
    use hearth_shared::seal::Sealer;

    fn gate(allow_unpaired: bool) -> (Gate, tempfile::TempDir, hearth_shared::seal::Secret) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&dir.path().join("terminals.json")).unwrap();
        let secret = registry.pair("kitchen", "kitchen", false).unwrap();
        let config = TrustConfig {
            allow_unpaired,
            burst: 2,
            per_minute: 60,
            ..TrustConfig::default()
        };
        (Gate::new(config, registry), dir, secret)
    }

    #[test]
    fn logins_are_bound_to_their_terminal_and_client_id() {
        let (gate, _dir, secret) = gate(true);
        let mqtt = MqttConfig::default();
        let pass = secret.password();
        let hub = (
            mqtt.client_id.clone(),
            mqtt.username.clone(),
            mqtt.password.clone(),
        );
        assert!(gate.login(&mqtt, &hub.0, &hub.1, &hub.2).is_ok());
        assert!(gate
            .login(&mqtt, "hearth-terminal-kitchen", "kitchen", &pass)
            .is_ok());
        for (client, user, password) in [
            ("hearth-terminal-bedroom", "kitchen", pass.as_str()),
            ("hearth-terminal-kitchen", "kitchen", "change-me"),
            ("hearth-terminal-kitchen", "hearth", "change-me"),
            ("hearth-hub", "kitchen", pass.as_str()),
            ("x", "nobody", "x"),
        ] {
            assert!(
                gate.login(&mqtt, client, user, password).is_err(),
                "{client} {user}"
            );
        }
        assert!(gate.login(&mqtt, "observer", "hearth", "change-me").is_ok());
        let (strict, _dir, _) = self::gate(false);
        assert!(strict
            .login(&mqtt, "observer", "hearth", "change-me")
            .is_err());
        assert!(strict.login(&mqtt, &hub.0, &hub.1, &hub.2).is_ok());
    }

    #[test]
    fn paired_messages_must_be_sealed_fresh_and_for_their_topic() {
        let (gate, _dir, secret) = gate(true);
        let topic = "hearth/v1/terminal/kitchen/utterance";
        let terminal = Sealer::default();
        let sealed = terminal.seal(&secret.key(), topic, b"{\"v\":1}");
        let opened = gate
            .open("kitchen", Channel::Utterance, topic, &sealed)
            .unwrap();
        assert_eq!(opened.payload, b"{\"v\":1}");
        assert_eq!(opened.room.as_deref(), Some("kitchen"));
        assert!(matches!(
            gate.open("kitchen", Channel::Utterance, topic, &sealed),
            Err(Refused::Seal(SealError::Replayed { .. }))
        ));
        assert!(matches!(
            gate.open("kitchen", Channel::Utterance, topic, b"{\"v\":1}"),
            Err(Refused::Seal(SealError::NotSealed))
        ));
        let other = hearth_shared::seal::Secret::generate();
        let forged = terminal.seal(&other.key(), topic, b"{\"v\":1}");
        assert!(matches!(
            gate.open("kitchen", Channel::Utterance, topic, &forged),
            Err(Refused::Seal(SealError::Forged))
        ));
        // An unpaired terminal: plain is served while allowed; sealed is not.
        let plain = gate
            .open(
                "hall",
                Channel::Utterance,
                "hearth/v1/terminal/hall/utterance",
                b"{}",
            )
            .unwrap();
        assert_eq!(plain.room, None);
        assert!(matches!(
            gate.open("hall", Channel::Utterance, "t", &forged),
            Err(Refused::UnknownSealed)
        ));
        let (strict, _dir, _) = self::gate(false);
        assert!(matches!(
            strict.open("hall", Channel::Utterance, "t", b"{}"),
            Err(Refused::NotPaired)
        ));
        // The hub seals for the terminal, and only the terminal's key opens it.
        let reply_topic = "hearth/v1/terminal/kitchen/reply";
        let out = gate.seal("kitchen", reply_topic, b"{\"v\":1}".to_vec());
        assert_eq!(
            seal::open(&secret.key(), reply_topic, &out)
                .unwrap()
                .plaintext,
            b"{\"v\":1}"
        );
        assert_eq!(gate.seal("hall", "x", b"{}".to_vec()), b"{}");
    }

    #[test]
    fn the_last_will_is_accepted_once_after_later_messages() {
        let (gate, _dir, secret) = gate(true);
        let topic = "hearth/v1/terminal/kitchen/presence";
        let terminal = Sealer::default();
        let will_counter = terminal.next_counter();
        let will = seal::seal_with(&secret.key(), topic, will_counter, b"offline");
        let online = terminal.seal(&secret.key(), topic, b"online");
        gate.open("kitchen", Channel::Presence, topic, &online)
            .unwrap();
        gate.will("kitchen", will_counter);
        assert!(gate
            .open("kitchen", Channel::Presence, topic, &will)
            .is_ok());
        assert!(gate
            .open("kitchen", Channel::Presence, topic, &will)
            .is_err());
    }

    #[test]
    fn a_burst_over_the_bucket_is_refused_and_told_once() {
        let (gate, _dir, _) = gate(true);
        assert!(gate.admit("kitchen").is_ok());
        assert!(gate.admit("kitchen").is_ok());
        assert!(matches!(
            gate.admit("kitchen"),
            Err(Refused::RateLimited { told: false, .. })
        ));
        assert!(matches!(
            gate.admit("kitchen"),
            Err(Refused::RateLimited { told: true, .. })
        ));
        assert!(
            gate.admit("bedroom").is_ok(),
            "each terminal has its own bucket"
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(gate.admit("kitchen").is_ok(), "one a second refills");
    }
}
