//! The OpenAI-compatible endpoint (`[api]`, off by default): `GET /v1/models` and
//! `POST /v1/chat/completions`, streamed or not, behind a bearer token. Tools a household
//! already runs (Open WebUI, Home Assistant's community OpenAI-compatible conversation
//! integrations, another hearth hub
//! with `llm.backend = "openai"`) talk to hearth's mind through it: the request's last user
//! message recalls memories as a turn does, the hub's model answers on its own lane of the
//! queue, and the output guard keeps prompt labels out of the answer. Nothing is stored.
//!
//! Constrained output: `response_format` with a JSON schema (or `json_object`). llama.cpp's
//! raw `grammar` field is refused: a grammar no token can satisfy aborts llama.cpp, and a
//! schema's grammar (derived by llama.cpp itself) always has a way through.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::guard::{Guard, Pass};
use crate::llm::{
    json_schema_grammar, ChatMessage, GenerateRequest, Grammar, LlmError, LlmEvent, Role,
};
use crate::turn::Pipeline;

/// `[api]`: the OpenAI-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve it. Off by default: it answers anyone with the token.
    pub enabled: bool,
    /// Where it listens. Loopback by default; beyond it the token travels in plain HTTP, so
    /// put a TLS proxy in front.
    pub bind: String,
    /// The environment variable holding the bearer token; it wins over `token`.
    pub token_env: String,
    /// The bearer token (16 characters or more), when the environment does not give one.
    pub token: String,
    /// The model name `/v1/models` lists and requests may ask for.
    pub model_name: String,
    /// Recall the household's memories for the last user message, in front of the model,
    /// as a turn does. Constrained requests recall nothing.
    pub recall: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: false,
            bind: "127.0.0.1:8088".to_string(),
            token_env: "HEARTH_API_TOKEN".to_string(),
            token: String::new(),
            model_name: "hearth".to_string(),
            recall: true,
        }
    }
}

impl ApiConfig {
    /// The bearer token: `token_env`'s value, else `token`; `None` when neither is set.
    pub fn bearer(&self) -> Option<String> {
        crate::config::secret_from(&self.token_env, &self.token)
    }

    /// The settings' errors, in words (only when enabled).
    pub fn check(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        self.bind
            .parse::<SocketAddr>()
            .map_err(|e| format!("api.bind {:?} is not an address and port ({e})", self.bind))?;
        match self.bearer() {
            None => Err(format!(
                "api.enabled needs a bearer token: set {} or api.token (the endpoint never runs open)",
                self.token_env
            )),
            Some(t) if t.trim().chars().count() < 16 => Err(format!(
                "the api token ({} or api.token) is {} characters; use 16 or more",
                self.token_env,
                t.trim().chars().count()
            )),
            Some(_) => Ok(()),
        }
    }
}

#[derive(Clone)]
struct Api {
    pipeline: Arc<Pipeline>,
    /// The token's SHA-256: compared in constant time, whatever the length sent.
    token: [u8; 32],
}

/// Serves the endpoint on `listener` until `stop` fires.
pub async fn serve(
    pipeline: Arc<Pipeline>,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let config = &pipeline.config.api;
    let token = config.bearer().unwrap_or_default();
    let state = Api {
        token: Sha256::digest(token.trim().as_bytes()).into(),
        pipeline: Arc::clone(&pipeline),
    };
    tracing::info!(addr = %listener.local_addr()?, model = %config.model_name, "serving the OpenAI-compatible API");
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// An error in OpenAI's shape.
fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "code": Value::Null}});
    (status, Json(body)).into_response()
}

/// The refusal of a request without the bearer token; `None` lets it through.
fn refusal(api: &Api, headers: &HeaderMap) -> Option<Response> {
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let ok = sent.is_some_and(|t| {
        let hash: [u8; 32] = Sha256::digest(t.as_bytes()).into();
        hash.iter()
            .zip(api.token.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    });
    if ok {
        return None;
    }
    tracing::warn!(
        token_sent = sent.is_some(),
        "api: a request without the right bearer token was refused"
    );
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        match sent {
            None => "a bearer token is required (Authorization: Bearer ...)",
            Some(_) => "the bearer token is wrong",
        },
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        "Bearer".parse().expect("a header value"),
    );
    Some(response)
}

