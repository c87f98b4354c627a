//! The hub can use an external broker (Debian's mosquitto) instead of its embedded one; its
//! Last Will then tells terminals when it dies, while the broker stays up.

use std::process::Stdio;
use std::time::Duration;

use hearth_tests::{free_port, wait_for_log, Hub, Terminal, PASSWORD, USER};
use tokio::process::Command;

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn hub_and_terminal_meet_on_mosquitto_and_the_hub_last_will_is_delivered(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let port = free_port();
    let passwd = d.join("passwd");
    let status = Command::new("mosquitto_passwd")
        .arg("-b")
        .arg("-c")
        .arg(&passwd)
        .args([USER, PASSWORD])
        .status()
        .await
        .expect("mosquitto_passwd is installed (apt-get install mosquitto)");
    assert!(status.success());
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
            passwd.display()
        ),
    )?;
    let broker_log = d.join("mosquitto.log");
    let _broker = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&broker_log)?)
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto is installed (apt-get install mosquitto)");
    wait_for_log(&broker_log, "running", Duration::from_secs(10)).await?;

    // embedded_broker = false: the hub connects to mosquitto on `port`.
    let mut hub = Hub::launch(&write_config(d, port)?, port, d).await?;
    assert!(hub.log_text().contains("using an external MQTT broker"));

    let mut term = Terminal::connected(d, port, "attic").await?;
    term.say("Say hello in one sentence.").await?;
    term.expect("hub: ", REPLY_TIMEOUT).await?;

    // Killed without a word: only the broker's delivery of the Last Will can tell.
    hub.child.start_kill()?;
    hub.child.wait().await?;
    term.expect(
        "hub unreachable (the hub went offline)",
        Duration::from_secs(10),
    )
    .await?;
    Ok(())
}

fn write_config(dir: &std::path::Path, broker_port: u16) -> anyhow::Result<std::path::PathBuf> {
    let toml = hearth_tests::hub_toml(dir, broker_port, "")
        .replace("[mqtt]\n", "[mqtt]\nembedded_broker = false\n");
    let path = dir.join("hub-external.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}
