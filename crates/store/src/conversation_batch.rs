//! The conversation tracker's records straight to an Arrow batch of the
//! store's schema (`typed_columns`), as `flow_batch` does for flows: the
//! one way conversations enter the store. The result is the batch
//! `to_batch` makes of the records' JSON (a test checks it).

use crate::typed_columns::{addresses, all_numbers, batch_of, bools, label_column, numbers, texts};
use arrow_array::types::{Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{ArrayRef, RecordBatch};
use flowlens_model::ConversationRecord;

/// The conversations as one batch, with store ids from `first_id` on.
pub fn conversations_to_batch(records: &[ConversationRecord], first_id: u64) -> RecordBatch {
    batch_of(records.len(), first_id, |name| column_of(name, records))
}

fn column_of(name: &str, c: &[ConversationRecord]) -> Option<ArrayRef> {
    if let Some(column) = label_column(c, name, ConversationRecord::labels) {
        return column;
    }
    let array = match name {
        "_RecordType" => texts(c, |r| Some(r.record_type.as_str()))?,
        "_HashId" => texts(c, |r| Some(r.hash_id.to_string()))?,
        "_IsFirst" => bools(c, |r| Some(r.is_first))?,
        "SrcAddr" => addresses(c, |r| r.src_addr),
        "DstAddr" => addresses(c, |r| r.dst_addr),
        "SrcPort" => all_numbers::<UInt16Type, _>(c, |r| r.src_port),
        "DstPort" => all_numbers::<UInt16Type, _>(c, |r| r.dst_port),
        "Proto" => all_numbers::<UInt8Type, _>(c, |r| r.proto),
        "Bytes_AB" => all_numbers::<UInt64Type, _>(c, |r| r.bytes_ab),
        "Bytes_BA" => all_numbers::<UInt64Type, _>(c, |r| r.bytes_ba),
        "Packets_AB" => all_numbers::<UInt64Type, _>(c, |r| r.packets_ab),
        "Packets_BA" => all_numbers::<UInt64Type, _>(c, |r| r.packets_ba),
        "numFlowLogs" => all_numbers::<UInt64Type, _>(c, |r| r.num_flow_logs),
        "TimeFlowStartMs" => all_numbers::<Int64Type, _>(c, |r| r.time_flow_start_ms),
        "TimeFlowEndMs" => all_numbers::<Int64Type, _>(c, |r| r.time_flow_end_ms),
        "Flags" => all_numbers::<UInt32Type, _>(c, |r| r.flags),
        "Sampling" => all_numbers::<UInt32Type, _>(c, |r| r.sampling),
        "TimeFlowRttMinNs" => numbers::<UInt64Type, _>(c, |r| r.time_flow_rtt_min_ns)?,
        "TimeFlowRttMaxNs" => numbers::<UInt64Type, _>(c, |r| r.time_flow_rtt_max_ns)?,
        "TimeFlowRttAvgNs" => numbers::<UInt64Type, _>(c, |r| r.time_flow_rtt_avg_ns)?,
        "TcpRetransmits" => numbers::<UInt64Type, _>(c, |r| r.tcp_retransmits)?,
        "PktDropPackets" => numbers::<UInt64Type, _>(c, |r| r.pkt_drop_packets)?,
        "PktDropBytes" => numbers::<UInt64Type, _>(c, |r| r.pkt_drop_bytes)?,
        "PktDropLatestDropCause" => texts(c, |r| r.pkt_drop_latest_drop_cause.as_deref())?,
        "DnsFlagsResponseCode" => texts(c, |r| r.dns_flags_response_code.as_deref())?,
        "DnsName" => texts(c, |r| r.dns_name.as_deref())?,
        "DnsUnanswered" => bools(c, |r| r.dns_unanswered)?,
        "CloseCause" => texts(c, |r| r.close_cause.map(|v| v.as_str()))?,
        "K8S_ClusterName" => texts(c, |r| r.cluster_name.as_deref())?,
        _ => return None,
    };
    Some(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlens_model::vocab::RecordType;

    #[test]
    fn the_same_batch_as_from_json() {
        let full = flowlens_model::fixtures::full_conversation();
        let bare = ConversationRecord {
            record_type: RecordType::NewConnection,
            is_first: true,
            src_labels: Default::default(),
            time_flow_rtt_min_ns: None,
            time_flow_rtt_max_ns: None,
            time_flow_rtt_avg_ns: None,
            tcp_retransmits: None,
            pkt_drop_packets: None,
            pkt_drop_bytes: None,
            pkt_drop_latest_drop_cause: None,
            dns_flags_response_code: None,
            dns_name: None,
            dns_unanswered: None,
            close_cause: None,
            ..full.clone()
        };
        let records = [full, bare];
        let typed = conversations_to_batch(&records, 7);
        crate::typed_columns::assert_as_from_json(&records, 7, &typed);
    }
}
