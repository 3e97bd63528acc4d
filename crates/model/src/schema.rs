//! The one table of record fields. Documentation, table output and (in later
//! components) filters, storage and metrics derive from it; a test keeps it in
//! step with `FlowRecord`'s JSON.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Address,
    Mac,
    U8,
    U16,
    U32,
    U64,
    /// Wall-clock milliseconds since the Unix epoch.
    TimestampMs,
    TcpFlags,
    StringList,
    U8List,
    Text,
    F64,
    Bool,
    EventList,
}

#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// JSON name (netobserv's where netobserv has the field).
    pub name: &'static str,
    pub ty: FieldType,
    /// Unit of numbers, empty when none.
    pub unit: &'static str,
    pub doc: &'static str,
}

const fn field(
    name: &'static str,
    ty: FieldType,
    unit: &'static str,
    doc: &'static str,
) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        unit,
        doc,
    }
}

pub const FIELDS: &[FieldSpec] = &[
    field(
        "SrcAddr",
        FieldType::Address,
        "",
        "Source IPv4 or IPv6 address",
    ),
    field(
        "DstAddr",
        FieldType::Address,
        "",
        "Destination IPv4 or IPv6 address",
    ),
    field(
        "SrcPort",
        FieldType::U16,
        "",
        "Source TCP/UDP/SCTP port (0 for other protocols)",
    ),
    field(
        "DstPort",
        FieldType::U16,
        "",
        "Destination TCP/UDP/SCTP port (0 for other protocols)",
    ),
    field(
        "Proto",
        FieldType::U8,
        "",
        "IP protocol number: 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6, 132 SCTP",
    ),
    field(
        "Etype",
        FieldType::U16,
        "",
        "EtherType: 2048 IPv4, 34525 IPv6, 2054 ARP",
    ),
    field(
        "SrcMac",
        FieldType::Mac,
        "",
        "Source MAC address on the reporting interface",
    ),
    field(
        "DstMac",
        FieldType::Mac,
        "",
        "Destination MAC address on the reporting interface",
    ),
    field(
        "Dscp",
        FieldType::U8,
        "",
        "Differentiated Services Code Point of the IP header",
    ),
    field(
        "IcmpType",
        FieldType::U8,
        "",
        "ICMP or ICMPv6 type (ICMP flows only)",
    ),
    field(
        "IcmpCode",
        FieldType::U8,
        "",
        "ICMP or ICMPv6 code (ICMP flows only)",
    ),
    field(
        "Bytes",
        FieldType::U64,
        "bytes",
        "Bytes of the flow's frames at the TC hook: Ethernet header and IP packet",
    ),
    field(
        "Packets",
        FieldType::U64,
        "packets",
        "Packets of the flow, as the interface counters count them",
    ),
    field(
        "Flags",
        FieldType::TcpFlags,
        "",
        "Union of TCP flags seen: FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128, SYN_ACK 256, FIN_ACK 512, RST_ACK 1024",
    ),
    field(
        "TimeFlowStartMs",
        FieldType::TimestampMs,
        "ms",
        "Wall-clock time of the flow's first packet in this record",
    ),
    field(
        "TimeFlowEndMs",
        FieldType::TimestampMs,
        "ms",
        "Wall-clock time of the flow's last packet in this record",
    ),
    field(
        "Interfaces",
        FieldType::StringList,
        "",
        "Every interface of this host the flow crossed",
    ),
    field(
        "IfDirections",
        FieldType::U8List,
        "",
        "Direction of each crossing in Interfaces: 0 ingress, 1 egress",
    ),
    field(
        "AgentIP",
        FieldType::Address,
        "",
        "IP address of the agent's host",
    ),
    field(
        "Sampling",
        FieldType::U32,
        "",
        "1 in Sampling packets was accounted (1: every packet)",
    ),
    field(
        "TimeFlowRttNs",
        FieldType::U64,
        "ns",
        "FlowRTT: latest smoothed RTT (tcp_sock srtt) of the socket receiving this flow",
    ),
    field(
        "TimeFlowRttMinNs",
        FieldType::U64,
        "ns",
        "FlowRTT: lowest smoothed RTT seen in this record",
    ),
    field(
        "TimeFlowRttMaxNs",
        FieldType::U64,
        "ns",
        "FlowRTT: highest smoothed RTT seen in this record",
    ),
    field(
        "TimeFlowHandshakeRttNs",
        FieldType::U64,
        "ns",
        "FlowRTT: RTT measured by the TCP handshake (SYN to SYN-ACK, or SYN-ACK to ACK)",
    ),
    field(
        "TcpRetransmits",
        FieldType::U64,
        "segments",
        "TCPRetransmits: segments of this flow the kernel retransmitted",
    ),
    field(
        "ConnOutcome",
        FieldType::Text,
        "",
        "ConnectionTracking: established, completed, refused, reset, timed_out, error or aborted",
    ),
    field(
        "PktDropBytes",
        FieldType::U64,
        "bytes",
        "PacketDrop: bytes of this flow's packets the kernel dropped",
    ),
    field(
        "PktDropPackets",
        FieldType::U64,
        "packets",
        "PacketDrop: packets of this flow the kernel dropped",
    ),
    field(
        "PktDropLatestState",
        FieldType::Text,
        "",
        "PacketDrop: TCP state of the socket at the latest drop",
    ),
    field(
        "PktDropLatestDropCause",
        FieldType::Text,
        "",
        "PacketDrop: kernel drop reason of the latest drop (SKB_DROP_REASON_*)",
    ),
    field(
        "PktDropCategory",
        FieldType::Text,
        "",
        "PacketDrop: policy_denied, no_socket, no_route, checksum, queue_full, ttl_exceeded, malformed or other",
    ),
    field("DnsId", FieldType::U16, "", "DNSTracking: DNS message id"),
    field(
        "DnsFlags",
        FieldType::U16,
        "",
        "DNSTracking: DNS header flags (of the response, on the query's flow once answered)",
    ),
    field(
        "DnsFlagsResponseCode",
        FieldType::Text,
        "",
        "DNSTracking: NoError, FormErr, ServFail, NXDomain, NotImp, Refused, ...",
    ),
    field(
        "DnsLatencyMs",
        FieldType::F64,
        "ms",
        "DNSTracking: time from the query to its response, at this host's hooks",
    ),
    field(
        "DnsName",
        FieldType::Text,
        "",
        "DNSTracking: the query name",
    ),
    field(
        "DnsQueryType",
        FieldType::Text,
        "",
        "DNSTracking: the query type (A, AAAA, MX, ...)",
    ),
    field(
        "DnsUnanswered",
        FieldType::Bool,
        "",
        "DNSTracking: the query got no response within the DNS timeout",
    ),
    field(
        "NetworkEvents",
        FieldType::EventList,
        "",
        "NetworkEvents: policy verdicts logged to NFLOG (action, rule prefix, direction)",
    ),
    field(
        "SrcK8S_HostName",
        FieldType::Text,
        "",
        "Enrichment: this node's name when the source is on it (host or one of its network namespaces)",
    ),
    field(
        "DstK8S_HostName",
        FieldType::Text,
        "",
        "Enrichment: this node's name when the destination is on it",
    ),
    field(
        "SrcK8S_Namespace",
        FieldType::Text,
        "",
        "Enrichment: network namespace of the source (Kubernetes namespace later)",
    ),
    field(
        "DstK8S_Namespace",
        FieldType::Text,
        "",
        "Enrichment: network namespace of the destination",
    ),
    field(
        "SrcK8S_Name",
        FieldType::Text,
        "",
        "Enrichment: name of the source workload (its network namespace on a plain host)",
    ),
    field(
        "DstK8S_Name",
        FieldType::Text,
        "",
        "Enrichment: name of the destination workload",
    ),
    field(
        "SrcK8S_Type",
        FieldType::Text,
        "",
        "Enrichment: Node or NetworkNamespace (Pod, Service, ... later)",
    ),
    field(
        "DstK8S_Type",
        FieldType::Text,
        "",
        "Enrichment: Node or NetworkNamespace",
    ),
    field(
        "SrcSubnetLabel",
        FieldType::Text,
        "",
        "Enrichment: name of the configured subnet holding the source",
    ),
    field(
        "DstSubnetLabel",
        FieldType::Text,
        "",
        "Enrichment: name of the configured subnet holding the destination",
    ),
    field(
        "FlowDirection",
        FieldType::U8,
        "",
        "Enrichment: 0 ingress, 1 egress, 2 inner (both ends on this node)",
    ),
];

