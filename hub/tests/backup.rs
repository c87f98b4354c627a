//! Backup, wipe and restore of a whole hub on real stores: every tree of every store comes
//! back byte for byte, recall works again (the full-text index is rebuilt), new ids do not
//! collide, the paired terminals come back with their logins and keys, and a damaged,
//! truncated, newer or misdirected archive writes nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hearth_hub::backup::{self, BackupError};
use hearth_hub::config::HubConfig;
use hearth_hub::memory::graph::Proposal;
use hearth_hub::memory::{Embedding, Memories, NewMemory, Speaker};
use hearth_hub::pixie::reminders::{Kind, NewReminder, Reminders};
use hearth_hub::pixie::tasks::{Tasks, Work};
use hearth_hub::trust::Registry;
use hearth_shared::seal::Secret;

const DIM: usize = 4;
const NOW: u64 = 1_700_000_000_000;

/// A hub whose every store lives in `dir`: a store added to `backup::stores` gets its path
/// set here too (the assertion says so).
fn config(dir: &Path) -> HubConfig {
    let mut config = HubConfig::default();
    config.memory.path = dir.join("memory");
    config.pixie.path = dir.join("pixie");
    config.trust.registry = dir.join("state/terminals.json");
    for store in backup::stores(&config) {
        assert!(
            store.path.starts_with(dir),
            "set the {} store's path here",
            store.name
        );
    }
    config
}

/// Pairs two terminals into the hub's registry and returns their secrets.
fn pair(config: &HubConfig) -> Vec<(&'static str, Secret)> {
    let registry = Registry::open(&config.trust.registry).unwrap();
    ["kitchen", "hall"]
        .into_iter()
        .map(|id| (id, registry.pair(id, id, false).unwrap()))
        .collect()
}

fn new_memory(text: &str) -> NewMemory {
    NewMemory {
        text: text.to_string(),
        room: "kitchen".into(),
        speaker: Speaker::User,
        created_at_ms: NOW,
        salience: 0.6,
        source: None,
    }
}

fn reminder(what: &str, due_ms: u64) -> NewReminder {
    NewReminder {
        kind: Kind::Reminder,
        what: what.into(),
        when_said: "tomorrow at nine".into(),
        due_ms,
        repeat: None,
        rooms: vec!["kitchen".into()],
        set_in: "kitchen".into(),
        created_ms: NOW,
        urgency: 0.5,
    }
}

/// Opens a sled database, waiting for the lock a handle dropped a moment ago still holds.
fn open(path: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open {}: {e}", path.display()),
        }
    }
}

/// Every tree of the sled database in `path`: name -> key -> value. The key where ids
/// continue after a restore is left out: a restore adds it (sled's own counter is in no
/// tree).
type Dump = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn dump(path: &Path) -> Dump {
    let db = open(path);
    let mut out = Dump::new();
    let mut names: Vec<Vec<u8>> = db.tree_names().iter().map(|n| n.to_vec()).collect();
    names.push(b"__sled__default".to_vec());
    for name in names {
        let tree: sled::Tree = if name == b"__sled__default" {
            (*db).clone()
        } else {
            db.open_tree(&name).unwrap()
        };
        let entries = tree
            .iter()
            .map(Result::unwrap)
            .filter(|(k, _)| k.as_ref() != b"hearth_next_id")
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        out.insert(String::from_utf8(name).unwrap(), entries);
    }
    out
}

/// A hub's stores with memories (vectors, passages), a graph, a profile, reminders and tasks.
fn fill(config: &HubConfig) {
    let memories = Memories::open(&config.memory.path, DIM).unwrap();
    let texts = [
        "my sister Anna lives in Porto",
        "the boiler code is 4410",
        "we water the ferns on Sundays",
    ];
    for (i, text) in texts.iter().enumerate() {
        let m = memories.remember(new_memory(text)).unwrap();
        let mut whole = vec![0.0; DIM];
        whole[i] = 1.0;
        let embedding = Embedding {
            whole: whole.clone(),
            passages: vec![whole.clone(), vec![0.5; DIM]],
        };
        memories.set_embedding(m.id, &embedding).unwrap();
    }
    let proposal: Proposal = serde_json::from_str(
        r#"{"ops":[
          {"op":"create","ref":"t1","title":"Family","domain":"person","parent":"","attributes":[],"confidence":0.9},
          {"op":"create","ref":"t2","title":"Anna","domain":"person","parent":"t1",
           "attributes":[{"key":"lives in","value":"Porto"}],"confidence":0.8}
        ]}"#,
    )
    .unwrap();
    memories.graph().write(&proposal, Some(1), NOW).unwrap();
    memories
        .sweep(&config.memory.lifecycle, NOW + 1000)
        .unwrap();
    assert!(memories.profile().unwrap().is_some());

    let reminders = Reminders::open(&config.pixie.path).unwrap();
    reminders
        .add(reminder("take the bins out", NOW + 3_600_000))
        .unwrap();
    reminders
        .add(reminder("call the plumber", NOW + 7_200_000))
        .unwrap();
    let tasks = Tasks::open(reminders.db()).unwrap();
    tasks.schedule(Work::Sweep, NOW + 60_000, NOW).unwrap();
    tasks
        .schedule(
            Work::Reflect {
                room: "kitchen".into(),
            },
            NOW + 120_000,
            NOW,
        )
        .unwrap();
}

