//! The memory store and its full-text index against a plain model, with restarts, stale
//! indexes, and a kill -9 in the middle of a stream of acknowledged writes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hearth_hub::memory::{
    Embedding, Memories, Memory, MemoryId, MemoryStore, NewMemory, Speaker, Tier,
};
use proptest::prelude::*;

const DIM: usize = 4;

fn new_memory(text: &str) -> NewMemory {
    NewMemory {
        text: text.to_string(),
        room: "kitchen".into(),
        speaker: Speaker::User,
        created_at_ms: 1_700_000_000_000,
        salience: 0.4,
        source: None,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String),
    /// Update the n-th live memory (modulo how many there are).
    Update(usize, String, bool),
    Forget(usize),
    /// Forget an id that never existed.
    ForgetMissing,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => "[a-zA-Z ü🌱]{0,40}".prop_map(Op::Insert),
        2 => (any::<usize>(), "[a-z ]{0,20}", any::<bool>()).prop_map(|(i, t, p)| Op::Update(i, t, p)),
        2 => any::<usize>().prop_map(Op::Forget),
        1 => Just(Op::ForgetMissing),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_a_btreemap_across_restarts(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory");
        let mut memories = Memories::open(&path, DIM).unwrap();
        let mut model: BTreeMap<MemoryId, Memory> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(text) => {
                    let m = memories.remember(new_memory(&text)).unwrap();
                    prop_assert!(!model.contains_key(&m.id), "ids are never reused");
                    model.insert(m.id, m);
                }
                Op::Update(i, text, promote) => {
                    if let Some(mut m) = model.values().nth(i % model.len().max(1)).cloned() {
                        m.text = text;
                        m.recalls += 1;
                        if promote {
                            m.tier = Tier::LongTerm;
                        }
                        memories.update(&m).unwrap();
                        model.insert(m.id, m);
                    }
                }
                Op::Forget(i) => {
                    if let Some(id) = model.keys().nth(i % model.len().max(1)).copied() {
                        prop_assert!(memories.forget(id).unwrap());
                        model.remove(&id);
                    }
                }
                Op::ForgetMissing => prop_assert!(!memories.forget(u64::MAX).unwrap()),
                Op::Reopen => {
                    drop(memories);
                    memories = Memories::open(&path, DIM).unwrap();
                }
            }
            prop_assert_eq!(memories.store().len(), model.len());
            prop_assert_eq!(memories.fulltext().len() as usize, model.len());
        }
        drop(memories);
        let memories = Memories::open(&path, DIM).unwrap();
        let stored: Vec<Memory> = memories.store().iter().map(Result::unwrap).collect();
        let expected: Vec<Memory> = model.values().cloned().collect();
        prop_assert_eq!(stored, expected);
        // Every memory is found by its own words, and nothing forgotten is.
        for m in model.values().filter(|m| m.text.split_whitespace().any(|w| w.chars().all(|c| c.is_ascii_alphabetic()) && w.len() > 2)) {
            let hits = memories.search_text(&m.text, model.len()).unwrap();
            prop_assert!(hits.iter().any(|(h, _)| h.id == m.id), "{:?} not found by its text", m.text);
            prop_assert!(hits.iter().all(|(h, _)| model.contains_key(&h.id)));
        }
    }
}

const CHILD_ENV: &str = "HEARTH_MEMORY_CRASH_CHILD";

/// In the child: insert memories forever, printing each id once `insert` has returned.
fn crash_child(path: &str) {
    let store = MemoryStore::open(std::path::Path::new(path)).unwrap();
    for i in 0.. {
        let m = store
            .insert(new_memory(&format!("acknowledged fact number {i}")))
            .unwrap();
        println!("ack {} {i}", m.id);
    }
}

#[test]
fn kill_9_during_acknowledged_writes_loses_none() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        crash_child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory");
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_during_acknowledged_writes_loses_none",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut acked: Vec<(u64, u64)> = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while acked.len() < 150 {
            let line = lines.next().expect("child output").unwrap();
            if let Some(rest) = line.strip_prefix("ack ") {
                let mut parts = rest.split(' ').map(|p| p.parse::<u64>().unwrap());
                acked.push((parts.next().unwrap(), parts.next().unwrap()));
            }
        }
        // SIGKILL, in the middle of the next write.
        child.kill().unwrap();
        child.wait().unwrap();

        let store = MemoryStore::open(&path).unwrap();
        for (id, i) in &acked {
            let m = store
                .get(*id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged memory {id} lost"));
            assert_eq!(m.text, format!("acknowledged fact number {i}"));
        }
        // Every record that survived is whole.
        assert!(store.iter().all(|r| r.is_ok()));
    }
}

