//! The household's web dashboard (`[dashboard]`, off by default): rooms and the live
//! conversation, memories with search and forget, reminders, emotion plots and the hub's
//! health, served by the hub on its own port.
//!
//! - **Server-rendered.** Each page is HTML made here ([`pages`]); the one script and style
//!   sheet are compiled into the binary, so the page needs nothing beyond the hub (it works
//!   with the network cut off).
//! - **Live.** `/events` streams the household's [`Live`](crate::live::Live) feed as
//!   server-sent events: what was heard, each reply chunk, presence and emotion.
//! - **Login.** With the household's admin secret set (`HEARTH_ADMIN_SECRET` or
//!   `dashboard.admin_secret`) every page needs a session: a random token in an `HttpOnly`,
//!   `SameSite=Strict` cookie, kept hashed in memory, so a restart logs everyone out. Without
//!   one the dashboard serves loopback only, and says so in the log. `hearth-hub memory ...`
//!   sends the secret as a bearer token instead ([`client`]).
//! - **Same actions as speech.** Forgetting goes through the turn pipeline's forget (the store,
//!   both indexes, the graph, the profile's evidence, the role log, the rooms' history);
//!   a question typed to a room is a turn of that room, answered on the page.

mod auth;
pub mod client;
mod memory;
mod pages;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use hearth_shared::{now_ms, Speech, SpeechReason, Utterance};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::outbox::Message;
use crate::pixie::reminders::Kind;
use crate::turn::Pipeline;

/// The session cookie's name.
const COOKIE: &str = "hearth_session";

/// `[dashboard]`: the household's web dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve it.
    pub enabled: bool,
    /// Where it listens. Loopback by default; anything else needs the admin secret.
    pub bind: String,
    /// The environment variable holding the household's admin secret; it wins over
    /// `admin_secret`.
    pub admin_secret_env: String,
    /// The admin secret (12 characters or more), when the environment does not give one.
    pub admin_secret: String,
    /// How long a login lasts, in hours.
    pub session_hours: u64,
    /// How many memories a search shows.
    pub search_results: usize,
    /// Other names the page is reached by, as `host:port` (a TLS proxy's, say, such as
    /// `hearth.home:443`). Requests naming any other host are refused: a web page elsewhere
    /// cannot reach the dashboard by pointing its own name at this machine.
    pub hosts: Vec<String>,
    /// HTTPS with the broker's certificate (`mqtt.tls_cert`, made if missing): `"auto"` when
    /// the broker listens with TLS (`mqtt.tls_listen`), `"on"`, or `"off"`.
    pub tls: Tls,
}

/// Whether the dashboard speaks HTTPS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// When the broker does.
    #[default]
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: false,
            bind: "127.0.0.1:8089".to_string(),
            admin_secret_env: "HEARTH_ADMIN_SECRET".to_string(),
            admin_secret: String::new(),
            session_hours: 12,
            search_results: 10,
            hosts: Vec::new(),
            tls: Tls::Auto,
        }
    }
}

impl DashboardConfig {
    /// The admin secret: `admin_secret_env`'s value, else `admin_secret`; `None` when neither
    /// is set.
    pub fn secret(&self) -> Option<String> {
        crate::config::secret_from(&self.admin_secret_env, &self.admin_secret)
    }

    /// Whether the page is served over HTTPS, given whether the broker listens with TLS.
    pub fn uses_tls(&self, broker_tls: bool) -> bool {
        match self.tls {
            Tls::Auto => broker_tls,
            Tls::On => true,
            Tls::Off => false,
        }
    }

