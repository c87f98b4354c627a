//! Emotion in the live hub: a stressed turn is scored in code, logged with its reasons, and
//! shapes that turn's recall; a calm one leaves both as configured.

use std::time::Duration;

use hearth_tests::{free_port, wait_for_log, Hub, Terminal};

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn a_stressed_turn_is_scored_logged_and_shapes_recall() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let hub = Hub::start(dir.path(), port, "").await?;
    let mut hall = Terminal::connected(dir.path(), port, "hall").await?;
    hall.say("I'm so stressed, the deadline is in an hour and NOTHING works!!")
        .await?;
    hall.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(&hub.log, "label=Stressed", Duration::from_secs(5)).await?;
    assert!(line.contains("lexicon: stressed"), "{line}");
    assert!(line.contains("recall=\"concern"), "{line}");

    hall.say("Could you tell me what the weather will be like this afternoon?")
        .await?;
    hall.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(&hub.log, "label=Calm", Duration::from_secs(5)).await?;
    // A long, questioning turn: curiosity widens recall.
    assert!(line.contains("recall=\"curiosity"), "{line}");
    Ok(())
}