async fn models(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&api, &headers) {
        return refused;
    }
    let name = &api.pipeline.config.api.model_name;
    Json(json!({
        "object": "list",
        "data": [{"id": name, "object": "model", "created": 0, "owned_by": "hearth"}],
    }))
    .into_response()
}

/// What `/v1/chat/completions` reads; every other field is ignored.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<Value>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    grammar: Option<String>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    ignore_eos: bool,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

impl InMessage {
    /// The text: a string, or the text parts of a list.
    fn text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

/// The request's output constraint, from `response_format`.
fn constraint(request: &ChatRequest) -> Result<Option<Grammar>, String> {
    if request
        .grammar
        .as_ref()
        .is_some_and(|g| !g.trim().is_empty())
    {
        return Err("a raw GBNF grammar is not accepted (one that no token can satisfy would stop the model); send response_format with a JSON schema".into());
    }
    let Some(format) = &request.response_format else {
        return Ok(None);
    };
    let schema = match format["type"].as_str() {
        None | Some("text") => return Ok(None),
        Some("json_object") => json!({"type": "object"}),
        Some("json_schema") => format["json_schema"]["schema"].clone(),
        Some(other) => {
            return Err(format!(
                "response_format type {other:?} is not supported (text, json_object, json_schema)"
            ))
        }
    };
    if !schema.is_object() {
        return Err("response_format json_schema needs json_schema.schema, an object".into());
    }
    json_schema_grammar(&schema)
        .map(Some)
        .map_err(|e| e.to_string())
}

async fn chat(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refusal(&api, &headers) {
        return refused;
    }
    let bad = |m: String| error(StatusCode::BAD_REQUEST, "invalid_request_error", m);
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("the body is not a chat completion request: {e}")),
    };
    let config = &api.pipeline.config;
    if !request.model.is_empty() && request.model != config.api.model_name {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "the model {:?} does not exist; this hub serves {:?}",
                request.model, config.api.model_name
            ),
        );
    }
    let grammar = match constraint(&request) {
        Ok(g) => g,
        Err(e) => return bad(e),
    };
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    for m in &request.messages {
        let Some(role) = crate::llm::openai::role_named(&m.role) else {
            return bad(format!(
                "message role {:?} is not system, user or assistant",
                m.role
            ));
        };
        messages.push(ChatMessage::new(role, m.text()));
    }
    if !messages.iter().any(|m| m.role == Role::User) {
        return bad("the messages hold no user message".into());
    }
    if grammar.is_none() {
        if messages[0].role != Role::System {
            let system = config
                .roles
                .answer_prompt(&config.conversation.system_prompt);
            messages.insert(0, ChatMessage::new(Role::System, system.to_string()));
        }
        if config.api.recall {
            let last = messages.iter_mut().rev().find(|m| m.role == Role::User);
            let last = last.expect("a user message, checked above");
            let recall = api
                .pipeline
                .subconscious
                .recall(&last.content, hearth_shared::now_ms())
                .await;
            tracing::debug!(
                recalled = recall.recalled.len(),
                "api: recalled for the request"
            );
            last.content = crate::subconscious::with_recall(&recall.context, &last.content);
        }
    }
    let constrained = grammar.is_some();
    // Clients often ask for more than a window holds: at most half of it is the answer's.
    let longest = config.llm.context_tokens / 2;
    let generate = GenerateRequest {
        max_tokens: (request.max_completion_tokens.or(request.max_tokens))
            .map(|n| n.clamp(1, longest)),
        temperature: request.temperature,
        grammar,
        ignore_eos: request.ignore_eos,
        // One lane for every client: the rooms take turns with the API as a whole.
        lane: "api".to_string(),
        ..GenerateRequest::chat(messages)
    };
    tracing::info!(lane = %generate.lane, stream = request.stream, constrained, messages = generate.messages.len(), "api: answering");
    let job = api.pipeline.stop.child_token();
    let events = match api.pipeline.llm.generate(generate, job.clone()) {
        Ok(rx) => rx,
        Err(e @ LlmError::Busy { .. }) => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                e.to_string(),
            )
        }
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                e.to_string(),
            )
        }
    };
    let answer = Answer {
        id: format!("chatcmpl-{:x}", hearth_shared::now_ms()),
        created: hearth_shared::now_ms() / 1000,
        model: config.api.model_name.clone(),
        guard: (!constrained).then(|| api.pipeline.guard()),
        job,
    };
    if request.stream {
        let usage = request
            .stream_options
            .as_ref()
            .is_some_and(|o| o["include_usage"] == true);
        answer.stream(events, usage)
    } else {
        answer.whole(events).await
    }
}