    /// The settings' errors, in words (only when enabled). `broker_tls`: the broker listens
    /// with TLS, so the household expects it here too.
    pub fn check(&self, broker_tls: bool) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let addr: SocketAddr = self.bind.parse().map_err(|e| {
            format!(
                "dashboard.bind {:?} is not an address and port ({e})",
                self.bind
            )
        })?;
        if !(1..=8760).contains(&self.session_hours) {
            return Err("dashboard.session_hours must be 1 to 8760 (a year)".to_string());
        }
        match self.secret() {
            Some(s) if s.chars().count() < 12 => Err(format!(
                "the admin secret ({} or dashboard.admin_secret) is {} characters; use 12 or more",
                self.admin_secret_env,
                s.chars().count()
            )),
            None if !addr.ip().is_loopback() => Err(format!(
                "dashboard.bind {} is beyond this machine: set the admin secret ({} or dashboard.admin_secret) so that the page asks for it",
                self.bind, self.admin_secret_env
            )),
            _ if broker_tls && !self.uses_tls(broker_tls) && !addr.ip().is_loopback() => {
                Err(format!(
                    "dashboard.bind {} is beyond this machine and the broker uses TLS: with dashboard.tls = \"off\" the admin secret would cross the network in plain HTTP",
                    self.bind
                ))
            }
            _ => Ok(()),
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
struct Dashboard {
    pipeline: Arc<Pipeline>,
    /// The admin secret's SHA-256, when there is one.
    secret: Option<[u8; 32]>,
    /// Live sessions: the SHA-256 of each token, and when it expires (ms since the epoch).
    sessions: Arc<Mutex<HashMap<[u8; 32], u64>>>,
    /// The `host:port` names requests may carry (lower case).
    hosts: Arc<Vec<String>>,
    /// Numbers the questions typed on the page.
    asked: Arc<std::sync::atomic::AtomicU64>,
    /// Served over HTTPS (the session cookie is then `Secure`).
    tls: bool,
}

impl Dashboard {
    fn zone(&self) -> &jiff::tz::TimeZone {
        self.pipeline.pixie.zone()
    }
}

/// What the dashboard speaks HTTPS with.
pub type Acceptor = tokio_rustls::TlsAcceptor;

/// The TLS acceptor when `config` has the dashboard speak HTTPS (the certificate made if
/// missing, then read): made before the hub serves, so that a bad certificate stops the
/// start.
pub fn acceptor(config: &crate::config::HubConfig) -> std::io::Result<Option<Acceptor>> {
    let (dashboard, mqtt) = (&config.dashboard, &config.mqtt);
    if dashboard.enabled && dashboard.uses_tls(!mqtt.tls_listen.is_empty()) {
        Ok(Some(tls::tls_acceptor(mqtt)?))
    } else {
        Ok(None)
    }
}

/// Serves the dashboard on `listener` (over TLS with `acceptor`) until `stop` fires.
pub async fn serve(
    pipeline: Arc<Pipeline>,
    listener: tokio::net::TcpListener,
    acceptor: Option<Acceptor>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let config = &pipeline.config.dashboard;
    let secret = config.secret();
    let addr = listener.local_addr()?;

    match &secret {
        Some(_) => tracing::info!(%addr, "serving the dashboard (login with the admin secret)"),
        None => {
            tracing::warn!(%addr, "serving the dashboard without a login: anyone on this machine can open it; set {} to ask for one", config.admin_secret_env)
        }
    }
    let port = addr.port();
    let hosts = [
        config.bind.clone(),
        addr.to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ]
    .into_iter()
    .chain(config.hosts.iter().cloned())
    .map(|h| h.to_lowercase())
    .collect();
    let state = Dashboard {
        secret: secret.map(|s| Sha256::digest(s.as_bytes()).into()),
        sessions: Arc::default(),
        hosts: Arc::new(hosts),
        asked: Arc::default(),
        tls: acceptor.is_some(),
        pipeline: Arc::clone(&pipeline),
    };
    match acceptor {
        Some(acceptor) => tls::serve_tls(listener, router(state), acceptor, stop).await,
        None => {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    }
}

fn router(state: Dashboard) -> Router {
    let guarded = Router::new()
        .route("/", get(rooms))
        .route("/rooms/ask", post(ask))
        .route("/rooms/announce", post(announce))
        .route("/memories", get(memory::page))
        .route("/memories/:id/forget", post(memory::forget))
        .route("/memories/:id/correct", post(memory::correct))
        .route("/mind", get(memory::mind))
        .route("/api/memories", get(memory::recall))
        .route("/api/graph", get(memory::graph))
        .route("/api/profile", get(memory::profile))
        .route("/reminders", get(reminders).post(set_reminder))
        .route("/reminders/:id/cancel", post(cancel_reminder))
        .route("/pixie", get(pixie))
        .route("/emotion", get(emotion))
        .route("/emotion/plot", get(emotion_plot))
        .route("/health", get(health))
        .route("/health/table", get(health_table))
        .route("/health/events", get(health_events))
        .route("/api/health", get(health_json))
        .route("/api/emotion", get(emotion_json))
        .route("/events", get(events))
        .route("/logout", post(auth::logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::gate));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/assets/app.js", get(script))
        .route("/assets/app.css", get(style))
        .merge(guarded)
        .layer(middleware::from_fn_with_state(state.clone(), auth::protect))
        .with_state(state)
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("app.js"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("app.css"),
    )
        .into_response()
}

/// A room as the rooms page shows it.
#[derive(Debug, Clone, Serialize)]
struct RoomView {
    room: String,
    terminals: Vec<(String, bool)>,
    heard_ms: Option<u64>,
    persona: Option<String>,
    /// The room's latest exchanges (what was said, what was answered), oldest first.
    recent: Vec<(String, String)>,
}

/// How many of a room's exchanges the rooms page shows before the live ones.
const RECENT_EXCHANGES: usize = 5;

fn room_views(d: &Dashboard) -> Vec<RoomView> {
    let personas = &d.pipeline.config.personas;
    d.pipeline.home.with(|h| {
        h.rooms
            .known()
            .into_iter()
            .map(|room| RoomView {
                terminals: h
                    .rooms
                    .terminals()
                    .filter(|p| p.room == room)
                    .map(|p| (p.terminal.clone(), p.online))
                    .collect(),
                heard_ms: h.rooms.heard_at(&room),
                persona: personas.of_room(&room).map(|p| p.name.clone()),
                recent: {
                    let all = h.conversations.exchanges(&room);
                    all[all.len().saturating_sub(RECENT_EXCHANGES)..].to_vec()
                },
                room,
            })
            .collect()
    })
}

async fn rooms(State(d): State<Dashboard>) -> Html<String> {
    Html(pages::rooms(&room_views(&d), now_ms(), d.zone()))
}

#[derive(Deserialize)]
struct RoomForm {
    room: String,
    text: String,
}

/// A form's failure: 400 with what is wrong.
fn bad(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, message.into()).into_response()
}

/// A typed question, answered as a turn of the room (its history, its persona); the answer
/// streams to the page, not to the room's speaker.
async fn ask(State(d): State<Dashboard>, Form(f): Form<RoomForm>) -> Response {
    let text = f.text.trim();
    let room = f.room.trim();
    let limit = d.pipeline.config.conversation.max_utterance_chars;
    if room.is_empty() || text.is_empty() {
        return bad("name a room and say something");
    }
    if text.chars().count() > limit {
        return bad(format!("that is longer than {limit} characters"));
    }
    if !d
        .pipeline
        .home
        .with(|h| h.rooms.known())
        .iter()
        .any(|r| r == room)
    {
        return bad(format!(
            "no terminal has ever been in a room called {room:?}"
        ));
    }
    let now = now_ms();
    // One terminal id per question: two asked together (two tabs, two people) each get
    // their answer, rather than the newer cancelling the older.
    let n = d.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let u = Utterance {
        id: format!("dash-{now}-{n}"),
        terminal: format!("{}-{n}", crate::live::DASHBOARD),
        room: room.to_string(),
        text: text.to_string(),
        started_at_ms: now,
        ended_at_ms: now,
        audio: None,
        speaker: None,
    };
    match d.pipeline.accept(u, d.pipeline.config.trust.max_turns) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(n) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the hub is busy: {n} answers are in flight"),
        )
            .into_response(),
    }
}

