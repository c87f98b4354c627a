//! The memory pages and the memory API: search with each hit's signals, forget, correct, the
//! graph and the profile. The page and `hearth-hub memory ...` (through [`super::client`])
//! call the same handlers, so they agree while the hub runs.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use hearth_shared::now_ms;
use serde::{Deserialize, Serialize};

use super::{bad, pages, Dashboard};
use crate::memory::retrieval::Hit;

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
    /// How many hits; `dashboard.search_results` without it.
    #[serde(default)]
    k: Option<usize>,
}

/// A failure of the store, as an answer.
fn failed(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "dashboard: {what} failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the {what} failed: {e}"),
    )
        .into_response()
}

async fn search(d: &Dashboard, q: &SearchQuery) -> Result<Vec<Hit>, Response> {
    let query = q.q.trim();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let k =
        q.k.unwrap_or(d.pipeline.config.dashboard.search_results)
            .clamp(1, 100);
    d.pipeline
        .subconscious
        .search(query, k, now_ms())
        .await
        .map_err(|e| failed("memory search", e))
}

/// The memories page: a search, the newest memories, the timeline.
pub(super) async fn page(State(d): State<Dashboard>, Query(q): Query<SearchQuery>) -> Response {
    let hits = match search(&d, &q).await {
        Ok(hits) => hits,
        Err(response) => return response,
    };
    let memories = Arc::clone(d.pipeline.subconscious.memories());
    let all = tokio::task::spawn_blocking(move || {
        memories
            .store()
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match all {
        Ok(all) => {
            Html(pages::memories(q.q.trim(), &hits, &all, now_ms(), d.zone())).into_response()
        }
        Err(e) => failed("memory store read", e),
    }
}

/// One hit, as the API gives it.
#[derive(Debug, Serialize, Deserialize)]
pub struct HitJson {
    /// The memory's id.
    pub id: u64,
    /// What it says.
    pub text: String,
    /// Where it was said.
    pub room: String,
    /// Its lifecycle state in words.
    pub state: String,
    /// The combined score.
    pub score: f32,
    /// The signals behind the score, in words.
    pub signals: String,
}

/// What `GET /api/memories?q=` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecallJson {
    /// The memories, best first.
    pub hits: Vec<HitJson>,
    /// Graph nodes that mention the words, one line each.
    pub graph: Vec<String>,
}

pub(super) async fn recall(State(d): State<Dashboard>, Query(q): Query<SearchQuery>) -> Response {
    let hits = match search(&d, &q).await {
        Ok(hits) => hits,
        Err(response) => return response,
    };
    let (memories, query) = (Arc::clone(d.pipeline.subconscious.memories()), q.q.clone());
    let graph =
        tokio::task::spawn_blocking(move || memories.graph().search(query.trim(), 10)).await;
    let graph = match graph {
        Ok(Ok(nodes)) => nodes.iter().map(|n| n.line()).collect(),
        Ok(Err(e)) => return failed("graph search", e),
        Err(e) => return failed("graph search", e),
    };
    let now = now_ms();
    let hits = hits
        .iter()
        .map(|h| HitJson {
            id: h.memory.id,
            text: h.memory.text.clone(),
            room: h.memory.room.clone(),
            state: pages::state(&h.memory, now, d.zone()),
            score: h.score,
            signals: pages::signals(&h.signals),
        })
        .collect();
    Json(RecallJson { hits, graph }).into_response()
}

pub(super) async fn forget(State(d): State<Dashboard>, Path(id): Path<u64>) -> Response {
    match d.pipeline.forget_memories(&[id]).await {
        Ok(0) => (StatusCode::NOT_FOUND, format!("there is no memory #{id}")).into_response(),
        Ok(_) => (StatusCode::OK, format!("forgot #{id}")).into_response(),
        Err(e) => failed("forget", e),
    }
}

#[derive(Deserialize)]
pub(super) struct CorrectForm {
    text: String,
}

pub(super) async fn correct(
    State(d): State<Dashboard>,
    Path(id): Path<u64>,
    Form(f): Form<CorrectForm>,
) -> Response {
    let text = f.text.trim();
    if text.is_empty() {
        return bad("say what the memory should say");
    }
    // A superseded memory is history: correcting it would make two current versions.
    match d.pipeline.subconscious.memories().store().get(id) {
        Ok(Some(m)) => {
            if let Some(by) = m.superseded_by {
                return (
                    StatusCode::CONFLICT,
                    format!("#{id} was already superseded by #{by}: correct #{by} instead"),
                )
                    .into_response();
            }
        }
        Ok(None) => {
            return (StatusCode::NOT_FOUND, format!("there is no memory #{id}")).into_response()
        }
        Err(e) => return failed("memory store read", e),
    }
    match d
        .pipeline
        .subconscious
        .correct_id(id, text, "dashboard", now_ms())
        .await
    {
        Ok(Some((old, new))) => {
            tracing::info!(old = old.id, new = new.id, "dashboard: memory corrected");
            (
                StatusCode::OK,
                format!("#{} is superseded by #{} {:?}", old.id, new.id, new.text),
            )
                .into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, format!("there is no memory #{id}")).into_response(),
        Err(e) => failed("correction", e),
    }
}

/// Runs `f` on the memories off the async threads; its text, or the failure.
async fn read_text(
    d: &Dashboard,
    what: &'static str,
    f: impl FnOnce(&crate::memory::Memories) -> Result<String, String> + Send + 'static,
) -> Response {
    let memories = Arc::clone(d.pipeline.subconscious.memories());
    match tokio::task::spawn_blocking(move || f(&memories)).await {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Ok(Err(e)) => failed(what, e),
        Err(e) => failed(what, e),
    }
}

pub(super) async fn graph(State(d): State<Dashboard>) -> Response {
    read_text(&d, "graph read", |m| {
        m.graph().render_tree().map_err(|e| e.to_string())
    })
    .await
}

pub(super) async fn profile(State(d): State<Dashboard>) -> Response {
    read_text(&d, "profile read", |m| {
        Ok(match m.profile().map_err(|e| e.to_string())? {
            Some(p) => p.render(),
            None => String::new(),
        })
    })
    .await
}

/// The mind page: the memory graph as a tree to open and close, and the profile.
pub(super) async fn mind(State(d): State<Dashboard>) -> Response {
    let memories = Arc::clone(d.pipeline.subconscious.memories());
    let read = tokio::task::spawn_blocking(move || {
        let tree = memories.graph().render_tree().map_err(|e| e.to_string())?;
        let profile = memories.profile().map_err(|e| e.to_string())?;
        Ok::<_, String>((tree, profile))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match read {
        Ok((tree, profile)) => Html(pages::mind(&tree, profile.as_ref(), d.zone())).into_response(),
        Err(e) => failed("graph read", e),
    }
}
