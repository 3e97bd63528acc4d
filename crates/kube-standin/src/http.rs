//! The stand-in's HTTP API: the paths, verbs and query parameters of the
//! Kubernetes API for the kinds of `store::TYPES`, answers and errors in
//! the API's shapes (lists, watch event streams, `Status`).

use crate::store::{Change, Selection, StoreError, TYPES, type_of_plural};
use crate::{Pulse, Shared};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// Serves TLS connections until `stopped`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        }
    }
}

/// What a path names: a type's collection (maybe in one namespace), or
/// one object (maybe its status).
#[derive(Debug, PartialEq)]
struct Target {
    ty: usize,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Result<Target, String> {
    let not_found = || format!("the server could not find the requested resource ({path})");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return Err(not_found()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(name.to_string()), false),
        [plural, name, "status"] => (*plural, Some(name.to_string()), true),
        _ => return Err(not_found()),
    };
    let ty = type_of_plural(&api_version, plural).ok_or_else(not_found)?;
    if namespace.is_some() && !TYPES[ty].namespaced {
        return Err(not_found());
    }
    if name.is_some() && TYPES[ty].namespaced && namespace.is_none() {
        return Err(not_found());
    }
    Ok(Target {
        ty,
        namespace,
        name,
        status,
    })
}

/// A `Status` answer.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::Gone(m) => status(StatusCode::GONE, "Expired", &m),
        StoreError::NotFound(m) => status(StatusCode::NOT_FOUND, "NotFound", &m),
        StoreError::AlreadyExists(m) => status(StatusCode::CONFLICT, "AlreadyExists", &m),
        StoreError::Invalid(m) => status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &m),
    }
}

fn bad_request(message: &str) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    shared.count(|s| s.requests += 1);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(shared.token.as_str()) {
        shared.count(|s| s.unauthorized += 1);
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    if shared.take_fault() {
        shared.count(|s| s.failed += 1);
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "an error on the server (injected by the test) has prevented the request from succeeding",
        );
    }
    let target = match parse_path(uri.path()) {
        Ok(t) => t,
        Err(m) => return status(StatusCode::NOT_FOUND, "NotFound", &m),
    };
    let mut selection = Selection {
        namespace: target.namespace.clone(),
        name: None,
    };
    if let Some(fields) = query.get("fieldSelector")
        && let Err(m) = select_fields(fields, &mut selection)
    {
        return bad_request(&m);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match (&method, target.name.as_deref()) {
        (&Method::GET, None) if flag(&query, "watch") => {
            watch(shared, target.ty, selection, &query)
        }
        (&Method::GET, None) => list(&shared, target.ty, &selection, &query),
        (&Method::POST, None) => write_body(&shared, &target, &body, true),
        (&Method::GET, Some(_)) => match existing(&shared, &target) {
            Ok(object) => axum::Json(Value::clone(&object)).into_response(),
            Err(e) => store_error(e),
        },
        (&Method::PUT, Some(_)) => replace(&shared, &target, &body),
        (&Method::PATCH, Some(_)) if content_type.starts_with("application/merge-patch+json") => {
            merge(&shared, &target, &body)
        }
        (&Method::PATCH, Some(_)) => status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!("the stand-in applies merge patches only, not {content_type:?}"),
        ),
        (&Method::DELETE, Some(name)) => {
            let ns = target.namespace.as_deref().unwrap_or("");
            match shared.write(|s| s.delete(target.ty, ns, name)) {
                Ok(object) => axum::Json(Value::clone(&object)).into_response(),
                Err(e) => store_error(e),
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not supported on {}", uri.path()),
        ),
    }
}

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    matches!(query.get(name).map(String::as_str), Some("true" | "1"))
}

