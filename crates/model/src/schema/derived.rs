//! Fields computed from other fields: the filter language, the CLI and the
//! console (which evaluates `Derivation` from `/api/fields`) read them the
//! same way, so `bytes` of a conversation is both directions everywhere.

use super::{Kind, Records, Unit};
use crate::Side;
use crate::view::{RecordView, Scalar};
use crate::vocab::{STATUSES, Status};

/// How a derived field's values come from a record's fields (JSON names).
#[derive(Debug, Clone, Copy)]
pub enum Derivation {
    /// The values of either field: an address of either end.
    Either(&'static str, &'static str),
    /// A flow's counter, or the sum of a conversation's two directions.
    Total {
        flow: &'static str,
        ab: &'static str,
        ba: &'static str,
    },
    /// The first of the fields the record has.
    FirstOf(&'static [&'static str]),
    /// The field without a prefix first (the spelling tables show), then
    /// as stored, so either spelling matches.
    WithoutPrefix {
        field: &'static str,
        prefix: &'static str,
    },
    /// A drop's category, then its cause in both spellings.
    DropReason,
    /// What happened (`vocab::Status`): each problem the record shows,
    /// its outcome or close cause, else `ok`.
    Status,
    /// `namespace/name` of one end when enrichment named it, else its address.
    Endpoint(Side),
    /// `address:port` of one end (`[v6]:port`; the address alone without port).
    Socket(Side),
}

const DROP_CAUSE: &str = "PktDropLatestDropCause";
const DROP_PREFIX: &str = "SKB_DROP_REASON_";

fn side_name(side: Side, field: &'static str) -> &'static str {
    match (side, field) {
        (Side::Src, "Addr") => "SrcAddr",
        (Side::Dst, "Addr") => "DstAddr",
        (Side::Src, "Port") => "SrcPort",
        (Side::Dst, "Port") => "DstPort",
        (Side::Src, "Name") => "SrcK8S_Name",
        (Side::Dst, "Name") => "DstK8S_Name",
        (Side::Src, _) => "SrcK8S_Namespace",
        (Side::Dst, _) => "DstK8S_Namespace",
    }
}

fn text<'a>(record: &'a dyn RecordView, name: &str) -> Option<&'a str> {
    match record.first(name)? {
        Scalar::Text(t) => Some(t),
        _ => None,
    }
}

fn num(record: &dyn RecordView, name: &str) -> Option<f64> {
    record.first(name)?.as_num()
}

