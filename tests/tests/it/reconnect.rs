//! The terminal notices a dead hub at once, says so, and reconnects by itself.

use std::time::{Duration, Instant};

use hearth_tests::{free_port, Hub, Terminal};

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn killed_hub_is_reported_within_two_seconds_and_the_terminal_reconnects(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, "").await?;
    let mut term = Terminal::connected(dir.path(), port, "hall").await?;

    hub.child.start_kill()?;
    let killed = Instant::now();
    hub.child.wait().await?;
    // The 2 s bound is the requirement itself: the kernel closes the hub's sockets at once.
    let (_, seen) = term
        .expect("hub unreachable", Duration::from_secs(2))
        .await?;
    assert!(seen - killed < Duration::from_secs(2));

    term.say("Are you there?").await?;
    term.expect("could not send that", Duration::from_secs(5))
        .await?;
    assert!(term.child.try_wait()?.is_none(), "the terminal stays up");

    let config = hub.config.clone();
    let _hub = Hub::spawn(&config, port, dir.path())?;
    term.expect("connected to the hub", Duration::from_secs(60))
        .await?;
    term.say("Say hello in one sentence.").await?;
    term.expect("hub: ", REPLY_TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
async fn sigterm_stops_the_hub_cleanly_and_terminals_hear_it_went_offline() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, "").await?;
    let mut term = Terminal::connected(dir.path(), port, "porch").await?;

    let exit = hub.terminate().await?;
    assert!(
        exit.success(),
        "hub exit status {exit:?}:\n{}",
        hub.log_text()
    );
    assert!(hub.log_text().contains("hub stopped"));
    term.expect("hub unreachable", Duration::from_secs(5))
        .await?;
    Ok(())
}
