//! With `--api-tokens`, every request for data needs `Authorization:
//! Bearer TOKEN`: without one (or with one the file does not hold) it is a
//! 401, with one that lacks the endpoint's right a 403. The caller rides
//! on the request to the API, which ANDs its scope into every answer. The
//! console's own files carry no data and are served to anyone, so that a
//! browser can load the page that asks for a token.

use crate::tokens::{Right, TokenFile};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What authorization refused.
#[derive(Debug, Default)]
struct Counters {
    unauthenticated: AtomicU64,
    forbidden: AtomicU64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuthStats {
    /// Requests without a token the file holds (401).
    pub requests_unauthenticated: u64,
    /// Requests whose token lacks the endpoint's right (403).
    pub requests_forbidden: u64,
    /// The token file was re-read after it changed.
    pub reloads: u64,
    /// Changed token files that did not parse (the tokens before stayed).
    pub reload_errors: u64,
}

#[derive(Clone)]
pub struct Access {
    tokens: Arc<TokenFile>,
    counters: Arc<Counters>,
}

impl Access {
    pub fn new(tokens: TokenFile) -> Access {
        Access {
            tokens: Arc::new(tokens),
            counters: Arc::default(),
        }
    }

    pub fn stats_reader(&self) -> impl Fn() -> AuthStats + Send + Sync + 'static {
        let access = self.clone();
        move || {
            let reload = access.tokens.reload_stats();
            AuthStats {
                requests_unauthenticated: access.counters.unauthenticated.load(Ordering::Relaxed),
                requests_forbidden: access.counters.forbidden.load(Ordering::Relaxed),
                reloads: reload.reloads,
                reload_errors: reload.reload_errors,
            }
        }
    }
}

/// The right a path needs; None for the console's files.
pub fn right_for(path: &str) -> Option<Right> {
    match path {
        "/metrics" => Some(Right::Metrics),
        "/status" | "/api/status" => Some(Right::Admin),
        "/api/export" => Some(Right::Export),
        p if p.starts_with("/api/") => Some(Right::Read),
        _ => None,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn refusal(status: StatusCode, message: String) -> Response {
    let mut response =
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"flowlens\""),
        );
    }
    response
}

pub async fn authorize(State(access): State<Access>, mut request: Request, next: Next) -> Response {
    let Some(right) = right_for(request.uri().path()) else {
        return next.run(request).await;
    };
    let caller = bearer(request.headers()).and_then(|t| access.tokens.caller(t));
    let Some(caller) = caller else {
        access
            .counters
            .unauthenticated
            .fetch_add(1, Ordering::Relaxed);
        return refusal(
            StatusCode::UNAUTHORIZED,
            "this server needs an API token: send `Authorization: Bearer TOKEN` (flowlens --token-file FILE)".into(),
        );
    };
    if !caller.may(right) {
        access.counters.forbidden.fetch_add(1, Ordering::Relaxed);
        return refusal(
            StatusCode::FORBIDDEN,
            format!(
                "the token `{}` does not have the `{}` right that {} needs",
                caller.name,
                right.name(),
                request.uri().path()
            ),
        );
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}
