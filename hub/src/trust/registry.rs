//! The terminal registry: who is paired, in which room, with which key. One JSON file, mode
//! 0600, replaced atomically on every change and re-read by a running hub when it changes, so
//! that `hearth-hub pair` and `hearth-hub terminals revoke` work while the hub runs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hearth_shared::seal::{SealKey, Secret};
use hearth_shared::valid_terminal_id;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What goes wrong with the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file cannot be read or written.
    #[error("terminal registry {path}: {source}")]
    Io {
        /// The registry file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a registry.
    #[error("terminal registry {path} is damaged: {reason}; restore it from a backup or pair the terminals again")]
    Damaged {
        /// The registry file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A terminal id or room that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// Pairing an id that is already paired.
    #[error("terminal {0:?} is already paired; revoke it first (hearth-hub terminals revoke {0}) or pair with --replace")]
    Exists(String),
}

/// One paired terminal, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalRecord {
    /// The terminal id, its MQTT username and its topic segment.
    pub id: String,
    /// The room it stands in: the room of everything it sends.
    pub room: String,
    /// An argon2 hash of its MQTT password.
    pub password_hash: String,
    /// Its seal key (base64url).
    pub key: String,
    /// When it was paired, in ms since the Unix epoch.
    pub paired_at_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    terminals: Vec<TerminalRecord>,
}

const VERSION: u32 = 1;

/// A paired terminal as the hub uses it.
#[derive(Debug, Clone)]
pub struct Paired {
    /// The room from the registry.
    pub room: String,
    /// Its seal key.
    pub key: SealKey,
}

#[derive(Debug, Default)]
struct Loaded {
    modified: Option<SystemTime>,
    checked: Option<Instant>,
    terminals: BTreeMap<String, (TerminalRecord, SealKey)>,
}

/// The registry file and what was last read from it.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    loaded: Mutex<Loaded>,
    /// Logins already verified: (id, sha256 of the password) -> the hash they matched, so a
    /// reconnecting terminal costs one argon2 run per hub start, not one per connection.
    verified: Mutex<HashMap<(String, [u8; 32]), String>>,
}

/// How often a running hub looks at the file's modification time.
const RECHECK: Duration = Duration::from_millis(500);

impl Registry {
    /// Opens the registry at `path`; a missing file is an empty registry.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let registry = Registry {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded::default()),
            verified: Mutex::new(HashMap::new()),
        };
        let mut loaded = registry.lock();
        registry.reload(&mut loaded)?;
        drop(loaded);
        Ok(registry)
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reload(&self, loaded: &mut Loaded) -> Result<(), RegistryError> {
        let io = |source| RegistryError::Io {
            path: self.path.clone(),
            source,
        };
        let modified = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m.modified().map_err(io)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        loaded.checked = Some(Instant::now());
        if modified == loaded.modified && (modified.is_some() || loaded.terminals.is_empty()) {
            return Ok(());
        }
        let terminals = match modified {
            None => BTreeMap::new(),
            Some(_) => parse(&self.path, &std::fs::read(&self.path).map_err(io)?)?,
        };
        loaded.terminals = terminals;
        loaded.modified = modified;
        Ok(())
    }

    /// Re-reads the file if it changed since the last look (at most every half second). A
    /// damaged file keeps what was read before, and says so.
    fn fresh(&self) -> std::sync::MutexGuard<'_, Loaded> {
        let mut loaded = self.lock();
        if loaded.checked.is_none_or(|at| at.elapsed() >= RECHECK) {
            if let Err(e) = self.reload(&mut loaded) {
                tracing::error!(error = %e, "keeping the terminals read before");
            }
        }
        loaded
    }

    /// The paired terminal `id`, if it is.
    pub fn get(&self, id: &str) -> Option<Paired> {
        self.fresh().terminals.get(id).map(|(r, key)| Paired {
            room: r.room.clone(),
            key: key.clone(),
        })
    }

    /// Whether any terminal is paired.
    pub fn is_empty(&self) -> bool {
        self.fresh().terminals.is_empty()
    }

    /// Every paired terminal, by id.
    pub fn list(&self) -> Vec<TerminalRecord> {
        self.fresh()
            .terminals
            .values()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Whether `password` is terminal `id`'s MQTT password.
    pub fn verify_login(&self, id: &str, password: &str) -> bool {
        let Some(hash) = self
            .fresh()
            .terminals
            .get(id)
            .map(|(r, _)| r.password_hash.clone())
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let cache_key = (id.to_string(), digest);
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.get(&cache_key) == Some(&hash) {
            return true;
        }
        let ok = PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        if ok {
            verified.insert(cache_key, hash);
        }
        ok
    }

    /// Pairs terminal `id` in `room` and returns its secret, which is shown once and kept
    /// nowhere on the hub. With `replace`, an existing pairing of `id` is replaced.
    pub fn pair(&self, id: &str, room: &str, replace: bool) -> Result<Secret, RegistryError> {
        if !valid_terminal_id(id) {
            return Err(RegistryError::Invalid(format!(
                "invalid terminal id {id:?}: use 1 to 64 ASCII letters, digits, '-' or '_'"
            )));
        }
        let room = room.trim();
        if room.is_empty() || room.len() > 64 {
            return Err(RegistryError::Invalid(
                "the room must be 1 to 64 bytes".into(),
            ));
        }
        let mut loaded = self.lock();
        self.reload(&mut loaded)?;
        if loaded.terminals.contains_key(id) && !replace {
            return Err(RegistryError::Exists(id.to_string()));
        }
        let secret = Secret::generate();
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let password_hash = Argon2::default()
            .hash_password(secret.password().as_bytes(), &salt)
            .map_err(|e| RegistryError::Invalid(format!("cannot hash the password: {e}")))?
            .to_string();
        let key = secret.key();
        let record = TerminalRecord {
            id: id.to_string(),
            room: room.to_string(),
            password_hash,
            key: key.to_text(),
            paired_at_ms: hearth_shared::now_ms(),
        };
        let mut terminals = loaded.terminals.clone();
        terminals.insert(id.to_string(), (record, key));
        self.write(&terminals)?;
        loaded.terminals = terminals;
        loaded.modified = None;
        self.reload(&mut loaded)?;
        Ok(secret)
    }

    /// Removes terminal `id`; false if it was not paired. A running hub refuses its
    /// messages and its logins within a second.
    pub fn revoke(&self, id: &str) -> Result<bool, RegistryError> {
        let mut loaded = self.lock();
        self.reload(&mut loaded)?;
        let mut terminals = loaded.terminals.clone();
        if terminals.remove(id).is_none() {
            return Ok(false);
        }
        self.write(&terminals)?;
        loaded.terminals = terminals;
        loaded.modified = None;
        self.reload(&mut loaded)?;
        Ok(true)
    }

    /// Writes the file, atomically and 0600.
    fn write(
        &self,
        terminals: &BTreeMap<String, (TerminalRecord, SealKey)>,
    ) -> Result<(), RegistryError> {
        let io = |source| RegistryError::Io {
            path: self.path.clone(),
            source,
        };
        let file = File {
            version: VERSION,
            terminals: terminals.values().map(|(r, _)| r.clone()).collect(),
        };
        let text = serde_json::to_vec_pretty(&file).expect("the registry serializes");
        crate::files::replace(&self.path, &text).map_err(io)
    }
}

