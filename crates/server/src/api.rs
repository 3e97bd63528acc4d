//! The HTTP API over the store (JSON; docs/openapi.yaml): flows and
//! conversations, top-K, time series, topology, export, and the filter
//! language's validation and completion. Every parameter is checked: an
//! unknown one, a bad time range or a bad filter is a 400 that says what is
//! wrong.

use crate::tokens::Caller;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flowlens_query::{Filter, complete, fields::lookup};
use flowlens_store::{Cursor, Metric, Order, RecordQuery, Store, Table};
use flowlens_store::{Interrupted, QueryControl};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod export;
mod time;

pub use time::time_param;
use time::{LATEST_MS, now_ms};
mod fields;
pub use export::to_csv;

type Params = Query<HashMap<String, String>>;

/// The token that asked, when the listener has tokens.
type Who = Option<axum::Extension<Caller>>;

/// A request's parameters, and the scope of the token that asked: every
/// store query answers within it.
pub(crate) struct Asked {
    params: HashMap<String, String>,
    scope: Option<Filter>,
}

impl Asked {
    fn new(params: HashMap<String, String>, who: &Who) -> Asked {
        Asked {
            params,
            scope: who.as_ref().and_then(|c| c.scope.clone()),
        }
    }
}

/// A request refused: `{"error": ..., "detail": ...}` with its status
/// (400 for a bad parameter).
struct ApiError {
    status: StatusCode,
    message: String,
    detail: Option<Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(d) = self.detail {
            body["detail"] = d;
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

fn bad_request(message: impl Into<String>, detail: Option<Value>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        detail,
    }
}

/// What every store query runs under (docs/query.md, "Query budgets").
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Queries at once; beyond, 503 with Retry-After.
    pub max_concurrent: usize,
    /// A query still reading after this is stopped: 504.
    pub timeout: Duration,
    /// An audit log line per query (who, what, how many rows, how long).
    pub audit: bool,
}

/// The rows a query answered with, for the audit log.
#[derive(Debug, Clone, Copy)]
struct Rows(usize);

fn with_rows(mut response: Response, rows: usize) -> Response {
    response.extensions_mut().insert(Rows(rows));
    response
}

/// A request finding every query slot taken waits this long for one at
/// most (a console's overview asks for a dozen panels at once)...
const SLOT_WAIT: Duration = Duration::from_secs(10);
/// ...and at most this many per slot wait; beyond, 503 at once.
const WAITING_PER_SLOT: usize = 16;

#[derive(Clone)]
struct ApiState {
    store: Arc<Store>,
    slots: Arc<tokio::sync::Semaphore>,
    /// Requests waiting for a slot now.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    limits: QueryLimits,
}

impl ApiState {
    /// A query slot: at once, or after a bounded wait in a bounded queue;
    /// None when the server is saturated.
    async fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        use std::sync::atomic::Ordering;
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        let most = self.limits.max_concurrent * WAITING_PER_SLOT;
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= most {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let wait = SLOT_WAIT.min(self.limits.timeout);
        let slot = tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        slot.ok().and_then(Result::ok)
    }
}

/// Sets a query's cancellation flag if the request is dropped before it
/// finished (the client went away), so the scan stops at its next file or
/// batch instead of running to the end for nobody.
struct CancelOnDrop(Option<Arc<std::sync::atomic::AtomicBool>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The checked parameters of a request.
struct Request<'a> {
    params: &'a HashMap<String, String>,
    scope: Option<&'a Filter>,
}

