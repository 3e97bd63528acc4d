//! Flow records to pbflow messages and back. The shared fields carry what
//! netobserv's agent puts there (so flowlogs-pipeline reads flowlens flows);
//! the flowlens fields carry the rest, so a record survives the trip whole.

use crate::pbflow;
use crate::raw::{
    Instant, RawEndpoint, RawEvent, RawFamily, RawIp, RawRecord, RawRecords, WireError,
};
use flowlens_model::names::rcode_name;
use flowlens_model::vocab::TcpState;
use flowlens_model::{EndpointLabels, FlowRecord, Label, MacAddr, NetworkEvent, SideLabels};
use std::net::{IpAddr, Ipv6Addr};

/// What makes a received record unusable; the receiver counts these by
/// `reason()` and skips the record.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("record has no {0}")]
    Missing(&'static str),
    #[error("{field}: an IPv6 address has 16 bytes, got {len}")]
    BadAddressLength { field: &'static str, len: usize },
    #[error("{field}: {value} is out of range")]
    OutOfRange { field: &'static str, value: u64 },
    #[error("{field}: {error}")]
    UnknownName {
        field: &'static str,
        error: flowlens_model::vocab::UnknownName,
    },
}

impl DecodeError {
    /// A short label for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Missing(_) => "missing_field",
            DecodeError::BadAddressLength { .. } => "bad_address",
            DecodeError::OutOfRange { .. } => "out_of_range",
            DecodeError::UnknownName { .. } => "unknown_name",
        }
    }
}

/// A vocabulary's value sent by name.
fn named<T: std::str::FromStr<Err = flowlens_model::vocab::UnknownName>>(
    name: &str,
    field: &'static str,
) -> Result<T, DecodeError> {
    name.parse()
        .map_err(|error| DecodeError::UnknownName { field, error })
}

fn ip_to_pb(ip: Option<IpAddr>) -> Option<pbflow::Ip> {
    let family = match ip? {
        IpAddr::V4(v4) => pbflow::ip::IpFamily::Ipv4(u32::from(v4)),
        IpAddr::V6(v6) => pbflow::ip::IpFamily::Ipv6(v6.octets().to_vec()),
    };
    Some(pbflow::Ip {
        ip_family: Some(family),
    })
}

fn ip_from_raw(ip: Option<RawIp<'_>>, field: &'static str) -> Result<IpAddr, DecodeError> {
    let family = ip.and_then(|ip| ip.0).ok_or(DecodeError::Missing(field))?;
    let addr = match family {
        RawFamily::V4(v4) => return Ok(IpAddr::V4(v4.into())),
        RawFamily::V6(bytes) => {
            let octets: [u8; 16] = bytes
                .try_into()
                .map_err(|_| DecodeError::BadAddressLength {
                    field,
                    len: bytes.len(),
                })?;
            let v6 = Ipv6Addr::from(octets);
            // netobserv's agent sends IPv4 as IPv4-mapped IPv6.
            match v6.to_ipv4_mapped() {
                Some(v4) => return Ok(IpAddr::V4(v4)),
                None => IpAddr::V6(v6),
            }
        }
    };
    Ok(addr)
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The latest time a record may carry: 9999-12-31, in seconds (as the
/// API's times), so every sum of times stays far from overflow.
const LATEST_SECONDS: i64 = 253_402_300_799;

/// A timestamp as epoch ms (none: 0); one before 1970 or after 9999, or
/// with nanoseconds outside a second, is out of range (found by fuzzing:
/// `seconds * 1000` overflowed).
fn timestamp_ms(t: Option<Instant>, field: &'static str) -> Result<i64, DecodeError> {
    let Some((seconds, nanos)) = t else {
        return Ok(0);
    };
    if !(0..=LATEST_SECONDS).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
        return Err(DecodeError::OutOfRange {
            field,
            value: seconds.unsigned_abs(),
        });
    }
    Ok(seconds * 1000 + i64::from(nanos) / 1_000_000)
}

fn duration_from_ns(ns: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (ns / 1_000_000_000) as i64,
        nanos: (ns % 1_000_000_000) as i32,
    }
}

fn duration_ns((seconds, nanos): Instant) -> u64 {
    (seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nanos.max(0) as u64)
}

