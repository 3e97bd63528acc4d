//! A flow record read by filters in place, by JSON name, without turning
//! it into JSON: the pipeline filters every flow, and serialising each one
//! cost more than the filter itself. A test keeps it equal to the JSON view.

use crate::view::{RecordView, Scalar};
use crate::{FlowRecord, Side};

fn num<T: Into<f64>>(out: &mut Vec<Scalar<'_>>, v: Option<T>) {
    out.extend(v.map(|v| Scalar::Num(v.into())));
}

/// Counters are u64; as f64 they are exact up to 2^53, like JSON's numbers.
fn count(out: &mut Vec<Scalar<'_>>, v: Option<u64>) {
    out.extend(v.map(|v| Scalar::Num(v as f64)));
}

fn text<'a>(out: &mut Vec<Scalar<'a>>, v: Option<&'a str>) {
    out.extend(v.map(Scalar::Text));
}

impl RecordView for FlowRecord {
    fn values<'a>(&'a self, name: &str, out: &mut Vec<Scalar<'a>>) {
        let r = self;
        match name {
            "SrcAddr" => out.push(Scalar::Owned(r.src_addr.to_string())),
            "DstAddr" => out.push(Scalar::Owned(r.dst_addr.to_string())),
            "SrcPort" => num(out, Some(r.src_port)),
            "DstPort" => num(out, Some(r.dst_port)),
            "Proto" => num(out, Some(r.proto)),
            "Etype" => num(out, Some(r.etype)),
            "SrcMac" => out.push(Scalar::Owned(r.src_mac.to_string())),
            "DstMac" => out.push(Scalar::Owned(r.dst_mac.to_string())),
            "Dscp" => num(out, Some(r.dscp)),
            "IcmpType" => num(out, r.icmp_type),
            "IcmpCode" => num(out, r.icmp_code),
            "Bytes" => count(out, Some(r.bytes)),
            "Packets" => count(out, Some(r.packets)),
            "Flags" => num(out, Some(r.flags)),
            "TimeFlowStartMs" => out.push(Scalar::Num(r.time_flow_start_ms as f64)),
            "TimeFlowEndMs" => out.push(Scalar::Num(r.time_flow_end_ms as f64)),
            "Interfaces" => out.extend(r.interfaces.iter().map(|i| Scalar::Text(i))),
            "IfDirections" => out.extend(r.if_directions.iter().map(|d| Scalar::Num(*d as f64))),
            "AgentIP" => out.push(Scalar::Owned(r.agent_ip.to_string())),
            "AgentName" => text(out, r.agent_name.as_deref()),
            "Sampling" => num(out, Some(r.sampling)),
            "TimeFlowRttNs" => count(out, r.time_flow_rtt_ns),
            "TimeFlowRttMinNs" => count(out, r.time_flow_rtt_min_ns),
            "TimeFlowRttMaxNs" => count(out, r.time_flow_rtt_max_ns),
            "TimeFlowHandshakeRttNs" => count(out, r.time_flow_handshake_rtt_ns),
            "TcpRetransmits" => count(out, r.tcp_retransmits),
            "ConnOutcome" => text(out, r.conn_outcome.map(|v| v.as_str())),
            "PktDropBytes" => count(out, r.pkt_drop_bytes),
            "PktDropPackets" => count(out, r.pkt_drop_packets),
            "PktDropLatestState" => text(out, r.pkt_drop_latest_state.map(|v| v.as_str())),
            "PktDropLatestDropCause" => text(out, r.pkt_drop_latest_drop_cause.as_deref()),
            "PktDropCategory" => text(out, r.pkt_drop_category.map(|v| v.as_str())),
            "DnsId" => num(out, r.dns_id),
            "DnsFlags" => num(out, r.dns_flags),
            "DnsFlagsResponseCode" => text(out, r.dns_flags_response_code.as_deref()),
            "DnsLatencyMs" => num(out, r.dns_latency_ms),
            "DnsName" => text(out, r.dns_name.as_deref()),
            "DnsQueryType" => text(out, r.dns_query_type.as_deref()),
            "DnsUnanswered" => out.extend(r.dns_unanswered.map(Scalar::Bool)),
            "FlowDirection" => num(out, r.flow_direction),
            "K8S_ClusterName" => text(out, r.cluster_name.as_deref()),
            _ if let Some(side) = Side::of_label(name) => {
                let label = r.labels(side).by_name(side, name);
                text(out, label.and_then(|v| v.as_deref()))
            }
            // NetworkEvents are read through `has_drop_event`; conversation
            // fields are not on flows.
            _ => {}
        }
    }

    fn has_drop_event(&self) -> bool {
        self.network_events
            .as_ref()
            .is_some_and(|events| events.iter().any(|e| e.action == "drop"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::every_field_record;
    use crate::schema::FIELDS;
    use serde_json::{Map, Value};

    fn plain(values: Vec<Scalar<'_>>) -> Vec<String> {
        values
            .into_iter()
            .map(|v| match v {
                Scalar::Num(n) => format!("{n}"),
                Scalar::Bool(b) => b.to_string(),
                other => other.as_text().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Every field of the schema reads the same in place as from JSON.
    #[test]
    fn the_same_values_as_the_json_view() {
        let records = [every_field_record(), FlowRecord::default()];
        for record in records {
            let json: Map<String, Value> = match serde_json::to_value(&record).unwrap() {
                Value::Object(map) => map,
                _ => unreachable!(),
            };
            for spec in FIELDS {
                let (mut typed, mut from_json) = (Vec::new(), Vec::new());
                record.values(spec.name, &mut typed);
                RecordView::values(&json, spec.name, &mut from_json);
                assert_eq!(plain(typed), plain(from_json), "{}", spec.name);
            }
            assert_eq!(record.has_drop_event(), RecordView::has_drop_event(&json));
        }
    }
}
