//! The role log through the real hub: answers of the test model, stopped hub, then
//! `hearth-hub train export` writes them as chat-format training examples.

use hearth_tests::{free_port, Hub, Terminal};

use crate::REPLY_TIMEOUT;

/// Runs `hearth-hub --config CONFIG train export ARGS...`: its exit status, stdout, stderr.
async fn export(config: &std::path::Path, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = tokio::process::Command::new(hearth_tests::bin("hearth-hub"))
        .arg("--config")
        .arg(config)
        .args(["train", "export"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn answers_are_exported_as_training_examples_after_the_hub_stops() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, "").await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    let mut replies = Vec::new();
    for question in [
        "Describe a cat in one sentence.",
        "What is the moon made of?",
    ] {
        kitchen.say(question).await?;
        let (line, _) = kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
        replies.push(line);
    }
    hub.terminate().await?;

    let (ok, stdout, stderr) = export(&hub.config, &["--role", "consciousness"]).await?;
    anyhow::ensure!(ok, "export failed: {stderr}");
    assert!(
        stderr.contains("exported 2 consciousness examples"),
        "{stderr}"
    );
    let examples: Vec<serde_json::Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(examples.len(), 2, "{stdout}");
    for (example, (question, reply)) in examples
        .iter()
        .zip(["Describe a cat", "the moon"].iter().zip(&replies))
    {
        let messages = example["messages"].as_array().expect("messages");
        assert_eq!(messages[0]["role"], "system");
        let user = messages[messages.len() - 2]["content"].as_str().unwrap();
        assert!(user.contains(question), "{user}");
        let last = &messages[messages.len() - 1];
        assert_eq!(last["role"], "assistant");
        // What the model wrote, as the terminal showed it.
        let said = last["content"].as_str().unwrap();
        let start: String = said.chars().take(24).collect();
        assert!(
            !start.is_empty() && reply.contains(&start),
            "{said:?} against {reply:?}"
        );
        assert_eq!(example["provenance"]["room"], "kitchen");
        assert_eq!(
            example["provenance"]["outcome"],
            serde_json::json!(["finished"])
        );
    }

    let (ok, _, stderr) = export(&hub.config, &["--role", "conscience"]).await?;
    assert!(
        !ok && stderr.contains("the roles are consciousness, subconscious"),
        "{stderr}"
    );
    Ok(())
}
