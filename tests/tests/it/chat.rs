//! A typed line goes from a real text terminal to the real hub and the reply streams back.

use std::time::Duration;

use hearth_tests::{free_port, Hub, Observer, Terminal};

use crate::{collect_reply, REPLY_TIMEOUT};

#[tokio::test]
async fn text_terminal_gets_a_streamed_multi_sentence_reply() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let _hub = Hub::start(dir.path(), port, "").await?;
    let reply_topic = "hearth/v1/terminal/kitchen/reply";
    let mut obs = Observer::connect(port, &[reply_topic]).await?;
    let mut term = Terminal::connected(dir.path(), port, "kitchen").await?;

    // Greedy decoding makes SmolLM2's answer to this fixed: several sentences.
    term.say("Describe a cat in a few sentences.").await?;
    let chunks = collect_reply(&mut obs, reply_topic).await?;

    let texts: Vec<&str> = chunks.iter().map(|(c, _)| c.text.as_str()).collect();
    assert!(
        chunks.len() >= 3,
        "expected at least two sentences and a final chunk: {texts:?}"
    );
    for (i, (c, _)) in chunks.iter().enumerate() {
        assert_eq!(c.seq as usize, i, "consecutive sequence numbers");
        assert_eq!(c.utterance_id, chunks[0].0.utterance_id, "one utterance");
        assert_eq!(
            c.is_final,
            i + 1 == chunks.len(),
            "only the last chunk is final"
        );
    }
    assert!(!chunks[0].0.text.is_empty());
    // Streaming, not one burst at the end: the first sentence arrived while the model was still
    // writing the rest, which takes tens of tokens (hundreds of ms even on a fast machine). A
    // busy machine only widens this gap.
    let gap = chunks.last().unwrap().1 - chunks[0].1;
    assert!(
        gap >= Duration::from_millis(50),
        "first and final chunk arrived together ({gap:?}): {texts:?}"
    );

    // The terminal printed the whole reply on one line as it streamed.
    let (line, _) = term.expect("hub: ", REPLY_TIMEOUT).await?;
    for text in texts.iter().filter(|t| !t.is_empty()) {
        assert!(line.contains(text), "{line:?} lacks {text:?}");
    }
    Ok(())
}

#[tokio::test]
async fn two_rooms_keep_separate_conversations() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    // Memory is shared by the household on purpose; switch recall off to see history alone.
    let hub = Hub::start(dir.path(), port, "recall_k = 0").await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    let mut study = Terminal::connected(dir.path(), port, "study").await?;
    kitchen.say("Hello! Who are you?").await?;
    kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    study.say("Hello! Who are you?").await?;
    study.expect("hub: ", REPLY_TIMEOUT).await?;
    kitchen.say("Tell me more.").await?;
    kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    // The kitchen's second prompt carried its first exchange, so most of it was already in the
    // KV cache or not: either way the study's history must not have leaked in. The hub logs
    // prompt sizes; the kitchen's second prompt is longer than its first. The hub logs an answer
    // just after its final chunk goes out, so the last line may trail the terminal's print.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hub.log_text().matches(" answered ").count() < 3 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = hub.log_text();
    let prompts: Vec<usize> = log
        .lines()
        .filter(|l| l.contains("answered"))
        .filter_map(|l| {
            l.split("prompt_tokens=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(prompts.len(), 3, "{log}");
    assert_eq!(
        prompts[0], prompts[1],
        "both rooms started from the same empty history"
    );
    assert!(
        prompts[2] > prompts[0],
        "the kitchen's history went into its next prompt: {prompts:?}"
    );
    Ok(())
}
