//! The FactConsolidation harness end to end on the first 40 facts and a few questions, with the
//! real embedding model: facts go through the live ingest path, slots are checked against
//! the current memories, questions are recalled. No score is asserted (the hub's write logic
//! decides those); only that the pipeline ran and gave shares in [0, 1].

use hearth_bench::facts::{load, run, table};
use hearth_hub::config::HubConfig;
use hearth_hub::llm::embed::Embedder;

#[tokio::test]
async fn the_harness_runs_on_the_first_facts() {
    let data = load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/factconsolidation-6k.json"),
    )
    .unwrap();
    let mut config = HubConfig::default();
    config.embeddings.model = hearth_tests::model("all-MiniLM-L6-v2.f16.gguf");
    let (embedder, _t) = Embedder::start(config.embeddings.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&data, &config, &embedder, dir.path(), Some(40), Some(4))
        .await
        .unwrap();

    assert_eq!(out.facts, 40);
    assert_eq!(out.stored + out.rewarmed + out.dropped, 40, "{out:?}");
    assert!(out.stored >= 1, "{out:?}");
    assert!(out.current_memories >= 1, "{out:?}");
    // Hines Ward's position (facts 3 and 36) and Chanel's founder (16 and 34) are overridden.
    assert_eq!(out.unmatched, 0);
    assert!(out.overridden.slots >= 2, "{out:?}");
    assert_eq!(out.all.slots, out.overridden.slots + out.once.slots);
    for c in [out.all, out.overridden, out.once] {
        assert!((0.0..=1.0).contains(&c.share()), "{c:?}");
        assert!(c.right <= c.slots && c.last_missing <= c.slots && c.stale <= c.slots);
    }
    // Only questions answered in the first 40 facts, at most 4 of each kind.
    for h in [out.single_hop, out.multi_hop] {
        assert!((1..=4).contains(&h.asked), "{h:?}");
        assert!(h.top <= h.any && h.any <= h.asked, "{h:?}");
        assert!((0.0..=1.0).contains(&h.top_share()));
        assert!((0.0..=1.0).contains(&h.any_share()));
    }
    assert_eq!(out.recall.len(), out.single_hop.asked + out.multi_hop.asked);
    let table = table(&out, config.memory.recall_k);
    assert!(table.contains("| single-hop"), "{table}");
    assert!(table.contains("| slots"), "{table}");
}