#[test]
fn a_stale_or_missing_index_is_rebuilt_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory");
    {
        let memories = Memories::open(&path, DIM).unwrap();
        memories
            .remember(new_memory("my sister Anna lives in Porto"))
            .unwrap();
        let gone = memories
            .remember(new_memory("the boiler makes a strange noise"))
            .unwrap();
        assert!(memories.forget(gone.id).unwrap());
        assert!(
            memories.search_text("boiler", 5).unwrap().is_empty(),
            "forgotten everywhere"
        );
    }
    // In step: opening again does not rebuild.
    {
        let memories = Memories::open(&path, DIM).unwrap();
        assert!(!memories.fulltext().sync(memories.store()).unwrap());
    }
    // A write the index never saw (as after a crash between the two): rebuilt on open.
    {
        let store = MemoryStore::open(&path.join("store")).unwrap();
        store
            .insert(new_memory("the plants need water on Mondays"))
            .unwrap();
    }
    let memories = Memories::open(&path, DIM).unwrap();
    let hits = memories.search_text("plants water", 5).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0.text, "the plants need water on Mondays");
    drop(memories);
    // The index folder lost, or garbage: rebuilt.
    std::fs::remove_dir_all(path.join("fulltext")).unwrap();
    let memories = Memories::open(&path, DIM).unwrap();
    assert_eq!(memories.search_text("Anna Porto", 5).unwrap().len(), 1);
    drop(memories);
    std::fs::write(path.join("fulltext/meta.json"), b"{ not json").unwrap();
    let memories = Memories::open(&path, DIM).unwrap();
    assert_eq!(memories.fulltext().len(), 2);
}

#[test]
fn vectors_persist_and_forget_removes_them_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory");
    let (a, b);
    {
        let memories = Memories::open(&path, DIM).unwrap();
        a = memories
            .remember(new_memory("Anna lives in Porto"))
            .unwrap();
        b = memories
            .remember(new_memory("the plants need water"))
            .unwrap();
        memories.set_vector(a.id, &[1.0, 0.0, 0.0, 0.0]).unwrap();
        // b has two passages besides its whole text.
        let passages = vec![vec![0.0, 0.0, 1.0, 0.0], vec![0.0, 0.0, 0.0, 1.0]];
        let e = Embedding {
            whole: vec![0.0, 1.0, 0.0, 0.0],
            passages,
        };
        memories.set_embedding(b.id, &e).unwrap();
        let err = memories.set_vector(a.id, &[1.0, 0.0]).unwrap_err();
        assert!(err.to_string().contains("2 dimensions"), "{err}");
        let bad = Embedding {
            passages: vec![vec![1.0]],
            ..e.clone()
        };
        let err = memories.set_embedding(b.id, &bad).unwrap_err();
        assert!(err.to_string().contains("1 dimensions"), "{err}");
    }
    let memories = Memories::open(&path, DIM).unwrap();
    assert_eq!(memories.vector_count(), 2);
    let hits = memories.search_vector(&[0.6, 0.8, 0.0, 0.0], 2).unwrap();
    assert_eq!(hits[0].0.id, b.id);
    assert_eq!(hits[1].0.id, a.id);
    // A memory scores as its best passage; one without passages is not found by them.
    let q = [0.0, 0.0, 0.6, 0.8];
    let hits = memories.search_passages(&q, 2).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].0.id, hits[0].1), (b.id, 0.8));
    assert_eq!(memories.similarity(b.id, &q), (Some(0.0), Some(0.8)));
    assert_eq!(memories.similarity(a.id, &q), (Some(0.0), None));
    assert!(memories.forget(b.id).unwrap());
    drop(memories);
    let memories = Memories::open(&path, DIM).unwrap();
    assert_eq!(memories.vector_count(), 1);
    assert!(memories.store().vectors().all(|v| v.unwrap().0 == a.id));
    assert_eq!(memories.store().passages().count(), 0);
    assert!(memories.search_passages(&q, 2).unwrap().is_empty());
    assert!(memories.search_text("plants", 5).unwrap().is_empty());
    drop(memories);
    // Another embedding model (another dimension): those vectors are left out, not misused.
    let memories = Memories::open(&path, 8).unwrap();
    assert_eq!(memories.vector_count(), 0);
}

#[test]
fn batch_ingest_is_durable_and_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory");
    {
        let memories = Memories::open(&path, DIM).unwrap();
        let items = (0..50)
            .map(|i| {
                (
                    new_memory(&format!("batch fact {i} about gardening")),
                    Some(vec![1.0, 0.0, 0.0, i as f32 / 50.0]),
                )
            })
            .collect();
        let stored = memories.remember_batch(items).unwrap();
        assert_eq!(stored.len(), 50);
        let bad = vec![(new_memory("x"), Some(vec![1.0]))];
        assert!(memories.remember_batch(bad).is_err());
        assert_eq!(memories.store().len(), 50, "a bad batch writes nothing");
    }
    let memories = Memories::open(&path, DIM).unwrap();
    assert!(
        !memories.fulltext().sync(memories.store()).unwrap(),
        "index was in step"
    );
    assert_eq!(memories.fulltext().len(), 50);
    assert_eq!(memories.vector_count(), 50);
    assert_eq!(
        memories.search_text("fact 7", 1).unwrap()[0].0.text,
        "batch fact 7 about gardening"
    );
}

