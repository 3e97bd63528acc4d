//! pbflow records read in place: the wire bytes of a `Records` message
//! parsed into `RawRecord`s that borrow their text from the bytes, so a
//! received record becomes a `FlowRecord` (convert.rs) without prost's
//! intermediate `Record` — its strings, vectors and nested options are most
//! of a decode's cost. The parse follows protobuf's rules as prost applies
//! them (last value wins, a message field seen twice is merged, unknown
//! fields and groups skipped, bad UTF-8 or a wrong wire type refused), and
//! a test and the `pbflow` fuzz target hold it to prost's result.

use crate::pbflow;

/// Why a message's bytes are not protobuf (the whole message is refused,
/// as prost refuses it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(&'static str);

/// Nesting of unknown groups skipped at most (prost's recursion limit).
const MAX_DEPTH: u32 = 100;

/// `google.protobuf.Timestamp` and `Duration`: (seconds, nanos).
pub type Instant = (i64, i32);

/// An `IP` message: its family, if one is set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RawIp<'a>(pub Option<RawFamily<'a>>);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawFamily<'a> {
    V4(u32),
    V6(&'a [u8]),
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RawNetwork<'a> {
    pub src_addr: Option<RawIp<'a>>,
    pub dst_addr: Option<RawIp<'a>>,
    pub dscp: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RawEndpoint<'a> {
    pub host_name: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub subnet_label: Option<&'a str>,
    pub owner_name: Option<&'a str>,
    pub owner_type: Option<&'a str>,
    pub host_ip: Option<&'a str>,
    pub zone: Option<&'a str>,
}

/// A `NetworkEvent`'s map entries in wire order (a later key wins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawEvent<'a>(pub Vec<(&'a str, &'a str)>);

impl<'a> RawEvent<'a> {
    pub fn get(&self, key: &str) -> &'a str {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v)
    }
}

/// A pbflow `Record`, its text borrowed. Fields as prost keeps them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecord<'a> {
    pub eth_protocol: u32,
    pub direction: i32,
    pub time_flow_start: Option<Instant>,
    pub time_flow_end: Option<Instant>,
    pub data_link: (u64, u64),
    pub network: Option<RawNetwork<'a>>,
    pub transport: (u32, u32, u32),
    pub bytes: u64,
    pub packets: u64,
    pub interface: &'a str,
    pub agent_ip: Option<RawIp<'a>>,
    pub flags: u32,
    pub icmp_type: Option<u32>,
    pub icmp_code: Option<u32>,
    pub pkt_drop_bytes: Option<u64>,
    pub pkt_drop_packets: Option<u64>,
    pub pkt_drop_latest_state: Option<u32>,
    pub pkt_drop_latest_drop_cause: u32,
    pub dns_id: Option<u32>,
    pub dns_flags: Option<u32>,
    pub dns_latency: Option<Instant>,
    pub time_flow_rtt: Option<Instant>,
    /// (interface, direction) of each `dup_list` entry.
    pub dup_list: Vec<(&'a str, i32)>,
    pub network_events: Vec<RawEvent<'a>>,
    pub sampling: u32,
    pub time_flow_rtt_min_ns: Option<u64>,
    pub time_flow_rtt_max_ns: Option<u64>,
    pub time_flow_handshake_rtt_ns: Option<u64>,
    pub tcp_retransmits: Option<u64>,
    pub conn_outcome: Option<&'a str>,
    pub pkt_drop_latest_drop_cause_name: Option<&'a str>,
    pub pkt_drop_category: Option<&'a str>,
    pub dns_name: Option<&'a str>,
    pub dns_query_type: Option<&'a str>,
    pub dns_unanswered: Option<bool>,
    pub src_endpoint: Option<RawEndpoint<'a>>,
    pub dst_endpoint: Option<RawEndpoint<'a>>,
    pub flow_direction: Option<u32>,
    pub cluster_name: Option<&'a str>,
    pub agent_name: Option<&'a str>,
}

