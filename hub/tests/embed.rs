//! Sentence embeddings through llama.cpp with the converted all-MiniLM-L6-v2 GGUF (fetched and
//! converted by `scripts/fetch-models`).

use hearth_hub::config::EmbeddingConfig;
use hearth_hub::llm::embed::{cosine, Embedder};
use hearth_hub::llm::LlmError;

fn config() -> EmbeddingConfig {
    EmbeddingConfig {
        model: hearth_tests::model("all-MiniLM-L6-v2.f16.gguf"),
        ..EmbeddingConfig::default()
    }
}

#[tokio::test]
async fn paraphrases_are_close_and_unrelated_texts_are_not() {
    let (embedder, _t) = Embedder::start(config()).await.unwrap();
    assert_eq!(embedder.dim(), 384);
    let texts = [
        "My sister Anna lives in Porto.",
        "Anna, my sister, has her home in Porto.",
        "The train to Berlin leaves at nine.",
        "Remember to water the plants on Monday.",
    ];
    let v = embedder
        .embed(texts.iter().map(|t| t.to_string()).collect())
        .await
        .unwrap();
    assert_eq!(v.len(), 4);
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    }
    let paraphrase = cosine(&v[0], &v[1]);
    assert!(paraphrase > 0.75, "paraphrase cosine {paraphrase}");
    for other in [&v[2], &v[3]] {
        let unrelated = cosine(&v[0], other);
        assert!(unrelated < 0.3, "unrelated cosine {unrelated}");
        assert!(unrelated < paraphrase - 0.4);
    }

    // The same text gives the same vector alone or in a batch, and long texts are truncated.
    let alone = embedder.embed(vec![texts[2].to_string()]).await.unwrap();
    assert!(cosine(&alone[0], &v[2]) > 0.9999);
    let long = embedder.embed(vec!["plants ".repeat(2000)]).await.unwrap();
    assert_eq!(long[0].len(), 384);
}

#[tokio::test]
async fn a_corrupt_embedding_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minilm.gguf");
    let full = std::fs::read(hearth_tests::model("all-MiniLM-L6-v2.f16.gguf")).unwrap();
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let err = Embedder::start(EmbeddingConfig {
        model: path.clone(),
        ..config()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, LlmError::Model(_)), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_question_finds_its_fact_by_meaning_among_distractors() {
    use hearth_hub::memory::{Memories, NewMemory, Speaker};
    let (embedder, _t) = Embedder::start(config()).await.unwrap();
    let memories = Memories::temporary(embedder.dim()).unwrap();
    let facts = [
        "My sister Anna lives in Porto.",
        "The boiler was serviced in March.",
        "I water the basil every Monday.",
        "We are going to Berlin by train next week.",
        "My favourite dessert is lemon tart.",
    ];
    let vectors = embedder
        .embed(facts.iter().map(|f| f.to_string()).collect())
        .await
        .unwrap();
    for (text, v) in facts.iter().zip(&vectors) {
        let m = memories
            .remember(NewMemory {
                text: text.to_string(),
                room: "kitchen".into(),
                speaker: Speaker::User,
                created_at_ms: 0,
                salience: 0.5,
                source: None,
            })
            .unwrap();
        memories.set_vector(m.id, v).unwrap();
    }
    for (question, expected) in [
        ("Where does my sister live?", facts[0]),
        ("When should the herbs get watered?", facts[2]),
        ("What sweet thing do I like most?", facts[4]),
    ] {
        let q = embedder.embed(vec![question.to_string()]).await.unwrap();
        let hits = memories.search_vector(&q[0], 1).unwrap();
        assert_eq!(hits[0].0.text, expected, "{question}");
    }
}

#[tokio::test]
async fn a_question_naming_someone_finds_what_they_said_in_their_own_words() {
    use hearth_hub::subconscious::embed_question;
    // Tom tells of his move himself, without his name; the name is in words said to him.
    let (embedder, _t) = Embedder::start(config()).await.unwrap();
    let said = [
        "I moved to York last spring, the rent is much cheaper there.",
        "Thanks, Tom! See you at the match on Saturday.",
        "Tom, can you pick the kids up from school today?",
        "Tom's sister called about the birthday party.",
        "The boiler was serviced in March.",
    ];
    let v = embedder
        .embed(said.iter().map(|t| t.to_string()).collect())
        .await
        .unwrap();
    let question = "Where did Tom move to?";
    let ranked = |q: &[f32]| {
        let mut order: Vec<(f32, &str)> = v.iter().map(|x| cosine(q, x)).zip(said).collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        order
    };
    let (own, asked) = embed_question(&embedder, question, 0.5)
        .await
        .unwrap()
        .unwrap();
    // Embedded as asked, the name pulls the words said to Tom ahead (York was fourth of five
    // when measured); half-way towards "Where did move to?", what he said comes first.
    let by_name = ranked(&own);
    assert_ne!(by_name[0].1, said[0], "{by_name:?}");
    let by_meaning = ranked(&asked);
    assert_eq!(by_meaning[0].1, said[0], "{by_meaning:?}");
    let norm: f32 = asked.iter().map(|a| a * a).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    // The share 0, or a question that names no one, asks with the question's own embedding.
    let (own, asked) = embed_question(&embedder, question, 0.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own, asked);
    let (own, asked) = embed_question(&embedder, "Where did I park the car?", 0.5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own, asked);
}
