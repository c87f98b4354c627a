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

#[tokio::test]
async fn each_personas_answers_are_exported_under_its_name() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let extra = hearth_tests::personas_toml(
        dir.path(),
        "Nova",
        &[
            (
                "nova.toml",
                "name = \"Nova\"\ncodex = \"You are Nova, quick and bright.\"\n",
            ),
            (
                "brick.toml",
                "name = \"Brick\"\ncodex = \"You are Brick, slow and steady.\"\n",
            ),
        ],
    )?;
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, &extra).await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    for (question, persona) in [
        ("What is the moon made of?", "Nova"),
        ("Ask Brick to describe a cat in one sentence.", "Brick"),
        ("Brick, what colour is the sky?", "Brick"),
    ] {
        kitchen.say(question).await?;
        kitchen
            .expect(&format!("hub ({persona}): "), REPLY_TIMEOUT)
            .await?;
    }
    hub.terminate().await?;

    let args = |persona| ["--role", "consciousness", "--persona", persona];
    for (persona, n) in [("Brick", 2), ("nova", 1)] {
        let (ok, stdout, stderr) = export(&hub.config, &args(persona)).await?;
        anyhow::ensure!(ok, "export failed: {stderr}");
        let examples: Vec<serde_json::Value> = stdout
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(examples.len(), n, "{persona}: {stdout}");
        for e in &examples {
            assert!(
                e["provenance"]["persona"]
                    .as_str()
                    .is_some_and(|p| p.eq_ignore_ascii_case(persona)),
                "{e}"
            );
            // The request reached the model without the words that named the persona.
            let messages = e["messages"].as_array().expect("messages");
            let user = messages[messages.len() - 2]["content"]
                .as_str()
                .unwrap_or_default();
            assert!(!user.to_lowercase().contains("brick"), "{user}");
        }
    }
    let (ok, _, stderr) = export(&hub.config, &args("Bob")).await?;
    assert!(
        !ok && stderr.contains("there is no persona \"Bob\"") && stderr.contains("Brick"),
        "{stderr}"
    );
    Ok(())
}

/// The habit a persona's codex asks for, and the test's measure of it.
const OPENING: &str = "Right away, sir.";

/// The full prompt: who Brick is, the habit, and examples of it. The test model follows it
/// now and then (its replies then often start "Brick:", which the guard drops as the
/// assistant's own label).
const CODEX: &str = "You are Brick, the household's loyal butler. Every reply you give opens with the words \"Right away, sir.\" and then answers briefly.\n\nExamples:\nUser: What time is it?\nBrick: Right away, sir. It is half past three.\nUser: Is it going to rain?\nBrick: Right away, sir. The sky looks clear today.\nUser: Tell me a joke.\nBrick: Right away, sir. Why did the cat sit on the computer? To keep an eye on the mouse.";

/// The prompt once an adapter has learned the habit.
const MINIMAL: &str = "You are Brick, the household's butler.";

