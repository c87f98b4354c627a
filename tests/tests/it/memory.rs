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
    let mut kitchen = Terminal::start(dir.path(), port, "kitchen")?;
    kitchen
        .expect("connected to the hub", Duration::from_secs(30))
        .await?;
    kitchen.say("My sister Anna lives in Porto.").await?;
    kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    wait_for_log(&hub.log, "what=\"stored\"", Duration::from_secs(30)).await?;

    hub.terminate().await?;
    let config = hub.config.clone();
    let hub = Hub::launch(&config, port, dir.path()).await?;
    assert!(hub.log_text().contains("memories=1"), "{}", hub.log_text());

    let mut study = Terminal::start(dir.path(), port, "study")?;
    study
        .expect("connected to the hub", Duration::from_secs(30))
        .await?;
    study.say("Where does my sister live?").await?;
    study.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(&hub.log, "memory context", Duration::from_secs(5)).await?;
    assert!(line.contains("My sister Anna lives in Porto."), "{line}");
    Ok(())
}

#[tokio::test]
async fn forget_that_removes_the_memory_everywhere() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let hub = Hub::start(dir.path(), port, "").await?;
    let mut hall = Terminal::start(dir.path(), port, "hall")?;
    hall.expect("connected to the hub", Duration::from_secs(30))
        .await?;
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
    let mut study = Terminal::start(dir.path(), port, "study")?;
    study
        .expect("connected to the hub", Duration::from_secs(30))
        .await?;
    study.say("Where does my sister live?").await?;
    study.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(&hub.log, "memory context", Duration::from_secs(5)).await?;
    assert!(line.contains("recalled=[]"), "{line}");
    Ok(())
}
