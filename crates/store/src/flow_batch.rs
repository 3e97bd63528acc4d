//! Flow records straight to an Arrow batch of the store's schema: each
//! column built from its typed field in one pass, with no JSON object in
//! between (what made ingest cost ten times the Parquet writing). The
//! result is the batch `to_batch` makes of the records' JSON (a test checks
//! it), so both ways into the store write the same files.

use crate::schema::{ID, arrow_schema, column, columns, data_type};
use arrow_array::builder::{ListBuilder, StringBuilder, UInt8Builder};
use arrow_array::types::{Float64Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{
    ArrayRef, BooleanArray, PrimitiveArray, RecordBatch, StringArray, new_null_array,
};
use flowlens_model::FlowRecord;
use std::sync::Arc;

/// The flows as one batch, with store ids from `first_id` on; a column no
/// record has a value for is all nulls.
pub fn flows_to_batch(flows: &[FlowRecord], first_id: u64) -> RecordBatch {
    let arrays: Vec<ArrayRef> = columns()
        .iter()
        .map(|c| {
            column_of(c.name, flows, first_id)
                .unwrap_or_else(|| new_null_array(&data_type(c.ty), flows.len()))
        })
        .collect();
    RecordBatch::try_new(arrow_schema(), arrays).expect("flow columns follow the schema")
}

fn column_of(name: &str, f: &[FlowRecord], first_id: u64) -> Option<ArrayRef> {
    // Addresses are formatted here, on the stack (no string per record).
    macro_rules! address {
        ($get:expr) => {{
            let mut column = StringBuilder::with_capacity(f.len(), f.len() * 15);
            for r in f {
                column.append_value($get(r).text().as_str());
            }
            Arc::new(column.finish()) as ArrayRef
        }};
    }
    macro_rules! mac {
        ($get:expr) => {{
            let mut column = StringBuilder::with_capacity(f.len(), f.len() * 17);
            for r in f {
                let text = $get(r).text();
                column.append_value(std::str::from_utf8(&text).unwrap_or_default());
            }
            Arc::new(column.finish()) as ArrayRef
        }};
    }
    // A feature that is off leaves its columns empty: those are made as
    // null arrays at once (most of the columns of most records).
    macro_rules! maybe_text {
        ($get:expr) => {{
            if f.iter().map($get).all(|v| v.is_none()) {
                return None;
            }
            Arc::new(f.iter().map($get).collect::<StringArray>()) as ArrayRef
        }};
    }
    macro_rules! num {
        ($ty:ty, $get:expr) => {{
            if f.iter().map($get).all(|v| v.is_none()) {
                return None;
            }
            Arc::new(f.iter().map($get).collect::<PrimitiveArray<$ty>>()) as ArrayRef
        }};
    }
    if name == ID {
        let ids = first_id..first_id + f.len() as u64;
        return Some(Arc::new(PrimitiveArray::<UInt64Type>::from_iter_values(
            ids,
        )));
    }
    let array = match name {
        "SrcAddr" => address!(|r: &FlowRecord| r.src_addr),
        "DstAddr" => address!(|r: &FlowRecord| r.dst_addr),
        "SrcPort" => num!(UInt16Type, |r| Some(r.src_port)),
        "DstPort" => num!(UInt16Type, |r| Some(r.dst_port)),
        "Proto" => num!(UInt8Type, |r| Some(r.proto)),
        "Etype" => num!(UInt16Type, |r| Some(r.etype)),
        "SrcMac" => mac!(|r: &FlowRecord| r.src_mac),
        "DstMac" => mac!(|r: &FlowRecord| r.dst_mac),
        "Dscp" => num!(UInt8Type, |r| Some(r.dscp)),
        "IcmpType" => num!(UInt8Type, |r| r.icmp_type),
        "IcmpCode" => num!(UInt8Type, |r| r.icmp_code),
        "Bytes" => num!(UInt64Type, |r| Some(r.bytes)),
        "Packets" => num!(UInt64Type, |r| Some(r.packets)),
        "Flags" => num!(UInt32Type, |r| Some(r.flags)),
        "TimeFlowStartMs" => num!(Int64Type, |r| Some(r.time_flow_start_ms)),
        "TimeFlowEndMs" => num!(Int64Type, |r| Some(r.time_flow_end_ms)),
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
        "AgentIP" => address!(|r: &FlowRecord| r.agent_ip),
        "Sampling" => num!(UInt32Type, |r| Some(r.sampling)),
        "TimeFlowRttNs" => num!(UInt64Type, |r| r.time_flow_rtt_ns),
        "TimeFlowRttMinNs" => num!(UInt64Type, |r| r.time_flow_rtt_min_ns),
        "TimeFlowRttMaxNs" => num!(UInt64Type, |r| r.time_flow_rtt_max_ns),
        "TimeFlowHandshakeRttNs" => num!(UInt64Type, |r| r.time_flow_handshake_rtt_ns),
        "TcpRetransmits" => num!(UInt64Type, |r| r.tcp_retransmits),
        "ConnOutcome" => maybe_text!(|r| r.conn_outcome.map(|v| v.as_str())),
        "PktDropBytes" => num!(UInt64Type, |r| r.pkt_drop_bytes),
        "PktDropPackets" => num!(UInt64Type, |r| r.pkt_drop_packets),
        "PktDropLatestState" => maybe_text!(|r| r.pkt_drop_latest_state.map(|v| v.as_str())),
        "PktDropLatestDropCause" => maybe_text!(|r| r.pkt_drop_latest_drop_cause.as_deref()),
        "PktDropCategory" => maybe_text!(|r| r.pkt_drop_category.map(|v| v.as_str())),
        "DnsId" => num!(UInt16Type, |r| r.dns_id),
        "DnsFlags" => num!(UInt16Type, |r| r.dns_flags),
        "DnsFlagsResponseCode" => maybe_text!(|r| r.dns_flags_response_code.as_deref()),
        "DnsLatencyMs" => num!(Float64Type, |r| r.dns_latency_ms),
        "DnsName" => maybe_text!(|r| r.dns_name.as_deref()),
        "DnsQueryType" => maybe_text!(|r| r.dns_query_type.as_deref()),
        "DnsUnanswered" if f.iter().any(|r| r.dns_unanswered.is_some()) => {
            Arc::new(f.iter().map(|r| r.dns_unanswered).collect::<BooleanArray>())
        }
        // As `to_batch` stores it: the events' JSON text.
        "NetworkEvents" => maybe_text!(|r| r
            .network_events
            .as_ref()
            .and_then(|e| serde_json::to_value(e).ok())
            .map(|v| v.to_string())),
        "SrcK8S_HostName" => maybe_text!(|r| r.src_k8s_host_name.as_deref()),
        "DstK8S_HostName" => maybe_text!(|r| r.dst_k8s_host_name.as_deref()),
        "SrcK8S_Namespace" => maybe_text!(|r| r.src_k8s_namespace.as_deref()),
        "DstK8S_Namespace" => maybe_text!(|r| r.dst_k8s_namespace.as_deref()),
        "SrcK8S_Name" => maybe_text!(|r| r.src_k8s_name.as_deref()),
        "DstK8S_Name" => maybe_text!(|r| r.dst_k8s_name.as_deref()),
        "SrcK8S_Type" => maybe_text!(|r| r.src_k8s_type.as_deref()),
        "DstK8S_Type" => maybe_text!(|r| r.dst_k8s_type.as_deref()),
        "SrcSubnetLabel" => maybe_text!(|r| r.src_subnet_label.as_deref()),
        "DstSubnetLabel" => maybe_text!(|r| r.dst_subnet_label.as_deref()),
        "FlowDirection" => num!(UInt8Type, |r| r.flow_direction),
        _ => return None,
    };
    debug_assert_eq!(
        column(name).map(|(_, ty)| data_type(ty)).as_ref(),
        Some(array.data_type())
    );
    Some(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::to_batch;

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
        let maps: Vec<_> = flows
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut m = serde_json::to_value(f)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .clone();
                m.insert(ID.into(), (100 + i as u64).into());
                m
            })
            .collect();
        let direct = flows_to_batch(&flows, 100);
        let via_json = to_batch(&maps);
        for (i, c) in columns().iter().enumerate() {
            assert_eq!(
                direct.column(i).as_ref(),
                via_json.column(i).as_ref(),
                "column {}",
                c.name
            );
        }
    }
}