/// Every tree of every sled store.
fn dumps(config: &HubConfig) -> Vec<(&'static str, Dump)> {
    backup::stores(config)
        .into_iter()
        .filter(|s| s.kind == backup::Kind::Sled)
        .map(|s| (s.name, dump(&s.path)))
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn backup_wipe_restore_brings_back_every_tree_and_recall() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    fill(&config);
    let secrets = pair(&config);
    let terminals = Registry::open(&config.trust.registry).unwrap().list();
    assert_eq!(terminals.len(), 2);
    let before = dumps(&config);
    let trees: Vec<&str> = before[0].1.keys().map(String::as_str).collect();
    for tree in ["memories", "vectors", "passages", "graph", "profile"] {
        assert!(trees.contains(&tree), "{trees:?}");
    }
    assert_eq!(before[0].1["memories"].len(), 3);
    assert_eq!(before[0].1["passages"].len(), 3);
    assert_eq!(before[0].1["graph"].len(), 2);
    assert_eq!(before[1].1["reminders"].len(), 2);
    assert_eq!(before[1].1["tasks"].len(), 2);

    // The output folder is created private, the archive is readable by its owner only.
    let out = dir.path().join("backups/hub.hearth-backup");
    let header = backup::backup(&backup::stores(&config), &out, NOW).unwrap();
    assert_eq!(mode(&out), 0o600);
    assert_eq!(mode(out.parent().unwrap()), 0o700);
    assert_eq!(header.format, "hearth-backup");
    assert_eq!(header.format_version, backup::FORMAT_VERSION);
    let memory = &header.stores[0];
    let count = |name: &str| {
        memory
            .trees
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.entries)
    };
    assert_eq!(count("memories"), Some(3));
    assert_eq!(count("graph"), Some(2));
    let registry = header.stores.iter().find(|s| s.name == "registry").unwrap();
    assert_eq!(registry.trees.len(), 1);
    assert_eq!(registry.trees[0].entries, 1);
    assert_eq!(backup::check(&out).unwrap(), header);
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file is left: {leftovers:?}"
    );

    // A wipe removes the stores, the registry and the derived index.
    let stores = backup::stores(&config);
    let derived = backup::derived(&config);
    let plan = backup::wipe_plan(&stores, &derived);
    for path in [
        config.memory.path.join("store"),
        config.memory.path.join("fulltext"),
        config.pixie.path.clone(),
        config.trust.registry.clone(),
    ] {
        assert!(plan.contains(&path), "{plan:?}");
    }
    let removed = backup::wipe(&stores, &derived).unwrap();
    assert_eq!(removed, plan);
    assert!(backup::wipe_plan(&stores, &derived).is_empty());
    assert!(!config.memory.path.join("fulltext").exists());
    assert!(!config.trust.registry.exists());

    // A registry whose terminals were all revoked counts as empty.
    let registry = Registry::open(&config.trust.registry).unwrap();
    registry.pair("attic", "attic", false).unwrap();
    assert!(registry.revoke("attic").unwrap());
    assert!(config.trust.registry.exists());

    let restored = backup::restore(&stores, &derived, &out).unwrap();
    assert_eq!(restored, header);
    let after = dumps(&config);
    assert_eq!(before, after, "every tree, every key, every value");

    // The registry comes back whole, private, and the terminals' secrets still log in.
    assert_eq!(mode(&config.trust.registry), 0o600);
    let registry = Registry::open(&config.trust.registry).unwrap();
    assert_eq!(
        registry.list(),
        terminals,
        "ids, rooms, password hashes, keys"
    );
    for (id, secret) in &secrets {
        assert!(registry.verify_login(id, &secret.password()), "{id}");
        assert_eq!(registry.get(id).unwrap().key, secret.key(), "{id}");
    }
    assert!(!registry.verify_login("kitchen", &secrets[1].1.password()));

    // The hub opens what was restored: the full-text index is rebuilt, vectors load, and
    // new ids go above the restored ones.
    let memories = Memories::open(&config.memory.path, DIM).unwrap();
    let hits = memories.search_text("boiler", 5).unwrap();
    assert_eq!(hits[0].0.text, "the boiler code is 4410");
    let hits = memories.search_vector(&[1.0, 0.0, 0.0, 0.0], 1).unwrap();
    assert_eq!(hits[0].0.text, "my sister Anna lives in Porto");
    assert_eq!(memories.graph().len(), 2);
    assert!(memories.profile().unwrap().is_some());
    let restored_ids: Vec<u64> = memories
        .store()
        .iter()
        .map(|m| m.unwrap().id)
        .chain(memories.graph().nodes().unwrap().iter().map(|n| n.id))
        .collect();
    let fresh = memories
        .remember(new_memory("the cat is called Miso"))
        .unwrap();
    assert!(
        restored_ids.iter().all(|&id| id < fresh.id),
        "{restored_ids:?} vs {}",
        fresh.id
    );
    assert_eq!(memories.search_text("Miso", 5).unwrap().len(), 1);

    let reminders = Reminders::open(&config.pixie.path).unwrap();
    let pending = reminders.pending().unwrap();
    assert_eq!(pending.len(), 2);
    let new = reminders.add(reminder("feed the cat", NOW)).unwrap();
    assert!(pending.iter().all(|r| r.id < new.id));
    let tasks = Tasks::open(reminders.db()).unwrap();
    assert_eq!(tasks.pending().unwrap().len(), 2);
}