/// `metadata.name=X` and `metadata.namespace=X`, comma-separated (what
/// field selectors of every kind support).
fn select_fields(fields: &str, selection: &mut Selection) -> Result<(), String> {
    for term in fields.split(',').filter(|t| !t.is_empty()) {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .ok_or_else(|| format!("fieldSelector: {term:?} is not field=value"))?;
        match field {
            "metadata.name" => selection.name = Some(value.to_string()),
            "metadata.namespace" => selection.namespace = Some(value.to_string()),
            _ => return Err(format!("fieldSelector: field {field:?} is not supported")),
        }
    }
    Ok(())
}

fn list(
    shared: &Shared,
    ty: usize,
    selection: &Selection,
    query: &HashMap<String, String>,
) -> Response {
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => return bad_request("limit: not a number"),
    };
    let limit = match (limit.filter(|l| *l > 0), shared.options.max_page) {
        (Some(l), Some(m)) => Some(l.min(m)),
        (l, m) => l.or(m),
    };
    let continue_token = query.get("continue").filter(|c| !c.is_empty());
    let page = {
        let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
        store.list(ty, selection, limit, continue_token.map(String::as_str))
    };
    let page = match page {
        Ok(p) => p,
        Err(e) => {
            if matches!(e, StoreError::Gone(_)) {
                shared.count(|s| s.gone += 1);
            }
            return store_error(e);
        }
    };
    if continue_token.is_some() {
        shared.count(|s| s.continued_pages += 1);
    } else {
        shared.count(|s| s.lists += 1);
    }
    let t = &TYPES[ty];
    let mut metadata = json!({"resourceVersion": page.rv.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    let items: Vec<&Value> = page.items.iter().map(|o| o.as_ref()).collect();
    axum::Json(json!({
        "kind": format!("{}List", t.kind), "apiVersion": t.api_version,
        "metadata": metadata, "items": items,
    }))
    .into_response()
}

/// Stores `body` as the object `target` names (`create`: a new one).
fn write_body(shared: &Shared, target: &Target, body: &[u8], create: bool) -> Response {
    match serde_json::from_slice(body) {
        Ok(object) => write_object(shared, target, object, create),
        Err(e) => bad_request(&format!("the body is not JSON: {e}")),
    }
}

/// Stores `object` as the object `target` names, if it is that object.
fn write_object(shared: &Shared, target: &Target, mut object: Value, create: bool) -> Response {
    let t = &TYPES[target.ty];
    if object["apiVersion"] != t.api_version || object["kind"] != t.kind {
        return bad_request(&format!(
            "the body is not a {} of {} (apiVersion and kind)",
            t.kind, t.api_version
        ));
    }
    if let Some(ns) = &target.namespace
        && object["metadata"]["namespace"]
            .as_str()
            .is_some_and(|n| n != ns)
    {
        return bad_request("metadata.namespace does not match the path");
    }
    if let Some(name) = &target.name
        && object["metadata"]["name"].as_str() != Some(name)
    {
        return bad_request("metadata.name does not match the path");
    }
    if let Some(ns) = &target.namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    match shared.write(|s| s.apply(object, create)) {
        Ok(stored) => {
            shared.remember(&stored);
            axum::Json(Value::clone(&stored)).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// The object `target` names now, or 404.
fn existing(shared: &Shared, target: &Target) -> Result<Arc<Value>, StoreError> {
    let name = target.name.as_deref().unwrap_or("");
    let ns = target.namespace.as_deref().unwrap_or("");
    let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    store
        .get(target.ty, ns, name)
        .ok_or_else(|| StoreError::NotFound(format!("{name} not found")))
}

/// PUT: the whole object, or (on `/status`) its status; a
/// resourceVersion in the body must be the current one (optimistic
/// concurrency).
fn replace(shared: &Shared, target: &Target, body: &[u8]) -> Response {
    let current = match existing(shared, target) {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    let new: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("the body is not JSON: {e}")),
    };
    let asked = &new["metadata"]["resourceVersion"];
    if !asked.is_null() && *asked != current["metadata"]["resourceVersion"] {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        );
    }
    let object = if target.status {
        let mut object = Value::clone(&current);
        object["status"] = new["status"].clone();
        object
    } else {
        new
    };
    write_object(shared, target, object, false)
}

/// PATCH with a JSON merge patch (RFC 7386): of the whole object, or (on
/// `/status`) of its status only.
fn merge(shared: &Shared, target: &Target, body: &[u8]) -> Response {
    let current = match existing(shared, target) {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    let patch: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("the patch is not JSON: {e}")),
    };
    let mut object = Value::clone(&current);
    if target.status {
        merge_patch(&mut object["status"], &patch["status"]);
    } else {
        merge_patch(&mut object, &patch);
    }
    write_object(shared, target, object, false)
}

fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(into) = target else { return };
    for (key, value) in fields {
        if value.is_null() {
            into.remove(key);
        } else {
            merge_patch(into.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Where an open watch is.
struct Watching {
    shared: Arc<Shared>,
    ty: usize,
    selection: Selection,
    /// The resourceVersion sent up to.
    cursor: u64,
    bookmarks: bool,
    next_bookmark: Instant,
    deadline: Instant,
    pulse: tokio::sync::watch::Receiver<Pulse>,
    breaks: u64,
    expiries: u64,
    /// Lines to send before the events (the initial state).
    first: Option<Bytes>,
    done: bool,
}

fn line(event: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(event).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn added_lines(objects: &[Arc<Value>]) -> Vec<u8> {
    objects
        .iter()
        .flat_map(|o| line(&json!({"type": Change::Added.name(), "object": o.as_ref()})))
        .collect()
}

fn bookmark(ty: usize, rv: u64, initial_events_end: bool) -> Vec<u8> {
    let t = &TYPES[ty];
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(&json!({"type": "BOOKMARK",
                 "object": {"kind": t.kind, "apiVersion": t.api_version, "metadata": metadata}}))
}

fn watch(
    shared: Arc<Shared>,
    ty: usize,
    selection: Selection,
    query: &HashMap<String, String>,
) -> Response {
    shared.count(|s| s.watches += 1);
    let bookmarks = flag(query, "allowWatchBookmarks");
    let initial_events = flag(query, "sendInitialEvents");
    let asked = query.get("timeoutSeconds").map(|t| t.parse::<u64>());
    let timeout = match asked {
        None => Duration::from_secs(1800),
        Some(Ok(t)) => Duration::from_secs(t),
        Some(Err(_)) => return bad_request("timeoutSeconds: not a number"),
    };
    let timeout = shared.options.max_watch.map_or(timeout, |m| m.min(timeout));
    let rv = query.get("resourceVersion").map(String::as_str);
    let (cursor, first) = {
        let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
        match rv {
            // The current state first, as synthetic ADDED events.
            None | Some("" | "0") => {
                let page = store.list(ty, &selection, None, None);
                let objects = page.map(|p| p.items).unwrap_or_default();
                let mut first = added_lines(&objects);
                if initial_events && bookmarks {
                    first.extend(bookmark(ty, store.rv(), true));
                }
                (store.rv(), Some(Bytes::from(first)))
            }
            Some(rv) => match rv.parse::<u64>() {
                Ok(rv) => (rv, None),
                Err(_) => return bad_request(&format!("resourceVersion: {rv:?} is not valid")),
            },
        }
    };
    let now = Instant::now();
    let pulse = shared.pulse.subscribe();
    let (breaks, expiries) = {
        let now = pulse.borrow();
        (now.breaks, now.expiries)
    };
    let state = Watching {
        bookmarks,
        next_bookmark: now + shared.options.bookmark_interval,
        deadline: now + timeout,
        shared,
        ty,
        selection,
        cursor,
        pulse,
        breaks,
        expiries,
        first,
        done: false,
    };
    let stream = futures::stream::unfold(state, next_chunk);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "body"))
}

/// The watch's last line: an ERROR event of 410 Gone (its version is
/// compacted; the client must list again).
fn gone(w: &mut Watching, why: &str) -> Vec<u8> {
    w.shared.count(|s| s.gone += 1);
    w.done = true;
    line(&json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {} ({why})", w.cursor),
        "reason": "Expired", "code": 410}}))
}

