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
        let (c, tracked) = match self.tracker.lock() {
            Ok(t) => (t.counters.clone(), t.tracked()),
            Err(_) => return Ok(()),
        };
        let prefix = "flowlens_conversations";
        counter(
            &mut encoder,
            &format!("{prefix}_flows_received"),
            "flows the conversation tracker received",
            c.flows_received,
        )?;
        counter(
            &mut encoder,
            &format!("{prefix}_records_sent"),
            "records the conversation tracker sent",
            c.records_sent,
        )?;
        counter(
            &mut encoder,
            &format!("{prefix}_started"),
            "conversations started",
            c.conversations_started,
        )?;
        counter(
            &mut encoder,
            &format!("{prefix}_ended"),
            "conversations ended",
            c.conversations_ended,
        )?;
        counter(
            &mut encoder,
            &format!("{prefix}_dropped"),
            "conversations not tracked because maxConnectionsTracked was reached",
            c.conversations_dropped,
        )?;
        gauge(
            &mut encoder,
            &format!("{prefix}_tracked"),
            "conversations tracked now",
            tracked as i64,
        )?;
        let m = self
            .flow_metrics
            .lock()
            .map(|m| m.counters.clone())
            .unwrap_or_default();
        counter(
            &mut encoder,
            "flowlens_metrics_flows_received",
            "flows the metrics stage received",
            m.flows_received,
        )?;
        counter(
            &mut encoder,
            "flowlens_metrics_series_dropped",
            "metric updates refused because the metric had its maximum of series",
            m.series_dropped,
        )?;
        counter(
            &mut encoder,
            "flowlens_metrics_series_expired",
            "metric series removed after their endpoint went quiet",
            m.series_expired,
        )
    }
}

/// The counters as one JSON document, for `flowlens status`.
pub fn status_json(sources: &MetricsSources) -> serde_json::Value {
    let agent = sources.agent.lock().map(|s| s.clone()).unwrap_or_default();
    let tracker = sources.tracker.lock();
    let conversations = match &tracker {
        Ok(t) => serde_json::json!({
            "flows_received": t.counters.flows_received,
            "records_sent": t.counters.records_sent,
            "started": t.counters.conversations_started,
            "ended": t.counters.conversations_ended,
            "dropped": t.counters.conversations_dropped,
            "tracked": t.tracked(),
        }),
        Err(_) => serde_json::Value::Null,
    };
    let metrics = sources
        .flow_metrics
        .lock()
        .map(|m| m.counters.clone())
        .unwrap_or_default();
    let metrics = serde_json::json!({
        "flows_received": metrics.flows_received,
        "series_dropped": metrics.series_dropped,
        "series_expired": metrics.series_expired,
    });
    serde_json::json!({ "agent": agent, "conversations": conversations, "metrics": metrics })
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
