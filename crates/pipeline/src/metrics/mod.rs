//! Prometheus metrics from flows, with netobserv's names and labels so that
//! existing dashboards and alerts work: `netobserv_{node,namespace,workload}_…`.
//! Which metrics exist is configurable (netobserv's `includeList`); each
//! metric's series count is capped (what the cap refuses is counted), and
//! series of endpoints that went quiet expire.

mod parts;
mod series;
pub use series::SharedSeries;

use flowlens_model::vocab::TcpState;
use flowlens_model::{EndpointLabels, FlowRecord, SideLabels};
use parts::{NONE, PartId, Parts};
use prometheus_client::registry::Registry;
use series::{LabelKey, MetricSeries, SeriesKey, SeriesSet, Updated};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Node,
    Namespace,
    Workload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    IngressBytes,
    EgressBytes,
    IngressPackets,
    EgressPackets,
    Flows,
    DropPackets,
    DropBytes,
    Retransmits,
    ConnectionOutcomes,
    Rtt,
    DnsLatency,
}

impl Measure {
    const ALL: [Measure; 11] = [
        Measure::IngressBytes,
        Measure::EgressBytes,
        Measure::IngressPackets,
        Measure::EgressPackets,
        Measure::Flows,
        Measure::DropPackets,
        Measure::DropBytes,
        Measure::Retransmits,
        Measure::ConnectionOutcomes,
        Measure::Rtt,
        Measure::DnsLatency,
    ];

    /// The name after `netobserv_<scope>_`, as in the includeList.
    fn suffix(self) -> &'static str {
        match self {
            Measure::IngressBytes => "ingress_bytes_total",
            Measure::EgressBytes => "egress_bytes_total",
            Measure::IngressPackets => "ingress_packets_total",
            Measure::EgressPackets => "egress_packets_total",
            Measure::Flows => "flows_total",
            Measure::DropPackets => "drop_packets_total",
            Measure::DropBytes => "drop_bytes_total",
            Measure::Retransmits => "tcp_retransmits_total",
            Measure::ConnectionOutcomes => "connection_outcomes_total",
            Measure::Rtt => "rtt_seconds",
            Measure::DnsLatency => "dns_latency_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Measure::IngressBytes => {
                "Bytes of flows entering the endpoint (FlowDirection ingress or inner)"
            }
            Measure::EgressBytes => {
                "Bytes of flows leaving the endpoint (FlowDirection egress or inner)"
            }
            Measure::IngressPackets => "Packets of flows entering the endpoint",
            Measure::EgressPackets => "Packets of flows leaving the endpoint",
            Measure::Flows => "Flow records",
            Measure::DropPackets => "Packets the kernel dropped, by TCP state and drop cause",
            Measure::DropBytes => "Bytes the kernel dropped, by TCP state and drop cause",
            Measure::Retransmits => "Retransmitted TCP segments, by destination",
            Measure::ConnectionOutcomes => {
                "TCP connection outcomes (refused, timed_out, reset, ...), by destination"
            }
            Measure::Rtt => "TCP smoothed round-trip time",
            Measure::DnsLatency => "DNS latency, by response code",
        }
    }
}

/// netobserv's default includeList, plus the outcome and retransmission
/// metrics flowlens adds.
pub const DEFAULT_INCLUDE_LIST: &[&str] = &[
    "node_ingress_bytes_total",
    "node_egress_bytes_total",
    "workload_ingress_bytes_total",
    "namespace_flows_total",
    "namespace_drop_packets_total",
    "namespace_rtt_seconds",
    "namespace_dns_latency_seconds",
    "namespace_tcp_retransmits_total",
    "namespace_connection_outcomes_total",
];

/// Every metric name that `includeList` accepts.
pub fn all_metric_names() -> Vec<String> {
    let scopes = ["node", "namespace", "workload"];
    scopes
        .iter()
        .flat_map(|s| {
            Measure::ALL
                .iter()
                .map(move |m| format!("{s}_{}", m.suffix()))
        })
        .collect()
}

struct Metric {
    scope: Scope,
    measure: Measure,
}

