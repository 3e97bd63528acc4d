//! `/api/export`: every matching record as CSV, JSON or JSON lines,
//! streamed in constant memory. A blocking thread pages through the store
//! with the cursor (one page of records and a few encoded chunks in memory
//! at any time, however many rows) and hands chunks to the response body
//! through a small channel, so a slow reader slows the scan instead of
//! growing a buffer. The whole export runs in one query slot and under the
//! query deadline; a client that goes away stops it at the next chunk.

use super::{ApiError, ApiState, Asked, CancelOnDrop, Request, allowed, bad_request, timed_out};
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flowlens_query::Filter;
use flowlens_store::{
    Cursor, FileCache, Interrupted, Order, QueryControl, RecordQuery, Store, Table,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Records per page read from the store: each page is one chunk.
const PAGE_ROWS: usize = 2_000;
/// Chunks encoded ahead of the client.
const CHUNKS_AHEAD: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
    JsonLines,
}

impl Format {
    fn parse(text: &str) -> Result<Format, ApiError> {
        match text {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "jsonl" => Ok(Format::JsonLines),
            other => Err(bad_request(
                format!("format: `{other}` is not csv, json or jsonl"),
                None,
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::JsonLines => "application/x-ndjson",
        }
    }
}

/// Writes records in one format, piece by piece.
struct Encoder {
    format: Format,
    columns: Vec<&'static str>,
    written: usize,
}

impl Encoder {
    fn begin(&self, out: &mut String) {
        match self.format {
            Format::Csv => {
                out.push_str(&self.columns.join(","));
                out.push('\n');
            }
            Format::Json => out.push('['),
            Format::JsonLines => {}
        }
    }

    fn record(&mut self, record: Map<String, Value>, out: &mut String) {
        match self.format {
            Format::Csv => csv_row(&self.columns, &record, out),
            Format::Json => {
                if self.written > 0 {
                    out.push(',');
                }
                out.push_str(&Value::Object(record).to_string());
            }
            Format::JsonLines => {
                out.push_str(&Value::Object(record).to_string());
                out.push('\n');
            }
        }
        self.written += 1;
    }

    fn end(&self, out: &mut String) {
        if self.format == Format::Json {
            out.push_str("]\n");
        }
    }
}

/// One CSV cell: text as is (quoted when needed), lists joined by `;`.
fn csv_cell(v: Option<&Value>) -> String {
    let text = match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    };
    // A spreadsheet runs a cell that starts like a formula: such text
    // (an attacker can choose a DNS name) is kept as text by a leading `'`.
    let text = match v {
        Some(Value::String(_) | Value::Array(_))
            if text.starts_with(['=', '+', '-', '@', '\t', '\r']) =>
        {
            format!("'{text}")
        }
        _ => text,
    };
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_row(columns: &[&str], record: &Map<String, Value>, out: &mut String) {
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_cell(record.get(*c)));
    }
    out.push('\n');
}

/// Records as CSV: a header of the store's columns that any record has
/// (the CLI's output, where the records are all at hand).
pub fn to_csv(records: &[Map<String, Value>]) -> String {
    let columns: Vec<&str> = flowlens_store::columns()
        .iter()
        .map(|c| c.name)
        .filter(|name| records.iter().any(|r| r.contains_key(*name)))
        .collect();
    let mut out = columns.join(",");
    out.push('\n');
    for r in records {
        csv_row(&columns, r, &mut out);
    }
    out
}

/// What an export reads: checked before the response starts.
struct ExportPlan {
    table: Table,
    filter: Option<Filter>,
    since_ms: i64,
    until_ms: i64,
    order: Order,
    encoder: Encoder,
    /// Rows to write at most.
    limit: usize,
}

fn plan(asked: &Asked) -> Result<ExportPlan, ApiError> {
    let req = Request::new(asked, &allowed(&["table", "format", "limit", "order"]))?;
    let (since_ms, until_ms) = req.range()?;
    let format = Format::parse(req.get("format").unwrap_or("jsonl"))?;
    let table = req.table(Table::Flows)?;
    Ok(ExportPlan {
        table,
        filter: req.filter()?,
        since_ms,
        until_ms,
        order: req.order()?,
        limit: req.number("limit", 10_000, 1_000_000)?,
        encoder: Encoder {
            format,
            columns: flowlens_store::table_columns(table),
            written: 0,
        },
    })
}

