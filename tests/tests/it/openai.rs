//! The OpenAI-compatible API both ways: hub B serves `/v1/chat/completions` (`[api]`), and
//! hub A runs its model through it (`llm.backend = "openai"`), answering a terminal.

use std::path::Path;
use std::time::Duration;

use hearth_tests::{free_port, hub_toml, wait_for_log, Hub, Observer, Terminal};
use serde_json::{json, Value};

use crate::{collect_reply, REPLY_TIMEOUT};

const TOKEN: &str = "a-test-token-for-hub-b";

/// Starts hub B with its endpoint on `api_port`.
async fn serving_hub(dir: &Path, api_port: u16) -> anyhow::Result<Hub> {
    let port = free_port();
    let api = format!(
        "[api]\nenabled = true\nbind = \"127.0.0.1:{api_port}\"\ntoken_env = \"HEARTH_TEST_UNSET_TOKEN\"\ntoken = \"{TOKEN}\"\n"
    );
    let hub = Hub::start(dir, port, &api).await?;
    wait_for_log(
        &hub.log,
        "serving the OpenAI-compatible API",
        Duration::from_secs(10),
    )
    .await?;
    Ok(hub)
}

/// The config of a hub A whose model is hub B's endpoint, with `constrain` for its
/// constrained jobs.
fn client_toml(dir: &Path, port: u16, api_port: u16, constrain: &str) -> std::path::PathBuf {
    let openai = format!(
        "[llm.openai]\nbase_url = \"http://127.0.0.1:{api_port}/v1\"\nmodel = \"hearth\"\napi_key_env = \"HEARTH_TEST_B_KEY\"\nretries = 1\nbackoff_ms = 200\nconstrain = \"{constrain}\"\n"
    );
    let text = hub_toml(dir, port, &openai).replacen("[llm]\n", "[llm]\nbackend = \"openai\"\n", 1);
    let path = dir.join(format!("hub-a-{port}.toml"));
    std::fs::write(&path, text).expect("write the config");
    path
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REPLY_TIMEOUT))
        .build()
        .into()
}

