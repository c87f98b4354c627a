//! Sealed messages: every payload between the hub and a paired terminal is encrypted and
//! authenticated with that terminal's key, so that whatever the broker lets through, a
//! terminal reads only its own room's traffic and cannot speak as another terminal or as the
//! hub, and a captured message cannot be played again.
//!
//! A sealed payload is `HS1` (3 bytes), a counter (8 bytes, big-endian), a random 24-byte
//! nonce and the XChaCha20-Poly1305 ciphertext of the ordinary versioned JSON message. The
//! magic, the counter and the topic are authenticated with it: a message moved to another
//! topic does not open. The counter is the sender's clock in microseconds, made strictly
//! increasing; the receiver accepts only counters above the last it accepted from that
//! sender, and only within a window of its own clock, so that a restarted receiver still
//! refuses old captures.
//!
//! Both sides derive everything from the terminal's pairing [`Secret`]: the key
//! ([`Secret::key`]) and the MQTT password ([`Secret::password`]). The hub keeps the key and
//! a hash of the password, never the secret.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 3] = b"HS1";
const COUNTER: usize = 8;
const NONCE: usize = 24;
const TAG: usize = 16;
const HEADER: usize = MAGIC.len() + COUNTER + NONCE;
const SECRET_PREFIX: &str = "hearth-secret-1.";

/// Why a payload was not accepted. Each is logged with the sender and dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The payload is plain, where a paired peer must seal.
    #[error("the message is not sealed, and this peer is paired")]
    NotSealed,
    /// Shorter than a sealed header and tag.
    #[error("the sealed message is truncated ({0} bytes)")]
    Truncated(usize),
    /// The tag does not match: another key, another topic, or changed bytes.
    #[error("the sealed message does not open with this terminal's key for this topic (forged, altered or for another topic)")]
    Forged,
    /// The counter is not above the last one accepted: a replay or a duplicate.
    #[error("replayed or duplicate message (counter {counter}, last accepted {last})")]
    Replayed {
        /// The message's counter.
        counter: u64,
        /// The last counter accepted from this sender.
        last: u64,
    },
    /// The counter's time is too far from this machine's clock.
    #[error("the message was sealed {skew_s} s away from this machine's clock (the window is {window_s} s): an old capture, or the clocks disagree (check NTP)")]
    Stale {
        /// How far off, in whole seconds (negative: from the future).
        skew_s: i64,
        /// The accepted window, in seconds.
        window_s: u64,
    },
    /// A secret or key in the wrong form.
    #[error("invalid {0}: expected the text `hearth-hub pair` wrote")]
    BadKey(&'static str),
}

/// A terminal's pairing secret: 32 random bytes, written once by `hearth-hub pair` and kept
/// by the terminal. As text: `hearth-secret-1.` and base64url.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A new random secret from the operating system's generator.
    pub fn generate() -> Secret {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        Secret(bytes)
    }

    /// The secret as text.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Reads [`Secret::to_text`] (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<Secret, SealError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SealError::BadKey("pairing secret"))?;
        decode32(encoded, "pairing secret").map(Secret)
    }

    /// The key both sides seal with.
    pub fn key(&self) -> SealKey {
        SealKey(derive(b"hearth seal key v1", &self.0))
    }

    /// The terminal's MQTT password.
    pub fn password(&self) -> String {
        URL_SAFE_NO_PAD.encode(derive(b"hearth mqtt password v1", &self.0))
    }
}

fn derive(label: &[u8], secret: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(label);
    hash.update([0]);
    hash.update(secret);
    hash.finalize().into()
}

fn decode32(text: &str, what: &'static str) -> Result<[u8; 32], SealError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| SealError::BadKey(what))?;
    bytes.try_into().map_err(|_| SealError::BadKey(what))
}

/// The symmetric key of one terminal.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; 32]);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// The key as base64url text, for the hub's registry.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Reads [`SealKey::to_text`].
    pub fn from_text(text: &str) -> Result<SealKey, SealError> {
        decode32(text, "seal key").map(SealKey)
    }
}