#[test]
fn the_question_log_survives_a_restart_and_the_sweep_prunes_it_apart_from_the_facts() {
    use hearth_hub::memory::lifecycle::LifecycleConfig;
    const DAY: u64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory");
    let t0 = new_memory("x").created_at_ms;
    let (fact, asked);
    {
        let memories = Memories::open(&path, DIM).unwrap();
        fact = memories
            .remember(new_memory("I'm so stressed about the deadline at work"))
            .unwrap();
        asked = memories
            .log_question(new_memory("why am I so stressed about work?"), None)
            .unwrap();
        assert!(asked.asked && !fact.asked);
    }
    // Kept as written, and found by its words (retrieval lends its score to its answer).
    let memories = Memories::open(&path, DIM).unwrap();
    assert!(memories.store().get(asked.id).unwrap().unwrap().asked);
    assert!(!memories.store().get(fact.id).unwrap().unwrap().asked);
    let found: Vec<MemoryId> = memories
        .search_text("stressed work", 5)
        .unwrap()
        .into_iter()
        .map(|(m, _)| m.id)
        .collect();
    assert!(found.contains(&asked.id), "{found:?}");
    // The profile counts what was told, not what was asked.
    let lifecycle = LifecycleConfig {
        short_term_ttl_hours: 1e6,
        ..LifecycleConfig::default()
    };
    let (report, profile) = memories.sweep(&lifecycle, t0 + DAY).unwrap();
    assert_eq!((report.kept, report.pruned), (2, 0));
    assert_eq!(profile.memories, 1);
    // Past question_log_days the question goes from the store and the index; the fact stays.
    let days = lifecycle.question_log_days;
    let (report, _) = memories.sweep(&lifecycle, t0 + (days + 1) * DAY).unwrap();
    assert_eq!((report.kept, report.pruned), (1, 1));
    assert!(memories.store().get(asked.id).unwrap().is_none());
    assert!(memories.store().get(fact.id).unwrap().is_some());
    assert!(memories
        .search_text("why", 5)
        .unwrap()
        .iter()
        .all(|(m, _)| m.id != asked.id));
    // An export of a memory that was told has no `asked` field; one without it loads as told.
    let line = serde_json::to_string(&memories.store().get(fact.id).unwrap().unwrap()).unwrap();
    assert!(!line.contains("asked"), "{line}");
    let told: Memory = serde_json::from_str(&line).unwrap();
    assert!(!told.asked);
}

#[test]
fn an_update_that_leaves_the_text_leaves_the_full_text_ranking_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let memories = Memories::open(dir.path(), DIM).unwrap();
    // The first two score the same for the question: their order is the index's.
    let ids: Vec<MemoryId> = [
        "Anna has a red bike at home",
        "Anna has a blue bike at home",
        "Tom lives in Leeds near the station",
        "the boiler needs a service before winter",
    ]
    .into_iter()
    .map(|t| memories.remember(new_memory(t)).unwrap().id)
    .collect();
    let ranked = |query: &str| -> Vec<(MemoryId, f32)> {
        memories
            .search_text(query, 10)
            .unwrap()
            .into_iter()
            .map(|(m, score)| (m.id, score))
            .collect()
    };
    let before = ranked("Anna bike");
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].1, before[1].1, "a tie");
    // Re-warming, promotion and the like change a memory but not its words: after each such
    // write the ranking is what it was. Indexed again, a memory went behind its equals, so
    // a recall reordered later recalls.
    for _ in 0..3 {
        for id in &ids {
            let mut m = memories.store().get(*id).unwrap().unwrap();
            m.recalls += 1;
            m.answers = !m.answers;
            memories.update(&m).unwrap();
            assert_eq!(ranked("Anna bike"), before);
        }
    }
    // A new text is indexed again: found by its new words, no longer by its old ones.
    let mut tom = memories.store().get(ids[2]).unwrap().unwrap();
    tom.text = "Tom lives in York near the minster".into();
    memories.update(&tom).unwrap();
    assert_eq!(ranked("York")[0].0, ids[2]);
    assert!(ranked("Leeds").is_empty());
    // And the index still reflects the store: a reopen finds it current.
    drop(memories);
    let memories = Memories::open(dir.path(), DIM).unwrap();
    assert_eq!(memories.search_text("York", 10).unwrap()[0].0.id, ids[2]);
}