/// The next lines of a watch: events after its cursor, a bookmark when one
/// is due, a 410 when its version is compacted; the end at its deadline,
/// an abort when the test breaks watches.
async fn next_chunk(mut w: Watching) -> Option<(Result<Bytes, std::io::Error>, Watching)> {
    if w.done {
        return None;
    }
    if let Some(first) = w.first.take()
        && !first.is_empty()
    {
        return Some((Ok(first), w));
    }
    loop {
        let pulse = *w.pulse.borrow_and_update();
        if pulse.breaks != w.breaks {
            w.shared.count(|s| s.broken += 1);
            w.done = true;
            return Some((Err(std::io::Error::other("watch broken by the test")), w));
        }
        if pulse.expiries != w.expiries {
            return Some((
                Ok(Bytes::from(gone(
                    &mut w,
                    "the watch cache no longer holds it",
                ))),
                w,
            ));
        }
        let now = Instant::now();
        if now >= w.deadline {
            w.shared.count(|s| s.ended += 1);
            return None;
        }
        let (events, rv_now) = {
            let store = w.shared.store.lock().unwrap_or_else(|e| e.into_inner());
            (store.events_after(w.ty, &w.selection, w.cursor), store.rv())
        };
        match events {
            Err(e) => return Some((Ok(Bytes::from(gone(&mut w, &format!("{e:?}")))), w)),
            Ok(events) if !events.is_empty() => {
                w.cursor = events.last().map_or(w.cursor, |e| e.rv);
                w.shared.count(|s| s.events_sent += events.len() as u64);
                let lines: Vec<u8> = events
                    .iter()
                    .flat_map(|e| {
                        line(&json!({"type": e.change.name(), "object": e.object.as_ref()}))
                    })
                    .collect();
                return Some((Ok(Bytes::from(lines)), w));
            }
            Ok(_) => {}
        }
        if w.bookmarks && now >= w.next_bookmark {
            w.next_bookmark = now + w.shared.options.bookmark_interval;
            w.cursor = w.cursor.max(rv_now);
            w.shared.count(|s| s.bookmarks += 1);
            return Some((Ok(Bytes::from(bookmark(w.ty, w.cursor, false))), w));
        }
        let wake = if w.bookmarks {
            w.deadline.min(w.next_bookmark)
        } else {
            w.deadline
        };
        tokio::select! {
            changed = w.pulse.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections_objects_and_statuses() {
        let t = parse_path("/api/v1/pods").unwrap();
        assert_eq!((t.ty, t.namespace, t.name), (0, None, None));
        let t = parse_path("/api/v1/namespaces/shop/pods/web-1").unwrap();
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(t.name.as_deref(), Some("web-1"));
        let t =
            parse_path("/apis/flows.netobserv.io/v1beta2/flowcollectors/cluster/status").unwrap();
        assert!(t.status);
        assert!(parse_path("/api/v1/namespaces/shop/nodes").is_err());
        assert!(
            parse_path("/api/v1/pods/web-1").is_err(),
            "a pod needs its namespace"
        );
        assert!(parse_path("/apis/apps/v1/deployments").is_err());
        assert!(parse_path("/healthz").is_err());
    }

    #[test]
    fn field_selectors_of_name_and_namespace() {
        let mut s = Selection::default();
        select_fields("metadata.name=cluster,metadata.namespace==x", &mut s).unwrap();
        assert_eq!(s.name.as_deref(), Some("cluster"));
        assert_eq!(s.namespace.as_deref(), Some("x"));
        assert!(select_fields("spec.nodeName=n1", &mut s).is_err());
    }

    #[test]
    fn merge_patches_replace_add_and_remove() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 9}, "e": [1]}));
        assert_eq!(v, json!({"b": {"c": 9, "d": 3}, "e": [1]}));
    }
}
