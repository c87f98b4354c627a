//! The model behind an OpenAI-compatible HTTP server (vLLM, llama.cpp's server, Ollama, TGI,
//! another hearth hub): `llm.backend = "openai"`.
//!
//! It is a [`Model`] like the llama.cpp engine, so the queue, the rooms' lanes and background
//! preemption are the same; each job is one streamed chat completion (server-sent events),
//! read on the inference thread with a blocking client. A job that cannot reach the server is
//! tried again with backoff, then fails with [`LlmError::Unreachable`], which the turn says
//! aloud; the next job tries afresh, so the hub recovers when the server is back.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::model::Model;
use super::sentence::SentenceSplitter;
use super::{GenerateRequest, GenerationStats, LlmConfig, LlmError, LlmEvent, ModelInfo, Role};

/// How constrained jobs (graph writes, reminder splits, reflections) ask the server to keep
/// to their JSON schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constrain {
    /// `response_format: {"type": "json_schema", ...}`: OpenAI, vLLM, Ollama, llama.cpp's
    /// server, hearth.
    JsonSchema,
    /// llama.cpp's GBNF in a `grammar` field: llama.cpp's server (hearth refuses it).
    Grammar,
    /// The server cannot constrain output: constrained jobs are refused (and logged), never
    /// sent unconstrained.
    None,
}

/// `[llm.openai]`: the server `llm.backend = "openai"` talks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API's root, up to and including `/v1`.
    pub base_url: String,
    /// The model name the server serves (its `/v1/models` lists them).
    pub model: String,
    /// The environment variable that holds the API key, sent as a bearer token. Unset or
    /// empty: no key is sent (a local server needs none).
    pub api_key_env: String,
    /// The longest wait for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// The longest wait for the answer to start, and then for each next piece of it, in
    /// milliseconds.
    pub read_timeout_ms: u64,
    /// Tries after the first when the server cannot be reached or says it is overloaded
    /// (429, 502, 503, 504), before any of the answer has come.
    pub retries: u32,
    /// The wait before the first retry, doubled for each next one, in milliseconds.
    pub backoff_ms: u64,
    /// How constrained jobs are sent.
    pub constrain: Constrain,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "http://127.0.0.1:8080/v1".to_string(),
            model: String::new(),
            api_key_env: "HEARTH_OPENAI_API_KEY".to_string(),
            connect_timeout_ms: 3_000,
            read_timeout_ms: 60_000,
            retries: 2,
            backoff_ms: 500,
            constrain: Constrain::JsonSchema,
        }
    }
}

impl OpenAiConfig {
    /// The settings' errors, in words.
    pub fn check(&self) -> Result<(), String> {
        let url = self.base_url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "llm.openai.base_url {:?} is not an http:// or https:// URL (for example \"http://127.0.0.1:8080/v1\")",
                self.base_url
            ));
        }
        if self.model.trim().is_empty() {
            return Err("llm.openai.model is empty: name the model the server serves (its /v1/models lists them)".to_string());
        }
        if self.connect_timeout_ms == 0 || self.read_timeout_ms == 0 {
            return Err("llm.openai.connect_timeout_ms and read_timeout_ms must be above 0".into());
        }
        Ok(())
    }
}

/// A model served over the OpenAI-compatible API.
pub struct OpenAiModel {
    config: LlmConfig,
    agent: ureq::Agent,
    key: Option<String>,
    url: String,
}

