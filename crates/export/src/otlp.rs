//! OTLP messages: records as log records, the flow metrics as sums and
//! histograms, both under netobserv's OpenTelemetry attribute names
//! (flowlogs-pipeline's default `replace_keys` rules: `SrcAddr` →
//! `source.address`, `Bytes` → `bytes`, ...; a field without a rule keeps
//! its name). docs/exports.md has the table.

use crate::otlp_attributes::attributes_of;
use crate::record::ExportRecord;
use flowlens_model::{MetricSnapshot, PointValue};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::sync::LazyLock;

/// netobserv's default OpenTelemetry names for its record fields.
pub const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("SrcAddr", "source.address"),
    ("SrcMac", "source.mac"),
    ("SrcHostIP", "source.host.address"),
    ("SrcK8S_HostName", "source.k8s.host.name"),
    ("SrcPort", "source.port"),
    ("SrcK8S_Name", "source.k8s.name"),
    ("SrcK8S_Type", "source.k8s.kind"),
    ("SrcK8S_OwnerName", "source.k8s.owner.name"),
    ("SrcK8S_OwnerType", "source.k8s.owner.kind"),
    ("SrcK8S_Namespace", "source.k8s.namespace.name"),
    ("SrcK8S_HostIP", "source.k8s.host.address"),
    ("SrcK8S_Zone", "source.zone"),
    ("DstAddr", "destination.address"),
    ("DstMac", "destination.mac"),
    ("DstHostIP", "destination.host.address"),
    ("DstK8S_HostName", "destination.k8s.host.name"),
    ("DstPort", "destination.port"),
    ("DstK8S_Name", "destination.k8s.name"),
    ("DstK8S_Type", "destination.k8s.kind"),
    ("DstK8S_OwnerName", "destination.k8s.owner.name"),
    ("DstK8S_OwnerType", "destination.k8s.owner.kind"),
    ("DstK8S_Namespace", "destination.k8s.namespace.name"),
    ("DstK8S_HostIP", "destination.k8s.host.address"),
    ("DstK8S_Zone", "destination.zone"),
    ("Bytes", "bytes"),
    ("Packets", "packets"),
    ("Proto", "protocol"),
    ("Flags", "tcp.flags"),
    ("TimeFlowRttNs", "tcp.rtt"),
    ("Interfaces", "interface.names"),
    ("IfDirections", "interface.directions"),
    ("FlowDirection", "host.direction"),
    ("DnsErrno", "dns.errno"),
    ("DnsFlags", "dns.flags"),
    ("DnsFlagsResponseCode", "dns.responsecode"),
    ("DnsId", "dns.id"),
    ("DnsLatencyMs", "dns.latency"),
    ("Dscp", "dscp"),
    ("IcmpCode", "icmp.code"),
    ("IcmpType", "icmp.type"),
    ("K8S_ClusterName", "k8s.cluster.name"),
    ("K8S_FlowLayer", "k8s.layer"),
    ("PktDropBytes", "drops.bytes"),
    ("PktDropPackets", "drops.packets"),
    ("PktDropLatestDropCause", "drops.latestcause"),
    ("PktDropLatestFlags", "drops.latestflags"),
    ("PktDropLatestState", "drops.lateststate"),
    ("TimeFlowEndMs", "timeflowend"),
    ("TimeFlowStartMs", "timeflowstart"),
    ("TimeReceived", "timereceived"),
];

/// The OpenTelemetry name of a record field (or label). Looked up for every
/// attribute of every record, so by binary search in the sorted table (a
/// few short comparisons; hashing each name cost more).
pub fn attribute_name(field: &str) -> &str {
    static SORTED: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
        let mut names = ATTRIBUTE_NAMES.to_vec();
        names.sort_unstable();
        names
    });
    match SORTED.binary_search_by(|(from, _)| (*from).cmp(field)) {
        Ok(i) => SORTED[i].1,
        Err(_) => field,
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![text("service.name", "flowlens")],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "flowlens".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    })
}

