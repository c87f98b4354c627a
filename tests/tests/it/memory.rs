//! Memory across rooms and restarts: a fact told in the kitchen is recalled into the prompt of
//! a question asked in the study, after the hub restarted. Real LLM, real embeddings.

use std::time::Duration;

use hearth_tests::{free_port, wait_for_log, Hub, Terminal};

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn a_fact_told_in_one_room_is_recalled_in_another_after_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, "").await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    kitchen.say("My sister Anna lives in Porto.").await?;
    kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    wait_for_log(&hub.log, "what=\"stored\"", Duration::from_secs(30)).await?;

    hub.terminate().await?;
    let config = hub.config.clone();
    let hub = Hub::launch(&config, port, dir.path()).await?;
    assert!(hub.log_text().contains("memories=1"), "{}", hub.log_text());

    let mut study = Terminal::connected(dir.path(), port, "study").await?;
    study.say("Where does my sister live?").await?;
    study.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(&hub.log, "memory context text", Duration::from_secs(5)).await?;
    assert!(line.contains("My sister Anna lives in Porto."), "{line}");
    Ok(())
}

#[tokio::test]
async fn forget_that_removes_the_memory_everywhere() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let hub = Hub::start(dir.path(), port, "").await?;
    let mut hall = Terminal::connected(dir.path(), port, "hall").await?;
    hall.say("My sister Anna lives in Porto.").await?;
    hall.expect("hub: ", REPLY_TIMEOUT).await?;
    wait_for_log(&hub.log, "what=\"stored\"", Duration::from_secs(30)).await?;
    hall.say("What do you remember about Anna?").await?;
    let (line, _) = hall.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(line.contains("My sister Anna lives in Porto."), "{line}");

    hall.say("Forget that.").await?;
    let (line, _) = hall.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(line.contains("forgotten that"), "{line}");
    hall.say("What do you remember about Anna?").await?;
    let (line, _) = hall.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(
        line.contains("don't remember anything about anna"),
        "{line}"
    );

    // Gone from the store and both indexes: a fresh hub on the same memory finds nothing, by
    // words or by meaning.
    let config = hub.config.clone();
    drop(hub);
    let hub = Hub::launch(&config, port, dir.path()).await?;
    assert!(hub.log_text().contains("memories=0"), "{}", hub.log_text());
    let mut study = Terminal::connected(dir.path(), port, "study").await?;
    study.say("Where does my sister live?").await?;
    study.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(&hub.log, "memory context text", Duration::from_secs(5)).await?;
    assert!(line.contains("recalled=[]"), "{line}");
    Ok(())
}

/// Runs `hearth-hub --config CONFIG memory ARGS...` and returns its stdout; fails on a non-zero
/// exit.
async fn memory_cli(config: &std::path::Path, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(hearth_tests::bin("hearth-hub"))
        .arg("--config")
        .arg(config)
        .arg("memory")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "memory {args:?} failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

#[tokio::test]
async fn a_spoken_correction_supersedes_the_fact_and_the_cli_shows_both() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, "").await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    kitchen.say("My sister Anna lives in Porto.").await?;
    kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    wait_for_log(&hub.log, "what=\"stored\"", Duration::from_secs(30)).await?;
    // The graph write runs in the background after the reply; either outcome is logged.
    wait_for_log(&hub.log, "memory graph", Duration::from_secs(120)).await?;

    kitchen
        .say("Actually, my sister Anna lives in Lisbon now.")
        .await?;
    let (line, _) = kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(line.contains("updated that"), "{line}");

    let mut study = Terminal::connected(dir.path(), port, "study").await?;
    study.say("Where does my sister live?").await?;
    study.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(
        &hub.log,
        "memory context text id=study",
        Duration::from_secs(5),
    )
    .await?;
    assert!(line.contains("Lisbon") && !line.contains("Porto"), "{line}");

    // The CLI, once the hub has let go of the store: both versions, the old one superseded.
    hub.terminate().await?;
    let config = hub.config.clone();
    let recall = memory_cli(&config, &["recall", "Anna"]).await?;
    let porto = recall.lines().find(|l| l.contains("Porto")).unwrap_or("");
    let lisbon = recall.lines().find(|l| l.contains("Lisbon")).unwrap_or("");
    assert!(porto.contains("superseded by"), "{recall}");
    assert!(
        !lisbon.is_empty() && !lisbon.contains("superseded"),
        "{recall}"
    );

    let sweep = memory_cli(&config, &["sweep"]).await?;
    assert!(
        sweep.contains("expired 0") && sweep.contains("profile from"),
        "{sweep}"
    );
    let profile = memory_cli(&config, &["profile"]).await?;
    assert!(profile.contains("agreeableness"), "{profile}");
    memory_cli(&config, &["graph"]).await?;

    let id = lisbon
        .trim_start_matches('#')
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    memory_cli(&config, &["forget", &id]).await?;
    let recall = memory_cli(&config, &["recall", "Anna"]).await?;
    assert!(!recall.contains("Lisbon"), "{recall}");
    Ok(())
}

