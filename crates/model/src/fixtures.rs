//! Records for tests of the code that carries them (wire format, store
//! columns): one with every field set.

use crate::{FlowRecord, NetworkEvent};

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
        src_k8s_host_name: Some("node-1".into()),
        src_k8s_namespace: Some("frontend".into()),
        src_k8s_name: Some("frontend".into()),
        src_k8s_type: Some("NetworkNamespace".into()),
        src_subnet_label: Some("clients".into()),
        dst_k8s_host_name: Some("node-2".into()),
        dst_k8s_namespace: Some("backend".into()),
        dst_k8s_name: Some("db".into()),
        dst_k8s_type: Some("Pod".into()),
        dst_subnet_label: Some("lab".into()),
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