/// Whether `payload` is in the sealed form (it may still fail to open).
pub fn is_sealed(payload: &[u8]) -> bool {
    payload.starts_with(MAGIC)
}

/// The sender's side: strictly increasing counters from its clock.
#[derive(Debug, Default)]
pub struct Sealer {
    last: AtomicU64,
}

impl Sealer {
    /// The next counter: the clock in microseconds, or one more than the last.
    pub fn next_counter(&self) -> u64 {
        let now = now_us();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Seals `plaintext` for `topic` with the next counter.
    pub fn seal(&self, key: &SealKey, topic: &str, plaintext: &[u8]) -> Vec<u8> {
        seal_with(key, topic, self.next_counter(), plaintext)
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn aad(counter: u64, topic: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + COUNTER + topic.len());
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(&counter.to_be_bytes());
    aad.extend_from_slice(topic.as_bytes());
    aad
}

/// Seals `plaintext` for `topic` with a given counter (a Last Will is sealed before it is
/// sent; everything else goes through [`Sealer::seal`]).
pub fn seal_with(key: &SealKey, topic: &str, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = aad(counter, topic);
    // Encryption fails only for messages over 256 GiB.
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("a message under 256 GiB always seals");
    let mut out = Vec::with_capacity(HEADER + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// An opened message: its counter (check it with a [`Replay`]) and the plain payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// The sender's counter.
    pub counter: u64,
    /// The versioned JSON message inside.
    pub plaintext: Vec<u8>,
}

/// Opens a payload sealed for `topic` with `key`. Never panics.
pub fn open(key: &SealKey, topic: &str, payload: &[u8]) -> Result<Opened, SealError> {
    if !is_sealed(payload) {
        return Err(SealError::NotSealed);
    }
    if payload.len() < HEADER + TAG {
        return Err(SealError::Truncated(payload.len()));
    }
    let mut counter = [0u8; COUNTER];
    counter.copy_from_slice(&payload[MAGIC.len()..MAGIC.len() + COUNTER]);
    let counter = u64::from_be_bytes(counter);
    let nonce = XNonce::from_slice(&payload[MAGIC.len() + COUNTER..HEADER]);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let plaintext = cipher
        .decrypt(
            nonce,
            Payload {
                msg: &payload[HEADER..],
                aad: &aad(counter, topic),
            },
        )
        .map_err(|_| SealError::Forged)?;
    Ok(Opened { counter, plaintext })
}

/// How many recent counters a [`Replay`] remembers: messages of one sender that reach the
/// receiver out of order by fewer than this many are still accepted once.
const RECENT: usize = 64;

/// The receiver's side for one sender: the counters accepted lately and the clock window.
#[derive(Debug, Clone)]
pub struct Replay {
    recent: std::collections::BTreeSet<u64>,
    window_us: u64,
}

impl Replay {
    /// Accepts counters within `window_s` seconds of the receiver's clock.
    pub fn new(window_s: u64) -> Replay {
        Replay {
            recent: std::collections::BTreeSet::new(),
            window_us: window_s.saturating_mul(1_000_000),
        }
    }

    /// Accepts `counter` (and remembers it) if it was not accepted before, is not older than
    /// every counter remembered, and is in the window.
    pub fn check(&mut self, counter: u64) -> Result<(), SealError> {
        self.check_at(counter, now_us())
    }

    /// Remembers `counter` as accepted without checking it (a message accepted by another
    /// rule, such as a Last Will announced in advance), so that it is not accepted again.
    pub fn remember(&mut self, counter: u64) {
        self.recent.insert(counter);
        if self.recent.len() > RECENT {
            self.recent.pop_first();
        }
    }

    /// [`Replay::check`] against a given clock, in microseconds.
    pub fn check_at(&mut self, counter: u64, now_us: u64) -> Result<(), SealError> {
        let oldest = self.recent.first().copied();
        let too_old = self.recent.len() == RECENT && oldest.is_some_and(|o| counter <= o);
        if too_old || self.recent.contains(&counter) {
            return Err(SealError::Replayed {
                counter,
                last: self.recent.last().copied().unwrap_or(0),
            });
        }
        let skew = i128::from(now_us) - i128::from(counter);
        if skew.unsigned_abs() > u128::from(self.window_us) {
            return Err(SealError::Stale {
                skew_s: (skew / 1_000_000) as i64,
                window_s: self.window_us / 1_000_000,
            });
        }
        self.remember(counter);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "hearth/v1/terminal/kitchen/utterance";

    #[test]
    fn a_sealed_message_opens_only_with_its_key_and_topic() {
        let secret = Secret::generate();
        let key = secret.key();
        let sealer = Sealer::default();
        let sealed = sealer.seal(&key, TOPIC, b"{\"v\":1}");
        assert!(is_sealed(&sealed));
        let opened = open(&key, TOPIC, &sealed).unwrap();
        assert_eq!(opened.plaintext, b"{\"v\":1}");
        assert_eq!(
            open(&Secret::generate().key(), TOPIC, &sealed),
            Err(SealError::Forged),
            "another terminal's key"
        );
        assert_eq!(
            open(&key, "hearth/v1/terminal/bedroom/utterance", &sealed),
            Err(SealError::Forged),
            "moved to another topic"
        );
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 1;
            assert!(open(&key, TOPIC, &flipped).is_err(), "byte {i} flipped");
        }
        for len in 0..HEADER + TAG {
            assert!(open(&key, TOPIC, &sealed[..len.min(sealed.len())]).is_err());
        }
        assert_eq!(open(&key, TOPIC, b"{\"v\":1}"), Err(SealError::NotSealed));
    }

    #[test]
    fn counters_rise_and_a_replay_or_an_old_capture_is_refused() {
        let sealer = Sealer::default();
        let (a, b) = (sealer.next_counter(), sealer.next_counter());
        assert!(b > a);
        let mut replay = Replay::new(120);
        assert_eq!(replay.check(b), Ok(()));
        assert_eq!(
            replay.check(a),
            Ok(()),
            "a little out of order is fine, once"
        );
        assert_eq!(
            replay.check(b),
            Err(SealError::Replayed {
                counter: b,
                last: b
            })
        );
        assert!(matches!(replay.check(a), Err(SealError::Replayed { .. })));
        let later: Vec<u64> = (0..RECENT).map(|_| sealer.next_counter()).collect();
        for c in &later {
            assert_eq!(replay.check(*c), Ok(()));
        }
        let unseen_but_older = b + 1;
        assert!(
            matches!(
                replay.check(unseen_but_older),
                Err(SealError::Replayed { .. })
            ),
            "older than every counter remembered"
        );
        let mut fresh = Replay::new(120);
        let hour_ago = a - 3_600_000_000;
        assert!(matches!(
            fresh.check(hour_ago),
            Err(SealError::Stale { skew_s: 3600, .. })
        ));
        assert!(matches!(
            fresh.check_at(a + 500_000_000, a),
            Err(SealError::Stale { skew_s: -500, .. })
        ));
    }

    #[test]
    fn the_secret_round_trips_as_text_and_derives_distinct_key_and_password() {
        let secret = Secret::generate();
        let text = secret.to_text();
        assert!(text.starts_with("hearth-secret-1."));
        assert_eq!(Secret::from_text(&format!(" {text}\n")).unwrap(), secret);
        assert_ne!(secret.key().to_text(), secret.password());
        let key = secret.key();
        assert_eq!(SealKey::from_text(&key.to_text()).unwrap(), key);
        for bad in [
            "",
            "hearth-secret-1.",
            "hearth-secret-1.AAAA",
            &key.to_text(),
        ] {
            assert!(Secret::from_text(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{secret:?} {key:?}"), "Secret(..) SealKey(..)");
    }
}
