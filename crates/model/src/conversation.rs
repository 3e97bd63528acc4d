//! The records the conversation tracker emits, typed: a conversation's
//! `newConnection`, `heartbeat` and `endConnection` records, and a flow's
//! `flowLog` (the flow with its conversation's id). JSON (netobserv's
//! names, as flowlogs-pipeline's conntrack writes them) is made only where
//! they leave: stdout, the store, the API.

use crate::vocab::{CloseCause, RecordType};
use crate::{Address, FlowRecord, Label, SideLabels};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A conversation's `_HashId`: the same for both directions of a
/// connection, shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashId(pub u64);

impl std::fmt::Display for HashId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for HashId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HashId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HashId, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        u64::from_str_radix(&text, 16)
            .map(HashId)
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a conversation id")))
    }
}

/// One record of a conversation: A is the side that opened it, B the side
/// that answered; `Src…` fields are A's, `Dst…` fields B's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    #[serde(rename = "_RecordType")]
    pub record_type: RecordType,
    #[serde(rename = "_HashId")]
    pub hash_id: HashId,
    #[serde(rename = "_IsFirst")]
    pub is_first: bool,
    #[serde(rename = "SrcAddr")]
    pub src_addr: Address,
    #[serde(rename = "SrcPort")]
    pub src_port: u16,
    #[serde(rename = "DstAddr")]
    pub dst_addr: Address,
    #[serde(rename = "DstPort")]
    pub dst_port: u16,
    #[serde(rename = "Proto")]
    pub proto: u8,
    #[serde(flatten, with = "crate::endpoint::src_labels")]
    pub src_labels: SideLabels,
    #[serde(flatten, with = "crate::endpoint::dst_labels")]
    pub dst_labels: SideLabels,
    #[serde(
        rename = "K8S_ClusterName",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub cluster_name: Option<Label>,
    #[serde(rename = "Bytes_AB")]
    pub bytes_ab: u64,
    #[serde(rename = "Bytes_BA")]
    pub bytes_ba: u64,
    #[serde(rename = "Packets_AB")]
    pub packets_ab: u64,
    #[serde(rename = "Packets_BA")]
    pub packets_ba: u64,
    #[serde(rename = "numFlowLogs")]
    pub num_flow_logs: u64,
    #[serde(rename = "TimeFlowStartMs")]
    pub time_flow_start_ms: i64,
    #[serde(rename = "TimeFlowEndMs")]
    pub time_flow_end_ms: i64,
    #[serde(rename = "Flags")]
    pub flags: u32,
    #[serde(rename = "Sampling")]
    pub sampling: u32,
    #[serde(
        rename = "TimeFlowRttMinNs",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub time_flow_rtt_min_ns: Option<u64>,
    #[serde(
        rename = "TimeFlowRttMaxNs",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub time_flow_rtt_max_ns: Option<u64>,
    #[serde(
        rename = "TimeFlowRttAvgNs",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub time_flow_rtt_avg_ns: Option<u64>,
    #[serde(
        rename = "TcpRetransmits",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub tcp_retransmits: Option<u64>,
    #[serde(
        rename = "PktDropPackets",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub pkt_drop_packets: Option<u64>,
    #[serde(
        rename = "PktDropBytes",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub pkt_drop_bytes: Option<u64>,
    #[serde(
        rename = "PktDropLatestDropCause",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub pkt_drop_latest_drop_cause: Option<String>,
    #[serde(
        rename = "DnsFlagsResponseCode",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub dns_flags_response_code: Option<String>,
    #[serde(rename = "DnsName", skip_serializing_if = "Option::is_none", default)]
    pub dns_name: Option<String>,
    #[serde(
        rename = "DnsUnanswered",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub dns_unanswered: Option<bool>,
    /// On `endConnection` records: why it ended.
    #[serde(
        rename = "CloseCause",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub close_cause: Option<CloseCause>,
}

/// A flow as the tracker logs it: the flow's own fields and its
/// conversation's id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowLog {
    #[serde(rename = "_RecordType")]
    record_type: RecordType,
    #[serde(rename = "_HashId")]
    pub hash_id: HashId,
    #[serde(rename = "_IsFirst")]
    pub is_first: bool,
    #[serde(flatten)]
    pub flow: FlowRecord,
}

impl FlowLog {
    pub fn new(flow: FlowRecord, hash_id: HashId, is_first: bool) -> FlowLog {
        FlowLog {
            record_type: RecordType::FlowLog,
            hash_id,
            is_first,
            flow,
        }
    }
}

/// What the conversation tracker emits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TrackerRecord {
    FlowLog(FlowLog),
    Conversation(ConversationRecord),
}

impl TrackerRecord {
    pub fn record_type(&self) -> RecordType {
        match self {
            TrackerRecord::FlowLog(_) => RecordType::FlowLog,
            TrackerRecord::Conversation(c) => c.record_type,
        }
    }

    /// The record as JSON with netobserv's names.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FIELDS, field_spec};

    /// The typed record and the schema's conversation fields are the same
    /// set, and the record survives its JSON.
    #[test]
    fn a_full_record_has_every_conversation_field_of_the_schema() {
        let record = crate::fixtures::full_conversation();
        let json = serde_json::to_value(&record).unwrap();
        for key in json.as_object().unwrap().keys() {
            let spec = field_spec(key).unwrap_or_else(|| panic!("{key} is not in the schema"));
            assert!(
                spec.records.conversations(),
                "{key} is not a conversation field"
            );
        }
        for spec in FIELDS.iter().filter(|f| f.records.conversations()) {
            assert!(
                json.get(spec.name).is_some(),
                "{} is not in ConversationRecord",
                spec.name
            );
        }
        assert_eq!(json["_HashId"], "0123456789abcdef");
        let back: ConversationRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }
}