/// Counters of the metrics stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsCounters {
    pub flows_received: u64,
    /// Flows left out by the metrics filter (`--metrics-filter`).
    pub flows_not_selected: u64,
    /// Updates refused because their metric already had `max_series` series.
    pub series_dropped: u64,
    /// Series removed after `series_ttl_ms` without an update.
    pub series_expired: u64,
}

pub struct FlowMetrics {
    metrics: Vec<Metric>,
    /// The series of each metric (same order), shared with the scrape.
    series: Arc<Mutex<SeriesSet>>,
    max_series: usize,
    series_ttl_ms: i64,
    pub counters: MetricsCounters,
    /// Each end's label parts by scope, by the end's shared labels (held,
    /// so that no other labels take their address): one lookup per end of
    /// a flow instead of laying its values out. Forgotten when parts are
    /// swept, and when it grows past `SIDES_CACHED`.
    sides: hashbrown::HashMap<usize, (SideParts, SideLabels), foldhash::fast::RandomState>,
    scratch: LabelKey,
}

/// An end's parts: its values for the node, namespace and workload scopes.
type SideParts = [PartId; 3];

/// Ends whose parts are remembered at most (a few MiB).
const SIDES_CACHED: usize = 1 << 16;

/// The label names of a scope's endpoint labels, source side first.
fn endpoint_label_names(scope: Scope, with_source: bool) -> Vec<&'static str> {
    let names: &[&'static str] = match scope {
        Scope::Node => &["SrcK8S_HostName", "DstK8S_HostName"],
        Scope::Namespace => &["SrcK8S_Namespace", "DstK8S_Namespace"],
        Scope::Workload => &[
            "SrcK8S_Namespace",
            "SrcK8S_OwnerName",
            "SrcK8S_OwnerType",
            "SrcK8S_Type",
            "DstK8S_Namespace",
            "DstK8S_OwnerName",
            "DstK8S_OwnerType",
            "DstK8S_Type",
        ],
    };
    let skip = if with_source { 0 } else { names.len() / 2 };
    names[skip..].to_vec()
}

/// A label's value: empty when the field is absent.
fn text<S: AsRef<str>>(v: &Option<S>) -> &str {
    v.as_ref().map_or("", |s| s.as_ref())
}

/// Lays out one end's values of `endpoint_label_names(scope, _)`.
fn lay_out_side(key: &mut LabelKey, scope: Scope, labels: &EndpointLabels) {
    match scope {
        Scope::Node => key.push(text(&labels.host_name)),
        Scope::Namespace => key.push(text(&labels.namespace)),
        Scope::Workload => {
            // Without Kubernetes an end (a network namespace, the node)
            // is its own owner.
            key.push(text(&labels.namespace));
            key.push(text(&labels.owner_name.as_ref().or(labels.name.as_ref())));
            key.push(text(&labels.owner_type.as_ref().or(labels.kind.as_ref())));
            key.push(text(&labels.kind));
        }
    }
}

/// The labels a measure adds after the endpoint labels.
fn extra_label_names(measure: Measure) -> &'static [&'static str] {
    match measure {
        Measure::DropPackets | Measure::DropBytes => {
            &["PktDropLatestState", "PktDropLatestDropCause"]
        }
        Measure::ConnectionOutcomes => &["ConnOutcome"],
        Measure::DnsLatency => &["DnsFlagsResponseCode"],
        _ => &[],
    }
}

/// Whether a measure's endpoint labels include the source side.
fn with_source(measure: Measure) -> bool {
    !matches!(measure, Measure::Retransmits | Measure::ConnectionOutcomes)
}