/// Restores `archive` into a fresh folder and returns the error; nothing may be written.
fn refused(archive: &Path) -> BackupError {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let err =
        backup::restore(&backup::stores(&config), &backup::derived(&config), archive).unwrap_err();
    assert!(!config.memory.path.exists(), "{err}: nothing written");
    assert!(!config.pixie.path.exists(), "{err}: nothing written");
    assert!(!config.trust.registry.exists(), "{err}: nothing written");
    err
}

fn archive(dir: &Path) -> (HubConfig, PathBuf, Vec<u8>) {
    let config = config(&dir.join("hub"));
    fill(&config);
    pair(&config);
    let out = dir.join("hub.hearth-backup");
    backup::backup(&backup::stores(&config), &out, NOW).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    (config, out, bytes)
}

#[test]
fn a_damaged_truncated_or_newer_archive_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bytes) = archive(dir.path());
    let bad = dir.path().join("bad");

    for cut in [1, 4, 5, bytes.len() / 2, bytes.len() - 20] {
        std::fs::write(&bad, &bytes[..bytes.len() - cut]).unwrap();
        let err = refused(&bad);
        assert!(
            matches!(err, BackupError::Corrupt { .. }),
            "cut {cut}: {err}"
        );
        assert!(err.to_string().contains("nothing was written"), "{err}");
    }

    // One flipped bit in a value, in the header, in the checksum.
    let header_end = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(1)
        .unwrap()
        .0;
    for at in [bytes.len() - 100, header_end - 10, bytes.len() - 2] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        std::fs::write(&bad, &flipped).unwrap();
        let err = refused(&bad);
        assert!(
            matches!(err, BackupError::Corrupt { .. }),
            "byte {at}: {err}"
        );
    }

    // Bytes after the checksum.
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&bad, &longer).unwrap();
    assert!(matches!(refused(&bad), BackupError::Corrupt { .. }));

    // Not an archive at all.
    std::fs::write(&bad, b"{\"id\": 1}\n").unwrap();
    assert!(matches!(refused(&bad), BackupError::Corrupt { .. }));

    // A newer format: refused by its version, before anything else is read.
    let text = String::from_utf8_lossy(&bytes[..20]).into_owned();
    assert!(text.starts_with("hearth-backup 1\n"), "{text:?}");
    let mut newer = b"hearth-backup 2\n".to_vec();
    newer.extend_from_slice(&bytes[16..]);
    std::fs::write(&bad, &newer).unwrap();
    let err = refused(&bad);
    assert!(
        matches!(err, BackupError::NewerVersion { found: 2, .. }),
        "{err}"
    );
}

