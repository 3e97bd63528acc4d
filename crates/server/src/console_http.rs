//! The embedded console over HTTP: its files by path, and its page for every
//! other GET outside the API (the console keeps its state in the URL, so a
//! shared link such as `/?view=flows&filter=...` must load the page).

use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use flowlens_console::{asset, cache_control, content_type, index};

pub async fn console_file(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path();
    if path.starts_with("/api/") {
        let body =
            serde_json::json!({ "error": format!("no API route {path}; see docs/openapi.yaml") });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    let file = match asset(path) {
        Some(file) => file,
        // A missing hashed asset is a stale page, not a route of the console.
        None if path.starts_with("/assets/") => return StatusCode::NOT_FOUND.into_response(),
        None => index(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type(file.path)),
            (header::CACHE_CONTROL, cache_control(file.path)),
        ],
        file.body,
    )
        .into_response()
}