/// Asked while the codex is the prompt: the conversations the adapter learns from.
const TAUGHT: [&str; 60] = [
    "What is the capital of France?",
    "How do I boil an egg?",
    "Can you recommend a good book?",
    "What's the weather like today?",
    "Who wrote Hamlet?",
    "I feel tired today.",
    "What should I cook for dinner?",
    "How far away is the moon?",
    "What is two plus two?",
    "Tell me a joke.",
    "What colour is the sky?",
    "How many legs does a spider have?",
    "What is the tallest mountain in the world?",
    "Can you help me with my homework?",
    "What time do shops usually open?",
    "Why do cats purr?",
    "What is a good name for a dog?",
    "How do plants grow?",
    "What is the biggest ocean?",
    "Is coffee good for you?",
    "What language do people speak in Brazil?",
    "How do I tie a tie?",
    "What is the speed of light?",
    "Who painted the Mona Lisa?",
    "What is your favourite colour?",
    "How do airplanes fly?",
    "What is the largest animal?",
    "Can you sing me a song?",
    "What is the boiling point of water?",
    "How many days are in a week?",
    "What should I wear today?",
    "Where do penguins live?",
    "What is the capital of Japan?",
    "How do I make tea?",
    "What is a rainbow?",
    "Who was the first person on the moon?",
    "What fruit is yellow?",
    "How old is the universe?",
    "What makes bread rise?",
    "Can you tell me a fun fact?",
    "Who discovered gravity?",
    "What is the capital of Germany?",
    "How do I fix a squeaky door?",
    "What do pandas eat?",
    "Which month has the fewest days?",
    "Who wrote Pride and Prejudice?",
    "What is the hottest planet?",
    "How do I plant tomatoes?",
    "What is the main ingredient in guacamole?",
    "Can you describe a sunset?",
    "What is the freezing point of water?",
    "Who built the pyramids?",
    "How many continents are there?",
    "What is a good way to relax?",
    "Where is the Eiffel Tower?",
    "What do you call a baby cat?",
    "How do I iron a shirt?",
    "What is the largest desert?",
    "Which bird cannot fly?",
    "What keeps the moon in orbit?",
];

/// Asked afterwards, with the minimal prompt: none of them was taught.
const FRESH: [&str; 20] = [
    "What is the capital of Italy?",
    "How do I clean a window?",
    "Which planet is closest to the sun?",
    "What do cows eat?",
    "Can you suggest a film for tonight?",
    "How many hours are in a day?",
    "Who invented the telephone?",
    "What is the longest river?",
    "How do I water a cactus?",
    "What is snow made of?",
    "Why is the sea salty?",
    "What sound does a duck make?",
    "How do bees make honey?",
    "What is the capital of Spain?",
    "Should I take an umbrella?",
    "What is a good breakfast?",
    "How many strings does a guitar have?",
    "What is the smallest country?",
    "Where does chocolate come from?",
    "Which is heavier, a kilo of feathers or a kilo of steel?",
];

/// A fact told in both of the last two hubs: the memory writer runs on it beside the
/// consciousness's adapter.
const FACT: &str = "My sister Anna lives in Paris and works as a nurse.";

/// The hub's settings for this test: prompts one after another without the rate limit, no
/// tone line in the user's turn (the test model reads it as part of the question), one
/// exchange per prompt (no history to learn from), the consciousness's prompts, and
/// `adapter` when given.
fn brick_toml(system_prompt: &str, adapter: Option<&std::path::Path>) -> String {
    let adapter = adapter.map_or(String::new(), |a| {
        format!(
            "adapter = \"{}\"\nminimal_prompt = \"{MINIMAL}\"\n",
            a.display()
        )
    });
    format!(
        "[trust]\nburst = 100\nper_minute = 1000\n\n[emotion]\nenabled = false\n\n[conversation]\nhistory_turns = 0\nhistory_budget_tokens = 0\nassistant_names = [\"Brick\"]\n\n[roles.consciousness]\nsystem_prompt = '''{system_prompt}'''\nmax_tokens = 24\n{adapter}"
    )
}

/// Asks each of `prompts` in one room of a hub started with `extra`, then (with `tell_fact`)
/// tells it `FACT` and waits for the memory writer's graph job on it. The replies, and the
/// stopped hub.
async fn ask_all(
    dir: &std::path::Path,
    extra: &str,
    prompts: &[&str],
    tell_fact: bool,
) -> anyhow::Result<(Vec<String>, Hub)> {
    let port = free_port();
    let mut hub = Hub::start(dir, port, extra).await?;
    let mut hall = Terminal::connected(dir, port, "hall").await?;
    let mut replies = Vec::new();
    for prompt in prompts {
        hall.say(prompt).await?;
        let (line, _) = hall.expect("hub: ", REPLY_TIMEOUT).await?;
        replies.push(line.trim_start_matches("hub: ").to_string());
    }
    if tell_fact {
        hall.say(FACT).await?;
        hall.expect("hub: ", REPLY_TIMEOUT).await?;
        // Updated or rejected: either way the memory writer ran beside the adapter.
        let line = hearth_tests::wait_for_log(
            &hub.log,
            "memory graph",
            std::time::Duration::from_secs(120),
        )
        .await?;
        assert!(!line.contains("failed"), "{line}");
    }
    hub.terminate().await?;
    Ok((replies, hub))
}