impl<'a> Request<'a> {
    fn new(asked: &'a Asked, allowed: &[&str]) -> Result<Request<'a>, ApiError> {
        let params = &asked.params;
        let mut unknown: Vec<&str> = params
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        unknown.sort();
        if let Some(first) = unknown.first() {
            return Err(bad_request(
                format!("unknown parameter `{first}`; valid: {}", allowed.join(", ")),
                None,
            ));
        }
        Ok(Request {
            params,
            scope: asked.scope.as_ref(),
        })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The request's filter within the token's scope.
    fn filter(&self) -> Result<Option<Filter>, ApiError> {
        let asked = match self.get("filter") {
            None => None,
            Some(text) => Some(Filter::parse(text).map_err(|e| {
                bad_request(
                    e.to_string(),
                    Some(serde_json::to_value(&e).unwrap_or_default()),
                )
            })?),
        };
        Ok(match (self.scope, asked) {
            (None, asked) => asked,
            (Some(scope), None) => Some(scope.clone()),
            (Some(scope), Some(asked)) => Some(scope.and(&asked)),
        })
    }

    /// [since, until): default the last hour.
    fn range(&self) -> Result<(i64, i64), ApiError> {
        let now = now_ms();
        let since = match self.get("since") {
            Some(t) => time_param(t, now).map_err(|e| bad_request(format!("since: {e}"), None))?,
            None => now - 3_600_000,
        };
        let until = match self.get("until") {
            Some(t) => time_param(t, now).map_err(|e| bad_request(format!("until: {e}"), None))?,
            None => (now + 1).min(LATEST_MS),
        };
        if since >= until {
            return Err(bad_request(
                format!("the time range is empty: since ({since}) is not before until ({until})"),
                None,
            ));
        }
        Ok((since, until))
    }

    fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(t) => match t.parse::<usize>() {
                Ok(n) if n >= 1 && n <= max => Ok(n),
                _ => Err(bad_request(
                    format!("{name}: expected a number from 1 to {max}, got `{t}`"),
                    None,
                )),
            },
        }
    }

    fn table(&self, default: Table) -> Result<Table, ApiError> {
        match self.get("table") {
            None => Ok(default),
            Some("flows") => Ok(Table::Flows),
            Some("conversations") => Ok(Table::Conversations),
            Some(other) => Err(bad_request(
                format!("table: `{other}` is not flows or conversations"),
                None,
            )),
        }
    }

    /// `desc` (newest first, the default) or `asc`.
    fn order(&self) -> Result<Order, ApiError> {
        match self.get("order") {
            None | Some("desc") => Ok(Order::Desc),
            Some("asc") => Ok(Order::Asc),
            Some(o) => Err(bad_request(
                format!("order: `{o}` is not asc or desc"),
                None,
            )),
        }
    }

    fn metric(&self) -> Result<Metric, ApiError> {
        let text = self.get("metric").unwrap_or("bytes");
        Metric::parse(text).ok_or_else(|| {
            bad_request(
                format!("metric: `{text}` is not one of {}", Metric::NAMES),
                None,
            )
        })
    }
}

const RANGE: &[&str] = &["filter", "since", "until"];

fn allowed(extra: &[&'static str]) -> Vec<&'static str> {
    RANGE.iter().chain(extra).copied().collect()
}

fn records_query(store: &Store, asked: &Asked, table: Table) -> Result<Response, ApiError> {
    let req = Request::new(asked, &allowed(&["limit", "order", "cursor"]))?;
    let filter = req.filter()?;
    let (since, until) = req.range()?;
    let order = req.order()?;
    let after = match req.get("cursor") {
        None => None,
        Some(c) => Some(Cursor::parse(c).ok_or_else(|| {
            bad_request(
                format!("cursor: `{c}` is not a cursor this API returned"),
                None,
            )
        })?),
    };
    let page = store.records(&RecordQuery {
        table,
        filter: filter.as_ref(),
        since_ms: since,
        until_ms: until,
        limit: req.number("limit", 100, 100_000)?,
        order,
        after,
    });
    let rows = page.records.len();
    Ok(with_rows(Json(page).into_response(), rows))
}

/// Every query slot is taken and the queue for them is full: 503.
fn saturated(state: &ApiState) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!(
            "{} queries are running, the most this server runs at once (--max-concurrent-queries), and others wait for them; retry shortly",
            state.limits.max_concurrent
        ),
        detail: None,
    }
}