impl OpenAiModel {
    /// A client for `config.openai` (checked), with the key from its environment variable.
    pub fn new(config: LlmConfig) -> Result<OpenAiModel, LlmError> {
        config.openai.check().map_err(LlmError::Config)?;
        let o = &config.openai;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_millis(o.connect_timeout_ms)))
            .timeout_recv_response(Some(Duration::from_millis(o.read_timeout_ms)))
            .timeout_per_read(Some(Duration::from_millis(o.read_timeout_ms)))
            .build()
            .into();
        let key = std::env::var(&o.api_key_env)
            .ok()
            .filter(|k| !k.trim().is_empty());
        let url = o.base_url.trim_end_matches('/').to_string();
        Ok(OpenAiModel {
            config,
            agent,
            key,
            url,
        })
    }

    /// What the hub reports as its model: the server and the model name.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            path: PathBuf::from(&self.url),
            name: Some(self.config.openai.model.clone()),
            architecture: None,
            template: super::TemplateSource::Override("the server's".to_string()),
            context_tokens: self.config.context_tokens,
            backend: format!("OpenAI-compatible server at {}", self.url),
            layers: 0,
            gpu_layers: 0,
        }
    }

    /// Asks the server for its models; a warning when it cannot be reached or does not serve
    /// the configured one. The hub starts either way: answers fail, aloud, until it is back.
    pub fn probe(&self) {
        let model = &self.config.openai.model;
        match self.models() {
            Ok(ids) if ids.iter().any(|id| id == model) => {
                tracing::info!(url = %self.url, %model, "the model server is reachable and serves the model");
            }
            Ok(ids) => {
                tracing::warn!(url = %self.url, %model, served = ?ids, "the model server does not list llm.openai.model (some servers answer under any name)");
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "the model server is unreachable now; answers fail, saying so, until it is back");
            }
        }
    }

    /// The ids of the server's models (`GET /models`).
    pub fn models(&self) -> Result<Vec<String>, LlmError> {
        let url = format!("{}/models", self.url);
        let mut request = self.agent.get(&url);
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request.call().map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        if status != 200 {
            return Err(self.refused(status, &body));
        }
        let list: Value = serde_json::from_str(&body).map_err(|e| self.malformed(e))?;
        Ok(list["data"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The request body for `request`: streamed, with usage, and its constraint as
    /// `llm.openai.constrain` says (or a refusal).
    fn body(&self, request: &GenerateRequest) -> Result<Value, LlmError> {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.config.openai.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": request.max_tokens.unwrap_or(self.config.max_reply_tokens),
            "temperature": request.temperature.unwrap_or(self.config.temperature),
            "top_p": self.config.top_p,
            "seed": self.config.seed,
        });
        if request.ignore_eos {
            body["ignore_eos"] = json!(true);
        }
        if let Some(grammar) = &request.grammar {
            match self.config.openai.constrain {
                Constrain::JsonSchema if grammar.schema.is_null() => {
                    return Err(LlmError::Grammar(format!(
                        "the {} job has a grammar and no JSON schema, and llm.openai.constrain = \"json_schema\" can send only a schema; refused",
                        request.role.name()
                    )))
                }
                Constrain::JsonSchema => {
                    body["response_format"] = json!({
                        "type": "json_schema",
                        "json_schema": {"name": "hearth", "strict": true, "schema": grammar.schema},
                    });
                }
                Constrain::Grammar => body["grammar"] = json!(grammar.gbnf),
                Constrain::None => {
                    return Err(LlmError::Grammar(format!(
                        "the {} job needs output constrained to its JSON schema, and llm.openai.constrain = \"none\" says the model server cannot; refused (set constrain to \"json_schema\" or \"grammar\" if the server supports either)",
                        request.role.name()
                    )))
                }
            }
        }
        Ok(body)
    }

    /// Sends `body`, trying again with backoff while the server cannot be reached or is
    /// overloaded; `Ok(None)` when `cancel` fired meanwhile.
    fn send(
        &self,
        body: &Value,
        cancel: &CancellationToken,
    ) -> Result<Option<ureq::http::Response<ureq::Body>>, LlmError> {
        let url = format!("{}/chat/completions", self.url);
        let o = &self.config.openai;
        let mut wait = Duration::from_millis(o.backoff_ms);
        let mut tries = 0;
        loop {
            let mut request = self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Accept", "text/event-stream");
            if let Some(key) = &self.key {
                request = request.header("Authorization", format!("Bearer {key}"));
            }
            let failed = match request.send(body.to_string()) {
                Ok(response) if response.status().as_u16() == 200 => return Ok(Some(response)),
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    let error = self.refused(status, &text);
                    if !matches!(status, 429 | 502 | 503 | 504) {
                        return Err(error);
                    }
                    error
                }
                Err(e) => self.unreachable(&e),
            };
            if tries >= o.retries {
                return Err(failed);
            }
            tries += 1;
            tracing::warn!(url = %url, error = %failed, retry = tries, wait_ms = wait.as_millis() as u64, "the model server did not answer; trying again");
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if cancel.is_cancelled() {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
            }
            wait *= 2;
        }
    }

    fn unreachable(&self, e: &dyn std::fmt::Display) -> LlmError {
        LlmError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    fn refused(&self, status: u16, body: &str) -> LlmError {
        // OpenAI's shape is {"error": {"message": ...}}; others send text.
        let message = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(String::from))
            .unwrap_or_else(|| body.chars().take(300).collect());
        LlmError::Server {
            url: self.url.clone(),
            status,
            message,
        }
    }

    fn malformed(&self, e: impl std::fmt::Display) -> LlmError {
        LlmError::Server {
            url: self.url.clone(),
            status: 200,
            message: format!("an answer that is not the OpenAI format: {e}"),
        }
    }
}

