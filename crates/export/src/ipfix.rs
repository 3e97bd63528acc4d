//! IPFIX messages (RFC 7011) of flow records: one template for IPv4 flows
//! (id 256) and one for IPv6 flows (id 257), with the standard information
//! elements (RFC 7012 / IANA registry) for what they have in common with
//! netobserv's fields, and enterprise elements under the enterprise number
//! `ENTERPRISE` for flowlens's own (RTT, DNS, drops, outcome). The mapping
//! is in docs/exports.md.

use flowlens_model::FlowRecord;
use std::net::IpAddr;

/// The enterprise number of flowlens's elements: 32473, the number RFC
/// 5612 reserves for documentation, until flowlens has one of its own
/// from IANA (docs/exports.md).
pub const ENTERPRISE: u32 = 32473;

pub const TEMPLATE_V4: u16 = 256;
pub const TEMPLATE_V6: u16 = 257;

const VERSION: u16 = 10;
const TEMPLATE_SET: u16 = 2;
const HEADER_LEN: usize = 16;
/// A variable-length element (RFC 7011 §7).
const VARIABLE: u16 = 0xFFFF;

/// One element of a template: (id, length, enterprise).
type Element = (u16, u16, Option<u32>);

/// The elements of a template, in the order a record writes them.
fn elements(v6: bool) -> Vec<Element> {
    let (src, dst, icmp) = if v6 { (27, 28, 139) } else { (8, 12, 32) };
    let address_len = if v6 { 16 } else { 4 };
    vec![
        (src, address_len, None),         // sourceIPv4Address / sourceIPv6Address
        (dst, address_len, None),         // destinationIPv4Address / destinationIPv6Address
        (7, 2, None),                     // sourceTransportPort
        (11, 2, None),                    // destinationTransportPort
        (4, 1, None),                     // protocolIdentifier
        (6, 2, None),                     // tcpControlBits
        (icmp, 2, None),                  // icmpTypeCodeIPv4 / icmpTypeCodeIPv6
        (5, 1, None),                     // ipClassOfService (DSCP << 2)
        (1, 8, None),                     // octetDeltaCount
        (2, 8, None),                     // packetDeltaCount
        (152, 8, None),                   // flowStartMilliseconds
        (153, 8, None),                   // flowEndMilliseconds
        (56, 6, None),                    // sourceMacAddress
        (80, 6, None),                    // destinationMacAddress
        (61, 1, None),                    // flowDirection (0 ingress, 1 egress)
        (82, VARIABLE, None),             // interfaceName (the first interface)
        (1, 8, Some(ENTERPRISE)),         // flowlens timeFlowRttNs
        (2, 8, Some(ENTERPRISE)),         // flowlens dnsLatencyMs (float64)
        (3, 2, Some(ENTERPRISE)),         // flowlens dnsId
        (4, 2, Some(ENTERPRISE)),         // flowlens dnsFlags
        (5, VARIABLE, Some(ENTERPRISE)),  // flowlens dnsName
        (6, 8, Some(ENTERPRISE)),         // flowlens pktDropPackets
        (7, 8, Some(ENTERPRISE)),         // flowlens pktDropBytes
        (8, VARIABLE, Some(ENTERPRISE)),  // flowlens pktDropLatestDropCause
        (9, 8, Some(ENTERPRISE)),         // flowlens tcpRetransmits
        (10, VARIABLE, Some(ENTERPRISE)), // flowlens connOutcome
    ]
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A variable-length value: one length byte, or 255 and two (§7).
fn put_text(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
    if bytes.len() < 255 {
        out.push(bytes.len() as u8);
    } else {
        out.push(255);
        put_u16(out, bytes.len() as u16);
    }
    out.extend_from_slice(bytes);
}

/// The template set holding both templates.
pub fn template_set() -> Vec<u8> {
    let mut set = Vec::new();
    put_u16(&mut set, TEMPLATE_SET);
    put_u16(&mut set, 0); // length, below
    for (id, v6) in [(TEMPLATE_V4, false), (TEMPLATE_V6, true)] {
        let fields = elements(v6);
        put_u16(&mut set, id);
        put_u16(&mut set, fields.len() as u16);
        for (element, length, enterprise) in fields {
            match enterprise {
                None => put_u16(&mut set, element),
                Some(_) => put_u16(&mut set, element | 0x8000),
            }
            put_u16(&mut set, length);
            if let Some(pen) = enterprise {
                put_u32(&mut set, pen);
            }
        }
    }
    let len = set.len() as u16;
    set[2..4].copy_from_slice(&len.to_be_bytes());
    set
}

/// Which template a record goes under; None for a record without both
/// addresses of one family (it cannot be written).
pub fn template_of(record: &FlowRecord) -> Option<u16> {
    match (record.src_addr.ip()?, record.dst_addr.ip()?) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Some(TEMPLATE_V4),
        (IpAddr::V6(_), IpAddr::V6(_)) => Some(TEMPLATE_V6),
        _ => None,
    }
}

