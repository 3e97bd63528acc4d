//! Flow records straight to an Arrow batch of the store's schema: each
//! column built from its typed field in one pass (`typed_columns`), with no
//! JSON object in between (what made ingest cost ten times the Parquet
//! writing). The result is the batch `to_batch` makes of the records' JSON
//! (a test checks it), so both ways into the store write the same files.

use crate::typed_columns::{addresses, all_numbers, batch_of, bools, label_column, numbers, texts};
use arrow_array::builder::{ListBuilder, StringBuilder, UInt8Builder};
use arrow_array::types::{Float64Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{ArrayRef, RecordBatch};
use flowlens_model::{FlowRecord, MacAddr};
use std::sync::Arc;

/// The flows as one batch, with store ids from `first_id` on; a column no
/// record has a value for is all nulls.
pub fn flows_to_batch(flows: &[FlowRecord], first_id: u64) -> RecordBatch {
    batch_of(flows.len(), first_id, |name| column_of(name, flows))
}

fn macs(f: &[FlowRecord], get: impl Fn(&FlowRecord) -> MacAddr) -> ArrayRef {
    let mut column = StringBuilder::with_capacity(f.len(), f.len() * 17);
    for r in f {
        let text = get(r).text();
        column.append_value(std::str::from_utf8(&text).unwrap_or_default());
    }
    Arc::new(column.finish())
}

fn column_of(name: &str, f: &[FlowRecord]) -> Option<ArrayRef> {
    if let Some(column) = label_column(f, name, FlowRecord::labels) {
        return column;
    }
    let array = match name {
        "SrcAddr" => addresses(f, |r| r.src_addr),
        "DstAddr" => addresses(f, |r| r.dst_addr),
        "SrcPort" => all_numbers::<UInt16Type, _>(f, |r| r.src_port),
        "DstPort" => all_numbers::<UInt16Type, _>(f, |r| r.dst_port),
        "Proto" => all_numbers::<UInt8Type, _>(f, |r| r.proto),
        "Etype" => all_numbers::<UInt16Type, _>(f, |r| r.etype),
        "SrcMac" => macs(f, |r| r.src_mac),
        "DstMac" => macs(f, |r| r.dst_mac),
        "Dscp" => all_numbers::<UInt8Type, _>(f, |r| r.dscp),
        "IcmpType" => numbers::<UInt8Type, _>(f, |r| r.icmp_type)?,
        "IcmpCode" => numbers::<UInt8Type, _>(f, |r| r.icmp_code)?,
        "Bytes" => all_numbers::<UInt64Type, _>(f, |r| r.bytes),
        "Packets" => all_numbers::<UInt64Type, _>(f, |r| r.packets),
        "Flags" => all_numbers::<UInt32Type, _>(f, |r| r.flags),
        "TimeFlowStartMs" => all_numbers::<Int64Type, _>(f, |r| r.time_flow_start_ms),
        "TimeFlowEndMs" => all_numbers::<Int64Type, _>(f, |r| r.time_flow_end_ms),
        "Interfaces" => {
            let mut b = ListBuilder::with_capacity(
                StringBuilder::with_capacity(f.len(), f.len() * 8),
                f.len(),
            );
            for r in f {
                r.interfaces.iter().for_each(|i| b.values().append_value(i));
                b.append(true);
            }
            Arc::new(b.finish())
        }
        "IfDirections" => {
            let mut b = ListBuilder::new(UInt8Builder::new());
            for r in f {
                b.values().append_slice(&r.if_directions);
                b.append(true);
            }
            Arc::new(b.finish())
        }
        "AgentIP" => addresses(f, |r| r.agent_ip),
        "AgentName" => texts(f, |r| r.agent_name.as_deref())?,
        "Sampling" => all_numbers::<UInt32Type, _>(f, |r| r.sampling),
        "TimeFlowRttNs" => numbers::<UInt64Type, _>(f, |r| r.time_flow_rtt_ns)?,
        "TimeFlowRttMinNs" => numbers::<UInt64Type, _>(f, |r| r.time_flow_rtt_min_ns)?,
        "TimeFlowRttMaxNs" => numbers::<UInt64Type, _>(f, |r| r.time_flow_rtt_max_ns)?,
        "TimeFlowHandshakeRttNs" => numbers::<UInt64Type, _>(f, |r| r.time_flow_handshake_rtt_ns)?,
        "TcpRetransmits" => numbers::<UInt64Type, _>(f, |r| r.tcp_retransmits)?,
        "ConnOutcome" => texts(f, |r| r.conn_outcome.map(|v| v.as_str()))?,
        "PktDropBytes" => numbers::<UInt64Type, _>(f, |r| r.pkt_drop_bytes)?,
        "PktDropPackets" => numbers::<UInt64Type, _>(f, |r| r.pkt_drop_packets)?,
        "PktDropLatestState" => texts(f, |r| r.pkt_drop_latest_state.map(|v| v.as_str()))?,
        "PktDropLatestDropCause" => texts(f, |r| r.pkt_drop_latest_drop_cause.as_deref())?,
        "K8S_ClusterName" => texts(f, |r| r.cluster_name.as_deref())?,
        "PktDropCategory" => texts(f, |r| r.pkt_drop_category.map(|v| v.as_str()))?,
        "DnsId" => numbers::<UInt16Type, _>(f, |r| r.dns_id)?,
        "DnsFlags" => numbers::<UInt16Type, _>(f, |r| r.dns_flags)?,
        "DnsFlagsResponseCode" => texts(f, |r| r.dns_flags_response_code.as_deref())?,
        "DnsLatencyMs" => numbers::<Float64Type, _>(f, |r| r.dns_latency_ms)?,
        "DnsName" => texts(f, |r| r.dns_name.as_deref())?,
        "DnsQueryType" => texts(f, |r| r.dns_query_type.as_deref())?,
        "DnsUnanswered" => bools(f, |r| r.dns_unanswered)?,
        // As `to_batch` stores it: the events' JSON text.
        "NetworkEvents" => texts(f, |r| {
            r.network_events
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok())
                .map(|v| v.to_string())
        })?,
        "FlowDirection" => numbers::<UInt8Type, _>(f, |r| r.flow_direction)?,
        _ => return None,
    };
    Some(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows() -> Vec<FlowRecord> {
        let plain = FlowRecord {
            src_addr: "198.18.0.1".into(),
            dst_addr: "198.18.0.2".into(),
            src_port: 40000,
            dst_port: 443,
            proto: 6,
            etype: 0x800,
            bytes: 1500,
            packets: 3,
            flags: 0x12,
            time_flow_start_ms: 1_764_400_000_000,
            time_flow_end_ms: 1_764_400_000_500,
            interfaces: vec!["veth0".into(), "eth0".into()],
            if_directions: vec![0, 1],
            agent_ip: "198.18.255.1".into(),
            sampling: 1,
            ..Default::default()
        };
        let full = flowlens_model::fixtures::full_record();
        vec![plain, full, FlowRecord::default()]
    }

    #[test]
    fn the_same_batch_as_from_json() {
        let flows = flows();
        let typed = flows_to_batch(&flows, 100);
        crate::typed_columns::assert_as_from_json(&flows, 100, &typed);
    }
}