/// Pages through the store and sends the encoded chunks; the first one
/// (or why there is none) goes through `started`. Err: stopped before its
/// end (deadline, or the client left).
fn produce(
    store: &Store,
    mut plan: ExportPlan,
    control: &QueryControl,
    started: oneshot::Sender<Result<(Format, Bytes), ApiError>>,
    chunks: &mpsc::Sender<Bytes>,
    timeout: std::time::Duration,
) -> Result<(), ()> {
    let runtime = tokio::runtime::Handle::current();
    let deadline = control.deadline.unwrap_or_else(|| Instant::now() + timeout);
    let mut started = Some(started);
    let mut left = plan.limit;
    let mut after = None;
    let cache = FileCache::default();
    loop {
        let query = RecordQuery {
            table: plan.table,
            filter: plan.filter.as_ref(),
            since_ms: plan.since_ms,
            until_ms: plan.until_ms,
            limit: left.min(PAGE_ROWS),
            order: plan.order,
            after,
        };
        let page = match control.run(|| store.records_with(&query, &cache)) {
            Ok(page) => page,
            Err(why) => {
                // Before the first chunk the response can still say why.
                if let Some(first) = started.take()
                    && why == Interrupted::TimedOut
                {
                    let _ = first.send(Err(timed_out(timeout)));
                }
                return Err(());
            }
        };
        let mut text = String::new();
        if started.is_some() {
            plan.encoder.begin(&mut text);
        }
        left -= page.records.len();
        let last = page.cursor.is_none() || left == 0;
        for record in page.records {
            plan.encoder.record(record, &mut text);
        }
        if last {
            plan.encoder.end(&mut text);
        }
        let chunk = Bytes::from(text);
        if let Some(first) = started.take() {
            first
                .send(Ok((plan.encoder.format, chunk)))
                .map_err(|_| ())?;
        } else {
            // A client that takes nothing until the deadline is left.
            let sent =
                runtime.block_on(tokio::time::timeout_at(deadline.into(), chunks.send(chunk)));
            if !matches!(sent, Ok(Ok(()))) {
                return Err(());
            }
        }
        if last {
            return Ok(());
        }
        after = page.cursor.as_deref().and_then(Cursor::parse);
    }
}

/// The chunks of an export as a response body; dropping it (the client
/// went away) stops the scan. Unless the export wrote its last chunk, the
/// body ends in an error, so the client sees a cut transfer, never a short
/// one that looks whole.
struct ExportBody {
    chunks: mpsc::Receiver<Bytes>,
    finished: Arc<AtomicBool>,
    failed: bool,
    _cancel: CancelOnDrop,
}

impl tokio_stream::Stream for ExportBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.chunks.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(None) if !self.failed && !self.finished.load(Ordering::Acquire) => {
                self.failed = true;
                Poll::Ready(Some(Err(std::io::Error::other(
                    "the export stopped before its end (--query-timeout)",
                ))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

pub(super) async fn export(state: ApiState, asked: Asked) -> Response {
    let Some(slot) = state.slot().await else {
        return super::saturated(&state).into_response();
    };
    let timeout = state.limits.timeout;
    let control = QueryControl::new(Some(Instant::now() + timeout));
    let cancel = CancelOnDrop(Some(control.cancelled.clone()));
    let (started, first) = oneshot::channel();
    let (chunks, body) = mpsc::channel(CHUNKS_AHEAD);
    let store = state.store.clone();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    tokio::task::spawn_blocking(move || {
        // The slot stays taken until the scan has really stopped.
        let _slot = slot;
        // Parameters and filter checked here, as every query's are: off
        // the event loop.
        let plan = match plan(&asked) {
            Ok(plan) => plan,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        if produce(&store, plan, &control, started, &chunks, timeout).is_ok() {
            done.store(true, Ordering::Release);
        }
    });
    match first.await {
        Ok(Ok((format, chunk))) => {
            let first = tokio_stream::once(Ok(chunk));
            let rest = ExportBody {
                chunks: body,
                finished,
                failed: false,
                _cancel: cancel,
            };
            use tokio_stream::StreamExt;
            (
                [(header::CONTENT_TYPE, format.content_type())],
                Body::from_stream(first.chain(rest)),
            )
                .into_response()
        }
        Ok(Err(e)) => e.into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells_that_look_like_formulas_stay_text() {
        let r = json!({"DnsName": "=HYPERLINK(\"x\")", "Interfaces": ["@a", "b"], "SrcK8S_Name": "+1", "Bytes": -3});
        let csv = to_csv(&[r.as_object().unwrap().clone()]);
        assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
        assert!(csv.contains("'@a;b"), "{csv}");
        assert!(csv.contains("'+1"), "{csv}");
        assert!(!csv.contains("'-3"), "numbers are left as they are: {csv}");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let r = json!({"SrcAddr": "198.18.0.1", "DnsName": "a,b", "Interfaces": ["x", "y"], "Bytes": 3});
        let csv = to_csv(&[r.as_object().unwrap().clone()]);
        assert_eq!(
            csv,
            "SrcAddr,Bytes,Interfaces,DnsName\n198.18.0.1,3,x;y,\"a,b\"\n"
        );
    }

    #[test]
    fn json_pieces_make_one_array() {
        let mut encoder = Encoder {
            format: Format::Json,
            columns: vec![],
            written: 0,
        };
        let mut out = String::new();
        encoder.begin(&mut out);
        for i in 0..3 {
            encoder.record(json!({"Bytes": i}).as_object().unwrap().clone(), &mut out);
        }
        encoder.end(&mut out);
        let parsed: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed.len(), 3);
    }
}