/// (status, body) of a request to hub B, with `token` as the bearer when given.
fn call(api_port: u16, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, String) {
    let url = format!("http://127.0.0.1:{api_port}{path}");
    let agent = agent();
    let result = match body {
        None => {
            let mut r = agent.get(&url);
            if let Some(t) = token {
                r = r.header("Authorization", format!("Bearer {t}"));
            }
            r.call()
        }
        Some(body) => {
            let mut r = agent.post(&url).header("Content-Type", "application/json");
            if let Some(t) = token {
                r = r.header("Authorization", format!("Bearer {t}"));
            }
            r.send(body.to_string())
        }
    };
    let mut response = result.expect("hub B answers");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_hub_answers_a_terminal_through_another_hubs_endpoint_and_says_when_it_is_gone(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let api_port = free_port();
    let mut b = serving_hub(dir.path(), api_port).await?;
    let port = free_port();
    let config = client_toml(dir.path(), port, api_port, "json_schema");
    let a = Hub::launch_with(&config, port, dir.path(), &[("HEARTH_TEST_B_KEY", TOKEN)]).await?;
    wait_for_log(
        &a.log,
        "the model server is reachable and serves the model",
        Duration::from_secs(10),
    )
    .await?;

    // A terminal on hub A; the answer streams from hub B's model, sentence by sentence.
    let reply_topic = "hearth/v1/terminal/kitchen/reply";
    let mut obs = Observer::connect(port, &[reply_topic]).await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    kitchen.say("Describe a cat in a few sentences.").await?;
    let chunks = collect_reply(&mut obs, reply_topic).await?;
    let texts: Vec<&str> = chunks.iter().map(|(c, _)| c.text.as_str()).collect();
    assert!(
        chunks.len() >= 3,
        "two sentences or more, then the final chunk: {texts:?}"
    );
    let gap = chunks.last().unwrap().1 - chunks[0].1;
    assert!(
        gap >= Duration::from_millis(50),
        "streamed, not in one burst ({gap:?}): {texts:?}"
    );
    kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    wait_for_log(&b.log, "api: answering", Duration::from_secs(5)).await?;
    assert!(
        a.log_text().contains("OpenAI-compatible server"),
        "{}",
        a.log_text()
    );

    // A fact: hub A's graph write goes to B under the proposal's JSON schema, and what comes
    // back is a proposal (written or rejected on its merits, never unparseable).
    kitchen.say("My brother Tom lives in Leeds.").await?;
    kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(&a.log, "memory graph", Duration::from_secs(180)).await?;
    assert!(
        !line.contains("not a proposal") && !line.contains("extraction failed"),
        "{line}"
    );

    // B goes away: A says so, out loud, and stays up.
    b.terminate().await?;
    kitchen.say("What is a good name for a dog?").await?;
    let (line, _) = kitchen.expect("hearth: ", REPLY_TIMEOUT).await?;
    assert!(
        line.contains("the model server") && line.contains("unreachable"),
        "{line}"
    );

    // B is back on the same port: the next turn is answered.
    let b_config = b.config.clone();
    let b = Hub::launch(&b_config, b.port, dir.path()).await?;
    wait_for_log(
        &b.log,
        "serving the OpenAI-compatible API",
        Duration::from_secs(10),
    )
    .await?;
    kitchen.say("What is a good name for a cat?").await?;
    let (line, _) = kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    assert!(line.len() > "hub: ".len(), "{line}");
    Ok(())
}

#[tokio::test]
async fn the_endpoint_wants_its_token_and_is_off_by_default() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let api_port = free_port();
    let b = serving_hub(dir.path(), api_port).await?;
    let chat = json!({"model": "hearth", "max_tokens": 24,
        "messages": [{"role": "user", "content": "Say hello."}]});

    let calls = [
        ("/v1/models", None, None),
        ("/v1/models", Some("not-the-token-at-all"), None),
        ("/v1/chat/completions", None, Some(chat.clone())),
        (
            "/v1/chat/completions",
            Some("a-test-token-for-hub-c"),
            Some(chat.clone()),
        ),
    ];
    for (path, token, body) in calls {
        let (status, text) =
            tokio::task::spawn_blocking(move || call(api_port, path, token, body)).await?;
        assert_eq!(status, 401, "{path} with {token:?}: {text}");
        assert!(text.contains("bearer token"), "{text}");
    }

    let (status, text) =
        tokio::task::spawn_blocking(move || call(api_port, "/v1/models", Some(TOKEN), None))
            .await?;
    assert_eq!(status, 200, "{text}");
    let models: Value = serde_json::from_str(&text)?;
    assert_eq!(models["data"][0]["id"], "hearth", "{text}");

    // A whole answer, and one under a JSON schema that must parse and fit it.
    let (status, text) = tokio::task::spawn_blocking(move || {
        call(api_port, "/v1/chat/completions", Some(TOKEN), Some(chat))
    })
    .await?;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text)?;
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(!content.trim().is_empty(), "{text}");
    let schema = json!({"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}, "count": {"type": "integer"}}, "required": ["colour", "count"]});
    let constrained = json!({"model": "hearth", "max_tokens": 40,
        "messages": [{"role": "user", "content": "Pick a colour and a count."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}}});
    let (status, text) = tokio::task::spawn_blocking(move || {
        call(
            api_port,
            "/v1/chat/completions",
            Some(TOKEN),
            Some(constrained),
        )
    })
    .await?;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text)?;
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    let picked: Value =
        serde_json::from_str(content).map_err(|e| anyhow::anyhow!("{e}: {content}"))?;
    assert!(
        ["red", "green", "blue"].contains(&picked["colour"].as_str().unwrap_or("")),
        "{content}"
    );
    assert!(picked["count"].is_i64(), "{content}");

    // Malformed requests get an OpenAI-shaped 400, and the hub stays up.
    let (status, text) = tokio::task::spawn_blocking(move || {
        call(
            api_port,
            "/v1/chat/completions",
            Some(TOKEN),
            Some(json!({"messages": "hello"})),
        )
    })
    .await?;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("\"error\""), "{text}");

    // A hub with no [api] section serves nothing.
    let port = free_port();
    let plain = Hub::start(dir.path(), port, "").await?;
    assert!(
        !plain.log_text().contains("OpenAI-compatible API"),
        "{}",
        plain.log_text()
    );
    assert!(b.log_text().contains("was refused"), "{}", b.log_text());
    Ok(())
}

#[tokio::test]
async fn a_server_that_cannot_constrain_output_gets_no_graph_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let api_port = free_port();
    let _b = serving_hub(dir.path(), api_port).await?;
    let port = free_port();
    let config = client_toml(dir.path(), port, api_port, "none");
    let a = Hub::launch_with(&config, port, dir.path(), &[("HEARTH_TEST_B_KEY", TOKEN)]).await?;
    let mut kitchen = Terminal::connected(dir.path(), port, "kitchen").await?;
    kitchen.say("My brother Tom lives in Leeds.").await?;
    kitchen.expect("hub: ", REPLY_TIMEOUT).await?;
    let line = wait_for_log(
        &a.log,
        "memory graph extraction failed",
        Duration::from_secs(60),
    )
    .await?;
    assert!(
        line.contains("constrain = \\\"none\\\"") || line.contains("constrain = \"none\""),
        "{line}"
    );
    assert!(
        !a.log_text().contains("memory graph updated"),
        "{}",
        a.log_text()
    );
    Ok(())
}
