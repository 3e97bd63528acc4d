//! One flow: one direction of a 5-tuple over one eviction period.

use crate::vocab::{ConnOutcome, DropCategory, TcpState};
use crate::{Address, MacAddr, SideLabels};
use serde::{Deserialize, Serialize};

/// An endpoint label (host, namespace, name, kind, subnet): shared, not
/// copied — the enricher hands the same few values to every flow, and
/// records, conversations and metric series keep them by reference.
pub type Label = std::sync::Arc<str>;

/// A flow record with netobserv's JSON names and types: numbers stay numbers,
/// addresses are text. `Bytes` counts whole frames as the kernel's TC hook sees
/// them (Ethernet header + IP packet, no FCS), the same bytes the interface
/// counters count; `Packets` counts packets as the stack sees them (a GSO
/// super-packet counts once, as the interface counters do).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlowRecord {
    pub src_addr: Address,
    pub dst_addr: Address,
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP.
    pub proto: u8,
    /// EtherType: 2048 IPv4, 34525 IPv6, 2054 ARP.
    pub etype: u16,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub dscp: u8,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub icmp_code: Option<u8>,
    pub bytes: u64,
    pub packets: u64,
    /// Union of the TCP flags seen, netobserv's bits (see `tcp_flags`).
    pub flags: u32,
    pub time_flow_start_ms: i64,
    pub time_flow_end_ms: i64,
    /// Every interface of this host the flow crossed...
    pub interfaces: Vec<String>,
    /// ...and the direction it crossed each: 0 ingress, 1 egress.
    pub if_directions: Vec<u8>,
    #[serde(rename = "AgentIP")]
    pub agent_ip: Address,
    /// The agent's node as its client certificate names it, stamped by the
    /// collector that verified the certificate (mutual TLS only).
    #[serde(rename = "AgentName", skip_serializing_if = "Option::is_none", default)]
    pub agent_name: Option<Label>,
    /// 1 in `Sampling` packets was accounted (1: all of them).
    pub sampling: u32,

    // FlowRTT: the smoothed RTT of the socket that receives this flow.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_flow_rtt_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_flow_rtt_min_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_flow_rtt_max_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_flow_handshake_rtt_ns: Option<u64>,

    // TCPRetransmits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tcp_retransmits: Option<u64>,

    // ConnectionTracking.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conn_outcome: Option<ConnOutcome>,

    // PacketDrop.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pkt_drop_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pkt_drop_packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pkt_drop_latest_state: Option<TcpState>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pkt_drop_latest_drop_cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pkt_drop_category: Option<DropCategory>,

    // DNSTracking.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_flags: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_flags_response_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_query_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_unanswered: Option<bool>,

    // Enrichment (pipeline): who the endpoints are. On a plain Linux host,
    // HostName is this node's name for addresses of the host or of one of
    // its network namespaces, Namespace and Name the namespace's name (as
    // `ip netns` shows it), Type "Node" or "NetworkNamespace".
    // One side's labels are shared by its flows (`SideLabels`), written as
    // the flat `SrcK8S_…`/`DstK8S_…`/`…SubnetLabel` fields.
    #[serde(flatten, with = "crate::endpoint::src_labels")]
    pub src_labels: SideLabels,
    #[serde(flatten, with = "crate::endpoint::dst_labels")]
    pub dst_labels: SideLabels,
    /// The cluster the flow was seen in (`--cluster-name`).
    #[serde(
        rename = "K8S_ClusterName",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub cluster_name: Option<Label>,
    /// 0 ingress (into this host), 1 egress (out of it), 2 inner (both ends
    /// on this host), as netobserv.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flow_direction: Option<u8>,

    // NetworkEvents: policy verdicts that logged to NFLOG with a prefix.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_events: Option<Vec<NetworkEvent>>,
}

/// A policy verdict on the flow (netobserv's NetworkEvents entry).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkEvent {
    /// "drop" or "allow" (from the rule's log, or the kernel's drop).
    pub action: String,
    /// The rule's log prefix, which names the rule or policy.
    pub name: String,
    /// "ingress" or "egress" as the netfilter hook saw the packet.
    pub direction: String,
    /// NFLOG group the event came from.
    pub group: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_netobserv_names_and_number_types() {
        let record = FlowRecord {
            src_addr: "198.18.0.1".into(),
            proto: 6,
            icmp_type: None,
            agent_ip: "198.18.0.254".into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["SrcAddr"], "198.18.0.1");
        assert_eq!(json["Proto"], 6);
        assert_eq!(json["AgentIP"], "198.18.0.254");
        assert!(json.get("TimeFlowStartMs").is_some());
        assert!(json.get("IfDirections").is_some());
        assert!(json.get("IcmpType").is_none());
    }
}