/// One log record per flow or conversation record: its fields as
/// attributes, its time the flow's end.
pub fn log_record(record: &ExportRecord, observed_ns: u64) -> LogRecord {
    let (end_ms, event_name, attributes) = match record {
        ExportRecord::Flow(f) => (
            f.time_flow_end_ms,
            "flowLog",
            attributes_of(f, attribute_name),
        ),
        ExportRecord::Conversation(c) => (
            c.time_flow_end_ms,
            c.record_type.as_str(),
            attributes_of(c, attribute_name),
        ),
    };
    LogRecord {
        time_unix_nano: (end_ms.max(0) as u64).saturating_mul(1_000_000),
        observed_time_unix_nano: observed_ns,
        // INFO: a record, not an alarm.
        severity_number: 9,
        severity_text: "INFO".into(),
        event_name: event_name.into(),
        attributes,
        ..Default::default()
    }
}

pub fn logs_request(batch: &[ExportRecord], observed_ns: u64) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: batch.iter().map(|r| log_record(r, observed_ns)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The metrics as cumulative OTLP sums (counters) and histograms, labels
/// under their OpenTelemetry names; `start_ns` is when counting began.
pub fn metrics_request(
    metrics: &[MetricSnapshot],
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = metrics
        .iter()
        .filter(|m| !m.points.is_empty())
        .map(|m| {
            let labels = |labels: &[(String, String)]| -> Vec<KeyValue> {
                labels
                    .iter()
                    .map(|(k, v)| text(attribute_name(k), v))
                    .collect()
            };
            let data = if m.bounds.is_empty() {
                metric::Data::Sum(Sum {
                    data_points: m
                        .points
                        .iter()
                        .filter_map(|p| match p.value {
                            PointValue::Counter(n) => Some(NumberDataPoint {
                                attributes: labels(&p.labels),
                                start_time_unix_nano: start_ns,
                                time_unix_nano: now_ns,
                                value: Some(number_data_point::Value::AsInt(
                                    n.min(i64::MAX as u64) as i64,
                                )),
                                ..Default::default()
                            }),
                            PointValue::Histogram { .. } => None,
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                })
            } else {
                metric::Data::Histogram(Histogram {
                    data_points: m
                        .points
                        .iter()
                        .filter_map(|p| match &p.value {
                            PointValue::Histogram {
                                buckets,
                                sum,
                                count,
                            } => Some(HistogramDataPoint {
                                attributes: labels(&p.labels),
                                start_time_unix_nano: start_ns,
                                time_unix_nano: now_ns,
                                count: *count,
                                sum: Some(*sum),
                                bucket_counts: buckets.clone(),
                                explicit_bounds: m.bounds.clone(),
                                ..Default::default()
                            }),
                            PointValue::Counter(_) => None,
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                })
            };
            Metric {
                name: m.name.clone(),
                description: m.help.clone(),
                unit: if m.bounds.is_empty() { "" } else { "s" }.into(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlens_model::{FlowRecord, MetricPoint, fixtures};
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use serde_json::Value;

    /// What the attributes were when made from the record's JSON: the
    /// reference the direct path must equal.
    fn from_json(value: &Value) -> Option<AnyValue> {
        let value = match value {
            Value::Null => return None,
            Value::Bool(b) => any_value::Value::BoolValue(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => any_value::Value::IntValue(i),
                (None, Some(f)) => any_value::Value::DoubleValue(f),
                _ => return None,
            },
            Value::String(s) => any_value::Value::StringValue(s.clone()),
            Value::Array(items) => any_value::Value::ArrayValue(ArrayValue {
                values: items.iter().filter_map(from_json).collect(),
            }),
            Value::Object(map) => any_value::Value::KvlistValue(KeyValueList {
                values: json_attributes(map),
            }),
        };
        Some(AnyValue { value: Some(value) })
    }

    fn json_attributes(map: &serde_json::Map<String, Value>) -> Vec<KeyValue> {
        map.iter()
            .filter_map(|(k, v)| {
                Some(KeyValue {
                    key: attribute_name(k).to_string(),
                    value: Some(from_json(v)?),
                    ..Default::default()
                })
            })
            .collect()
    }

    /// Attributes in key order at every depth (JSON's map sorts by field
    /// name, the record's own order is its fields').
    fn sorted(mut attributes: Vec<KeyValue>) -> Vec<KeyValue> {
        fn sort_value(value: &mut AnyValue) {
            match &mut value.value {
                Some(any_value::Value::KvlistValue(list)) => {
                    list.values = sorted(std::mem::take(&mut list.values))
                }
                Some(any_value::Value::ArrayValue(array)) => {
                    array.values.iter_mut().for_each(sort_value)
                }
                _ => {}
            }
        }
        attributes.sort_by(|a, b| a.key.cmp(&b.key));
        for kv in &mut attributes {
            kv.value.iter_mut().for_each(sort_value);
        }
        attributes
    }

    #[test]
    fn attributes_straight_from_the_record_equal_those_from_its_json() {
        for record in [
            ExportRecord::Flow(fixtures::full_record()),
            ExportRecord::Flow(fixtures::every_field_record()),
            ExportRecord::Flow(FlowRecord::default()),
            ExportRecord::Conversation(fixtures::full_conversation()),
        ] {
            let json = match &record {
                ExportRecord::Flow(f) => serde_json::to_value(f).unwrap(),
                ExportRecord::Conversation(c) => serde_json::to_value(c).unwrap(),
            };
            let expected = json_attributes(json.as_object().unwrap());
            assert!(expected.len() > 10, "{record:?}");
            let direct = log_record(&record, 0).attributes;
            assert_eq!(sorted(direct), sorted(expected), "{record:?}");
        }
    }

    fn attribute<'a>(r: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        r.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn flows_carry_netobserv_names() {
        let flow = FlowRecord {
            src_addr: "198.18.0.1".parse().unwrap(),
            dst_addr: "198.18.0.2".parse().unwrap(),
            src_port: 40000,
            dst_port: 53,
            proto: 17,
            bytes: 1234,
            packets: 3,
            time_flow_end_ms: 1_700_000_000_123,
            dns_latency_ms: Some(2.5),
            interfaces: vec!["eth0".into()],
            ..Default::default()
        };
        let r = log_record(&ExportRecord::Flow(flow), 7);
        assert_eq!(r.time_unix_nano, 1_700_000_000_123_000_000);
        assert_eq!(
            attribute(&r, "source.address"),
            Some(&any_value::Value::StringValue("198.18.0.1".into()))
        );
        assert_eq!(
            attribute(&r, "destination.port"),
            Some(&any_value::Value::IntValue(53))
        );
        assert_eq!(
            attribute(&r, "bytes"),
            Some(&any_value::Value::IntValue(1234))
        );
        assert_eq!(
            attribute(&r, "dns.latency"),
            Some(&any_value::Value::DoubleValue(2.5))
        );
        assert!(matches!(
            attribute(&r, "interface.names"),
            Some(any_value::Value::ArrayValue(_))
        ));
        // No rule: the field keeps its name.
        assert!(attribute(&r, "Etype").is_some());
        assert!(attribute(&r, "SrcAddr").is_none());
    }

    #[test]
    fn counters_are_cumulative_sums_and_histograms_keep_their_buckets() {
        let snapshot = vec![
            MetricSnapshot {
                name: "netobserv_node_flows".into(),
                help: "flows".into(),
                bounds: vec![],
                points: vec![MetricPoint {
                    labels: vec![("SrcK8S_HostName".into(), "n1".into())],
                    value: PointValue::Counter(42),
                }],
            },
            MetricSnapshot {
                name: "netobserv_node_rtt_seconds".into(),
                help: "rtt".into(),
                bounds: vec![0.001, 0.01],
                points: vec![MetricPoint {
                    labels: vec![],
                    value: PointValue::Histogram {
                        buckets: vec![1, 2, 0],
                        sum: 0.012,
                        count: 3,
                    },
                }],
            },
        ];
        let req = metrics_request(&snapshot, 1, 2);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("a sum")
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points[0].attributes[0].key, "source.k8s.host.name");
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(42))
        );
        let Some(metric::Data::Histogram(h)) = &metrics[1].data else {
            panic!("a histogram")
        };
        assert_eq!(h.data_points[0].bucket_counts, vec![1, 2, 0]);
        assert_eq!(h.data_points[0].explicit_bounds, vec![0.001, 0.01]);
    }
}
