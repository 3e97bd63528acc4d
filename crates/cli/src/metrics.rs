//! /metrics: the agent's and the pipeline's own counters in the Prometheus
//! text format, read at each scrape.

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use flowlens_agent::AgentStats;
use flowlens_pipeline::conversations::ConversationTracker;
use flowlens_pipeline::metrics::FlowMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// Where the counters live while the process runs.
#[derive(Clone)]
pub struct MetricsSources {
    pub agent: Arc<Mutex<AgentStats>>,
    pub tracker: Arc<Mutex<ConversationTracker>>,
    pub flow_metrics: Arc<Mutex<FlowMetrics>>,
}

impl std::fmt::Debug for MetricsSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSources")
    }
}

/// Gauges among the agent's counters (they go down as well as up).
const AGENT_GAUGES: &[&str] = &["interfaces_attached"];

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for MetricsSources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let agent = self.agent.lock().map(|s| s.clone()).unwrap_or_default();
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&agent) {
            for (name, value) in fields {
                let Some(v) = value.as_u64() else { continue };
                let help = format!("flowlens agent: {}", name.replace('_', " "));
                if AGENT_GAUGES.contains(&name.as_str()) {
                    gauge(
                        &mut encoder,
                        &format!("flowlens_agent_{name}"),
                        &help,
                        v as i64,
                    )?;
                } else {
                    counter(&mut encoder, &format!("flowlens_agent_{name}"), &help, v)?;
                }
            }
        }
        for (section, readings) in self.pipeline_readings() {
            for r in readings {
                let name = format!("flowlens_{section}_{}", r.name);
                if r.gauge {
                    gauge(&mut encoder, &name, r.help, r.value as i64)?;
                } else {
                    counter(&mut encoder, &name, r.help, r.value)?;
                }
            }
        }
        Ok(())
    }
}

/// One counter (or gauge) of a pipeline stage.
struct Reading {
    name: &'static str,
    help: &'static str,
    value: u64,
    gauge: bool,
}

const fn reading(name: &'static str, help: &'static str, value: u64) -> Reading {
    Reading {
        name,
        help,
        value,
        gauge: false,
    }
}

impl MetricsSources {
    /// The pipeline stages' counters, by stage: the one list /metrics and
    /// /status both show.
    fn pipeline_readings(&self) -> Vec<(&'static str, Vec<Reading>)> {
        let mut out = Vec::new();
        if let Ok(t) = self.tracker.lock() {
            let c = &t.counters;
            out.push((
                "conversations",
                vec![
                    reading(
                        "flows_received",
                        "flows the conversation tracker received",
                        c.flows_received,
                    ),
                    reading(
                        "records_sent",
                        "records the conversation tracker sent",
                        c.records_sent,
                    ),
                    reading("started", "conversations started", c.conversations_started),
                    reading("ended", "conversations ended", c.conversations_ended),
                    reading(
                        "dropped",
                        "conversations not tracked because maxConnectionsTracked was reached",
                        c.conversations_dropped,
                    ),
                    Reading {
                        gauge: true,
                        ..reading("tracked", "conversations tracked now", t.tracked() as u64)
                    },
                ],
            ));
        }
        if let Ok(m) = self.flow_metrics.lock() {
            let c = &m.counters;
            out.push((
                "metrics",
                vec![
                    reading(
                        "flows_received",
                        "flows the metrics stage received",
                        c.flows_received,
                    ),
                    reading(
                        "series_dropped",
                        "metric updates refused because the metric had its maximum of series",
                        c.series_dropped,
                    ),
                    reading(
                        "series_expired",
                        "metric series removed after their endpoint went quiet",
                        c.series_expired,
                    ),
                ],
            ));
        }
        out
    }
}

/// The counters as one JSON document, for `flowlens status`.
pub fn status_json(sources: &MetricsSources) -> serde_json::Value {
    let agent = sources.agent.lock().map(|s| s.clone()).unwrap_or_default();
    let mut doc = serde_json::Map::new();
    doc.insert(
        "agent".into(),
        serde_json::to_value(agent).unwrap_or_default(),
    );
    for (section, readings) in sources.pipeline_readings() {
        let values = readings
            .iter()
            .map(|r| (r.name.to_string(), serde_json::json!(r.value)));
        doc.insert(section.into(), serde_json::Value::Object(values.collect()));
    }
    serde_json::Value::Object(doc)
}

struct HttpState {
    registry: Registry,
    sources: MetricsSources,
}

async fn status(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    axum::Json(status_json(&state.sources))
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let registry = &state.registry;
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, registry) {
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

/// Serves /metrics and /status on `listener` until the process ends.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    mut registry: Registry,
    sources: MetricsSources,
) {
    registry.register_collector(Box::new(sources.clone()));
    let state = Arc::new(HttpState { registry, sources });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("HTTP listener stopped: {e}");
    }
}