impl Derivation {
    /// The record fields (JSON names) the values are read from.
    pub fn inputs(&self) -> Vec<&'static str> {
        match *self {
            Derivation::Either(a, b) => vec![a, b],
            Derivation::Total { flow, ab, ba } => vec![flow, ab, ba],
            Derivation::FirstOf(names) => names.to_vec(),
            Derivation::WithoutPrefix { field, .. } => vec![field],
            Derivation::DropReason => vec!["PktDropCategory", DROP_CAUSE],
            Derivation::Status => vec![
                "PktDropPackets",
                "NetworkEvents",
                "ConnOutcome",
                "CloseCause",
                "DnsFlagsResponseCode",
                "DnsUnanswered",
                "TcpRetransmits",
            ],
            Derivation::Endpoint(side) => vec![
                side_name(side, "Namespace"),
                side_name(side, "Name"),
                side_name(side, "Addr"),
            ],
            Derivation::Socket(side) => vec![side_name(side, "Addr"), side_name(side, "Port")],
        }
    }

    /// Whether every value is a value of its own (either end of a record),
    /// rather than the first value and other spellings or lesser readings
    /// of it, so that a grouping counts a record under the first alone.
    pub fn values_are_distinct(&self) -> bool {
        matches!(self, Derivation::Either(..))
    }

    /// The values of the derived field in `record`.
    pub fn values<'a>(&self, record: &'a dyn RecordView) -> Vec<Scalar<'a>> {
        let mut out = Vec::new();
        match *self {
            Derivation::Either(a, b) => {
                record.values(a, &mut out);
                record.values(b, &mut out);
            }
            Derivation::Total { flow, ab, ba } => {
                if let Some(v) = num(record, flow) {
                    out.push(Scalar::Num(v));
                } else if let (a, b) = (num(record, ab), num(record, ba))
                    && (a.is_some() || b.is_some())
                {
                    out.push(Scalar::Num(a.unwrap_or(0.0) + b.unwrap_or(0.0)));
                }
            }
            Derivation::FirstOf(names) => {
                out.extend(names.iter().find_map(|n| num(record, n)).map(Scalar::Num));
            }
            Derivation::WithoutPrefix { field, prefix } => {
                if let Some(value) = text(record, field) {
                    if let Some(short) = value.strip_prefix(prefix) {
                        out.push(Scalar::Text(short));
                    }
                    out.push(Scalar::Text(value));
                }
            }
            Derivation::DropReason => {
                out.extend(text(record, "PktDropCategory").map(Scalar::Text));
                out.extend(
                    Derivation::WithoutPrefix {
                        field: DROP_CAUSE,
                        prefix: DROP_PREFIX,
                    }
                    .values(record),
                );
            }
            Derivation::Status => out = status(record),
            Derivation::Endpoint(side) => {
                let name = text(record, side_name(side, "Name")).filter(|n| !n.is_empty());
                let namespace = text(record, side_name(side, "Namespace"));
                match (namespace, name) {
                    (Some(ns), Some(name)) if !ns.is_empty() && ns != name => {
                        out.push(Scalar::Owned(format!("{ns}/{name}")))
                    }
                    (_, Some(name)) => out.push(Scalar::Text(name)),
                    _ => out.extend(text(record, side_name(side, "Addr")).map(Scalar::Text)),
                }
            }
            Derivation::Socket(side) => {
                if let Some(addr) = text(record, side_name(side, "Addr")) {
                    out.push(match num(record, side_name(side, "Port")) {
                        Some(port) if port > 0.0 && addr.contains(':') => {
                            Scalar::Owned(format!("[{addr}]:{port}"))
                        }
                        Some(port) if port > 0.0 => Scalar::Owned(format!("{addr}:{port}")),
                        _ => Scalar::Text(addr),
                    });
                }
            }
        }
        out
    }

    /// The derivation's name and inputs, for `/api/fields`.
    pub fn op(&self) -> &'static str {
        match self {
            Derivation::Either(..) => "either",
            Derivation::Total { .. } => "total",
            Derivation::FirstOf(_) => "first_of",
            Derivation::WithoutPrefix { .. } => "without_prefix",
            Derivation::DropReason => "drop_reason",
            Derivation::Status => "status",
            Derivation::Endpoint(_) => "endpoint",
            Derivation::Socket(_) => "socket",
        }
    }

    /// The prefix a `WithoutPrefix` strips.
    pub fn prefix(&self) -> Option<&'static str> {
        match self {
            Derivation::WithoutPrefix { prefix, .. } => Some(prefix),
            _ => None,
        }
    }
}

fn status(record: &dyn RecordView) -> Vec<Scalar<'_>> {
    let mut out = Vec::new();
    let push = |s: Status, out: &mut Vec<Scalar<'_>>| {
        if !out.iter().any(|v| v.as_text() == Some(s.as_str())) {
            out.push(Scalar::Text(s.as_str()));
        }
    };
    if num(record, "PktDropPackets").is_some_and(|n| n > 0.0) || record.has_drop_event() {
        push(Status::Dropped, &mut out);
    }
    for name in ["ConnOutcome", "CloseCause"] {
        if let Some(s) = text(record, name).and_then(Status::from_name) {
            push(s, &mut out);
        }
    }
    if text(record, "DnsFlagsResponseCode").is_some_and(|r| r != "NoError") {
        push(Status::DnsError, &mut out);
    }
    if record.first("DnsUnanswered") == Some(Scalar::Bool(true)) {
        push(Status::DnsUnanswered, &mut out);
    }
    if num(record, "TcpRetransmits").is_some_and(|n| n > 0.0) {
        push(Status::Retransmitted, &mut out);
    }
    let problem = out.iter().any(|v| {
        v.as_text()
            .and_then(Status::from_name)
            .is_some_and(Status::is_problem)
    });
    if !problem {
        push(Status::Ok, &mut out);
    }
    out
}