impl FlowMetrics {
    /// The metrics named in `include` (names as in `all_metric_names`),
    /// registered in `registry`. Unknown names are refused with the list.
    pub fn new(
        registry: &mut Registry,
        include: &[String],
        max_series: usize,
        series_ttl_ms: i64,
    ) -> Result<FlowMetrics, String> {
        let known = all_metric_names();
        let mut metrics = Vec::new();
        let mut series = Vec::new();
        for name in include {
            if !known.contains(name) {
                return Err(format!(
                    "unknown metric `{name}` in includeList; valid: {}",
                    known.join(", ")
                ));
            }
            let (scope_name, suffix) = name.split_once('_').unwrap_or_default();
            let scope = match scope_name {
                "node" => Scope::Node,
                "namespace" => Scope::Namespace,
                _ => Scope::Workload,
            };
            let measure = *Measure::ALL
                .iter()
                .find(|m| m.suffix() == suffix)
                .expect("known metric");
            let histogram = matches!(measure, Measure::Rtt | Measure::DnsLatency);
            let full = format!("netobserv_{name}");
            // Counters are named without `_total`: the encoder adds it.
            let full = if histogram {
                full
            } else {
                full.trim_end_matches("_total").to_string()
            };
            let mut labels = endpoint_label_names(scope, with_source(measure));
            labels.extend(extra_label_names(measure));
            series.push(MetricSeries::new(full, measure.help(), histogram, labels));
            metrics.push(Metric { scope, measure });
        }
        let series = Arc::new(Mutex::new(SeriesSet {
            metrics: series,
            parts: Parts::default(),
        }));
        registry.register_collector(Box::new(SharedSeries(series.clone())));
        Ok(FlowMetrics {
            metrics,
            series,
            max_series,
            series_ttl_ms,
            counters: MetricsCounters::default(),
            sides: Default::default(),
            scratch: LabelKey::default(),
        })
    }

    /// The series, as a scrape reads them (for exporters that push them).
    pub fn series(&self) -> SharedSeries {
        SharedSeries(self.series.clone())
    }

    /// Accounts one (enriched) flow at `now_ms`. Counts are scaled by the
    /// flow's sampling rate, so sampled agents give comparable totals;
    /// flows, outcomes and the latency histograms (RTT, DNS: measured on
    /// every packet, not sampled) are not.
    pub fn observe(&mut self, r: &FlowRecord, now_ms: i64) {
        self.observe_all([r], now_ms);
    }