fn put_address(out: &mut Vec<u8>, ip: Option<IpAddr>) {
    match ip {
        Some(IpAddr::V4(v4)) => out.extend_from_slice(&v4.octets()),
        Some(IpAddr::V6(v6)) => out.extend_from_slice(&v6.octets()),
        None => {}
    }
}

/// A data record of `record` under its template.
pub fn data_record(record: &FlowRecord, out: &mut Vec<u8>) {
    put_address(out, record.src_addr.ip());
    put_address(out, record.dst_addr.ip());
    put_u16(out, record.src_port);
    put_u16(out, record.dst_port);
    out.push(record.proto);
    // tcpControlBits holds the TCP header's 16 flag bits; flowlens's
    // extra bits (SYN_ACK 256, FIN_ACK 512, RST_ACK 1024) are its own.
    put_u16(out, (record.flags & 0xFF) as u16);
    let icmp = match (record.icmp_type, record.icmp_code) {
        (Some(t), c) => (t as u16) << 8 | c.unwrap_or(0) as u16,
        _ => 0,
    };
    put_u16(out, icmp);
    out.push(record.dscp << 2);
    put_u64(out, record.bytes);
    put_u64(out, record.packets);
    put_u64(out, record.time_flow_start_ms.max(0) as u64);
    put_u64(out, record.time_flow_end_ms.max(0) as u64);
    out.extend_from_slice(&record.src_mac.0);
    out.extend_from_slice(&record.dst_mac.0);
    let direction = record
        .if_directions
        .first()
        .copied()
        .or(record.flow_direction)
        .unwrap_or(0);
    out.push(u8::from(direction == 1));
    put_text(out, record.interfaces.first().map_or("", String::as_str));
    put_u64(out, record.time_flow_rtt_ns.unwrap_or(0));
    out.extend_from_slice(&record.dns_latency_ms.unwrap_or(0.0).to_be_bytes());
    put_u16(out, record.dns_id.unwrap_or(0));
    put_u16(out, record.dns_flags.unwrap_or(0));
    put_text(out, record.dns_name.as_deref().unwrap_or(""));
    put_u64(out, record.pkt_drop_packets.unwrap_or(0));
    put_u64(out, record.pkt_drop_bytes.unwrap_or(0));
    put_text(
        out,
        record.pkt_drop_latest_drop_cause.as_deref().unwrap_or(""),
    );
    put_u64(out, record.tcp_retransmits.unwrap_or(0));
    put_text(out, record.conn_outcome.map_or("", |o| o.as_str()));
}

/// Writes flow records as IPFIX messages of at most `max_len` bytes each,
/// numbering them as RFC 7011 asks (the sequence number counts the data
/// records sent before, per observation domain).
#[derive(Debug)]
pub struct Encoder {
    domain: u32,
    sequence: u32,
    max_len: usize,
}

impl Encoder {
    pub fn new(domain: u32, max_len: usize) -> Encoder {
        Encoder {
            domain,
            sequence: 0,
            max_len: max_len.clamp(512, u16::MAX as usize),
        }
    }

    fn header(&self, export_time: u32) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.max_len);
        put_u16(&mut m, VERSION);
        put_u16(&mut m, 0); // length, set when the message is done
        put_u32(&mut m, export_time);
        put_u32(&mut m, self.sequence);
        put_u32(&mut m, self.domain);
        debug_assert_eq!(m.len(), HEADER_LEN);
        m
    }

    /// The messages of `records`; the first one starts with the templates
    /// when `templates` is set. Records that fit no template are skipped and
    /// counted in the second value.
    pub fn encode<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r FlowRecord>,
        templates: bool,
        export_time: u32,
    ) -> (Vec<Vec<u8>>, usize) {
        let mut messages = Vec::new();
        let mut message = self.header(export_time);
        if templates {
            message.extend_from_slice(&template_set());
        }
        // (template id, where its set starts in `message`)
        let mut open: Option<(u16, usize)> = None;
        let mut in_message = 0u32;
        let mut skipped = 0;
        let mut record_bytes = Vec::with_capacity(256);
        for record in records {
            let Some(template) = template_of(record) else {
                skipped += 1;
                continue;
            };
            record_bytes.clear();
            data_record(record, &mut record_bytes);
            let set_header = if open.is_some_and(|(t, _)| t == template) {
                0
            } else {
                4
            };
            if message.len() + set_header + record_bytes.len() > self.max_len && in_message > 0 {
                close_set(&mut message, open.take());
                messages.push(self.finish(message, in_message));
                message = self.header(export_time);
                in_message = 0;
            }
            if open.is_none_or(|(t, _)| t != template) {
                close_set(&mut message, open.take());
                open = Some((template, message.len()));
                put_u16(&mut message, template);
                put_u16(&mut message, 0);
            }
            message.extend_from_slice(&record_bytes);
            in_message += 1;
        }
        close_set(&mut message, open.take());
        if in_message > 0 || templates {
            messages.push(self.finish(message, in_message));
        }
        (messages, skipped)
    }

    fn finish(&mut self, mut message: Vec<u8>, records: u32) -> Vec<u8> {
        let len = message.len() as u16;
        message[2..4].copy_from_slice(&len.to_be_bytes());
        self.sequence = self.sequence.wrapping_add(records);
        message
    }
}