/// A `Records` message: each entry's bytes (parsed by `RawRecord::parse`
/// one at a time) and the batch id.
#[derive(Debug, Default)]
pub struct RawRecords<'a> {
    pub entries: Vec<&'a [u8]>,
    pub batch: Option<pbflow::BatchId>,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over a message's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.0.is_empty()
    }

    // Inlined for its one-byte case; longer values take the call.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Most values (keys, small numbers) fit one byte.
        if let Some(&b) = self.0.first()
            && b < 0x80
        {
            self.0 = &self.0[1..];
            return Ok(u64::from(b));
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64, WireError> {
        let bytes = self.0;
        let mut value = 0u64;
        for (i, &b) in bytes.iter().take(10).enumerate() {
            // The tenth byte may only hold the top bit of 64.
            if i == 9 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.0 = &bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError(if bytes.len() < 10 {
            "a varint runs past the end"
        } else {
            "a varint is longer than 64 bits"
        }))
    }

    /// A field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| WireError("a field key is out of range"))?;
        let wire = (key & 7) as u8;
        if wire > FIXED32 {
            return Err(WireError("a field has an invalid wire type"));
        }
        let number = key >> 3;
        if number == 0 {
            return Err(WireError("a field has number 0"));
        }
        Ok((number, wire))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let Some((head, rest)) = self.0.split_at_checked(n) else {
            return Err(WireError("a field runs past the end"));
        };
        self.0 = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError("a field runs past the end"))?;
        self.take(len)
    }

    fn text(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError("a string is not UTF-8"))
    }

    fn fixed32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Skips a field of no interest (groups too, as prost does).
    fn skip(&mut self, number: u32, wire: u8, depth: u32) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => {
                if depth == 0 {
                    return Err(WireError("groups are nested too deep"));
                }
                loop {
                    let (inner, inner_wire) = self.key()?;
                    if inner_wire == END_GROUP {
                        if inner != number {
                            return Err(WireError("a group ends with another's tag"));
                        }
                        return Ok(());
                    }
                    self.skip(inner, inner_wire, depth - 1)?;
                }
            }
            _ => Err(WireError("an end-group tag without its start")),
        }
    }
}

/// The fields of one message: calls `field(reader, number, wire)` for each,
/// which reads the value (true) or leaves it to be skipped (false).
fn each_field<'a>(
    bytes: &'a [u8],
    mut field: impl FnMut(&mut Reader<'a>, u32, u8) -> Result<bool, WireError>,
) -> Result<(), WireError> {
    let mut r = Reader(bytes);
    while !r.done() {
        let (number, wire) = r.key()?;
        if !field(&mut r, number, wire)? {
            r.skip(number, wire, MAX_DEPTH)?;
        }
    }
    Ok(())
}

/// A known field's value must come in its wire type.
fn expect(wire: u8, wanted: u8) -> Result<(), WireError> {
    if wire == wanted {
        Ok(())
    } else {
        Err(WireError("a field comes in the wrong wire type"))
    }
}

fn varint<'a>(r: &mut Reader<'a>, wire: u8) -> Result<u64, WireError> {
    expect(wire, VARINT)?;
    r.varint()
}

fn text<'a>(r: &mut Reader<'a>, wire: u8) -> Result<&'a str, WireError> {
    expect(wire, LEN)?;
    r.text()
}

fn message<'a>(r: &mut Reader<'a>, wire: u8) -> Result<&'a [u8], WireError> {
    expect(wire, LEN)?;
    r.bytes()
}

/// Merges a Timestamp or Duration into `into`.
fn instant(bytes: &[u8], into: &mut Instant) -> Result<(), WireError> {
    each_field(bytes, |r, number, wire| {
        match number {
            1 => into.0 = varint(r, wire)? as i64,
            2 => into.1 = varint(r, wire)? as i32,
            _ => return Ok(false),
        }
        Ok(true)
    })
}

fn ip<'a>(bytes: &'a [u8], into: &mut RawIp<'a>) -> Result<(), WireError> {
    each_field(bytes, |r, number, wire| {
        match number {
            1 => {
                expect(wire, FIXED32)?;
                into.0 = Some(RawFamily::V4(r.fixed32()?));
            }
            2 => into.0 = Some(RawFamily::V6(message(r, wire)?)),
            _ => return Ok(false),
        }
        Ok(true)
    })
}

fn endpoint<'a>(bytes: &'a [u8], into: &mut RawEndpoint<'a>) -> Result<(), WireError> {
    each_field(bytes, |r, number, wire| {
        let slot = match number {
            1 => &mut into.host_name,
            2 => &mut into.namespace,
            3 => &mut into.name,
            4 => &mut into.kind,
            5 => &mut into.subnet_label,
            6 => &mut into.owner_name,
            7 => &mut into.owner_type,
            8 => &mut into.host_ip,
            9 => &mut into.zone,
            _ => return Ok(false),
        };
        *slot = Some(text(r, wire)?);
        Ok(true)
    })
}