/// The lines of `body`, read on a thread of its own; the channel closes at the end of the
/// stream, after an error, or when the receiver is dropped (at the next line).
fn read_lines(body: ureq::Body) -> std::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    let spawned = std::thread::Builder::new()
        .name("llm-stream".to_string())
        .spawn(move || {
            for line in BufReader::new(body.into_reader()).lines() {
                let failed = line.is_err();
                if tx.send(line).is_err() || failed {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let _ = tx.send(Err(e));
        return rx;
    }
    rx
}

/// One server-sent chunk of a streamed chat completion.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Chunk {
    choices: Vec<ChunkChoice>,
    usage: Option<Usage>,
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChunkChoice {
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Delta {
    content: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
}

impl Model for OpenAiModel {
    fn generate(
        &mut self,
        request: &GenerateRequest,
        events: &mpsc::Sender<LlmEvent>,
        cancel: &CancellationToken,
        preempt: &mut dyn FnMut() -> bool,
    ) -> Result<GenerationStats, LlmError> {
        let body = self.body(request)?;
        let started = Instant::now();
        let Some(response) = self.send(&body, cancel)? else {
            return Ok(GenerationStats {
                cancelled: true,
                ..GenerationStats::default()
            });
        };
        let mut splitter = SentenceSplitter::for_reply(&self.config);
        let mut stats = GenerationStats::default();
        let mut text = String::new();
        let mut first: Option<Instant> = None;
        let mut finish = None;
        let mut done = false;
        let mut pieces = 0;
        // The stream is read on a thread of its own, so that a cancel or a waiting
        // conversation is noticed while the server sends nothing (a server may send a
        // constrained answer only when it is whole). Once this loop leaves, the reader stops at
        // its next line, and the connection closes, which stops the server's generation too.
        let lines = read_lines(response.into_body());
        loop {
            if cancel.is_cancelled() || events.is_closed() {
                stats.cancelled = true;
                break;
            }
            if request.background && preempt() {
                return Ok(GenerationStats {
                    preempted: true,
                    ..GenerationStats::default()
                });
            }
            let line = match lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => line,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let line = line.map_err(|e| self.unreachable(&e))?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                done = true;
                break;
            }
            let chunk: Chunk = serde_json::from_str(data).map_err(|e| self.malformed(e))?;
            if let Some(error) = chunk.error {
                let message = error["message"]
                    .as_str()
                    .map_or(error.to_string(), String::from);
                return Err(LlmError::Server {
                    url: self.url.clone(),
                    status: 200,
                    message,
                });
            }
            if let Some(usage) = chunk.usage {
                stats.prompt_tokens = usage.prompt_tokens;
                stats.generated_tokens = usage.completion_tokens;
            }
            let Some(choice) = chunk.choices.into_iter().next() else {
                continue;
            };
            if choice.finish_reason.is_some() {
                finish = choice.finish_reason;
            }
            let Some(piece) = choice.delta.content.filter(|p| !p.is_empty()) else {
                continue;
            };
            first.get_or_insert_with(Instant::now);
            pieces += 1;
            text.push_str(&piece);
            if !request.background {
                for sentence in splitter.push(&piece) {
                    if events.blocking_send(LlmEvent::Sentence(sentence)).is_err() {
                        stats.cancelled = true;
                    }
                }
            }
        }
        // A stream that ends without its end is an answer cut off, not a whole one.
        if !done && !stats.cancelled && finish.is_none() {
            return Err(self.unreachable(&"the answer's stream ended before it did"));
        }
        if !request.background && !stats.cancelled {
            if let Some(sentence) = splitter.finish() {
                let _ = events.blocking_send(LlmEvent::Sentence(sentence));
            }
        }
        let first = first.unwrap_or_else(Instant::now);
        if stats.generated_tokens == 0 {
            stats.generated_tokens = pieces;
        }
        stats.prompt_eval = first.duration_since(started);
        stats.generation = first.elapsed();
        stats.truncated = finish.as_deref() == Some("length");
        stats.together = 1;
        stats.text = text.trim().to_string();
        Ok(stats)
    }
}

/// The role name a chat message has on the wire, for the server side's reading.
pub fn role_named(name: &str) -> Option<Role> {
    match name {
        "system" | "developer" => Some(Role::System),
        "user" => Some(Role::User),
        "assistant" => Some(Role::Assistant),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::llm::ChatMessage;

    /// A server that answers each connection with the next of `responses` (raw HTTP), and
    /// returns the requests it read.
    fn server(responses: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for response in responses {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 65536];
                let mut request = String::new();
                // Headers, then the body its Content-Length says.
                loop {
                    let n = stream.read(&mut buf).unwrap();
                    request.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if let Some(end) = request.find("\r\n\r\n") {
                        let length = request[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                seen.push(request);
                stream.write_all(response.as_bytes()).unwrap();
            }
            seen
        });
        (url, thread)
    }

    fn sse(pieces: &[&str], finish: &str) -> String {
        let mut body = String::new();
        for p in pieces {
            body.push_str(&format!(
                "data: {}\n\n",
                json!({"choices": [{"delta": {"content": p}, "finish_reason": null}]})
            ));
        }
        body.push_str(&format!(
            "data: {}\n\n",
            json!({"choices": [{"delta": {}, "finish_reason": finish}]})
        ));
        body.push_str(&format!(
            "data: {}\n\n",
            json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7}})
        ));
        body.push_str("data: [DONE]\n\n");
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    }

    fn status(code: u16, body: &str) -> String {
        format!("HTTP/1.1 {code} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    }

    fn model(url: &str, constrain: Constrain) -> OpenAiModel {
        let config = LlmConfig {
            openai: OpenAiConfig {
                base_url: url.to_string(),
                model: "m".into(),
                api_key_env: "HEARTH_TEST_OPENAI_KEY_NEVER_SET".into(),
                retries: 2,
                backoff_ms: 10,
                constrain,
                ..OpenAiConfig::default()
            },
            ..LlmConfig::default()
        };
        OpenAiModel::new(config).unwrap()
    }

    fn ask(
        model: &mut OpenAiModel,
        request: &GenerateRequest,
    ) -> (Result<GenerationStats, LlmError>, Vec<String>) {
        let (tx, mut rx) = mpsc::channel(64);
        let result = model.generate(request, &tx, &CancellationToken::new(), &mut || false);
        drop(tx);
        let mut sentences = Vec::new();
        while let Ok(LlmEvent::Sentence(s)) = rx.try_recv() {
            sentences.push(s);
        }
        (result, sentences)
    }

    #[test]
    fn an_overloaded_server_is_tried_again_and_the_stream_becomes_sentences() {
        let (url, server) = server(vec![
            status(503, "{}"),
            sse(&["Cats are ", "soft. They", " purr."], "length"),
        ]);
        let mut model = model(&url, Constrain::JsonSchema);
        let request = GenerateRequest::chat(vec![ChatMessage::new(Role::User, "Cats?")]);
        let (result, sentences) = ask(&mut model, &request);
        let stats = result.unwrap();
        assert_eq!(sentences, ["Cats are soft.", "They purr."]);
        assert_eq!(stats.text, "Cats are soft. They purr.");
        assert_eq!((stats.prompt_tokens, stats.generated_tokens), (12, 7));
        assert!(stats.truncated);
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 2);
        let body: Value = serde_json::from_str(seen[1].split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["model"], "m");
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["messages"][0],
            json!({"role": "user", "content": "Cats?"})
        );
    }

    #[test]
    fn a_cancel_is_noticed_while_the_server_sends_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf).unwrap();
            // Headers and the opening chunk, then silence for longer than the test waits.
            let opening = format!(
                "data: {}\n\n",
                json!({"choices": [{"delta": {"role": "assistant"}}]})
            );
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
            stream
                .write_all(format!("{head}{opening}").as_bytes())
                .unwrap();
            std::thread::sleep(Duration::from_secs(5));
        });
        let mut model = model(&url, Constrain::JsonSchema);
        let request = GenerateRequest::chat(vec![ChatMessage::new(Role::User, "Hi")]);
        let (tx, _rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            later.cancel();
        });
        let started = Instant::now();
        let stats = model
            .generate(&request, &tx, &cancel, &mut || false)
            .unwrap();
        assert!(stats.cancelled);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        drop(server);
    }

    #[test]
    fn a_refusal_says_what_the_server_said_and_is_not_tried_again() {
        let (url, server) = server(vec![status(
            400,
            r#"{"error": {"message": "no such model"}}"#,
        )]);
        let mut model = model(&url, Constrain::JsonSchema);
        let request = GenerateRequest::chat(vec![ChatMessage::new(Role::User, "Hi")]);
        let error = ask(&mut model, &request).0.unwrap_err();
        assert!(
            matches!(&error, LlmError::Server { status: 400, message, .. } if message == "no such model"),
            "{error}"
        );
        assert_eq!(server.join().unwrap().len(), 1);
        assert_eq!(error.spoken(), "the model server refused the request");
    }

    #[test]
    fn a_server_that_is_not_there_is_unreachable_after_the_retries() {
        let url = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/v1", listener.local_addr().unwrap())
        };
        let mut model = model(&url, Constrain::JsonSchema);
        let request = GenerateRequest::chat(vec![ChatMessage::new(Role::User, "Hi")]);
        let error = ask(&mut model, &request).0.unwrap_err();
        assert!(matches!(error, LlmError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains(&url), "{error}");
    }

    #[test]
    fn a_constrained_job_is_sent_as_configured_or_refused() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let grammar = crate::llm::json_schema_grammar(&schema).unwrap();
        let request = GenerateRequest::structured(
            crate::llm::JobRole::MemoryWriter,
            vec![ChatMessage::new(Role::User, "x")],
            grammar.clone(),
            32,
        );
        let body = model("http://127.0.0.1:9/v1", Constrain::JsonSchema)
            .body(&request)
            .unwrap();
        assert_eq!(body["response_format"]["json_schema"]["schema"], schema);
        assert_eq!(body["max_tokens"], 32);
        let body = model("http://127.0.0.1:9/v1", Constrain::Grammar)
            .body(&request)
            .unwrap();
        assert_eq!(body["grammar"], json!(grammar.gbnf));
        let refused = model("http://127.0.0.1:9/v1", Constrain::None)
            .body(&request)
            .unwrap_err();
        assert!(refused.to_string().contains("memory_writer"), "{refused}");
    }

    #[test]
    fn the_settings_are_checked() {
        let good = OpenAiConfig {
            model: "m".into(),
            ..OpenAiConfig::default()
        };
        assert_eq!(good.check(), Ok(()));
        let no_model = OpenAiConfig::default();
        assert!(no_model.check().unwrap_err().contains("llm.openai.model"));
        let no_scheme = OpenAiConfig {
            base_url: "127.0.0.1:8080/v1".into(),
            ..good
        };
        assert!(no_scheme.check().unwrap_err().contains("base_url"));
    }
}
