//! The fields of records, in the order of the store's columns.

use super::FieldType::*;
use super::{FieldSpec, Unit, field};
use crate::vocab::{
    CLOSE_CAUSES, CONN_OUTCOMES, DIRECTIONS, DNS_RCODES, DROP_CATEGORIES, PROTOCOLS, RECORD_TYPES,
    TCP_STATES,
};

pub const FIELDS: &[FieldSpec] = &[
    field(
        "SrcAddr",
        Address,
        "Source IPv4 or IPv6 address",
    ).filter("src.addr", &[]).both(),
    field(
        "DstAddr",
        Address,
        "Destination IPv4 or IPv6 address",
    ).filter("dst.addr", &[]).both(),
    field(
        "SrcPort",
        U16,
        "Source TCP/UDP/SCTP port (0 for other protocols)",
    ).filter("src.port", &[]).both(),
    field(
        "DstPort",
        U16,
        "Destination TCP/UDP/SCTP port (0 for other protocols)",
    ).filter("dst.port", &[]).both(),
    field(
        "Proto",
        U8,
        "IP protocol number: 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6, 132 SCTP",
    ).filter("proto", &["protocol"]).vocab(&PROTOCOLS).both().dimension(),
    field(
        "Etype",
        U16,
        "EtherType: 2048 IPv4, 34525 IPv6, 2054 ARP",
    ).filter("etype", &[]),
    field(
        "SrcMac",
        Mac,
        "Source MAC address on the reporting interface",
    ).filter("src.mac", &[]),
    field(
        "DstMac",
        Mac,
        "Destination MAC address on the reporting interface",
    ).filter("dst.mac", &[]),
    field(
        "Dscp",
        U8,
        "Differentiated Services Code Point of the IP header",
    ).filter("dscp", &[]),
    field(
        "IcmpType",
        U8,
        "ICMP or ICMPv6 type (ICMP flows only)",
    ).filter("icmp.type", &[]),
    field(
        "IcmpCode",
        U8,
        "ICMP or ICMPv6 code (ICMP flows only)",
    ).filter("icmp.code", &[]),
    field(
        "Bytes",
        U64,
        "Bytes of the flow's frames at the TC hook: Ethernet header and IP packet",
    ).unit(Unit::Bytes).sum(),
    field(
        "Packets",
        U64,
        "Packets of the flow, as the interface counters count them",
    ).unit(Unit::Packets).sum(),
    field(
        "Flags",
        TcpFlags,
        "Union of TCP flags seen: FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128, SYN_ACK 256, FIN_ACK 512, RST_ACK 1024",
    ).filter("tcp.flags", &[]).both(),
    field(
        "TimeFlowStartMs",
        TimestampMs,
        "Wall-clock time of the flow's first packet in this record",
    ).filter("time.start", &[]).both(),
    field(
        "TimeFlowEndMs",
        TimestampMs,
        "Wall-clock time of the flow's last packet in this record",
    ).filter("time.end", &[]).both(),
    field(
        "Interfaces",
        StringList,
        "Every interface of this host the flow crossed",
    ).filter("interface", &[]),
    field(
        "IfDirections",
        U8List,
        "Direction of each crossing in Interfaces: 0 ingress, 1 egress",
    ),
    field(
        "AgentIP",
        Address,
        "IP address of the agent's host",
    ).filter("agent", &[]),
    field(
        "AgentName",
        Text,
        "The agent's node as its client certificate names it (collector with --grpc-client-ca)",
    ).filter("agent.name", &[]).dimension(),
    field(
        "Sampling",
        U32,
        "1 in Sampling packets was accounted (1: every packet)",
    ).filter("sampling", &[]).both(),
    field(
        "TimeFlowRttNs",
        U64,
        "FlowRTT: latest smoothed RTT (tcp_sock srtt) of the socket receiving this flow",
    ).unit(Unit::Nanos),
    field(
        "TimeFlowRttMinNs",
        U64,
        "FlowRTT: lowest smoothed RTT seen in this record",
    ).unit(Unit::Nanos).filter("rtt.min", &[]).both(),
    field(
        "TimeFlowRttMaxNs",
        U64,
        "FlowRTT: highest smoothed RTT seen in this record",
    ).unit(Unit::Nanos).filter("rtt.max", &[]).both(),
    field(
        "TimeFlowHandshakeRttNs",
        U64,
        "FlowRTT: RTT measured by the TCP handshake (SYN to SYN-ACK, or SYN-ACK to ACK)",
    ).unit(Unit::Nanos).filter("rtt.handshake", &[]),
    field(
        "TcpRetransmits",
        U64,
        "TCPRetransmits: segments of this flow the kernel retransmitted",
    ).unit(Unit::Segments).filter("tcp.retransmits", &["flow.tcp_retransmits", "retransmits"]).both().sum(),
    field(
        "ConnOutcome",
        Text,
        "ConnectionTracking: established, completed, refused, reset, timed_out, error or aborted",
    ).filter("conn.outcome", &[]).vocab(&CONN_OUTCOMES).dimension(),
    field(
        "PktDropBytes",
        U64,
        "PacketDrop: bytes of this flow's packets the kernel dropped",
    ).unit(Unit::Bytes).filter("drop.bytes", &[]).both().sum(),
    field(
        "PktDropPackets",
        U64,
        "PacketDrop: packets of this flow the kernel dropped",
    ).unit(Unit::Packets).filter("drop.packets", &[]).both().sum(),
    field(
        "PktDropLatestState",
        Text,
        "PacketDrop: TCP state of the socket at the latest drop",
    ).filter("drop.state", &[]).vocab(&TCP_STATES).dimension(),
    field(
        "PktDropLatestDropCause",
        Text,
        "PacketDrop: kernel drop reason of the latest drop (SKB_DROP_REASON_*)",
    ).both().dimension(),
    field(
        "PktDropCategory",
        Text,
        "PacketDrop: policy_denied, no_socket, no_route, checksum, queue_full, ttl_exceeded, malformed or other",
    ).filter("drop.category", &[]).vocab(&DROP_CATEGORIES),
    field(
        "DnsId",
        U16,
        "DNSTracking: DNS message id",
    ).filter("dns.id", &[]),
    field(
        "DnsFlags",
        U16,
        "DNSTracking: DNS header flags (of the response, on the query's flow once answered)",
    ).filter("dns.flags", &[]),
    field(
        "DnsFlagsResponseCode",
        Text,
        "DNSTracking: NoError, FormErr, ServFail, NXDomain, NotImp, Refused, ...",
    ).filter("dns.rcode", &["dns.response_code"]).vocab(&DNS_RCODES).both().dimension(),
    field(
        "DnsLatencyMs",
        F64,
        "DNSTracking: time from the query to its response, at this host's hooks",
    ).unit(Unit::Millis).filter("dns.latency", &[]),
    field(
        "DnsName",
        Text,
        "DNSTracking: the query name",
    ).filter("dns.name", &[]).both(),
    field(
        "DnsQueryType",
        Text,
        "DNSTracking: the query type (A, AAAA, MX, ...)",
    ).filter("dns.qtype", &[]),
    field(
        "DnsUnanswered",
        Bool,
        "DNSTracking: the query got no response within the DNS timeout",
    ).filter("dns.unanswered", &[]).both(),
    field(
        "NetworkEvents",
        EventList,
        "NetworkEvents: policy verdicts logged to NFLOG (action, rule prefix, direction)",
    ),
    field(
        "SrcK8S_HostName",
        Text,
        "Enrichment: the node the source runs on (in a cluster from its pod or node; on a plain host this host when the source is on it)",
    ).filter("src.host", &["src.node"]).both().dimension(),
    field(
        "DstK8S_HostName",
        Text,
        "Enrichment: the node the destination runs on",
    ).filter("dst.host", &["dst.node"]).both().dimension(),
    field(
        "SrcK8S_Namespace",
        Text,
        "Enrichment: Kubernetes namespace of the source (its network namespace on a plain host)",
    ).filter("src.namespace", &[]).both().dimension(),
    field(
        "DstK8S_Namespace",
        Text,
        "Enrichment: network namespace of the destination",
    ).filter("dst.namespace", &[]).both().dimension(),
    field(
        "SrcK8S_Name",
        Text,
        "Enrichment: name of the source pod, service or node (its network namespace on a plain host)",
    ).filter("src.name", &[]).both().dimension(),
    field(
        "DstK8S_Name",
        Text,
        "Enrichment: name of the destination pod, service or node",
    ).filter("dst.name", &[]).both().dimension(),
    field(
        "SrcK8S_Type",
        Text,
        "Enrichment: Pod, Service or Node (NetworkNamespace or Node on a plain host)",
    ).filter("src.type", &[]).both().dimension(),
    field(
        "DstK8S_Type",
        Text,
        "Enrichment: Pod, Service or Node (NetworkNamespace or Node on a plain host)",
    ).filter("dst.type", &[]).both().dimension(),
    field(
        "SrcK8S_OwnerName",
        Text,
        "Enrichment: the top workload owning the source pod (Deployment, StatefulSet, DaemonSet, CronJob, Job; a bare pod is its own owner)",
    ).filter("src.owner", &["src.owner_name"]).both().dimension(),
    field(
        "DstK8S_OwnerName",
        Text,
        "Enrichment: the top workload owning the destination pod",
    ).filter("dst.owner", &["dst.owner_name"]).both().dimension(),
    field(
        "SrcK8S_OwnerType",
        Text,
        "Enrichment: the kind of the source's owner (Deployment, StatefulSet, DaemonSet, CronJob, Job, Pod, ...)",
    ).filter("src.owner_type", &[]).both().dimension(),
    field(
        "DstK8S_OwnerType",
        Text,
        "Enrichment: the kind of the destination's owner",
    ).filter("dst.owner_type", &[]).both().dimension(),
    field(
        "SrcK8S_HostIP",
        Text,
        "Enrichment: the address of the node the source runs on",
    ).filter("src.host_ip", &["src.node_ip"]).both(),
    field(
        "DstK8S_HostIP",
        Text,
        "Enrichment: the address of the node the destination runs on",
    ).filter("dst.host_ip", &["dst.node_ip"]).both(),
    field(
        "SrcK8S_Zone",
        Text,
        "Enrichment: the zone of the source's node (label topology.kubernetes.io/zone)",
    ).filter("src.zone", &[]).both().dimension(),
    field(
        "DstK8S_Zone",
        Text,
        "Enrichment: the zone of the destination's node",
    ).filter("dst.zone", &[]).both().dimension(),
    field(
        "K8S_ClusterName",
        Text,
        "Enrichment: the cluster's name (--cluster-name or spec.processor.clusterName)",
    ).filter("cluster", &["cluster_name"]).both().dimension(),
    field(
        "SrcSubnetLabel",
        Text,
        "Enrichment: name of the configured subnet holding the source",
    ).filter("src.subnet", &[]).both(),
    field(
        "DstSubnetLabel",
        Text,
        "Enrichment: name of the configured subnet holding the destination",
    ).filter("dst.subnet", &[]).both(),
    field(
        "FlowDirection",
        U8,
        "Enrichment: 0 ingress, 1 egress, 2 inner (both ends on this node)",
    ).filter("flow.direction", &["direction"]).vocab(&DIRECTIONS).dimension(),
    field(
        "_RecordType",
        Text,
        "Conversations: flowLog, newConnection, heartbeat or endConnection",
    ).conversations_only().filter("record.type", &[]).vocab(&RECORD_TYPES),
    field(
        "_HashId",
        Text,
        "Conversations: the conversation id (16 hex digits, the same for both directions)",
    ).conversations_only().filter("conversation", &[]),
    field(
        "_IsFirst",
        Bool,
        "Conversations: whether this is the conversation's first record",
    ).conversations_only(),
    field(
        "Bytes_AB",
        U64,
        "Conversations: bytes from A (the initiator) to B",
    ).unit(Unit::Bytes).conversations_only().filter("bytes.ab", &[]),
    field(
        "Bytes_BA",
        U64,
        "Conversations: bytes from B to A",
    ).unit(Unit::Bytes).conversations_only().filter("bytes.ba", &[]),
    field(
        "Packets_AB",
        U64,
        "Conversations: packets from A to B",
    ).unit(Unit::Packets).conversations_only().filter("packets.ab", &[]),
    field(
        "Packets_BA",
        U64,
        "Conversations: packets from B to A",
    ).unit(Unit::Packets).conversations_only().filter("packets.ba", &[]),
    field(
        "numFlowLogs",
        U64,
        "Conversations: flow records joined into the conversation so far",
    ).conversations_only().filter("conversation.flow_logs", &[]),
    field(
        "TimeFlowRttAvgNs",
        U64,
        "Conversations: average of the smoothed RTTs of its flows",
    ).unit(Unit::Nanos).conversations_only().filter("rtt.avg", &[]),
    field(
        "CloseCause",
        Text,
        "Conversations: how it ended: completed, reset, refused, timed_out, idle or active",
    ).conversations_only().filter("conn.close_cause", &["close_cause"]).vocab(&CLOSE_CAUSES),
];