/// The field named `name` (JSON name, case-sensitive).
pub fn field_spec(name: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlowRecord;

    #[test]
    fn table_matches_record_json() {
        let record = FlowRecord {
            icmp_type: Some(8),
            icmp_code: Some(0),
            time_flow_rtt_ns: Some(1),
            time_flow_rtt_min_ns: Some(1),
            time_flow_rtt_max_ns: Some(1),
            time_flow_handshake_rtt_ns: Some(1),
            tcp_retransmits: Some(1),
            conn_outcome: Some("refused".into()),
            pkt_drop_bytes: Some(1),
            pkt_drop_packets: Some(1),
            pkt_drop_latest_state: Some("TCP_ESTABLISHED".into()),
            pkt_drop_latest_drop_cause: Some("SKB_DROP_REASON_NETFILTER_DROP".into()),
            pkt_drop_category: Some("policy_denied".into()),
            dns_id: Some(1),
            dns_flags: Some(1),
            dns_flags_response_code: Some("NoError".into()),
            dns_latency_ms: Some(0.1),
            dns_name: Some("a.example".into()),
            dns_query_type: Some("A".into()),
            dns_unanswered: Some(true),
            network_events: Some(vec![]),
            src_k8s_host_name: Some("node".into()),
            dst_k8s_host_name: Some("node".into()),
            src_k8s_namespace: Some("a".into()),
            dst_k8s_namespace: Some("b".into()),
            src_k8s_name: Some("a".into()),
            dst_k8s_name: Some("b".into()),
            src_k8s_type: Some("NetworkNamespace".into()),
            dst_k8s_type: Some("NetworkNamespace".into()),
            src_subnet_label: Some("lab".into()),
            dst_subnet_label: Some("lab".into()),
            flow_direction: Some(2),
            ..Default::default()
        };
        let json = serde_json::to_value(&record).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        for key in &keys {
            assert!(
                field_spec(key).is_some(),
                "{key} is not in the schema table"
            );
        }
        for spec in FIELDS {
            assert!(
                json.get(spec.name).is_some(),
                "{} is not in FlowRecord",
                spec.name
            );
        }
    }
}
