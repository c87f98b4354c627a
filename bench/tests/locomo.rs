//! The LoCoMo harness on one small hand-written conversation in LoCoMo's format, with the real
//! embedding model: exact counts, so that the harness itself (ingest through the live path,
//! the chatter floor, evidence mapping, counting per category) is covered.

use hearth_bench::locomo::{load, run_conversation, Counts};
use hearth_hub::config::HubConfig;
use hearth_hub::llm::embed::Embedder;

#[tokio::test]
async fn the_harness_counts_exactly_on_a_small_conversation() {
    let conv =
        load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/locomo-mini.json"))
            .unwrap();
    assert_eq!(conv.sessions.len(), 2);
    assert_eq!(
        conv.sessions[1].0, 1_681_756_800_000,
        "6:40 pm on 17 April, 2023"
    );
    assert_eq!(
        conv.questions.len(),
        8,
        "the question without evidence is left out"
    );

    let mut config = HubConfig::default();
    config.embeddings.model = hearth_tests::model("all-MiniLM-L6-v2.f16.gguf");
    let (embedder, _t) = Embedder::start(config.embeddings.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run_conversation(&conv, &config, &embedder, dir.path(), true, &[])
        .await
        .unwrap();

    // "ok" is small talk and "What do you feed her?" a question: neither is stored as a
    // memory; every other turn is a memory of its own.
    assert_eq!((out.stored, out.rewarmed, out.dropped), (9, 0, 2));
    let c = |hits: [usize; 3], questions| Counts { hits, questions };
    let hybrid = &out.hybrid;
    // The pie is found by its photo's caption. The cat's food is found first: the question
    // before it ("What do you feed her?") is in the question log, and passes its score to
    // its answer (in the top 5 but not first without the log, below).
    assert_eq!(hybrid[&4], c([4, 4, 4], 4), "{hybrid:?}");
    assert_eq!(hybrid[&1], c([1, 1, 1], 1), "{hybrid:?}");
    assert_eq!(hybrid[&2], c([1, 1, 1], 1), "{hybrid:?}");
    // Its evidence was never stored, so no k can find it.
    assert_eq!(hybrid[&3], c([0, 0, 0], 1), "{hybrid:?}");
    // The adversarial question names the wrong person: its evidence ranks low.
    assert_eq!(hybrid[&5], c([0, 0, 1], 1), "{hybrid:?}");
    let bm25 = out.bm25.as_ref().unwrap();
    assert_eq!(bm25[&3], c([0, 0, 0], 1));
    assert_eq!(bm25.values().map(|c| c.questions).sum::<usize>(), 8);
    assert_eq!(out.retrieval.len(), 8);
    assert_eq!(out.top_cosine.len(), 8);
    assert!(!out.kept);
    // Every stored turn and the logged question has passage vectors but each session's
    // first: one sentence, said with nothing before it, is its whole text.
    let store = hearth_hub::memory::MemoryStore::open(&dir.path().join("store")).unwrap();
    let passages: Vec<(u64, usize)> = store
        .passages()
        .map(|p| p.map(|(id, v)| (id, v.len() / 384)).unwrap())
        .collect();
    assert_eq!(passages.len(), 8, "{passages:?}");
    assert!(passages.iter().all(|(_, n)| *n >= 1), "{passages:?}");
    drop(store);

    // The same folder again (`--stores`): the store is kept, and counts the same.
    let again = run_conversation(&conv, &config, &embedder, dir.path(), true, &[])
        .await
        .unwrap();
    assert!(again.kept);
    assert_eq!(again.hybrid, out.hybrid);
    assert_eq!(again.bm25, out.bm25);
    assert_eq!((again.stored, again.rewarmed, again.dropped), (9, 0, 2));

    // Without the question log (another store) the question before the cat's food lends it
    // nothing.
    let mut unlogged = config.clone();
    unlogged.memory.lifecycle.question_log_days = 0;
    let other = tempfile::tempdir().unwrap();
    let unlogged = run_conversation(&conv, &unlogged, &embedder, other.path(), false, &[])
        .await
        .unwrap();
    assert_eq!(
        unlogged.hybrid[&4],
        c([3, 4, 4], 4),
        "{:?}",
        unlogged.hybrid
    );
    assert_eq!((unlogged.stored, unlogged.dropped), (9, 2));

    // Retrieval settings do not touch the store; an ingest setting makes it again.
    config.memory.retrieval.w_cosine = 0.0;
    let retuned = run_conversation(&conv, &config, &embedder, dir.path(), false, &[])
        .await
        .unwrap();
    assert!(retuned.kept);
    config.memory.min_salience = 0.0;
    let remade = run_conversation(&conv, &config, &embedder, dir.path(), false, &[])
        .await
        .unwrap();
    assert!(!remade.kept);
    assert_eq!(
        (remade.stored, remade.dropped),
        (9, 2),
        "small talk and questions stay out whatever the salience floor"
    );

    // A shared photo's caption is part of its turn's memory; without captions
    // (`--no-captions`) the turns differ, so the kept store is made again.
    let photo = |dir: &std::path::Path| {
        let store = hearth_hub::memory::MemoryStore::open(&dir.join("store")).unwrap();
        let text = store
            .iter()
            .map(Result::unwrap)
            .find(|m| m.text.contains("made for dinner"))
            .unwrap()
            .text;
        text
    };
    assert_eq!(
        photo(dir.path()),
        "Maya: Look what I made for dinner tonight! [shares a photo of a cherry pie on a kitchen table]"
    );
    let plain = run_conversation(
        &conv.clone().without_captions(),
        &config,
        &embedder,
        dir.path(),
        false,
        &[],
    )
    .await
    .unwrap();
    assert!(!plain.kept);
    // Without its caption, "What pie did Maya make?" no longer finds the turn first.
    assert_eq!(plain.hybrid[&4], c([3, 4, 4], 4), "{:?}", plain.hybrid);
    assert_eq!(
        photo(dir.path()),
        "Maya: Look what I made for dinner tonight!"
    );
}