fn narrow<T: TryFrom<u64>>(value: u64, field: &'static str) -> Result<T, DecodeError> {
    T::try_from(value).map_err(|_| DecodeError::OutOfRange { field, value })
}

fn endpoint_to_pb(e: &SideLabels) -> Option<pbflow::Endpoint> {
    let text = |label: &Option<Label>| label.as_ref().map(|l| l.to_string());
    (!e.is_empty()).then(|| pbflow::Endpoint {
        host_name: text(&e.host_name),
        namespace: text(&e.namespace),
        name: text(&e.name),
        r#type: text(&e.kind),
        subnet_label: text(&e.subnet),
        owner_name: text(&e.owner_name),
        owner_type: text(&e.owner_type),
        host_ip: text(&e.host_ip),
        zone: text(&e.zone),
    })
}

fn endpoint_from_raw(e: Option<RawEndpoint<'_>>) -> SideLabels {
    let Some(e) = e else {
        return SideLabels::default();
    };
    SideLabels::new(EndpointLabels {
        host_name: e.host_name.map(Label::from),
        namespace: e.namespace.map(Label::from),
        name: e.name.map(Label::from),
        kind: e.kind.map(Label::from),
        subnet: e.subnet_label.map(Label::from),
        owner_name: e.owner_name.map(Label::from),
        owner_type: e.owner_type.map(Label::from),
        host_ip: e.host_ip.map(Label::from),
        zone: e.zone.map(Label::from),
    })
}

