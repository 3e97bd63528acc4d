//! prost's decoded `Record` seen as a `RawRecord`, so that `from_pb` and
//! the in-place decode share one conversion (`convert::from_raw`).

use super::{RawEndpoint, RawEvent, RawFamily, RawIp, RawNetwork, RawRecord};
use crate::pbflow;

/// Its text borrowed.
impl<'a> From<&'a pbflow::Record> for RawRecord<'a> {
    fn from(p: &'a pbflow::Record) -> RawRecord<'a> {
        let instant = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
        let duration = |d: &Option<prost_types::Duration>| d.as_ref().map(|d| (d.seconds, d.nanos));
        let ip = |ip: &'a Option<pbflow::Ip>| {
            ip.as_ref().map(|ip| {
                RawIp(ip.ip_family.as_ref().map(|f| match f {
                    pbflow::ip::IpFamily::Ipv4(v4) => RawFamily::V4(*v4),
                    pbflow::ip::IpFamily::Ipv6(v6) => RawFamily::V6(v6),
                }))
            })
        };
        let endpoint = |e: &'a Option<pbflow::Endpoint>| {
            e.as_ref().map(|e| RawEndpoint {
                host_name: e.host_name.as_deref(),
                namespace: e.namespace.as_deref(),
                name: e.name.as_deref(),
                kind: e.r#type.as_deref(),
                subnet_label: e.subnet_label.as_deref(),
                owner_name: e.owner_name.as_deref(),
                owner_type: e.owner_type.as_deref(),
                host_ip: e.host_ip.as_deref(),
                zone: e.zone.as_deref(),
            })
        };
        let link = p.data_link.unwrap_or_default();
        let transport = p.transport.unwrap_or_default();
        RawRecord {
            eth_protocol: p.eth_protocol,
            direction: p.direction,
            time_flow_start: instant(&p.time_flow_start),
            time_flow_end: instant(&p.time_flow_end),
            data_link: (link.src_mac, link.dst_mac),
            network: p.network.as_ref().map(|n| RawNetwork {
                src_addr: ip(&n.src_addr),
                dst_addr: ip(&n.dst_addr),
                dscp: n.dscp,
            }),
            transport: (transport.src_port, transport.dst_port, transport.protocol),
            bytes: p.bytes,
            packets: p.packets,
            interface: &p.interface,
            agent_ip: ip(&p.agent_ip),
            flags: p.flags,
            icmp_type: p.icmp_type,
            icmp_code: p.icmp_code,
            pkt_drop_bytes: p.pkt_drop_bytes,
            pkt_drop_packets: p.pkt_drop_packets,
            pkt_drop_latest_state: p.pkt_drop_latest_state,
            pkt_drop_latest_drop_cause: p.pkt_drop_latest_drop_cause,
            dns_id: p.dns_id,
            dns_flags: p.dns_flags,
            dns_latency: duration(&p.dns_latency),
            time_flow_rtt: duration(&p.time_flow_rtt),
            dup_list: p
                .dup_list
                .iter()
                .map(|d| (d.interface.as_str(), d.direction))
                .collect(),
            network_events: p
                .network_events_metadata
                .iter()
                .map(|e| {
                    RawEvent(
                        e.events
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect(),
                    )
                })
                .collect(),
            sampling: p.sampling,
            time_flow_rtt_min_ns: p.time_flow_rtt_min_ns,
            time_flow_rtt_max_ns: p.time_flow_rtt_max_ns,
            time_flow_handshake_rtt_ns: p.time_flow_handshake_rtt_ns,
            tcp_retransmits: p.tcp_retransmits,
            conn_outcome: p.conn_outcome.as_deref(),
            pkt_drop_latest_drop_cause_name: p.pkt_drop_latest_drop_cause_name.as_deref(),
            pkt_drop_category: p.pkt_drop_category.as_deref(),
            dns_name: p.dns_name.as_deref(),
            dns_query_type: p.dns_query_type.as_deref(),
            dns_unanswered: p.dns_unanswered,
            src_endpoint: endpoint(&p.src_endpoint),
            dst_endpoint: endpoint(&p.dst_endpoint),
            flow_direction: p.flow_direction,
            cluster_name: p.cluster_name.as_deref(),
            agent_name: p.agent_name.as_deref(),
        }
    }
}
