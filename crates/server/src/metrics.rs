//! /metrics and /status: the flow metrics, plus every component's own
//! counters (what it received, sent and dropped, Vector's model), read at
//! each scrape from one list of sections so both endpoints agree.

use crate::http_server::HttpListener;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use flowlens_wire::connections::ConnectionStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::sync::Arc;

type Snapshot = Box<dyn Fn() -> Value + Send + Sync>;

/// One component's counters: numbers become `flowlens_<section>_<name>`
/// counters (gauges if listed), maps of numbers become one counter with a
/// `reason` label, text shows in /status only.
pub struct CounterSection {
    name: &'static str,
    snapshot: Snapshot,
    gauges: &'static [&'static str],
}

impl CounterSection {
    /// A section whose counters are the fields of what `read` returns.
    pub fn new<T: serde::Serialize>(
        name: &'static str,
        gauges: &'static [&'static str],
        read: impl Fn() -> T + Send + Sync + 'static,
    ) -> CounterSection {
        CounterSection {
            name,
            gauges,
            snapshot: Box::new(move || serde_json::to_value(read()).unwrap_or_default()),
        }
    }
}

/// Every section of the running process.
#[derive(Clone, Default)]
pub struct CounterSources(Arc<Vec<CounterSection>>);

impl std::fmt::Debug for CounterSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CounterSources")
    }
}

impl CounterSources {
    pub fn new(sections: Vec<CounterSection>) -> CounterSources {
        CounterSources(Arc::new(sections))
    }

    /// The counters as one JSON document, for `flowlens status`.
    pub fn status_json(&self) -> Value {
        let doc = self.0.iter().map(|s| (s.name.to_string(), (s.snapshot)()));
        Value::Object(doc.collect())
    }
}

fn help(section: &str, name: &str) -> String {
    format!("flowlens {section}: {}", name.replace('_', " "))
}

impl Collector for CounterSources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for section in self.0.iter() {
            let Value::Object(fields) = (section.snapshot)() else {
                continue;
            };
            for (name, value) in fields {
                let metric = format!("flowlens_{}_{name}", section.name);
                let help = help(section.name, &name);
                match value {
                    Value::Number(n) if section.gauges.contains(&name.as_str()) => {
                        let g = ConstGauge::new(n.as_i64().unwrap_or(0));
                        g.encode(encoder.encode_descriptor(
                            &metric,
                            &help,
                            None,
                            g.metric_type(),
                        )?)?;
                    }
                    Value::Number(n) => {
                        let c = ConstCounter::new(n.as_u64().unwrap_or(0));
                        c.encode(encoder.encode_descriptor(
                            &metric,
                            &help,
                            None,
                            c.metric_type(),
                        )?)?;
                    }
                    Value::Object(by_reason) => {
                        let mut e = encoder.encode_descriptor(
                            &metric,
                            &help,
                            None,
                            prometheus_client::metrics::MetricType::Counter,
                        )?;
                        for (reason, v) in by_reason {
                            let c = ConstCounter::new(v.as_u64().unwrap_or(0));
                            let labels = [("reason".to_string(), reason)];
                            c.encode(e.encode_family(&labels)?)?;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

struct HttpState {
    registry: Registry,
    sources: CounterSources,
}

async fn status(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    axum::Json(state.sources.status_json())
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        tracing::error!("encoding metrics: {e}");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// Serves /metrics and /status (`sections` and the listener's own
/// connection counters), and `api` (the query API) when there is one, on
/// `listener` until the process ends.
pub async fn serve_metrics(
    listener: HttpListener,
    mut registry: Registry,
    mut sections: Vec<CounterSection>,
    api: Option<Router>,
) {
    sections.push(CounterSection::new(
        "http",
        ConnectionStats::GAUGES,
        listener.stats_reader(),
    ));
    if let Some(tls) = listener.tls() {
        let gauges = flowlens_tls::TlsStats::GAUGES;
        sections.push(CounterSection::new("http_tls", gauges, move || tls.stats()));
    }
    if let Some(access) = listener.access() {
        sections.push(CounterSection::new("auth", &[], access.stats_reader()));
    }
    let sources = CounterSources::new(sections);
    registry.register_collector(Box::new(sources.clone()));
    let state = Arc::new(HttpState { registry, sources });
    let mut app = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/api/status", get(status))
        .with_state(state);
    if let Some(api) = api {
        app = app.merge(api);
    }
    listener.serve(app).await;
}