/// A field of the filter language computed from record fields.
#[derive(Debug, Clone, Copy)]
pub struct DerivedField {
    pub filter: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub records: Records,
    pub derivation: Derivation,
    pub doc: &'static str,
}

const fn derived(
    filter: &'static str,
    aliases: &'static [&'static str],
    kind: Kind,
    derivation: Derivation,
    doc: &'static str,
) -> DerivedField {
    DerivedField {
        filter,
        aliases,
        kind,
        records: Records::Both,
        derivation,
        doc,
    }
}

use Derivation::*;

pub const DERIVED: &[DerivedField] = &[
    derived(
        "addr",
        &[],
        Kind::Address,
        Either("SrcAddr", "DstAddr"),
        "Either end's IP address",
    ),
    derived(
        "port",
        &[],
        Kind::Number(Unit::None),
        Either("SrcPort", "DstPort"),
        "Either end's port",
    ),
    derived(
        "namespace",
        &[],
        Kind::Text,
        Either("SrcK8S_Namespace", "DstK8S_Namespace"),
        "Either end's namespace",
    ),
    derived(
        "bytes",
        &[],
        Kind::Number(Unit::Bytes),
        Total {
            flow: "Bytes",
            ab: "Bytes_AB",
            ba: "Bytes_BA",
        },
        "Bytes of the flow's frames (a conversation: both directions)",
    ),
    derived(
        "packets",
        &[],
        Kind::Number(Unit::Packets),
        Total {
            flow: "Packets",
            ab: "Packets_AB",
            ba: "Packets_BA",
        },
        "Packets (a conversation: both directions)",
    ),
    derived(
        "rtt",
        &["TimeFlowRttNs", "flow.rtt"],
        Kind::Number(Unit::Nanos),
        FirstOf(&["TimeFlowRttNs", "TimeFlowRttAvgNs"]),
        "TCP smoothed RTT (a conversation: its average); bare numbers are ms",
    ),
    derived(
        "flow.status",
        &["status"],
        Kind::Enum(&STATUSES),
        Status,
        "What happened: ok, dropped, refused, timed_out, reset, dns_error, dns_unanswered, retransmitted, ...",
    ),
    derived(
        "drop.cause",
        &["PktDropLatestDropCause"],
        Kind::Text,
        WithoutPrefix {
            field: DROP_CAUSE,
            prefix: DROP_PREFIX,
        },
        "Kernel drop reason (NETFILTER_DROP or SKB_DROP_REASON_NETFILTER_DROP)",
    ),
    derived(
        "flow.drop_reason",
        &["drop.reason"],
        Kind::Text,
        DropReason,
        "A drop's category or kernel reason, any spelling",
    ),
    derived(
        "src.endpoint",
        &[],
        Kind::Text,
        Endpoint(Side::Src),
        "The source as namespace/name when enrichment named it, else its address",
    ),
    derived(
        "dst.endpoint",
        &[],
        Kind::Text,
        Endpoint(Side::Dst),
        "The destination as namespace/name when enrichment named it, else its address",
    ),
    derived(
        "src.socket",
        &[],
        Kind::Text,
        Socket(Side::Src),
        "The source's address:port ([address]:port for IPv6)",
    ),
    derived(
        "dst.socket",
        &[],
        Kind::Text,
        Socket(Side::Dst),
        "The destination's address:port",
    ),
];