fn event_to_pb(e: &NetworkEvent) -> pbflow::NetworkEvent {
    let events = [
        ("Action", e.action.clone()),
        ("Name", e.name.clone()),
        ("Direction", e.direction.clone()),
        ("Group", e.group.to_string()),
    ];
    pbflow::NetworkEvent {
        events: events
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

fn event_from_raw(e: &RawEvent<'_>) -> NetworkEvent {
    NetworkEvent {
        action: e.get("Action").to_string(),
        name: e.get("Name").to_string(),
        direction: e.get("Direction").to_string(),
        group: e.get("Group").parse().unwrap_or(0),
    }
}

fn direction(d: u8) -> i32 {
    if d == 1 {
        pbflow::Direction::Egress as i32
    } else {
        pbflow::Direction::Ingress as i32
    }
}

pub fn to_pb(r: &FlowRecord) -> pbflow::Record {
    let dup_list = r
        .interfaces
        .iter()
        .zip(&r.if_directions)
        .map(|(name, d)| pbflow::DupMapEntry {
            interface: name.clone(),
            direction: direction(*d),
        })
        .collect();
    pbflow::Record {
        eth_protocol: r.etype as u32,
        direction: direction(r.if_directions.first().copied().unwrap_or(0)),
        time_flow_start: Some(timestamp(r.time_flow_start_ms)),
        time_flow_end: Some(timestamp(r.time_flow_end_ms)),
        data_link: Some(pbflow::DataLink {
            src_mac: r.src_mac.to_u64(),
            dst_mac: r.dst_mac.to_u64(),
        }),
        network: Some(pbflow::Network {
            src_addr: ip_to_pb(r.src_addr.ip()),
            dst_addr: ip_to_pb(r.dst_addr.ip()),
            dscp: r.dscp as u32,
        }),
        transport: Some(pbflow::Transport {
            src_port: r.src_port as u32,
            dst_port: r.dst_port as u32,
            protocol: r.proto as u32,
        }),
        bytes: r.bytes,
        packets: r.packets,
        interface: r.interfaces.first().cloned().unwrap_or_default(),
        duplicate: false,
        agent_ip: ip_to_pb(r.agent_ip.ip()),
        flags: r.flags,
        icmp_type: r.icmp_type.map(u32::from),
        icmp_code: r.icmp_code.map(u32::from),
        pkt_drop_bytes: r.pkt_drop_bytes,
        pkt_drop_packets: r.pkt_drop_packets,
        pkt_drop_latest_flags: 0,
        pkt_drop_latest_state: r
            .pkt_drop_latest_state
            .and_then(TcpState::code)
            .map(|c| c as u32),
        pkt_drop_latest_drop_cause: 0,
        dns_id: r.dns_id.map(u32::from),
        dns_flags: r.dns_flags.map(u32::from),
        dns_latency: r
            .dns_latency_ms
            .map(|ms| duration_from_ns((ms * 1e6).round().max(0.0) as u64)),
        time_flow_rtt: r.time_flow_rtt_ns.map(duration_from_ns),
        dns_errno: 0,
        dup_list,
        network_events_metadata: r.network_events.iter().flatten().map(event_to_pb).collect(),
        sampling: r.sampling,
        time_flow_rtt_min_ns: r.time_flow_rtt_min_ns,
        time_flow_rtt_max_ns: r.time_flow_rtt_max_ns,
        time_flow_handshake_rtt_ns: r.time_flow_handshake_rtt_ns,
        tcp_retransmits: r.tcp_retransmits,
        conn_outcome: r.conn_outcome.map(|o| o.as_str().to_string()),
        pkt_drop_latest_drop_cause_name: r.pkt_drop_latest_drop_cause.clone(),
        pkt_drop_category: r.pkt_drop_category.map(|c| c.as_str().to_string()),
        dns_name: r.dns_name.clone(),
        dns_query_type: r.dns_query_type.clone(),
        dns_unanswered: r.dns_unanswered,
        src_endpoint: endpoint_to_pb(&r.src_labels),
        dst_endpoint: endpoint_to_pb(&r.dst_labels),
        flow_direction: r.flow_direction.map(u32::from),
        cluster_name: r.cluster_name.as_ref().map(|c| c.to_string()),
        agent_name: r.agent_name.as_ref().map(|c| c.to_string()),
    }
}

/// A received record as a flow record. Records from netobserv's agent
/// (no flowlens fields) decode too: their interface and direction become
/// the interface list, their drop state a name.
pub fn from_pb(p: pbflow::Record) -> Result<FlowRecord, DecodeError> {
    from_raw(&RawRecord::from(&p))
}

/// A record read in place from the wire (raw.rs) as a flow record: the
/// same checks and result as `from_pb` of prost's decode of those bytes.
pub fn from_raw(p: &RawRecord<'_>) -> Result<FlowRecord, DecodeError> {
    let network = p.network.as_ref().ok_or(DecodeError::Missing("network"))?;
    let (src_port, dst_port, protocol) = p.transport;
    let (interfaces, if_directions) = if p.dup_list.is_empty() {
        (
            vec![p.interface.to_string()],
            vec![p.direction.clamp(0, 1) as u8],
        )
    } else {
        p.dup_list
            .iter()
            .map(|(name, direction)| (name.to_string(), (*direction).clamp(0, 1) as u8))
            .unzip()
    };
    let mut r = FlowRecord {
        src_addr: ip_from_raw(network.src_addr, "network.src_addr")?.into(),
        dst_addr: ip_from_raw(network.dst_addr, "network.dst_addr")?.into(),
        src_port: narrow(src_port as u64, "transport.src_port")?,
        dst_port: narrow(dst_port as u64, "transport.dst_port")?,
        proto: narrow(protocol as u64, "transport.protocol")?,
        etype: narrow(p.eth_protocol as u64, "eth_protocol")?,
        src_mac: MacAddr::from_u64(p.data_link.0),
        dst_mac: MacAddr::from_u64(p.data_link.1),
        dscp: narrow(network.dscp as u64, "network.dscp")?,
        icmp_type: p
            .icmp_type
            .map(|v| narrow(v as u64, "icmp_type"))
            .transpose()?,
        icmp_code: p
            .icmp_code
            .map(|v| narrow(v as u64, "icmp_code"))
            .transpose()?,
        bytes: p.bytes,
        packets: p.packets,
        flags: p.flags,
        time_flow_start_ms: timestamp_ms(p.time_flow_start, "time_flow_start")?,
        time_flow_end_ms: timestamp_ms(p.time_flow_end, "time_flow_end")?,
        interfaces,
        if_directions,
        agent_ip: p
            .agent_ip
            .map(|ip| ip_from_raw(Some(ip), "agent_ip"))
            .transpose()
            .map(flowlens_model::Address)?,
        sampling: p.sampling,
        time_flow_rtt_ns: p.time_flow_rtt.map(duration_ns),
        time_flow_rtt_min_ns: p.time_flow_rtt_min_ns,
        time_flow_rtt_max_ns: p.time_flow_rtt_max_ns,
        time_flow_handshake_rtt_ns: p.time_flow_handshake_rtt_ns,
        tcp_retransmits: p.tcp_retransmits,
        conn_outcome: p
            .conn_outcome
            .map(|name| named(name, "conn_outcome"))
            .transpose()?,
        pkt_drop_bytes: p.pkt_drop_bytes,
        pkt_drop_packets: p.pkt_drop_packets,
        pkt_drop_latest_state: p
            .pkt_drop_latest_state
            .map(|s| TcpState::from_number(narrow(s as u64, "pkt_drop_latest_state").unwrap_or(0))),
        pkt_drop_latest_drop_cause: p
            .pkt_drop_latest_drop_cause_name
            .map(str::to_string)
            .or_else(|| {
                (p.pkt_drop_latest_drop_cause != 0)
                    .then(|| format!("SKB_DROP_REASON_{}", p.pkt_drop_latest_drop_cause))
            }),
        pkt_drop_category: p
            .pkt_drop_category
            .map(|name| named(name, "pkt_drop_category"))
            .transpose()?,
        dns_id: p.dns_id.map(|v| narrow(v as u64, "dns_id")).transpose()?,
        dns_flags: p
            .dns_flags
            .map(|v| narrow(v as u64, "dns_flags"))
            .transpose()?,
        dns_flags_response_code: None,
        dns_latency_ms: p.dns_latency.map(|d| duration_ns(d) as f64 / 1e6),
        dns_name: p.dns_name.map(str::to_string),
        dns_query_type: p.dns_query_type.map(str::to_string),
        dns_unanswered: p.dns_unanswered,
        flow_direction: p
            .flow_direction
            .map(|v| narrow(v as u64, "flow_direction"))
            .transpose()?,
        network_events: (!p.network_events.is_empty())
            .then(|| p.network_events.iter().map(event_from_raw).collect()),
        src_labels: endpoint_from_raw(p.src_endpoint),
        dst_labels: endpoint_from_raw(p.dst_endpoint),
        cluster_name: p.cluster_name.map(Label::from),
        agent_name: p.agent_name.map(Label::from),
    };
    r.dns_flags_response_code = r.dns_flags.map(rcode_name);
    Ok(r)
}

/// A `Records` message decoded straight from its bytes (`raw`).
#[derive(Debug, Default)]
pub struct DecodedRecords {
    /// The usable records, in order.
    pub records: Vec<FlowRecord>,
    /// Why each other record was skipped.
    pub invalid: Vec<DecodeError>,
    pub batch: Option<pbflow::BatchId>,
}

impl DecodedRecords {
    /// Keeps a converted record, or why it could not be made.
    pub fn take(&mut self, converted: Result<FlowRecord, DecodeError>) {
        match converted {
            Ok(record) => self.records.push(record),
            Err(e) => self.invalid.push(e),
        }
    }
}

/// A `Records` message's bytes as flow records, with no prost `Record`
/// made: what prost's decode (`Records::decode_by_prost`) and `from_pb` of
/// each entry give,
/// for a fraction of the cost. Bytes that are not a message are refused
/// whole, as prost refuses them.
pub fn decode_records(bytes: &[u8]) -> Result<DecodedRecords, WireError> {
    let message = RawRecords::parse(bytes)?;
    let mut decoded = DecodedRecords {
        records: Vec::with_capacity(message.entries.len()),
        invalid: Vec::new(),
        batch: message.batch,
    };
    for entry in message.entries {
        decoded.take(from_raw(&RawRecord::parse(entry)?));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_record_survives_the_round_trip() {
        let record = flowlens_model::fixtures::full_record();
        assert_eq!(from_pb(to_pb(&record)).unwrap(), record);
        let bare = FlowRecord {
            src_addr: "198.18.0.1".into(),
            dst_addr: "198.18.0.2".into(),
            src_mac: "00:00:00:00:00:00".into(),
            dst_mac: "00:00:00:00:00:00".into(),
            interfaces: vec!["eth0".into()],
            if_directions: vec![1],
            ..Default::default()
        };
        assert_eq!(from_pb(to_pb(&bare)).unwrap(), bare);
    }

    /// Found by fuzzing (`fuzz/` target pbflow): a timestamp of huge
    /// seconds overflowed `seconds * 1000`.
    #[test]
    fn timestamps_outside_1970_to_9999_are_out_of_range() {
        let record = flowlens_model::fixtures::full_record();
        for (seconds, nanos) in [
            (i64::MAX, 0),
            (-1, 0),
            (253_402_300_800, 0),
            (1, -1),
            (1, 1_000_000_000),
        ] {
            let mut pb = to_pb(&record);
            pb.time_flow_end = Some(prost_types::Timestamp { seconds, nanos });
            let refused = from_pb(pb).unwrap_err();
            assert_eq!(refused.reason(), "out_of_range", "{seconds}.{nanos}");
        }
        let mut pb = to_pb(&record);
        pb.time_flow_end = Some(prost_types::Timestamp {
            seconds: 253_402_300_799,
            nanos: 999_999_999,
        });
        assert_eq!(from_pb(pb).unwrap().time_flow_end_ms, 253_402_300_799_999);
    }

    #[test]
    fn shared_fields_are_what_netobserv_sends() {
        let pb = to_pb(&flowlens_model::fixtures::full_record());
        let src = pb.network.as_ref().unwrap().src_addr.as_ref().unwrap();
        assert_eq!(
            src.ip_family,
            Some(pbflow::ip::IpFamily::Ipv4(0xc612_0001)),
            "198.18.0.1 big-endian"
        );
        assert_eq!(pb.data_link.unwrap().src_mac, 0x0a58_0a80_0001);
        assert_eq!(pb.pkt_drop_latest_state, Some(2));
        assert_eq!(pb.interface, "veth-a");
        assert_eq!(pb.direction, pbflow::Direction::Ingress as i32);
        assert_eq!(pb.dns_latency.unwrap().nanos, 1_250_000);
        assert_eq!(pb.network_events_metadata[0].events["Name"], "deny-db");
    }

    #[test]
    fn netobserv_records_decode() {
        // As netobserv's agent sends them: IPv4-mapped IPv6, one interface,
        // numeric drop state and cause, no flowlens fields.
        let mapped = |v4: [u8; 4]| pbflow::Ip {
            ip_family: Some(pbflow::ip::IpFamily::Ipv6(
                Ipv4Addr::from(v4).to_ipv6_mapped().octets().to_vec(),
            )),
        };
        let pb = pbflow::Record {
            eth_protocol: 0x800,
            direction: 1,
            network: Some(pbflow::Network {
                src_addr: Some(mapped([198, 18, 0, 1])),
                dst_addr: Some(mapped([198, 18, 0, 2])),
                dscp: 0,
            }),
            transport: Some(pbflow::Transport {
                src_port: 1,
                dst_port: 2,
                protocol: 6,
            }),
            interface: "eth0".into(),
            pkt_drop_latest_state: Some(1),
            pkt_drop_latest_drop_cause: 12,
            dns_flags: Some(0x8182),
            ..Default::default()
        };
        let r = from_pb(pb).unwrap();
        assert_eq!(r.src_addr, "198.18.0.1");
        assert_eq!(r.interfaces, vec!["eth0"]);
        assert_eq!(r.if_directions, vec![1]);
        assert_eq!(r.pkt_drop_latest_state, Some(TcpState::Established));
        assert_eq!(
            r.pkt_drop_latest_drop_cause.as_deref(),
            Some("SKB_DROP_REASON_12")
        );
        assert_eq!(r.dns_flags_response_code.as_deref(), Some("ServFail"));
    }

    #[test]
    fn unusable_records_say_why() {
        assert_eq!(
            from_pb(pbflow::Record::default()),
            Err(DecodeError::Missing("network"))
        );
        let bad = pbflow::Record {
            network: Some(pbflow::Network {
                src_addr: Some(pbflow::Ip {
                    ip_family: Some(pbflow::ip::IpFamily::Ipv6(vec![1, 2, 3])),
                }),
                dst_addr: ip_to_pb("198.18.0.2".parse().ok()),
                dscp: 0,
            }),
            ..Default::default()
        };
        let err = from_pb(bad).unwrap_err();
        assert_eq!(err.reason(), "bad_address");
        assert!(err.to_string().contains("network.src_addr"), "{err}");
        let port = pbflow::Record {
            network: to_pb(&flowlens_model::fixtures::full_record()).network,
            transport: Some(pbflow::Transport {
                src_port: 70000,
                dst_port: 1,
                protocol: 6,
            }),
            ..Default::default()
        };
        assert_eq!(from_pb(port).unwrap_err().reason(), "out_of_range");
    }
}