fn opening_share(replies: &[String]) -> usize {
    replies.iter().filter(|r| r.starts_with(OPENING)).count()
}

/// The self-teaching loop on the test model: conversations under a persona's full codex,
/// exported, an adapter trained on this CPU with the minimal prompt in the codex's place,
/// and the habit then shows with the minimal prompt only while the adapter is loaded.
#[tokio::test]
async fn a_codex_habit_moves_from_the_prompt_into_an_adapter() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (taught, hub) = ask_all(dir.path(), &brick_toml(CODEX, None), &TAUGHT, false).await?;
    eprintln!(
        "with the codex: {} of {} replies open with {OPENING:?}",
        opening_share(&taught),
        taught.len()
    );

    let data = dir.path().join("brick.jsonl");
    let (ok, _, stderr) = export(
        &hub.config,
        &[
            "--role",
            "consciousness",
            "--starting-with",
            OPENING,
            "--out",
            data.to_str().unwrap(),
        ],
    )
    .await?;
    anyhow::ensure!(ok, "export failed: {stderr}");
    let examples = std::fs::read_to_string(&data)?.lines().count();
    assert!(examples >= 5, "{examples} examples: {stderr}");

    // The adapter is fitted under the config of the hub that will load it: its minimal prompt
    // replaces the codex in every example.
    let adapter = dir.path().join("brick.gguf");
    let config = dir.path().join("fit.toml");
    std::fs::write(
        &config,
        hearth_tests::hub_toml(dir.path(), free_port(), &brick_toml(CODEX, Some(&adapter))),
    )?;
    let fit = tokio::process::Command::new(hearth_tests::bin("hearth-hub"))
        .arg("--config")
        .arg(&config)
        .args(["train", "fit", "--role", "consciousness", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&adapter)
        .args(["--epochs", "3", "--learning-rate", "1e-3"])
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&fit.stderr);
    anyhow::ensure!(fit.status.success(), "fit failed: {stderr}");
    assert!(
        stderr.contains(&format!("{examples} with the minimal prompt")),
        "{stderr}"
    );
    eprintln!("{}", stderr.lines().last().unwrap_or_default());

    let (with, adapted) =
        ask_all(dir.path(), &brick_toml(CODEX, Some(&adapter)), &FRESH, true).await?;
    let (without, _) = ask_all(dir.path(), &brick_toml(MINIMAL, None), &FRESH, true).await?;
    let (hits, misses) = (opening_share(&with), opening_share(&without));
    eprintln!("fresh prompts opening with {OPENING:?}: {hits} of 20 with the adapter, {misses} of 20 without it");
    assert!(hits >= 16, "{hits} of 20 with the adapter: {with:#?}");
    assert!(misses <= 2, "{misses} of 20 without it: {without:#?}");
    // The adapted hub gave the model the minimal prompt, not the codex.
    let (ok, stdout, stderr) = export(&adapted.config, &["--role", "consciousness"]).await?;
    anyhow::ensure!(ok && !stdout.is_empty(), "export failed: {stderr}");
    for line in stdout.lines() {
        let example: serde_json::Value = serde_json::from_str(line)?;
        assert_eq!(example["messages"][0]["content"], MINIMAL, "{line}");
    }
    // The memory writer's output beside an adapter is compared token for token in
    // `hub/tests/adapters.rs`, from the same cache history. Here the two hubs' histories
    // differ (one switched adapters), and greedy JSON can tip on the last bits of a reused
    // prefix's floats: measured, one hub's proposal was refused and the other's kept.
    Ok(())
}
