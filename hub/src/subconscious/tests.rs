use super::*;
use crate::llm::scripted::HashedWords;

const NOW: u64 = 1_800_000_000_000;

fn said(id: &str, text: &str) -> Utterance {
    Utterance {
        id: id.into(),
        terminal: "kitchen-pi".into(),
        room: "kitchen".into(),
        text: text.into(),
        started_at_ms: NOW,
        ended_at_ms: NOW,
        audio: None,
        speaker: None,
    }
}

#[tokio::test]
async fn a_turn_answers_what_the_memory_before_it_asked_not_the_assistants_question() {
    let (embedder, _thread) = Embedder::with_encoder(HashedWords::new(64), 16);
    let memories = Arc::new(Memories::temporary(64).unwrap());
    let s = Subconscious::new(Arc::clone(&memories), embedder, MemoryConfig::default());
    let answers = |id: MemoryId| memories.store().get(id).unwrap().unwrap().answers;
    // Two people talking: the second answers what the first asked in passing.
    let asked =
        "Congrats on the new job! What made you switch to nursing? I'm still at the bakery.";
    let first = s.ingest(&said("1", asked), None, None, NOW).await.unwrap();
    let reply = said(
        "2",
        "I wanted to help people every single day at the hospital.",
    );
    let second = s
        .ingest(&reply, None, Some(asked), NOW + 30_000)
        .await
        .unwrap();
    assert!(!answers(first));
    assert!(answers(second));
    // In a live room what was said just before is the assistant's reply, never a memory: a
    // question in it makes nothing the person says next an answer to their own words.
    let next = said("3", "My sister Anna lives in Porto with her two cats.");
    let third = s
        .ingest(
            &next,
            None,
            Some("Hearth: Lovely! Where were you born?"),
            NOW + 60_000,
        )
        .await
        .unwrap();
    assert!(!answers(third));
}
