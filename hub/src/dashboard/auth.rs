//! Who may use the dashboard: the `Host` and `Origin` checks and security headers on every
//! request ([`protect`]), the session check in front of every page and data route
//! ([`gate`]), and the login and logout that make and end sessions.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use hearth_shared::now_ms;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{pages, Dashboard, COOKIE};

/// Every request: refused unless it names one of the dashboard's own hosts (so that a page
/// elsewhere cannot rebind its name to this machine); every answer: never framed, never
/// cached, scripts and styles from the hub alone. (The referrer policy must not be
/// `no-referrer`: Chromium then sends `Origin: null` with forms, which [`origin_allowed`]
/// refuses.)
pub(super) async fn protect(State(d): State<Dashboard>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_lowercase();
    if !host_allowed(&d.hosts, &host) {
        tracing::warn!(host = %host, "dashboard: a request for another host was refused (add it to dashboard.hosts if it is this hub's name)");
        return (StatusCode::MISDIRECTED_REQUEST, "not this host").into_response();
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// The session token in the request's cookie, if any.
pub(super) fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub(super) fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Dashboard {
    /// Whether the request carries a live session (always, without an admin secret).
    pub(super) fn signed_in(&self, headers: &HeaderMap) -> bool {
        let Some(secret) = self.secret else {
            return true;
        };
        // `hearth-hub memory ...` sends the admin secret itself.
        // Bytes, not text: a secret may be any UTF-8.
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        if let Some(sent) = bearer {
            return same(&Sha256::digest(sent.trim_ascii()).into(), &secret);
        }
        let Some(token) = session_token(headers) else {
            return false;
        };
        self.session_alive(&Sha256::digest(token.as_bytes()).into())
    }

    /// The hash of the request's session token, when logins are asked for: what a stream
    /// checks again as it goes ([`Dashboard::session_alive`]).
    pub(super) fn session_of(&self, headers: &HeaderMap) -> Option<[u8; 32]> {
        session_token(headers)
            .filter(|_| self.secret.is_some())
            .map(|t| Sha256::digest(t.as_bytes()).into())
    }

    /// Whether the session whose token hashes to `hash` is live.
    pub(super) fn session_alive(&self, hash: &[u8; 32]) -> bool {
        let now = now_ms();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, expires| *expires > now);
        sessions.keys().any(|k| same(k, hash))
    }
}

/// Whether `host` (a `Host` header, lower case) is one of `hosts`; without a port it is the
/// scheme's default (browsers leave out `:80` and `:443`).
pub(super) fn host_allowed(hosts: &[String], host: &str) -> bool {
    if host.is_empty() {
        return false;
    }
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']')
    });
    hosts.iter().any(|h| h == host)
        || (!has_port
            && [":80", ":443"]
                .iter()
                .any(|port| hosts.contains(&format!("{host}{port}"))))
}

/// Lets a request through with a session; sends a page to the login and refuses the rest.
/// A form from another site (an `Origin` that is not this host) is refused too.
pub(super) async fn gate(State(d): State<Dashboard>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if request.method() == Method::POST && !d.same_origin(headers) {
        tracing::warn!(path = %request.uri().path(), "dashboard: a form from another site was refused");
        return (StatusCode::FORBIDDEN, "a request from another site").into_response();
    }
    if d.signed_in(headers) {
        return next.run(request).await;
    }
    if headers.contains_key(header::AUTHORIZATION) {
        // A wrong secret sent as a bearer token costs a second, as a wrong login does.
        tracing::warn!("dashboard: a request with the wrong admin secret was refused");
        tokio::time::sleep(Duration::from_secs(1)).await;
        return (StatusCode::UNAUTHORIZED, "the admin secret is wrong").into_response();
    }
    // Pages go to the login; data and the fragments the script swaps in get a 401.
    let path = request.uri().path();
    let page = request.method() == Method::GET
        && !path.starts_with("/api/")
        && !matches!(
            path,
            "/events" | "/health/events" | "/health/table" | "/emotion/plot"
        );
    if page {
        Redirect::to("/login").into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "log in first").into_response()
    }
}

impl Dashboard {
    fn same_origin(&self, headers: &HeaderMap) -> bool {
        origin_allowed(&self.hosts, headers)
    }
}

/// Whether a POST's `Origin` (when the browser sent one) is one of `hosts`.
pub(super) fn origin_allowed(hosts: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let (scheme, bare) = origin.split_once("://").unwrap_or(("", origin));
    let bare = bare.to_lowercase();
    let default_port = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    hosts.contains(&bare) || hosts.contains(&format!("{bare}{default_port}"))
}

pub(super) async fn login_page(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if d.secret.is_none() || d.signed_in(&headers) {
        return Redirect::to("/").into_response();
    }
    Html(pages::login(None)).into_response()
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    password: String,
}

pub(super) async fn login(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !d.same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "a request from another site").into_response();
    }
    let Some(secret) = d.secret else {
        return Redirect::to("/").into_response();
    };
    let sent: [u8; 32] = Sha256::digest(f.password.trim().as_bytes()).into();
    if !same(&sent, &secret) {
        tracing::warn!("dashboard: a login with the wrong secret was refused");
        // Each wrong guess costs a second.
        tokio::time::sleep(Duration::from_secs(1)).await;
        return (
            StatusCode::UNAUTHORIZED,
            Html(pages::login(Some("That is not the admin secret."))),
        )
            .into_response();
    }
    let mut token = [0u8; 32];
    use argon2::password_hash::rand_core::RngCore;
    argon2::password_hash::rand_core::OsRng.fill_bytes(&mut token);
    let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
    let hours = d.pipeline.config.dashboard.session_hours;
    let expires = now_ms() + hours * 3_600_000;
    d.sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(Sha256::digest(token.as_bytes()).into(), expires);
    tracing::info!("dashboard: logged in");
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        hours * 3600,
        if d.tls { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

pub(super) async fn logout(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        d.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hash);
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
