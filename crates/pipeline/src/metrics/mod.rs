//! Prometheus metrics from flows, with netobserv's names and labels so that
//! existing dashboards and alerts work: `netobserv_{node,namespace,workload}_…`.
//! Which metrics exist is configurable (netobserv's `includeList`); each
//! metric's series count is capped (what the cap refuses is counted), and
//! series of endpoints that went quiet expire.

use flowlens_model::{FlowRecord, Side};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
// foldhash: keys come from our own agents, and SipHash was a tenth of
// the pipeline's time.
use foldhash::{HashMap, HashMapExt};

type Labels = Vec<(String, String)>;

/// Seconds buckets for RTT and DNS latency: from 100 µs (veth) to 5 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 5.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

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

enum Series {
    Counter(Family<Labels, Counter>),
    Histogram(Family<Labels, Histogram, fn() -> Histogram>),
}

struct Metric {
    scope: Scope,
    measure: Measure,
    series: Series,
    /// Label set -> time (ms) of its last update, for expiry and the cap.
    last_seen: HashMap<Labels, i64>,
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
    max_series: usize,
    series_ttl_ms: i64,
    pub counters: MetricsCounters,
}

fn endpoint_labels(scope: Scope, r: &FlowRecord, with_source: bool) -> Labels {
    let sides: &[Side] = if with_source {
        &[Side::Src, Side::Dst]
    } else {
        &[Side::Dst]
    };
    let mut labels: Labels = Vec::new();
    for &side in sides {
        let e = r.endpoint(side);
        let mut put = |name: &str, value: &Option<String>| {
            labels.push((
                format!("{}{name}", side.prefix()),
                value.clone().unwrap_or_default(),
            ));
        };
        match scope {
            Scope::Node => put("K8S_HostName", &e.host_name),
            Scope::Namespace => put("K8S_Namespace", &e.namespace),
            Scope::Workload => {
                put("K8S_Namespace", &e.namespace);
                put("K8S_OwnerName", &e.name);
                put("K8S_OwnerType", &e.kind);
                put("K8S_Type", &e.kind);
            }
        }
    }
    labels
}