fn event<'a>(bytes: &'a [u8]) -> Result<RawEvent<'a>, WireError> {
    let mut entries = Vec::new();
    each_field(bytes, |r, number, wire| {
        if number != 1 {
            return Ok(false);
        }
        let (mut key, mut value) = ("", "");
        each_field(message(r, wire)?, |r, number, wire| {
            match number {
                1 => key = text(r, wire)?,
                2 => value = text(r, wire)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        entries.push((key, value));
        Ok(true)
    })?;
    Ok(RawEvent(entries))
}

impl<'a> RawRecord<'a> {
    /// One `Record` message's bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<RawRecord<'a>, WireError> {
        let mut p = RawRecord::default();
        each_field(bytes, |r, number, wire| {
            match number {
                1 => p.eth_protocol = varint(r, wire)? as u32,
                2 => p.direction = varint(r, wire)? as i32,
                3 => instant(message(r, wire)?, p.time_flow_start.get_or_insert_default())?,
                4 => instant(message(r, wire)?, p.time_flow_end.get_or_insert_default())?,
                5 => {
                    let link = &mut p.data_link;
                    each_field(message(r, wire)?, |r, number, wire| {
                        match number {
                            1 => link.0 = varint(r, wire)?,
                            2 => link.1 = varint(r, wire)?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?
                }
                6 => {
                    let network = p.network.get_or_insert_default();
                    each_field(message(r, wire)?, |r, number, wire| {
                        match number {
                            1 => ip(message(r, wire)?, network.src_addr.get_or_insert_default())?,
                            2 => ip(message(r, wire)?, network.dst_addr.get_or_insert_default())?,
                            3 => network.dscp = varint(r, wire)? as u32,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?
                }
                7 => {
                    let transport = &mut p.transport;
                    each_field(message(r, wire)?, |r, number, wire| {
                        match number {
                            1 => transport.0 = varint(r, wire)? as u32,
                            2 => transport.1 = varint(r, wire)? as u32,
                            3 => transport.2 = varint(r, wire)? as u32,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?
                }
                8 => p.bytes = varint(r, wire)?,
                9 => p.packets = varint(r, wire)?,
                10 => p.interface = text(r, wire)?,
                11 => drop(varint(r, wire)?),
                12 => ip(message(r, wire)?, p.agent_ip.get_or_insert_default())?,
                13 => p.flags = varint(r, wire)? as u32,
                14 => p.icmp_type = Some(varint(r, wire)? as u32),
                15 => p.icmp_code = Some(varint(r, wire)? as u32),
                16 => p.pkt_drop_bytes = Some(varint(r, wire)?),
                17 => p.pkt_drop_packets = Some(varint(r, wire)?),
                18 => drop(varint(r, wire)?),
                19 => p.pkt_drop_latest_state = Some(varint(r, wire)? as u32),
                20 => p.pkt_drop_latest_drop_cause = varint(r, wire)? as u32,
                21 => p.dns_id = Some(varint(r, wire)? as u32),
                22 => p.dns_flags = Some(varint(r, wire)? as u32),
                23 => instant(message(r, wire)?, p.dns_latency.get_or_insert_default())?,
                24 => instant(message(r, wire)?, p.time_flow_rtt.get_or_insert_default())?,
                25 => drop(varint(r, wire)?),
                26 => {
                    let (mut interface, mut direction) = ("", 0);
                    each_field(message(r, wire)?, |r, number, wire| {
                        match number {
                            1 => interface = text(r, wire)?,
                            2 => direction = varint(r, wire)? as i32,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    p.dup_list.push((interface, direction));
                }
                27 => p.network_events.push(event(message(r, wire)?)?),
                1000 => p.sampling = varint(r, wire)? as u32,
                1001 => p.time_flow_rtt_min_ns = Some(varint(r, wire)?),
                1002 => p.time_flow_rtt_max_ns = Some(varint(r, wire)?),
                1003 => p.time_flow_handshake_rtt_ns = Some(varint(r, wire)?),
                1004 => p.tcp_retransmits = Some(varint(r, wire)?),
                1005 => p.conn_outcome = Some(text(r, wire)?),
                1006 => p.pkt_drop_latest_drop_cause_name = Some(text(r, wire)?),
                1007 => p.pkt_drop_category = Some(text(r, wire)?),
                1008 => p.dns_name = Some(text(r, wire)?),
                1009 => p.dns_query_type = Some(text(r, wire)?),
                1010 => p.dns_unanswered = Some(varint(r, wire)? != 0),
                1011 => endpoint(message(r, wire)?, p.src_endpoint.get_or_insert_default())?,
                1012 => endpoint(message(r, wire)?, p.dst_endpoint.get_or_insert_default())?,
                1013 => p.flow_direction = Some(varint(r, wire)? as u32),
                1014 => p.cluster_name = Some(text(r, wire)?),
                1015 => p.agent_name = Some(text(r, wire)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(p)
    }
}

impl<'a> RawRecords<'a> {
    /// A `Records` message's bytes: its entries are found, not yet parsed.
    pub fn parse(bytes: &'a [u8]) -> Result<RawRecords<'a>, WireError> {
        let mut records = RawRecords::default();
        each_field(bytes, |r, number, wire| {
            match number {
                1 => records.entries.push(message(r, wire)?),
                1000 => {
                    let batch = records.batch.get_or_insert_default();
                    each_field(message(r, wire)?, |r, number, wire| {
                        match number {
                            1 => batch.agent = text(r, wire)?.to_string(),
                            2 => batch.sequence = varint(r, wire)?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(records)
    }
}

mod from_prost;
#[cfg(test)]
mod tests;
