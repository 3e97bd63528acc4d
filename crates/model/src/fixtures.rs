//! Records for tests of the code that carries them (wire format, store
//! columns): one with every field set.

use crate::conversation::HashId;
use crate::vocab::{CloseCause, RecordType};
use crate::{ConversationRecord, EndpointLabels, FlowRecord, Label, NetworkEvent, SideLabels};

/// A flow with every field set (no `..Default::default()`: a new field
/// of `FlowRecord` must be given here), values chosen to catch lossy conversions
/// (an IPv6 destination, a nanosecond RTT past 2 s, DNS, drops, events).
pub fn full_record() -> FlowRecord {
    FlowRecord {
        src_addr: "198.18.0.1".into(),
        dst_addr: "fd00:198:18::2".into(),
        src_port: 40000,
        dst_port: 53,
        proto: 17,
        etype: 0x86dd,
        src_mac: "0a:58:0a:80:00:01".into(),
        dst_mac: "ff:ff:ff:ff:ff:fe".into(),
        dscp: 46,
        icmp_type: None,
        icmp_code: None,
        bytes: 1234,
        packets: 3,
        flags: 0x12,
        time_flow_start_ms: 1_764_400_000_123,
        time_flow_end_ms: 1_764_400_001_456,
        interfaces: vec!["veth-a".into(), "br0".into()],
        if_directions: vec![0, 1],
        agent_ip: "198.18.0.254".into(),
        agent_name: Some("node-1".into()),
        sampling: 1,
        time_flow_rtt_ns: Some(1_500_000),
        time_flow_rtt_min_ns: Some(900_000),
        time_flow_rtt_max_ns: Some(2_000_000_123),
        time_flow_handshake_rtt_ns: Some(800_000),
        tcp_retransmits: Some(0),
        conn_outcome: Some(crate::vocab::ConnOutcome::Refused),
        pkt_drop_bytes: Some(0),
        pkt_drop_packets: Some(2),
        pkt_drop_latest_state: Some(crate::vocab::TcpState::SynSent),
        pkt_drop_latest_drop_cause: Some("SKB_DROP_REASON_NETFILTER_DROP".into()),
        pkt_drop_category: Some(crate::vocab::DropCategory::PolicyDenied),
        dns_id: Some(0x1234),
        dns_flags: Some(0x8183),
        dns_flags_response_code: Some("NXDomain".into()),
        dns_latency_ms: Some(1.25),
        dns_name: Some("missing.test".into()),
        dns_query_type: Some("A".into()),
        dns_unanswered: Some(false),
        src_labels: EndpointLabels {
            host_name: Some("node-1".into()),
            namespace: Some("frontend".into()),
            name: Some("frontend".into()),
            kind: Some("Pod".into()),
            owner_name: Some("frontend".into()),
            owner_type: Some("Deployment".into()),
            host_ip: Some("198.18.0.1".into()),
            zone: Some("zone-a".into()),
            subnet: Some("clients".into()),
        }
        .into(),
        dst_labels: EndpointLabels {
            host_name: Some("node-2".into()),
            namespace: Some("backend".into()),
            name: Some("db".into()),
            kind: Some("Pod".into()),
            owner_name: Some("db".into()),
            owner_type: Some("StatefulSet".into()),
            host_ip: Some("198.18.0.2".into()),
            zone: Some("zone-b".into()),
            subnet: Some("lab".into()),
        }
        .into(),
        cluster_name: Some("lab-cluster".into()),
        flow_direction: Some(2),
        network_events: Some(vec![NetworkEvent {
            action: "drop".into(),
            name: "deny-db".into(),
            direction: "ingress".into(),
            group: 2,
        }]),
    }
}

/// `full_record` with ICMP's fields set too (a DNS flow has none): every
/// field of the schema set, for the tests that check each one.
pub fn every_field_record() -> FlowRecord {
    FlowRecord {
        icmp_type: Some(8),
        icmp_code: Some(0),
        ..full_record()
    }
}

/// Every label of an end set (no `..`: a new label must be given here).
fn every_label() -> SideLabels {
    let label = || Some(Label::from("x"));
    EndpointLabels {
        host_name: label(),
        namespace: label(),
        name: label(),
        kind: label(),
        owner_name: label(),
        owner_type: label(),
        host_ip: label(),
        zone: label(),
        subnet: label(),
    }
    .into()
}

/// A conversation record with every field set (no `..`: a new field of
/// `ConversationRecord` must be given here).
pub fn full_conversation() -> ConversationRecord {
    ConversationRecord {
        record_type: RecordType::EndConnection,
        hash_id: HashId(0x0123_4567_89ab_cdef),
        is_first: false,
        src_addr: "198.18.0.1".into(),
        src_port: 40000,
        dst_addr: "fd00:198:18::2".into(),
        dst_port: 443,
        proto: 6,
        src_labels: every_label(),
        dst_labels: every_label(),
        cluster_name: Some("lab-cluster".into()),
        bytes_ab: 1,
        bytes_ba: 2,
        packets_ab: 3,
        packets_ba: 4,
        num_flow_logs: 5,
        time_flow_start_ms: 6,
        time_flow_end_ms: 7,
        flags: 8,
        sampling: 1,
        time_flow_rtt_min_ns: Some(9),
        time_flow_rtt_max_ns: Some(10),
        time_flow_rtt_avg_ns: Some(11),
        tcp_retransmits: Some(12),
        pkt_drop_packets: Some(13),
        pkt_drop_bytes: Some(14),
        pkt_drop_latest_drop_cause: Some("SKB_DROP_REASON_NETFILTER_DROP".into()),
        dns_flags_response_code: Some("NXDomain".into()),
        dns_name: Some("a.test".into()),
        dns_unanswered: Some(true),
        close_cause: Some(CloseCause::Reset),
    }
}