#[test]
fn restore_into_a_hub_that_holds_data_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (config, out, _) = archive(dir.path());
    let before = dumps(&config);
    let err =
        backup::restore(&backup::stores(&config), &backup::derived(&config), &out).unwrap_err();
    assert!(matches!(err, BackupError::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("wipe --yes"), "{err}");
    assert_eq!(dumps(&config), before);

    // Only the Pixie store holds data: still refused, and the memory store stays empty.
    let other = self::config(&dir.path().join("other"));
    Reminders::open(&other.pixie.path)
        .unwrap()
        .add(reminder("water the ferns", NOW))
        .unwrap();
    let err = backup::restore(&backup::stores(&other), &backup::derived(&other), &out).unwrap_err();
    assert!(
        matches!(&err, BackupError::NotEmpty { store, .. } if store == "pixie"),
        "{err}"
    );
    assert!(!other.memory.path.exists());
}

#[test]
fn restore_into_a_registry_that_has_a_terminal_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out, _) = archive(dir.path());
    let other = config(&dir.path().join("other"));
    Registry::open(&other.trust.registry)
        .unwrap()
        .pair("bedroom", "bedroom", false)
        .unwrap();
    let before = std::fs::read(&other.trust.registry).unwrap();
    let err = backup::restore(&backup::stores(&other), &backup::derived(&other), &out).unwrap_err();
    assert!(
        matches!(&err, BackupError::NotEmpty { store, .. } if store == "registry"),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!(!other.memory.path.exists());
    assert!(!other.pixie.path.exists());
    assert_eq!(std::fs::read(&other.trust.registry).unwrap(), before);
    let leftovers = std::fs::read_dir(other.trust.registry.parent().unwrap())
        .unwrap()
        .count();
    assert_eq!(leftovers, 1, "no temporary file");

    // A damaged registry there is refused too, by what is wrong with it.
    std::fs::write(&other.trust.registry, "{ not json").unwrap();
    let err = backup::restore(&backup::stores(&other), &backup::derived(&other), &out).unwrap_err();
    assert!(matches!(err, BackupError::Registry(_)), "{err}");
    assert!(!other.memory.path.exists());
}

#[test]
fn a_damaged_registry_is_not_backed_up_and_an_archive_without_one_restores() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("hub"));
    fill(&config);
    let stores = backup::stores(&config);

    // No registry file: the archive has none, and restoring it leaves the registry absent.
    let out = dir.path().join("hub.hearth-backup");
    let header = backup::backup(&stores, &out, NOW).unwrap();
    let registry = header.stores.iter().find(|s| s.name == "registry").unwrap();
    assert!(registry.trees.is_empty(), "{registry:?}");
    let fresh = self::config(&dir.path().join("fresh"));
    backup::restore(&backup::stores(&fresh), &backup::derived(&fresh), &out).unwrap();
    assert!(!fresh.trust.registry.exists());
    assert_eq!(dumps(&fresh), dumps(&config));

    // A registry that does not read as one: a clear error, and no archive.
    std::fs::create_dir_all(config.trust.registry.parent().unwrap()).unwrap();
    std::fs::write(
        &config.trust.registry,
        r#"{"version":1,"terminals":[{"id":"x"}]}"#,
    )
    .unwrap();
    let damaged = dir.path().join("damaged.hearth-backup");
    let err = backup::backup(&stores, &damaged, NOW).unwrap_err();
    assert!(matches!(err, BackupError::Registry(_)), "{err}");
    assert!(err.to_string().contains("is damaged"), "{err}");
    assert!(!damaged.exists());
}

#[test]
fn backup_and_wipe_refuse_stores_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    fill(&config);
    pair(&config);
    let held = Reminders::open(&config.pixie.path).unwrap();
    let out = dir.path().join("hub.hearth-backup");
    let err = backup::backup(&backup::stores(&config), &out, NOW).unwrap_err();
    assert!(err.to_string().contains("is the hub running?"), "{err}");
    assert!(!out.exists());
    let err = backup::wipe(&backup::stores(&config), &backup::derived(&config)).unwrap_err();
    assert!(err.to_string().contains("is the hub running?"), "{err}");
    assert!(config.memory.path.join("store").exists());
    // A running hub does not lock the registry; the stores it holds keep it from a wipe.
    assert_eq!(
        Registry::open(&config.trust.registry).unwrap().list().len(),
        2
    );
    drop(held);
}