/// A query stopped at its deadline: 504.
fn timed_out(timeout: Duration) -> ApiError {
    ApiError {
        status: StatusCode::GATEWAY_TIMEOUT,
        message: format!(
            "the query ran longer than {timeout:?} (--query-timeout) and was stopped; narrow the time range or the filter"
        ),
        detail: None,
    }
}

/// Runs a store query on a blocking thread (queries read files) within
/// the budget: a query slot (waited for a bounded time in a bounded queue,
/// else 503), the deadline (504), cancelled when the client goes away. Its
/// error is a 400.
async fn on_store(
    endpoint: &'static str,
    state: ApiState,
    params: HashMap<String, String>,
    who: Who,
    query: impl FnOnce(&Store, &Asked) -> Result<Response, ApiError> + Send + 'static,
) -> Response {
    let started = Instant::now();
    let asked = Asked::new(params, &who);
    let audit_line = state
        .limits
        .audit
        .then(|| AuditLine::of(endpoint, &asked, &who));
    let response = run_on_store(state, asked, query).await;
    if let Some(line) = audit_line {
        line.write(&response, started);
    }
    response
}

/// What the audit log says of a query before it runs.
struct AuditLine {
    endpoint: &'static str,
    token: String,
    filter: String,
}

impl AuditLine {
    fn of(endpoint: &'static str, asked: &Asked, who: &Who) -> AuditLine {
        AuditLine {
            endpoint,
            // Without tokens, the listener's own clients ("-").
            token: who
                .as_ref()
                .map_or_else(|| "-".to_string(), |c| c.name.clone()),
            filter: asked.params.get("filter").cloned().unwrap_or_default(),
        }
    }

    /// The line: rows answered (or `streamed`: an export's, whose rows go
    /// out after this line), status, duration.
    fn write(&self, response: &Response, started: Instant) {
        let rows = response.extensions().get::<Rows>().map(|r| r.0);
        tracing::info!(
            target: "flowlens::audit",
            token = self.token.as_str(),
            endpoint = self.endpoint,
            filter = self.filter.as_str(),
            rows = rows.map_or_else(|| "streamed".to_string(), |r| r.to_string()).as_str(),
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "audit"
        );
    }
}

