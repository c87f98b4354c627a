//! Reminders across processes: set by voice (text) in one room, said first by the hub in the
//! room where the user was heard last; one due while the hub was down is said once after the
//! restart, marked late. Real hub, real terminals, the real clock (seconds, not hours).

use std::time::Duration;

use hearth_tests::{free_port, Hub, Terminal};

use crate::REPLY_TIMEOUT;

const SPEECH_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_reminder_set_in_the_kitchen_is_said_in_the_study_where_the_user_went(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let _hub = Hub::start(dir.path(), port, "").await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    let mut study = Terminal::connected(dir.path(), port, "study").await?;
    kitchen.say("Remind me to stretch in 8 seconds.").await?;
    let (line, _) = kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(
        line.contains("Okay, I'll remind you in 8 seconds: stretch."),
        "{line}"
    );
    // The user walks to the study and talks there.
    study.say("Hello, I am in the study now.").await?;
    study.expect("hub: ", REPLY_TIMEOUT).await?;
    let (line, _) = study.expect("hub (reminder): ", SPEECH_TIMEOUT).await?;
    assert!(line.contains("Reminder: stretch."), "{line}");
    assert!(
        kitchen
            .expect("hub (reminder)", Duration::from_secs(3))
            .await
            .is_err(),
        "the kitchen must not say it"
    );

    study.say("What are my reminders?").await?;
    let (line, _) = study.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(line.contains("You have no reminders."), "{line}");
    Ok(())
}

#[tokio::test]
async fn a_reminder_due_while_the_hub_is_down_is_said_once_after_the_restart() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, "").await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    kitchen
        .say("Remind me to check the oven in 3 seconds.")
        .await?;
    let (line, _) = kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(line.contains("check the oven"), "{line}");
    hub.terminate().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let config = hub.config.clone();
    let mut hub = Hub::launch(&config, port, dir.path()).await?;
    let (line, _) = kitchen.expect("hub (reminder): ", SPEECH_TIMEOUT).await?;
    assert!(
        line.contains("Reminder: check the oven. This is late"),
        "{line}"
    );

    // Once, and only once: not again now, nor after another restart.
    hub.terminate().await?;
    let _hub = Hub::launch(&config, port, dir.path()).await?;
    kitchen
        .expect("connected to the hub", Duration::from_secs(30))
        .await?;
    assert!(
        kitchen
            .expect("hub (reminder)", Duration::from_secs(4))
            .await
            .is_err(),
        "said twice: {:?}",
        kitchen.seen
    );
    Ok(())
}

#[tokio::test]
async fn a_quiet_conversation_is_reflected_on_and_remembered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let config = dir.path().join("hub-reflect.toml");
    let toml = hearth_tests::hub_toml(dir.path(), port, "")
        .replace("reflect_after_idle_s = 0", "reflect_after_idle_s = 1");
    std::fs::write(&config, toml)?;
    let hub = Hub::launch(&config, port, dir.path()).await?;
    let mut study = Terminal::connected(dir.path(), port, "study").await?;
    study
        .say("I have a job interview on Friday and I am nervous about it.")
        .await?;
    study.expect("hub: ", REPLY_TIMEOUT).await?;
    // The real model writes the reflection under the grammar; it is stored as a memory.
    let line =
        hearth_tests::wait_for_log(&hub.log, "pixie reflected", Duration::from_secs(120)).await?;
    assert!(line.contains("memory=Some("), "{line}");
    Ok(())
}