fn close_set(message: &mut [u8], open: Option<(u16, usize)>) {
    if let Some((_, start)) = open {
        let len = (message.len() - start) as u16;
        message[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(src: &str, dst: &str, port: u16) -> FlowRecord {
        FlowRecord {
            src_addr: src.into(),
            dst_addr: dst.into(),
            src_port: port,
            dst_port: 443,
            proto: 6,
            bytes: 1500,
            packets: 3,
            time_flow_start_ms: 1_764_400_000_000,
            time_flow_end_ms: 1_764_400_000_500,
            interfaces: vec!["eth0".into()],
            if_directions: vec![1],
            ..Default::default()
        }
    }

    /// Walks a message's sets: (set id, record count) with every length
    /// consistent, as a collector reads it.
    fn sets(message: &[u8]) -> Vec<(u16, usize)> {
        let u16_at = |i: usize| u16::from_be_bytes([message[i], message[i + 1]]);
        assert_eq!(u16_at(0), 10);
        assert_eq!(u16_at(2) as usize, message.len());
        let mut out = Vec::new();
        let mut at = HEADER_LEN;
        while at < message.len() {
            let (id, len) = (u16_at(at), u16_at(at + 2) as usize);
            assert!(len >= 4 && at + len <= message.len(), "set at {at}");
            let body = &message[at + 4..at + len];
            let count = if id == TEMPLATE_SET {
                2
            } else {
                let mut n = 0;
                let mut one = Vec::new();
                data_record(&flow("198.18.0.1", "198.18.0.2", 1), &mut one);
                let v4 = one.len();
                one.clear();
                data_record(&flow("fd00:198:18::1", "fd00:198:18::2", 1), &mut one);
                let size = if id == TEMPLATE_V4 { v4 } else { one.len() };
                assert_eq!(body.len() % size, 0);
                n += body.len() / size;
                n
            };
            out.push((id, count));
            at += len;
        }
        out
    }

    #[test]
    fn records_split_into_messages_within_the_size_with_sequence_numbers() {
        let mut records: Vec<FlowRecord> = (0..40)
            .map(|i| flow("198.18.0.1", "198.18.0.2", i))
            .collect();
        records.extend((0..15).map(|i| flow("fd00:198:18::1", "fd00:198:18::2", i)));
        records.push(flow("198.18.0.1", "fd00:198:18::2", 9)); // mixed: skipped
        let mut encoder = Encoder::new(7, 1400);
        let (messages, skipped) = encoder.encode(&records, true, 1_764_400_001);
        assert_eq!(skipped, 1);
        assert!(messages.len() > 1);
        let mut total = 0;
        let mut expected_sequence = 0u32;
        for (i, m) in messages.iter().enumerate() {
            assert!(m.len() <= 1400);
            let sequence = u32::from_be_bytes(m[8..12].try_into().unwrap());
            assert_eq!(sequence, expected_sequence);
            assert_eq!(u32::from_be_bytes(m[12..16].try_into().unwrap()), 7);
            let s = sets(m);
            assert_eq!(s[0].0 == TEMPLATE_SET, i == 0, "templates first, once");
            let here: usize = s
                .iter()
                .filter(|(id, _)| *id != TEMPLATE_SET)
                .map(|(_, n)| n)
                .sum();
            expected_sequence += here as u32;
            total += here;
        }
        assert_eq!(total, 55);
        // The next call continues the numbering.
        let (more, _) = encoder.encode(&records[..1], false, 1_764_400_002);
        assert_eq!(u32::from_be_bytes(more[0][8..12].try_into().unwrap()), 55);
    }

    #[test]
    fn the_template_set_declares_every_element() {
        let set = template_set();
        assert_eq!(u16::from_be_bytes([set[0], set[1]]), TEMPLATE_SET);
        assert_eq!(u16::from_be_bytes([set[2], set[3]]) as usize, set.len());
        assert_eq!(u16::from_be_bytes([set[4], set[5]]), TEMPLATE_V4);
        assert_eq!(
            u16::from_be_bytes([set[6], set[7]]) as usize,
            elements(false).len()
        );
    }
}