/// Waits until the hub's log holds `needle` at least `n` times.
async fn logged(hub: &Hub, needle: &str, n: usize) -> anyhow::Result<()> {
    for _ in 0..600 {
        if hub.log_text().matches(needle).count() >= n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{needle:?} not logged {n} times:\n{}", hub.log_text())
}

/// Says `text` in a room and waits for the whole reply line.
async fn ask(room: &mut Terminal, text: &str) -> anyhow::Result<String> {
    room.say(text).await?;
    Ok(room.expect("hub: ", REPLY_TIMEOUT).await?.0)
}

/// A household's memory writes through the real hub, its model and two rooms, across a
/// restart: a fact is stored, a question is only logged and a request not kept, a new value of a slot
/// supersedes the old one, "not Leeds but York" corrects the fact, and "forget what I told
/// you about my brother" (asked, then confirmed) removes the fact and its history. The store
/// is read at the end with `memory export`.
#[tokio::test]
async fn household_memory_writes_through_the_real_hub() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, "").await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    let mut lounge = Terminal::connected(dir.path(), port, "lounge").await?;
    ask(&mut kitchen, "My brother Tom moved to Leeds last year.").await?;
    logged(&hub, "memory ingest", 1).await?;
    ask(&mut kitchen, "What is the capital of France?").await?;
    ask(&mut lounge, "Tell me a joke about cats.").await?;
    ask(&mut lounge, "My locker code is 4812.").await?;
    logged(&hub, "memory ingest", 4).await?;
    ask(&mut lounge, "My locker code is 5120.").await?;
    logged(&hub, "slot update", 1).await?;
    let log = hub.log_text();
    assert_eq!(log.matches("what=\"stored\"").count(), 2, "{log}");
    assert_eq!(log.matches("kind=\"question\"").count(), 1, "{log}");
    assert_eq!(log.matches("kind=\"command\"").count(), 1, "{log}");

    hub.terminate().await?;
    drop((kitchen, lounge));
    let mut hub = Hub::launch(&hub.config, port, dir.path()).await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    let line = ask(&mut kitchen, "not Leeds but York").await?;
    assert!(line.contains("updated"), "{line}");
    let line = ask(&mut kitchen, "Forget what I told you about my brother.").await?;
    assert!(
        line.contains("2 things") && line.contains("Shall I"),
        "{line}"
    );
    let line = ask(&mut kitchen, "yes").await?;
    assert!(line.contains("forgotten 2"), "{line}");
    hub.terminate().await?;

    let export = dir.path().join("export.jsonl");
    memory_cli(
        &hub.config,
        &["export", "--out", export.to_str().unwrap_or_default()],
    )
    .await?;
    // (text, current, asked)
    let mut texts: Vec<(String, bool, bool)> = std::fs::read_to_string(&export)?
        .lines()
        .map(|l| {
            let m: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            (
                m["text"].as_str().unwrap_or_default().to_string(),
                m["superseded_by"].is_null(),
                m["asked"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            ("My locker code is 4812.".to_string(), false, false),
            ("My locker code is 5120.".to_string(), true, false),
            ("What is the capital of France?".to_string(), true, true),
        ],
        "the store holds the locker code and its history, the question in its log, nothing else"
    );
    Ok(())
}