async fn run_on_store(
    state: ApiState,
    asked: Asked,
    query: impl FnOnce(&Store, &Asked) -> Result<Response, ApiError> + Send + 'static,
) -> Response {
    let Some(slot) = state.slot().await else {
        return saturated(&state).into_response();
    };
    let control = QueryControl::new(Some(Instant::now() + state.limits.timeout));
    let mut cancel = CancelOnDrop(Some(control.cancelled.clone()));
    let store = state.store.clone();
    let answer = tokio::task::spawn_blocking(move || {
        // The slot stays taken until the scan has really stopped.
        let _slot = slot;
        control.run(|| query(&store, &asked))
    })
    .await;
    cancel.0 = None;
    match answer {
        Ok(Ok(response)) => response.unwrap_or_else(IntoResponse::into_response),
        Ok(Err(Interrupted::TimedOut)) => timed_out(state.limits.timeout).into_response(),
        Ok(Err(Interrupted::Cancelled)) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Runs filter work (validation, completion) on a blocking thread: it is
/// bounded, but never on the event loop that serves /metrics.
async fn off_loop(work: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn flows(State(state): State<ApiState>, who: Who, Query(p): Params) -> Response {
    on_store("/api/flows", state, p, who, |s, a| {
        records_query(s, a, Table::Flows)
    })
    .await
}

async fn conversations(State(state): State<ApiState>, who: Who, Query(p): Params) -> Response {
    on_store("/api/conversations", state, p, who, |s, a| {
        records_query(s, a, Table::Conversations)
    })
    .await
}

fn field_param(
    req: &Request,
    name: &str,
    default: &str,
) -> Result<&'static flowlens_query::FieldDef, ApiError> {
    let text = req.get(name).unwrap_or(default);
    lookup(text).ok_or_else(|| {
        let hint = flowlens_query::fields::nearest_field(text)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        bad_request(format!("{name}: unknown field `{text}`{hint}"), None)
    })
}

fn top_query(store: &Store, asked: &Asked) -> Result<Response, ApiError> {
    let req = Request::new(asked, &allowed(&["table", "by", "metric", "k"]))?;
    let filter = req.filter()?;
    let (since, until) = req.range()?;
    let by = field_param(&req, "by", "dst.namespace")?;
    let metric = req.metric()?;
    let k = req.number("k", 10, 10_000)?;
    let entries = store.top(
        req.table(Table::Flows)?,
        filter.as_ref(),
        since,
        until,
        by,
        metric,
        k,
    );
    let rows = entries.len();
    let body = json!({ "by": by.name, "metric": req.get("metric").unwrap_or("bytes"), "entries": entries });
    Ok(with_rows(Json(body).into_response(), rows))
}

async fn top(State(state): State<ApiState>, who: Who, Query(p): Params) -> Response {
    on_store("/api/top", state, p, who, top_query).await
}

fn series_query(store: &Store, asked: &Asked) -> Result<Response, ApiError> {
    let req = Request::new(asked, &allowed(&["table", "metric", "step"]))?;
    let filter = req.filter()?;
    let (since, until) = req.range()?;
    let metric = req.metric()?;
    let step = match req.get("step") {
        None => ((until - since) / 60).max(1000),
        Some(t) => flowlens_config::parse_duration(t)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .filter(|ms| *ms >= 1000)
            .ok_or_else(|| {
                bad_request(
                    format!("step: `{t}` is not a duration of at least 1s"),
                    None,
                )
            })?,
    };
    if (until - since) / step > 10_000 {
        return Err(bad_request(
            format!("step: {step} ms gives more than 10000 points over this range"),
            None,
        ));
    }
    let points = store.series(
        req.table(Table::Flows)?,
        filter.as_ref(),
        since,
        until,
        step,
        metric,
    );
    let rows = points.len();
    Ok(with_rows(
        Json(json!({ "step_ms": step, "points": points })).into_response(),
        rows,
    ))
}

async fn series(State(state): State<ApiState>, who: Who, Query(p): Params) -> Response {
    on_store("/api/series", state, p, who, series_query).await
}

/// The endpoint fields of each topology scope.
pub fn scope_fields(scope: &str) -> Option<(&'static str, &'static str)> {
    Some(match scope {
        "node" | "host" => ("src.host", "dst.host"),
        "zone" => ("src.zone", "dst.zone"),
        "namespace" => ("src.namespace", "dst.namespace"),
        // A pod's top workload (a network namespace owns itself on a plain
        // host).
        "owner" | "workload" => ("src.owner", "dst.owner"),
        "pod" | "name" => ("src.name", "dst.name"),
        _ => return None,
    })
}

fn topology_query(store: &Store, asked: &Asked) -> Result<Response, ApiError> {
    let req = Request::new(asked, &allowed(&["table", "scope"]))?;
    let filter = req.filter()?;
    let (since, until) = req.range()?;
    let scope = req.get("scope").unwrap_or("namespace");
    let (src, dst) = scope_fields(scope).ok_or_else(|| {
        bad_request(
            format!("scope: `{scope}` is not node, zone, namespace, owner or pod"),
            None,
        )
    })?;
    let (src, dst) = (lookup(src).expect("field"), lookup(dst).expect("field"));
    let edges = store.topology(
        req.table(Table::Flows)?,
        filter.as_ref(),
        since,
        until,
        src,
        dst,
    );
    let mut nodes: HashMap<&str, (f64, f64)> = HashMap::new();
    for e in &edges {
        for name in [&e.src, &e.dst] {
            let n = nodes.entry(name.as_str()).or_default();
            n.0 += e.bytes;
            n.1 += e.drops;
        }
    }
    let mut nodes: Vec<Value> = nodes
        .into_iter()
        .map(|(name, (bytes, drops))| json!({"id": name, "bytes": bytes, "drops": drops}))
        .collect();
    nodes.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let rows = edges.len();
    let body = json!({ "scope": scope, "nodes": nodes, "edges": edges });
    Ok(with_rows(Json(body).into_response(), rows))
}

async fn topology(State(state): State<ApiState>, who: Who, Query(p): Params) -> Response {
    on_store("/api/topology", state, p, who, topology_query).await
}

async fn export(State(state): State<ApiState>, who: Who, Query(p): Params) -> Response {
    let started = Instant::now();
    let asked = Asked::new(p, &who);
    let audit_line = state
        .limits
        .audit
        .then(|| AuditLine::of("/api/export", &asked, &who));
    let response = export::export(state, asked).await;
    if let Some(line) = audit_line {
        line.write(&response, started);
    }
    response
}

async fn validate(Query(p): Params) -> Response {
    off_loop(move || validate_filter(p)).await
}

fn validate_filter(p: HashMap<String, String>) -> Response {
    let run = || -> Result<Response, ApiError> {
        let asked = Asked {
            params: p,
            scope: None,
        };
        let req = Request::new(&asked, &["filter"])?;
        Ok(match Filter::parse(req.get("filter").unwrap_or("")) {
            Ok(_) => Json(json!({"valid": true})).into_response(),
            Err(e) => {
                Json(json!({"valid": false, "error": e, "text": e.to_string()})).into_response()
            }
        })
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn completions(Query(p): Params) -> Response {
    off_loop(move || complete_filter(p)).await
}

fn complete_filter(p: HashMap<String, String>) -> Response {
    let run = || -> Result<Response, ApiError> {
        let asked = Asked {
            params: p,
            scope: None,
        };
        let req = Request::new(&asked, &["filter", "cursor"])?;
        let text = req.get("filter").unwrap_or("");
        if let Err(e) = flowlens_query::check_length(text) {
            return Err(bad_request(e.to_string(), serde_json::to_value(&e).ok()));
        }
        let cursor = match req.get("cursor") {
            None => text.chars().count(),
            Some(c) => c.parse().map_err(|_| {
                bad_request(format!("cursor: `{c}` is not a character offset"), None)
            })?,
        };
        Ok(Json(complete(text, cursor)).into_response())
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn fields() -> Response {
    let list = fields::all();
    Json(list).into_response()
}

/// The paths of the API's routes (besides /status, /api/status and
/// /metrics, which every listener serves).
pub const ROUTES: &[&str] = &[
    "/api/flows",
    "/api/conversations",
    "/api/top",
    "/api/series",
    "/api/topology",
    "/api/export",
    "/api/filter/validate",
    "/api/filter/complete",
    "/api/fields",
];

/// The API's routes (they need the store).
pub fn routes(store: Arc<Store>, limits: QueryLimits) -> Router {
    let state = ApiState {
        store,
        slots: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent.max(1))),
        waiting: Arc::default(),
        limits,
    };
    Router::new()
        .route("/api/flows", get(flows))
        .route("/api/conversations", get(conversations))
        .route("/api/top", get(top))
        .route("/api/series", get(series))
        .route("/api/topology", get(topology))
        .route("/api/export", get(export))
        .with_state(state)
        .route("/api/filter/validate", get(validate))
        .route("/api/filter/complete", get(completions))
        .route("/api/fields", get(fields))
        .fallback(crate::console_http::console_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_file_describes_every_route() {
        let spec: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(include_str!("../../../docs/openapi.yaml")).unwrap();
        let paths = spec["paths"].as_mapping().unwrap();
        let every = ROUTES.iter().chain(&["/api/status", "/status", "/metrics"]);
        for route in every {
            assert!(paths.contains_key(route), "docs/openapi.yaml lacks {route}");
        }
        assert_eq!(
            paths.len(),
            ROUTES.len() + 3,
            "a route the API does not have is documented"
        );
    }
}