/// Says `text` in the room, on each of its online terminals.
async fn announce(State(d): State<Dashboard>, Form(f): Form<RoomForm>) -> Response {
    let text = f.text.trim().to_string();
    if text.is_empty() {
        return bad("say something");
    }
    let targets: Vec<String> = d.pipeline.home.with(|h| {
        h.rooms
            .terminals()
            .filter(|p| p.online && p.room == f.room.trim())
            .map(|p| p.terminal.clone())
            .collect()
    });
    if targets.is_empty() {
        return bad(format!("no terminal is online in the {}", f.room.trim()));
    }
    let voice = d
        .pipeline
        .config
        .personas
        .of_room(f.room.trim())
        .map(|p| p.voice());
    for terminal in &targets {
        let speech = Speech {
            id: format!("dash-{}", now_ms()),
            text: text.clone(),
            reason: SpeechReason::System,
            expects_answer: false,
            voice: voice.clone(),
        };
        d.pipeline.out.send(terminal, Message::Speech(speech)).await;
    }
    tracing::info!(room = %f.room.trim(), terminals = targets.len(), "dashboard: announced");
    StatusCode::NO_CONTENT.into_response()
}

async fn reminders(State(d): State<Dashboard>) -> Response {
    match d.pipeline.pixie.reminders().pending() {
        Ok(pending) => {
            let rooms = d.pipeline.home.with(|h| h.rooms.known());
            Html(pages::reminders(&pending, &rooms, now_ms(), d.zone())).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the reminders: {e}"),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct ReminderForm {
    what: String,
    when: String,
    #[serde(default)]
    room: String,
    #[serde(default)]
    timer: Option<String>,
}

async fn set_reminder(State(d): State<Dashboard>, Form(f): Form<ReminderForm>) -> Response {
    let (what, when) = (f.what.trim(), f.when.trim());
    if when.is_empty() || (what.is_empty() && f.timer.is_none()) {
        return bad("say what and when");
    }
    let kind = if f.timer.is_some() {
        Kind::Timer
    } else {
        Kind::Reminder
    };
    let rooms: Vec<String> = Some(f.room.trim().to_string())
        .filter(|r| !r.is_empty())
        .into_iter()
        .collect();
    match d
        .pipeline
        .pixie
        .set(kind, what, when, &rooms, "dashboard", now_ms())
    {
        Ok((r, said)) => {
            tracing::info!(reminder = r.id, "dashboard: reminder set");
            d.pipeline.wake.notify_one();
            (StatusCode::OK, said).into_response()
        }
        Err(e) => bad(e.to_string()),
    }
}

async fn cancel_reminder(State(d): State<Dashboard>, Path(id): Path<u64>) -> Response {
    match d.pipeline.pixie.reminders().cancel(id, now_ms()) {
        Ok(true) => {
            tracing::info!(reminder = id, "dashboard: reminder cancelled");
            d.pipeline.wake.notify_one();
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            format!("there is no pending reminder #{id}"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot cancel #{id}: {e}"),
        )
            .into_response(),
    }
}

async fn pixie(State(d): State<Dashboard>) -> Response {
    let pixie = &d.pipeline.pixie;
    let queue = pixie
        .tasks()
        .pending()
        .and_then(|t| Ok((t, pixie.reminders().pending()?)));
    match queue {
        Ok((tasks, reminders)) => Html(pages::pixie(
            &tasks,
            &reminders,
            &pixie.decisions(),
            now_ms(),
            d.zone(),
        ))
        .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read Pixie's queue: {e}"),
        )
            .into_response(),
    }
}

async fn emotion(State(d): State<Dashboard>) -> Html<String> {
    Html(pages::emotion(&d.pipeline.home.live.emotions(), d.zone()))
}

async fn emotion_plot(State(d): State<Dashboard>) -> Html<String> {
    Html(pages::emotion_plot(
        &d.pipeline.home.live.emotions(),
        d.zone(),
    ))
}

async fn emotion_json(State(d): State<Dashboard>) -> Json<Vec<crate::live::EmotionPoint>> {
    Json(d.pipeline.home.live.emotions())
}

/// The hub's health, as the health page shows it.
#[derive(Debug, Clone, Serialize)]
struct Health {
    model: String,
    backend: String,
    gpu_layers: String,
    context_tokens: u32,
    tokens_per_s: f32,
    answer_tokens: u64,
    queue: (usize, usize),
    jobs: std::collections::BTreeMap<String, u64>,
    refused: u64,
    turns_in_flight: usize,
    terminals_online: usize,
    terminals_known: usize,
    memories: usize,
    disk: Vec<(String, u64)>,
}

async fn health_of(d: &Dashboard) -> Health {
    let p = &d.pipeline;
    let info = p.llm.info();
    let usage = p.llm.usage().counts();
    let (online, known) = p.home.with(|h| {
        (
            h.rooms.terminals().filter(|t| t.online).count(),
            h.rooms.terminals().count(),
        )
    });
    let stores = vec![
        ("memory".to_string(), p.config.memory.path.clone()),
        ("reminders".to_string(), p.config.pixie.path.clone()),
        (
            "terminal registry".to_string(),
            p.config.trust.registry.clone(),
        ),
    ];
    // Sizes walk folders and the memory count scans a tree: off the async workers.
    let memories = Arc::clone(p.subconscious.memories());
    let (disk, memories) = tokio::task::spawn_blocking(move || {
        let disk = stores
            .into_iter()
            .map(|(name, path)| (name, crate::files::disk_usage(&path)))
            .collect();
        (disk, memories.store().len())
    })
    .await
    .unwrap_or_default();
    Health {
        model: info
            .name
            .clone()
            .unwrap_or_else(|| info.path.display().to_string()),
        backend: info.backend.clone(),
        gpu_layers: format!("{} of {}", info.gpu_layers, info.layers),
        context_tokens: info.context_tokens,
        tokens_per_s: usage.last_tokens_per_s,
        answer_tokens: usage.answer_tokens,
        queue: p.llm.queue(),
        jobs: usage.jobs,
        refused: usage.refused,
        turns_in_flight: p.in_flight.load(std::sync::atomic::Ordering::SeqCst),
        terminals_online: online,
        terminals_known: known,
        memories,
        disk,
    }
}

async fn health(State(d): State<Dashboard>) -> Html<String> {
    Html(pages::health(&health_of(&d).await))
}

async fn health_table(State(d): State<Dashboard>) -> Html<String> {
    Html(pages::health_table(&health_of(&d).await))
}

/// The health table every 2 s as server-sent events (each the rendered table), for as long
/// as the session lasts.
async fn health_events(
    State(d): State<Dashboard>,
    headers: HeaderMap,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let stop = d.pipeline.stop.clone();
    let session = d.session_of(&headers);
    let stream = async_stream(move |tx| async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if session.is_some_and(|s| !d.session_alive(&s)) {
                return;
            }
            let table = pages::health_table(&health_of(&d).await).replace('\n', " ");
            if tx.send(Ok(SseEvent::default().data(table))).await.is_err() {
                return;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn health_json(State(d): State<Dashboard>) -> Json<Health> {
    Json(health_of(&d).await)
}

/// The live feed as server-sent events, one JSON object each. A watcher that fell behind
/// is told how many events it missed.
async fn events(
    State(d): State<Dashboard>,
    headers: HeaderMap,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let mut watcher = d.pipeline.home.live.watch();
    let stop = d.pipeline.stop.clone();
    // A feed opened with a session ends with it (a logout, its expiry).
    let session = d.session_of(&headers);
    let stream = async_stream(move |tx| async move {
        let mut check = tokio::time::interval(Duration::from_secs(30));
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                // A closed tab ends its task at once, not at the next event.
                _ = tx.closed() => return,
                _ = check.tick() => {
                    if session.is_some_and(|s| !d.session_alive(&s)) {
                        return;
                    }
                    continue;
                }
                e = watcher.recv() => e,
            };
            if session.is_some_and(|s| !d.session_alive(&s)) {
                return;
            }
            let data = match event {
                Ok(e) => serde_json::to_string(&e).unwrap_or_default(),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    serde_json::json!({"kind": "lagged", "missed": n}).to_string()
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(SseEvent::default().data(data))).await.is_err() {
                return;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A stream fed by a task: `body` gets the sending side and ends the stream by returning (or
/// sees the client gone when a send fails).
fn async_stream<T, F, Fut>(body: F) -> impl futures_util::Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests;
