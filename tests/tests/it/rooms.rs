//! Several rooms on one hub: three terminals speak at the same moment and each gets its own
//! answer, with no chunk on another room's topic; proactive speech reaches only the room it
//! names. Real hub, real LLM, real terminals.

use std::collections::HashMap;
use std::time::Duration;

use hearth_shared::{decode, ReplyChunk, Speech};
use hearth_tests::{free_port, Hub, Observer, Terminal};

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn three_rooms_at_once_each_get_their_own_answer_and_speech_goes_only_where_named(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let _hub = Hub::start(dir.path(), port, "").await?;
    let mut obs = Observer::connect(
        port,
        &["hearth/v1/terminal/+/reply", "hearth/v1/terminal/+/speech"],
    )
    .await?;
    let names = ["kitchen", "study", "hall"];
    let mut terminals = Vec::new();
    for name in names {
        terminals.push(Terminal::connected(dir.path(), port, name).await?);
    }
    let questions = [
        "What is a good soup for a cold day?",
        "Name a famous river in Europe.",
        "How do I keep basil alive?",
    ];
    for (t, q) in terminals.iter_mut().zip(questions) {
        t.say(q).await?;
    }
    // Every chunk on a room's topic answers that room's utterance; three replies end.
    let mut finished: HashMap<String, usize> = HashMap::new();
    while finished.len() < 3 {
        let (topic, payload, _) = obs.next(REPLY_TIMEOUT).await?;
        let room = topic.split('/').nth(3).unwrap_or_default().to_string();
        anyhow::ensure!(topic.ends_with("/reply"), "unexpected {topic}");
        let chunk: ReplyChunk = decode(&payload, usize::MAX)?;
        assert!(
            chunk.utterance_id.starts_with(&format!("{room}-")),
            "cross-talk: {} on {topic}",
            chunk.utterance_id
        );
        if chunk.is_final {
            *finished.entry(room).or_default() += 1;
        }
    }
    assert!(finished.values().all(|n| *n == 1), "{finished:?}");
    for t in &mut terminals {
        t.expect("hub: ", REPLY_TIMEOUT).await?;
    }

    // Set in the study, for the kitchen: only the kitchen says it.
    terminals[1]
        .say("Remind me in the kitchen to check the oven in 2 seconds.")
        .await?;
    let (line, _) = terminals[1].expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(line.contains("in the kitchen: check the oven."), "{line}");
    let mut speech_rooms = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let Ok((topic, payload, _)) = obs.next(Duration::from_secs(5)).await else {
            if !speech_rooms.is_empty() {
                break;
            }
            continue;
        };
        if topic.ends_with("/speech") {
            let speech: Speech = decode(&payload, usize::MAX)?;
            assert!(speech.text.contains("check the oven"), "{}", speech.text);
            speech_rooms.push(topic.split('/').nth(3).unwrap_or_default().to_string());
        }
    }
    assert_eq!(speech_rooms, ["kitchen"]);
    terminals[0]
        .expect("hub (reminder): Reminder: check the oven.", REPLY_TIMEOUT)
        .await?;
    Ok(())
}