/// The terminals in the bytes of a registry file, each with its key (`path` names the file in
/// errors).
fn parse(
    path: &Path,
    bytes: &[u8],
) -> Result<BTreeMap<String, (TerminalRecord, SealKey)>, RegistryError> {
    let damaged = |reason: String| RegistryError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let file: File = serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
    if file.version != VERSION {
        return Err(damaged(format!(
            "version {} (this hub reads version {VERSION})",
            file.version
        )));
    }
    let mut terminals = BTreeMap::new();
    for record in file.terminals {
        let key = SealKey::from_text(&record.key)
            .map_err(|e| damaged(format!("terminal {:?}: {e}", record.id)))?;
        terminals.insert(record.id.clone(), (record, key));
    }
    Ok(terminals)
}

/// The terminals in the bytes of a registry file, checked as the hub checks the file when it
/// reads it (`path` names the file in errors): what a backup carries and a restore writes.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Vec<TerminalRecord>, RegistryError> {
    Ok(parse(path, bytes)?.into_values().map(|(r, _)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_verify_revoke_and_a_second_reader_sees_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/terminals.json");
        let hub = Registry::open(&path).unwrap();
        assert!(hub.is_empty());
        let secret = hub.pair("kitchen", "kitchen", false).unwrap();
        assert!(matches!(
            hub.pair("kitchen", "hall", false),
            Err(RegistryError::Exists(_))
        ));
        assert!(hub.verify_login("kitchen", &secret.password()));
        assert!(hub.verify_login("kitchen", &secret.password()), "cached");
        assert!(!hub.verify_login("kitchen", "change-me"));
        assert!(!hub.verify_login("bedroom", &secret.password()));
        assert_eq!(hub.get("kitchen").unwrap().key, secret.key());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret.password()) && !text.contains(&secret.to_text()));

        // The CLI writes while the hub runs: the hub sees it within a recheck.
        let cli = Registry::open(&path).unwrap();
        cli.pair("bedroom", "bedroom", false).unwrap();
        assert!(cli.revoke("kitchen").unwrap());
        assert!(!cli.revoke("kitchen").unwrap());
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert!(hub.get("kitchen").is_none());
        assert_eq!(hub.get("bedroom").unwrap().room, "bedroom");

        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(
            Registry::open(&path),
            Err(RegistryError::Damaged { .. })
        ));
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert!(
            hub.get("bedroom").is_some(),
            "a damaged file keeps what was read"
        );
        for (id, room) in [("a/b", "x"), ("", "x"), ("ok", " ")] {
            assert!(matches!(
                cli.pair(id, room, false),
                Err(RegistryError::Invalid(_))
            ));
        }
    }
}
