//! Debian's mosquitto clients, an MQTT implementation we did not write, talk to the hub.

use anyhow::Context;
use hearth_tests::{free_port, Hub, PASSWORD, USER};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use crate::REPLY_TIMEOUT;

fn utterance(id: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{id}","terminal":"mosq","room":"hall","text":"Say hello in one sentence.","started_at_ms":0,"ended_at_ms":0}}"#
    )
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> anyhow::Result<String> {
    let line = tokio::time::timeout(REPLY_TIMEOUT, lines.next_line())
        .await
        .context("mosquitto_sub printed nothing in time")??
        .context("mosquitto_sub ended")?;
    Ok(line)
}

/// Publishes an utterance, logged in with `password`, or anonymously with `None`.
async fn mosquitto_pub(port: u16, password: Option<&str>, payload: &str) -> std::process::Output {
    let login = password.map_or(vec![], |p| vec!["-u", USER, "-P", p]);
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(login)
        .args(["-t", "hearth/v1/terminal/mosq/utterance", "-m", payload])
        .output()
        .await
        .expect("mosquitto_pub is installed (apt-get install mosquitto-clients)")
}

#[tokio::test]
async fn mosquitto_clients_get_a_reply_and_wrong_credentials_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let hub = Hub::start(dir.path(), port, "").await?;

    // stdbuf: mosquitto_sub's stdio is block-buffered when stdout is a pipe.
    let mut sub = Command::new("stdbuf")
        .args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-u", USER, "-P", PASSWORD])
        .args(["-t", "hearth/v1/terminal/mosq/reply", "-q", "1", "-d"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    loop {
        let line = next_line(&mut lines).await?;
        if line.contains("SUBACK") {
            break;
        }
    }

    // Wrong and missing credentials are refused before anything is published.
    let bad = mosquitto_pub(port, Some("wrong-password"), &utterance("u-bad")).await;
    assert!(!bad.status.success(), "wrong password accepted");
    let anonymous = mosquitto_pub(port, None, &utterance("u-anon")).await;
    assert!(!anonymous.status.success(), "anonymous client accepted");

    let good = mosquitto_pub(port, Some(PASSWORD), &utterance("u-good")).await;
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let mut texts = Vec::new();
    loop {
        let line = next_line(&mut lines).await?;
        let Some(json) = line.find('{').map(|i| &line[i..]) else {
            continue;
        };
        let chunk: serde_json::Value = serde_json::from_str(json)?;
        assert_eq!(chunk["v"], 1);
        assert_eq!(
            chunk["utterance_id"], "u-good",
            "only the authenticated utterance is answered"
        );
        texts.push(chunk["text"].as_str().unwrap_or_default().to_string());
        if chunk["final"] == true {
            break;
        }
    }
    assert!(
        texts.iter().any(|t| !t.is_empty()),
        "empty reply: {texts:?}"
    );
    let log = hub.log_text();
    assert!(!log.contains("u-bad") && !log.contains("u-anon"), "{log}");

    // The hub's presence is retained for late subscribers.
    let presence = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            USER,
            "-P",
            PASSWORD,
        ])
        .args(["-t", "hearth/v1/hub/presence", "-C", "1", "-W", "10"])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&presence.stdout);
    assert!(text.contains(r#""online":true"#), "{text}");
    Ok(())
}