/// The endpoint labels of `r` for `scope`, built on first use per flow.
fn cached_labels<'c>(
    cache: &'c mut [Option<Labels>; 6],
    scope: Scope,
    r: &FlowRecord,
    with_source: bool,
) -> &'c Labels {
    cache[scope as usize * 2 + with_source as usize]
        .get_or_insert_with(|| endpoint_labels(scope, r, with_source))
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
            let full = format!("netobserv_{name}");
            let series = if matches!(measure, Measure::Rtt | Measure::DnsLatency) {
                let family: Family<Labels, Histogram, fn() -> Histogram> =
                    Family::new_with_constructor(latency_histogram);
                registry.register(full, measure.help(), family.clone());
                Series::Histogram(family)
            } else {
                let family = Family::<Labels, Counter>::default();
                registry.register(
                    full.trim_end_matches("_total"),
                    measure.help(),
                    family.clone(),
                );
                Series::Counter(family)
            };
            metrics.push(Metric {
                scope,
                measure,
                series,
                last_seen: HashMap::new(),
            });
        }
        Ok(FlowMetrics {
            metrics,
            max_series,
            series_ttl_ms,
            counters: MetricsCounters::default(),
        })
    }

    /// Accounts one (enriched) flow at `now_ms`. Counts are scaled by the
    /// flow's sampling rate, so sampled agents give comparable totals.
    pub fn observe(&mut self, r: &FlowRecord, now_ms: i64) {
        self.counters.flows_received += 1;
        let scale = r.sampling.max(1) as u64;
        let direction = r
            .flow_direction
            .unwrap_or(r.if_directions.first().copied().unwrap_or(0));
        let (ingress, egress) = (
            direction == 0 || direction == 2,
            direction == 1 || direction == 2,
        );
        let (max_series, counters) = (self.max_series, &mut self.counters);
        // Each metric of a scope uses the same endpoint labels: build them
        // once per flow (by scope, with or without the source side) and
        // lend them; labels are copied only for new series.
        let mut cache: [Option<Labels>; 6] = Default::default();
        for m in &mut self.metrics {
            let scope = m.scope;
            let with = |base: &Labels, extra: [(&str, &Option<String>); 2]| -> Labels {
                let mut labels = base.clone();
                for (name, value) in extra.into_iter().filter(|(n, _)| !n.is_empty()) {
                    labels.push((name.to_string(), value.clone().unwrap_or_default()));
                }
                labels
            };
            let value: Option<(f64, Cow<Labels>)> = match m.measure {
                Measure::IngressBytes if ingress => Some((
                    r.bytes as f64,
                    Cow::Borrowed(cached_labels(&mut cache, scope, r, true)),
                )),
                Measure::EgressBytes if egress => Some((
                    r.bytes as f64,
                    Cow::Borrowed(cached_labels(&mut cache, scope, r, true)),
                )),
                Measure::IngressPackets if ingress => Some((
                    r.packets as f64,
                    Cow::Borrowed(cached_labels(&mut cache, scope, r, true)),
                )),
                Measure::EgressPackets if egress => Some((
                    r.packets as f64,
                    Cow::Borrowed(cached_labels(&mut cache, scope, r, true)),
                )),
                Measure::Flows => Some((
                    1.0,
                    Cow::Borrowed(cached_labels(&mut cache, scope, r, true)),
                )),
                Measure::DropPackets | Measure::DropBytes => r.pkt_drop_packets.map(|packets| {
                    let labels = with(
                        cached_labels(&mut cache, scope, r, true),
                        [
                            ("PktDropLatestState", &r.pkt_drop_latest_state),
                            ("PktDropLatestDropCause", &r.pkt_drop_latest_drop_cause),
                        ],
                    );
                    let v = if m.measure == Measure::DropPackets {
                        packets
                    } else {
                        r.pkt_drop_bytes.unwrap_or(0)
                    };
                    (v as f64, Cow::Owned(labels))
                }),
                Measure::Retransmits => r.tcp_retransmits.map(|v| {
                    (
                        v as f64,
                        Cow::Borrowed(cached_labels(&mut cache, scope, r, false)),
                    )
                }),
                Measure::ConnectionOutcomes => r.conn_outcome.as_ref().map(|_| {
                    let labels = with(
                        cached_labels(&mut cache, scope, r, false),
                        [("ConnOutcome", &r.conn_outcome), ("", &None)],
                    );
                    (1.0, Cow::Owned(labels))
                }),
                Measure::Rtt => r.time_flow_rtt_ns.map(|ns| {
                    (
                        ns as f64 / 1e9,
                        Cow::Borrowed(cached_labels(&mut cache, scope, r, true)),
                    )
                }),
                // Once per DNS transaction: on the response's flow (the
                // query's flow carries the latency too, for conversations).
                Measure::DnsLatency if r.dns_flags.is_some_and(|f| f & 0x8000 != 0) => {
                    r.dns_latency_ms.map(|ms| {
                        let labels = with(
                            cached_labels(&mut cache, scope, r, true),
                            [
                                ("DnsFlagsResponseCode", &r.dns_flags_response_code),
                                ("", &None),
                            ],
                        );
                        (ms / 1000.0, Cow::Owned(labels))
                    })
                }
                _ => None,
            };
            let Some((v, labels)) = value else { continue };
            if let Some(seen) = m.last_seen.get_mut(labels.as_ref()) {
                *seen = now_ms;
            } else if m.last_seen.len() >= max_series {
                counters.series_dropped += 1;
                continue;
            } else {
                m.last_seen.insert(labels.clone().into_owned(), now_ms);
            }
            match &m.series {
                Series::Counter(f) => {
                    let counted =
                        if matches!(m.measure, Measure::Flows | Measure::ConnectionOutcomes) {
                            1
                        } else {
                            v as u64 * scale
                        };
                    f.get_or_create(labels.as_ref()).inc_by(counted);
                }
                Series::Histogram(f) => f.get_or_create(labels.as_ref()).observe(v),
            }
        }
    }

    /// Removes series not updated for the TTL (vanished endpoints).
    pub fn expire(&mut self, now_ms: i64) {
        let ttl = self.series_ttl_ms;
        for m in &mut self.metrics {
            let stale: Vec<Labels> = m
                .last_seen
                .iter()
                .filter(|(_, t)| now_ms - **t > ttl)
                .map(|(l, _)| l.clone())
                .collect();
            for labels in stale {
                match &m.series {
                    Series::Counter(f) => f.remove(&labels),
                    Series::Histogram(f) => f.remove(&labels),
                };
                m.last_seen.remove(&labels);
                self.counters.series_expired += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(direction: u8) -> FlowRecord {
        FlowRecord {
            bytes: 1000,
            packets: 10,
            sampling: 1,
            flow_direction: Some(direction),
            src_k8s_namespace: Some("frontend".into()),
            dst_k8s_namespace: Some("backend".into()),
            src_k8s_host_name: Some("node-1".into()),
            dst_k8s_host_name: Some("node-1".into()),
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
    fn the_series_cap_is_counted_and_quiet_series_expire() {
        let mut registry = Registry::default();
        let mut m =
            FlowMetrics::new(&mut registry, &names(&["namespace_flows_total"]), 1, 1_000).unwrap();
        m.observe(&flow(0), 0);
        let mut other = flow(0);
        other.src_k8s_namespace = Some("elsewhere".into());
        m.observe(&other, 0);
        assert_eq!(m.counters.series_dropped, 1);
        m.expire(5_000);
        assert_eq!(m.counters.series_expired, 1);
        assert!(!text(&registry).contains("frontend"));
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