/// One answer being written.
struct Answer {
    id: String,
    created: u64,
    model: String,
    /// The output guard (none for constrained output: its text is JSON, not speech).
    guard: Option<Guard>,
    /// The model's job: cancelled when the guard ends the answer or the client goes.
    job: CancellationToken,
}

/// What comes of one event from the model.
enum Step {
    /// Text to add.
    Text(String),
    /// Nothing to add.
    Nothing,
    /// The answer is complete: (finish reason, prompt tokens, generated tokens), and its
    /// whole text when the sentences were not passed on (constrained output).
    Done(&'static str, usize, usize, Option<String>),
    /// The model failed.
    Failed(LlmError),
}

impl Answer {
    fn step(&mut self, event: LlmEvent, ended: &mut bool) -> Step {
        match event {
            LlmEvent::Sentence(_) if *ended => Step::Nothing,
            LlmEvent::Sentence(s) => match &mut self.guard {
                None => Step::Nothing,
                Some(guard) => match guard.pass(&s) {
                    Pass::Say(text) => Step::Text(text),
                    Pass::Skip => Step::Nothing,
                    Pass::End(text, why) => {
                        tracing::warn!(why, "api: the guard ended the answer");
                        *ended = true;
                        self.job.cancel();
                        Step::Text(text)
                    }
                },
            },
            LlmEvent::Done(stats) => {
                let finish = if stats.truncated { "length" } else { "stop" };
                let whole = self.guard.is_none().then_some(stats.text);
                Step::Done(finish, stats.prompt_tokens, stats.generated_tokens, whole)
            }
            LlmEvent::Failed(e) => Step::Failed(e),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    }

    /// Server-sent events: a chunk per sentence, the finish, the usage when asked, `[DONE]`.
    fn stream(mut self, mut events: mpsc::Receiver<LlmEvent>, usage: bool) -> Response {
        let (out, sent) = mpsc::channel::<Event>(16);
        tokio::spawn(async move {
            let _stop = self.job.clone().drop_guard();
            let data = |v: Value| Event::default().data(v.to_string());
            if out
                .send(data(
                    self.chunk(json!({"role": "assistant", "content": ""}), None),
                ))
                .await
                .is_err()
            {
                return;
            }
            let (mut ended, mut first) = (false, true);
            loop {
                // A client that went away stops the model's job, even while nothing is sent.
                let event = tokio::select! {
                    _ = out.closed() => return,
                    event = events.recv() => event,
                };
                let Some(event) = event else { break };
                let event = match self.step(event, &mut ended) {
                    Step::Nothing => continue,
                    Step::Text(text) if text.is_empty() => continue,
                    Step::Text(text) => {
                        let text = if first { text } else { format!(" {text}") };
                        first = false;
                        data(self.chunk(json!({"content": text}), None))
                    }
                    Step::Done(finish, prompt, generated, whole) => {
                        if let Some(text) = whole.filter(|t| !t.is_empty()) {
                            let _ = out
                                .send(data(self.chunk(json!({"content": text}), None)))
                                .await;
                        }
                        let _ = out.send(data(self.chunk(json!({}), Some(finish)))).await;
                        if usage {
                            let mut last = self.chunk(json!({}), None);
                            last["choices"] = json!([]);
                            last["usage"] = json!({"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated});
                            let _ = out.send(data(last)).await;
                        }
                        let _ = out.send(Event::default().data("[DONE]")).await;
                        return;
                    }
                    Step::Failed(e) => {
                        tracing::error!(error = %e, "api: generation failed");
                        data(json!({"error": {"message": e.to_string(), "type": "server_error"}}))
                    }
                };
                if out.send(event).await.is_err() {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(sent, |mut sent| async move {
            sent.recv().await.map(|e| (Ok::<_, Infallible>(e), sent))
        });
        Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response()
    }

    /// The whole answer in one JSON body.
    async fn whole(mut self, mut events: mpsc::Receiver<LlmEvent>) -> Response {
        let _stop = self.job.clone().drop_guard();
        let (mut ended, mut said) = (false, Vec::new());
        while let Some(event) = events.recv().await {
            match self.step(event, &mut ended) {
                Step::Nothing => {}
                Step::Text(text) => said.push(text),
                Step::Done(finish, prompt, generated, whole) => {
                    let content = whole.unwrap_or_else(|| said.join(" "));
                    return Json(json!({
                        "id": self.id, "object": "chat.completion", "created": self.created,
                        "model": self.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated},
                    }))
                    .into_response();
                }
                Step::Failed(e @ (LlmError::PromptTooLong { .. } | LlmError::Grammar(_))) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        e.to_string(),
                    );
                }
                Step::Failed(e) => {
                    tracing::error!(error = %e, "api: generation failed");
                    return error(StatusCode::BAD_GATEWAY, "server_error", e.to_string());
                }
            }
        }
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            LlmError::Stopped.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn a_constraint_comes_from_the_response_format_and_never_a_raw_grammar() {
        let none = request(json!({"messages": []}));
        assert_eq!(constraint(&none), Ok(None));
        let text = request(json!({"messages": [], "response_format": {"type": "text"}}));
        assert_eq!(constraint(&text), Ok(None));
        let gbnf = request(json!({"messages": [], "grammar": "root ::= \"yes\""}));
        assert!(constraint(&gbnf).unwrap_err().contains("GBNF"));
        let schema =
            json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
        let json_schema = request(
            json!({"messages": [], "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
        );
        let g = constraint(&json_schema).unwrap().unwrap();
        assert_eq!(g.schema, schema);
        assert!(g.gbnf.contains("root"), "{}", g.gbnf);
        let object = request(json!({"messages": [], "response_format": {"type": "json_object"}}));
        assert!(constraint(&object).unwrap().is_some());
        let odd = request(json!({"messages": [], "response_format": {"type": "xml"}}));
        assert!(constraint(&odd).unwrap_err().contains("xml"));
        let empty = request(json!({"messages": [], "response_format": {"type": "json_schema"}}));
        assert!(constraint(&empty).unwrap_err().contains("schema"));
    }

    #[test]
    fn a_message_reads_a_string_or_its_text_parts() {
        let m: InMessage = serde_json::from_value(json!({"role": "user", "content": [
            {"type": "text", "text": "first"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "second"}
        ]})).unwrap();
        assert_eq!(m.text(), "first\nsecond");
        let m: InMessage =
            serde_json::from_value(json!({"role": "assistant", "content": null})).unwrap();
        assert_eq!(m.text(), "");
    }

    #[test]
    fn the_endpoint_is_off_by_default_and_never_runs_without_a_long_token() {
        let config = ApiConfig {
            token_env: "HEARTH_API_TOKEN_NOT_SET_IN_TESTS".into(),
            ..ApiConfig::default()
        };
        assert!(!config.enabled);
        assert_eq!(config.check(), Ok(()));
        let on = ApiConfig {
            enabled: true,
            ..config.clone()
        };
        assert!(on.check().unwrap_err().contains("needs a bearer token"));
        let short = ApiConfig {
            token: "abc".into(),
            ..on.clone()
        };
        assert!(short.check().unwrap_err().contains("16 or more"));
        let good = ApiConfig {
            token: "a-token-of-some-length".into(),
            ..on.clone()
        };
        assert_eq!(good.check(), Ok(()));
        let bad_bind = ApiConfig {
            bind: "localhost".into(),
            ..good
        };
        assert!(bad_bind.check().unwrap_err().contains("api.bind"));
    }
}