    /// Accounts flows as `observe` does, taking the series' lock (shared
    /// with the scrape) once for all of them.
    pub fn observe_all<'r>(
        &mut self,
        flows: impl IntoIterator<Item = &'r FlowRecord>,
        now_ms: i64,
    ) {
        let shared = self.series.clone();
        let mut all = shared.lock().unwrap_or_else(|p| p.into_inner());
        for r in flows {
            self.account(r, &mut all, now_ms);
        }
    }

    /// The parts of one end, from the cache or laid out and interned.
    fn side_parts(&mut self, labels: &SideLabels, parts: &mut Parts) -> SideParts {
        if let Some((known, _)) = self.sides.get(&labels.address()) {
            return *known;
        }
        if self.sides.len() >= SIDES_CACHED {
            self.sides.clear();
        }
        let made = [Scope::Node, Scope::Namespace, Scope::Workload].map(|scope| {
            self.scratch.clear();
            lay_out_side(&mut self.scratch, scope, labels);
            parts.intern(self.scratch.as_str())
        });
        self.sides.insert(labels.address(), (made, labels.clone()));
        made
    }

    fn account(&mut self, r: &FlowRecord, all: &mut SeriesSet, now_ms: i64) {
        self.counters.flows_received += 1;
        let scale = r.sampling.max(1) as u64;
        let direction = r
            .flow_direction
            .unwrap_or(r.if_directions.first().copied().unwrap_or(0));
        let (ingress, egress) = (
            direction == 0 || direction == 2,
            direction == 1 || direction == 2,
        );
        let max_series = self.max_series;
        let SeriesSet {
            metrics: all,
            parts,
        } = all;
        let src = self.side_parts(&r.src_labels, parts);
        let dst = self.side_parts(&r.dst_labels, parts);
        for (m, series) in self.metrics.iter().zip(all.iter_mut()) {
            // (value, the extra label values)
            let update: Option<(f64, [&str; 2])> = match m.measure {
                Measure::IngressBytes if ingress => Some((r.bytes as f64, ["", ""])),
                Measure::EgressBytes if egress => Some((r.bytes as f64, ["", ""])),
                Measure::IngressPackets if ingress => Some((r.packets as f64, ["", ""])),
                Measure::EgressPackets if egress => Some((r.packets as f64, ["", ""])),
                Measure::Flows => Some((1.0, ["", ""])),
                Measure::DropPackets => r.pkt_drop_packets.map(|packets| {
                    let extra = [
                        r.pkt_drop_latest_state.map_or("", TcpState::as_str),
                        text(&r.pkt_drop_latest_drop_cause),
                    ];
                    (packets as f64, extra)
                }),
                Measure::DropBytes => r.pkt_drop_packets.map(|_| {
                    let extra = [
                        r.pkt_drop_latest_state.map_or("", TcpState::as_str),
                        text(&r.pkt_drop_latest_drop_cause),
                    ];
                    (r.pkt_drop_bytes.unwrap_or(0) as f64, extra)
                }),
                Measure::Retransmits => r.tcp_retransmits.map(|v| (v as f64, ["", ""])),
                Measure::ConnectionOutcomes => {
                    r.conn_outcome.map(|outcome| (1.0, [outcome.as_str(), ""]))
                }
                Measure::Rtt => r.time_flow_rtt_ns.map(|ns| (ns as f64 / 1e9, ["", ""])),
                // Once per DNS transaction: on the response's flow (the
                // query's flow carries the latency too, for conversations).
                Measure::DnsLatency if r.dns_flags.is_some_and(|f| f & 0x8000 != 0) => r
                    .dns_latency_ms
                    .map(|ms| (ms / 1000.0, [text(&r.dns_flags_response_code), ""])),
                _ => None,
            };
            let Some((v, extra)) = update else { continue };
            // SideParts are in Scope's order.
            let scope = m.scope as usize;
            let mut key: SeriesKey = [NONE; 4];
            if with_source(m.measure) {
                key[0] = src[scope];
            }
            key[1] = dst[scope];
            let extras = extra_label_names(m.measure).len();
            for (at, value) in extra[..extras].iter().enumerate() {
                self.scratch.clear();
                self.scratch.push(value);
                key[2 + at] = parts.intern(self.scratch.as_str());
            }
            let updated = if matches!(m.measure, Measure::Rtt | Measure::DnsLatency) {
                series.observe(&key, parts, v, now_ms, max_series)
            } else {
                let counted = if matches!(m.measure, Measure::Flows | Measure::ConnectionOutcomes) {
                    1
                } else {
                    v as u64 * scale
                };
                series.add(&key, parts, counted, now_ms, max_series)
            };
            if updated == Updated::Capped {
                self.counters.series_dropped += 1;
            }
        }
    }

    /// Removes series not updated for the TTL (vanished endpoints).
    pub fn expire(&mut self, now_ms: i64) {
        let oldest = now_ms - self.series_ttl_ms;
        let mut set = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let SeriesSet { metrics, parts } = &mut *set;
        for series in metrics.iter_mut() {
            self.counters.series_expired += series.expire(oldest, parts);
        }
        // The cached ends name parts that the sweep may free.
        self.sides.clear();
        parts.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlens_model::EndpointLabels;

    fn flow(direction: u8) -> FlowRecord {
        FlowRecord {
            bytes: 1000,
            packets: 10,
            sampling: 1,
            flow_direction: Some(direction),
            src_labels: EndpointLabels {
                namespace: Some("frontend".into()),
                host_name: Some("node-1".into()),
                ..Default::default()
            }
            .into(),
            dst_labels: EndpointLabels {
                namespace: Some("backend".into()),
                host_name: Some("node-1".into()),
                ..Default::default()
            }
            .into(),
            time_flow_rtt_ns: Some(250_000),
            ..Default::default()
        }
    }

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn netobserv_names_labels_and_direction() {
        let mut registry = Registry::default();
        let include = names(&[
            "node_ingress_bytes_total",
            "node_egress_bytes_total",
            "namespace_flows_total",
            "namespace_rtt_seconds",
        ]);
        let mut m = FlowMetrics::new(&mut registry, &include, 100, 60_000).unwrap();
        m.observe(&flow(0), 0);
        m.observe(&flow(2), 0);
        let out = text(&registry);
        assert!(out.contains(r#"netobserv_node_ingress_bytes_total{SrcK8S_HostName="node-1",DstK8S_HostName="node-1"} 2000"#), "{out}");
        assert!(out.contains(r#"netobserv_node_egress_bytes_total{SrcK8S_HostName="node-1",DstK8S_HostName="node-1"} 1000"#), "{out}");
        assert!(out.contains(r#"netobserv_namespace_flows_total{SrcK8S_Namespace="frontend",DstK8S_Namespace="backend"} 2"#), "{out}");
        assert!(
            out.contains("netobserv_namespace_rtt_seconds_bucket"),
            "{out}"
        );
    }

    #[test]
    fn sampled_counts_are_scaled_and_measurements_are_not() {
        let mut registry = Registry::default();
        let include = names(&[
            "namespace_egress_bytes_total",
            "namespace_egress_packets_total",
            "namespace_drop_packets_total",
            "namespace_tcp_retransmits_total",
            "namespace_flows_total",
            "namespace_rtt_seconds",
            "namespace_dns_latency_seconds",
        ]);
        let mut m = FlowMetrics::new(&mut registry, &include, 100, 60_000).unwrap();
        let sampled = FlowRecord {
            sampling: 10,
            pkt_drop_packets: Some(3),
            tcp_retransmits: Some(2),
            dns_flags: Some(0x8183),
            dns_flags_response_code: Some("NXDomain".into()),
            dns_latency_ms: Some(40.0),
            ..flow(1)
        };
        m.observe(&sampled, 0);
        let out = text(&registry);
        let ns = r#"{SrcK8S_Namespace="frontend",DstK8S_Namespace="backend"}"#;
        for (metric, value) in [
            ("egress_bytes_total", 10_000),
            ("egress_packets_total", 100),
            ("flows_total", 1),
        ] {
            let line = format!("netobserv_namespace_{metric}{ns} {value}\n");
            assert!(out.contains(&line), "{line} in {out}");
        }
        // Retransmissions are labelled by destination only.
        assert!(
            out.contains(
                "netobserv_namespace_tcp_retransmits_total{DstK8S_Namespace=\"backend\"} 20\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("netobserv_namespace_drop_packets_total{") && out.contains("} 30\n"),
            "{out}"
        );
        for histogram in ["rtt_seconds", "dns_latency_seconds"] {
            let count = format!("netobserv_namespace_{histogram}_count{{");
            let line = out
                .lines()
                .find(|l| l.starts_with(&count))
                .unwrap_or_else(|| panic!("{count} in {out}"));
            assert!(line.ends_with(" 1"), "one observation, not ten: {line}");
        }
    }

    #[test]
    fn the_series_cap_is_counted_and_quiet_series_expire() {
        let mut registry = Registry::default();
        let mut m =
            FlowMetrics::new(&mut registry, &names(&["namespace_flows_total"]), 1, 1_000).unwrap();
        m.observe(&flow(0), 0);
        let mut other = flow(0);
        other.src_labels = other
            .src_labels
            .with(|l| l.namespace = Some("elsewhere".into()));
        m.observe(&other, 0);
        assert_eq!(m.counters.series_dropped, 1);
        m.expire(5_000);
        assert_eq!(m.counters.series_expired, 1);
        assert!(!text(&registry).contains("frontend"));
        let set = m.series.lock().unwrap();
        assert_eq!(
            set.parts.len(),
            0,
            "the expired series' label parts are freed"
        );
    }

    #[test]
    fn unknown_metrics_are_refused_with_the_choices() {
        let mut registry = Registry::default();
        let err = FlowMetrics::new(&mut registry, &names(&["node_bogus_total"]), 1, 1)
            .err()
            .unwrap();
        assert!(
            err.contains("node_bogus_total") && err.contains("namespace_flows_total"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod dashboard_tests {
    use super::all_metric_names;

    /// Every netobserv metric the Grafana dashboard (deploy/) queries exists.
    #[test]
    fn the_dashboard_queries_metrics_that_exist() {
        let text = include_str!("../../../../deploy/grafana-dashboard.json");
        let dashboard: serde_json::Value = serde_json::from_str(text).expect("dashboard JSON");
        let known = all_metric_names();
        let mut checked = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                    let Some(name) = word.strip_prefix("netobserv_") else {
                        continue;
                    };
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(name);
                    assert!(
                        known.iter().any(|k| k == base),
                        "dashboard queries unknown metric {word}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10);
    }
}
