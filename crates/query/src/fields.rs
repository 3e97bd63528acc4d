//! The fields a filter can name: canonical dotted names, netobserv's JSON
//! names as aliases, each field's type and unit, and how its values are read
//! from a record (flow or conversation, as JSON with netobserv's names).

use flowlens_model::names::{rcode_names, tcp_state_names};
use serde_json::{Map, Value};

/// A record as filters read it: fields by their JSON (netobserv) names. A
/// JSON object is one; the store's column batches are another, so the same
/// filter runs on both.
pub trait RecordView {
    /// The values of field `name`: one, several for a list, none if absent.
    fn values<'a>(&'a self, name: &str, out: &mut Vec<Scalar<'a>>);

    /// Whether a policy event of the record dropped it (NetworkEvents).
    fn has_drop_event(&self) -> bool;
}

impl RecordView for Map<String, Value> {
    fn values<'a>(&'a self, name: &str, out: &mut Vec<Scalar<'a>>) {
        json_values(self, name, out)
    }

    fn has_drop_event(&self) -> bool {
        self.get("NetworkEvents")
            .and_then(Value::as_array)
            .is_some_and(|events| events.iter().any(|e| e["Action"] == "drop"))
    }
}

/// A value of a field in one record. Fields can have several (an address
/// of either side, the statuses of a flow); a record without the field has
/// none, and every comparison on it is false.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Num(f64),
    Text(&'a str),
    Owned(String),
    Bool(bool),
}

impl Scalar<'_> {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Scalar::Text(t) => Some(t),
            Scalar::Owned(t) => Some(t),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Bytes,
    /// A duration stored in nanoseconds.
    Nanos,
    /// A duration stored in milliseconds.
    Millis,
    /// Wall-clock milliseconds since the epoch.
    TimestampMs,
}

/// A closed set of names, each with its number (`DnsFlagsResponseCode`
/// NXDomain = 3) or without (connection outcomes).
#[derive(Debug, Clone, Copy)]
pub struct Vocabulary {
    pub names: fn() -> Vec<(&'static str, Option<i64>)>,
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Number(Unit),
    Text,
    /// Names from a closed set: literals must be one of them.
    Enum(Vocabulary),
    Address,
    /// TCP flags, tested with `has`.
    Flags,
    Bool,
}

#[derive(Clone, Copy)]
pub enum Source {
    Json(&'static str),
    /// The field of either end: `addr` is the source or the destination.
    Either(&'static str, &'static str),
    /// Computed from other fields (named, so a store reads only those).
    Derived(
        for<'a> fn(&'a dyn RecordView) -> Vec<Scalar<'a>>,
        &'static [&'static str],
    ),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Json(n) => write!(f, "Json({n})"),
            Source::Either(a, b) => write!(f, "Either({a}, {b})"),
            Source::Derived(_, inputs) => write!(f, "Derived({})", inputs.join(", ")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    /// Other names: netobserv's JSON names and the spellings users already
    /// write (`dns.response_code`, `flow.tcp_retransmits`).
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub source: Source,
    pub doc: &'static str,
}

fn json_scalar(value: &Value) -> Option<Scalar<'_>> {
    match value {
        Value::Number(n) => n.as_f64().map(Scalar::Num),
        Value::String(s) => Some(Scalar::Text(s)),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

fn json_values<'a>(record: &'a Map<String, Value>, name: &str, out: &mut Vec<Scalar<'a>>) {
    match record.get(name) {
        Some(Value::Array(items)) => out.extend(items.iter().filter_map(json_scalar)),
        Some(v) => out.extend(json_scalar(v)),
        None => {}
    }
}

impl FieldDef {
    /// The values of this field in `record`.
    pub fn values<'a>(&self, record: &'a dyn RecordView) -> Vec<Scalar<'a>> {
        let mut out = Vec::new();
        match self.source {
            Source::Json(name) => record.values(name, &mut out),
            Source::Either(a, b) => {
                record.values(a, &mut out);
                record.values(b, &mut out);
            }
            Source::Derived(f, _) => out = f(record),
        }
        out
    }

    /// The values a record is grouped by (top-K, topology): every end of an
    /// either-end field, but one value of a derived field, whose further
    /// values are other spellings or lesser readings of the first (a drop
    /// cause with and without `SKB_DROP_REASON_`), so no record counts twice.
    pub fn group_values<'a>(&self, record: &'a dyn RecordView) -> Vec<Scalar<'a>> {
        let mut values = self.values(record);
        if matches!(self.source, Source::Derived(..)) {
            values.truncate(1);
        }
        values
    }

    /// The unit of a bare number compared with this field when it was
    /// named `as_written`: netobserv's names keep their stored unit
    /// (`TimeFlowRttNs > 50000` is in ns), dotted names take ms.
    pub fn bare_unit(&self, as_written: &str) -> Unit {
        let netobserv_name = as_written.starts_with(|c: char| c.is_ascii_uppercase());
        match self.kind {
            Kind::Number(Unit::Nanos) if !netobserv_name => Unit::Millis,
            Kind::Number(u) => u,
            _ => Unit::None,
        }
    }

    /// The record fields (JSON names) this field is read from.
    pub fn inputs(&self) -> Vec<&'static str> {
        match self.source {
            Source::Json(name) => vec![name],
            Source::Either(a, b) => vec![a, b],
            Source::Derived(_, inputs) => inputs.to_vec(),
        }
    }

    /// Every name the field answers to.
    pub fn all_names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

fn first<'a>(record: &'a dyn RecordView, name: &str) -> Option<Scalar<'a>> {
    let mut out = Vec::new();
    record.values(name, &mut out);
    out.into_iter().next()
}

fn num(record: &dyn RecordView, name: &str) -> Option<f64> {
    match first(record, name)? {
        Scalar::Num(n) => Some(n),
        _ => None,
    }
}

fn text<'a>(record: &'a dyn RecordView, name: &str) -> Option<&'a str> {
    match first(record, name)? {
        Scalar::Text(t) => Some(t),
        _ => None,
    }
}

/// Bytes of a flow, or both directions of a conversation.
fn total(record: &dyn RecordView, name: &'static str) -> Vec<Scalar<'static>> {
    if let Some(v) = num(record, name) {
        return vec![Scalar::Num(v)];
    }
    let (ab, ba) = (
        num(record, &format!("{name}_AB")),
        num(record, &format!("{name}_BA")),
    );
    match (ab, ba) {
        (None, None) => vec![],
        (a, b) => vec![Scalar::Num(a.unwrap_or(0.0) + b.unwrap_or(0.0))],
    }
}

fn bytes(record: &dyn RecordView) -> Vec<Scalar<'_>> {
    total(record, "Bytes")
}

fn packets(record: &dyn RecordView) -> Vec<Scalar<'_>> {
    total(record, "Packets")
}

/// The flow's RTT, or a conversation's average.
fn rtt(record: &dyn RecordView) -> Vec<Scalar<'_>> {
    num(record, "TimeFlowRttNs")
        .or_else(|| num(record, "TimeFlowRttAvgNs"))
        .map(Scalar::Num)
        .into_iter()
        .collect()
}

/// What happened to a flow, as the network-events queries users write ask
/// it: `dropped`, the connection outcome or close cause (`refused`,
/// `timed_out`, `reset`, ...), `dns_error`, `dns_unanswered`,
/// `retransmitted`, and `ok` when nothing went wrong.
fn status(record: &dyn RecordView) -> Vec<Scalar<'_>> {
    let mut out = Vec::new();
    let dropped = num(record, "PktDropPackets").is_some_and(|n| n > 0.0) || record.has_drop_event();
    if dropped {
        out.push(Scalar::Text("dropped"));
    }
    for name in ["ConnOutcome", "CloseCause"] {
        if let Some(t) = text(record, name)
            && !out.iter().any(|s| s.as_text() == Some(t))
        {
            out.push(Scalar::Text(t));
        }
    }
    if text(record, "DnsFlagsResponseCode").is_some_and(|r| r != "NoError") {
        out.push(Scalar::Text("dns_error"));
    }
    if first(record, "DnsUnanswered") == Some(Scalar::Bool(true)) {
        out.push(Scalar::Text("dns_unanswered"));
    }
    if num(record, "TcpRetransmits").is_some_and(|n| n > 0.0) {
        out.push(Scalar::Text("retransmitted"));
    }
    let bad = [
        "dropped",
        "refused",
        "timed_out",
        "reset",
        "error",
        "aborted",
        "dns_error",
        "dns_unanswered",
        "retransmitted",
    ];
    if !out
        .iter()
        .any(|s| s.as_text().is_some_and(|t| bad.contains(&t)))
    {
        out.push(Scalar::Text("ok"));
    }
    out
}

const STATUSES: &[&str] = &[
    "ok",
    "dropped",
    "refused",
    "timed_out",
    "reset",
    "error",
    "aborted",
    "established",
    "completed",
    "idle",
    "active",
    "dns_error",
    "dns_unanswered",
    "retransmitted",
];

/// Why a flow was dropped, in every spelling: the category
/// (`policy_denied`), the kernel's reason (`SKB_DROP_REASON_NETFILTER_DROP`)
/// and its short form (`NETFILTER_DROP`).
fn drop_reason(record: &dyn RecordView) -> Vec<Scalar<'_>> {
    let mut out: Vec<Scalar> = text(record, "PktDropCategory")
        .map(Scalar::Text)
        .into_iter()
        .collect();
    out.extend(drop_cause(record));
    out
}

/// The drop cause in both spellings (`NETFILTER_DROP` matches).
fn drop_cause(record: &dyn RecordView) -> Vec<Scalar<'_>> {
    let mut out = Vec::new();
    if let Some(cause) = text(record, "PktDropLatestDropCause") {
        // The short spelling first: it is the one shown when grouping.
        if let Some(short) = cause.strip_prefix("SKB_DROP_REASON_") {
            out.push(Scalar::Text(short));
        }
        out.push(Scalar::Text(cause));
    }
    out
}

fn rcodes() -> Vec<(&'static str, Option<i64>)> {
    rcode_names()
        .iter()
        .enumerate()
        .map(|(n, name)| (*name, Some(n as i64)))
        .collect()
}

fn tcp_states() -> Vec<(&'static str, Option<i64>)> {
    tcp_state_names()
        .iter()
        .enumerate()
        .map(|(n, name)| (*name, Some(n as i64 + 1)))
        .collect()
}

fn protocols() -> Vec<(&'static str, Option<i64>)> {
    vec![
        ("icmp", Some(1)),
        ("igmp", Some(2)),
        ("tcp", Some(6)),
        ("udp", Some(17)),
        ("gre", Some(47)),
        ("esp", Some(50)),
        ("icmpv6", Some(58)),
        ("sctp", Some(132)),
    ]
}

fn directions() -> Vec<(&'static str, Option<i64>)> {
    vec![
        ("ingress", Some(0)),
        ("egress", Some(1)),
        ("inner", Some(2)),
    ]
}

fn words(list: &'static [&'static str]) -> Vec<(&'static str, Option<i64>)> {
    list.iter().map(|w| (*w, None)).collect()
}

fn outcomes() -> Vec<(&'static str, Option<i64>)> {
    words(&[
        "established",
        "completed",
        "refused",
        "timed_out",
        "reset",
        "error",
        "aborted",
    ])
}

fn close_causes() -> Vec<(&'static str, Option<i64>)> {
    words(&[
        "completed",
        "reset",
        "refused",
        "timed_out",
        "idle",
        "active",
    ])
}

fn record_types() -> Vec<(&'static str, Option<i64>)> {
    words(&["flowLog", "newConnection", "heartbeat", "endConnection"])
}

fn statuses() -> Vec<(&'static str, Option<i64>)> {
    words(STATUSES)
}

fn drop_categories() -> Vec<(&'static str, Option<i64>)> {
    words(&[
        "policy_denied",
        "no_socket",
        "no_route",
        "checksum",
        "ttl_exceeded",
        "queue_full",
        "malformed",
        "filtered",
        "tcp_state",
        "other",
    ])
}

const fn field(
    name: &'static str,
    aliases: &'static [&'static str],
    kind: Kind,
    source: Source,
    doc: &'static str,
) -> FieldDef {
    FieldDef {
        name,
        aliases,
        kind,
        source,
        doc,
    }
}

use Kind::*;
use Source::*;

const fn vocab(names: fn() -> Vec<(&'static str, Option<i64>)>) -> Kind {
    Enum(Vocabulary { names })
}

pub const FIELD_DEFS: &[FieldDef] = &[
    field(
        "src.addr",
        &["SrcAddr"],
        Address,
        Json("SrcAddr"),
        "Source IP address",
    ),
    field(
        "dst.addr",
        &["DstAddr"],
        Address,
        Json("DstAddr"),
        "Destination IP address",
    ),
    field(
        "addr",
        &[],
        Address,
        Either("SrcAddr", "DstAddr"),
        "Either end's IP address",
    ),
    field(
        "src.port",
        &["SrcPort"],
        Number(Unit::None),
        Json("SrcPort"),
        "Source port",
    ),
    field(
        "dst.port",
        &["DstPort"],
        Number(Unit::None),
        Json("DstPort"),
        "Destination port",
    ),
    field(
        "port",
        &[],
        Number(Unit::None),
        Either("SrcPort", "DstPort"),
        "Either end's port",
    ),
    field(
        "proto",
        &["protocol"],
        vocab(protocols),
        Json("Proto"),
        "IP protocol: tcp, udp, icmp, icmpv6, sctp or a number",
    ),
    field(
        "etype",
        &[],
        Number(Unit::None),
        Json("Etype"),
        "EtherType (2048 IPv4, 34525 IPv6)",
    ),
    field(
        "dscp",
        &[],
        Number(Unit::None),
        Json("Dscp"),
        "DSCP of the IP header",
    ),
    field(
        "icmp.type",
        &["IcmpType"],
        Number(Unit::None),
        Json("IcmpType"),
        "ICMP type",
    ),
    field(
        "icmp.code",
        &["IcmpCode"],
        Number(Unit::None),
        Json("IcmpCode"),
        "ICMP code",
    ),
    field(
        "src.mac",
        &["SrcMac"],
        Text,
        Json("SrcMac"),
        "Source MAC address",
    ),
    field(
        "dst.mac",
        &["DstMac"],
        Text,
        Json("DstMac"),
        "Destination MAC address",
    ),
    field(
        "bytes",
        &[],
        Number(Unit::Bytes),
        Derived(bytes, &["Bytes", "Bytes_AB", "Bytes_BA"]),
        "Bytes (a conversation: both directions)",
    ),
    field(
        "packets",
        &[],
        Number(Unit::None),
        Derived(packets, &["Packets", "Packets_AB", "Packets_BA"]),
        "Packets (a conversation: both directions)",
    ),
    field(
        "bytes.ab",
        &["Bytes_AB"],
        Number(Unit::Bytes),
        Json("Bytes_AB"),
        "Conversation bytes from A (the initiator) to B",
    ),
    field(
        "bytes.ba",
        &["Bytes_BA"],
        Number(Unit::Bytes),
        Json("Bytes_BA"),
        "Conversation bytes from B to A",
    ),
    field(
        "tcp.flags",
        &["Flags"],
        Flags,
        Json("Flags"),
        "TCP flags seen: test with `has` (SYN, ACK, RST, FIN, ...)",
    ),
    field(
        "time.start",
        &["TimeFlowStartMs"],
        Number(Unit::TimestampMs),
        Json("TimeFlowStartMs"),
        "First packet, ms since the epoch",
    ),
    field(
        "time.end",
        &["TimeFlowEndMs"],
        Number(Unit::TimestampMs),
        Json("TimeFlowEndMs"),
        "Last packet, ms since the epoch",
    ),
    field(
        "interface",
        &["Interfaces"],
        Text,
        Json("Interfaces"),
        "An interface the flow crossed",
    ),
    field(
        "agent",
        &["AgentIP"],
        Address,
        Json("AgentIP"),
        "The agent's address",
    ),
    field(
        "sampling",
        &[],
        Number(Unit::None),
        Json("Sampling"),
        "1 in N packets accounted",
    ),
    field(
        "flow.direction",
        &["FlowDirection", "direction"],
        vocab(directions),
        Json("FlowDirection"),
        "ingress, egress or inner (both ends on the host)",
    ),
    field(
        "rtt",
        &["TimeFlowRttNs", "flow.rtt"],
        Number(Unit::Nanos),
        Derived(rtt, &["TimeFlowRttNs", "TimeFlowRttAvgNs"]),
        "TCP smoothed RTT (a conversation: its average); bare numbers are ms",
    ),
    field(
        "rtt.min",
        &["TimeFlowRttMinNs"],
        Number(Unit::Nanos),
        Json("TimeFlowRttMinNs"),
        "Lowest RTT sample",
    ),
    field(
        "rtt.max",
        &["TimeFlowRttMaxNs"],
        Number(Unit::Nanos),
        Json("TimeFlowRttMaxNs"),
        "Highest RTT sample",
    ),
    field(
        "rtt.handshake",
        &["TimeFlowHandshakeRttNs"],
        Number(Unit::Nanos),
        Json("TimeFlowHandshakeRttNs"),
        "RTT of the TCP handshake",
    ),
    field(
        "tcp.retransmits",
        &["TcpRetransmits", "flow.tcp_retransmits", "retransmits"],
        Number(Unit::None),
        Json("TcpRetransmits"),
        "Retransmitted TCP segments",
    ),
    field(
        "conn.outcome",
        &["ConnOutcome"],
        vocab(outcomes),
        Json("ConnOutcome"),
        "Connection outcome: established, completed, refused, timed_out, reset, error, aborted",
    ),
    field(
        "conn.close_cause",
        &["CloseCause", "close_cause"],
        vocab(close_causes),
        Json("CloseCause"),
        "How a conversation ended",
    ),
    field(
        "flow.status",
        &["status"],
        vocab(statuses),
        Derived(
            status,
            &[
                "PktDropPackets",
                "NetworkEvents",
                "ConnOutcome",
                "CloseCause",
                "DnsFlagsResponseCode",
                "DnsUnanswered",
                "TcpRetransmits",
            ],
        ),
        "What happened: ok, dropped, refused, timed_out, reset, dns_error, dns_unanswered, retransmitted, ...",
    ),
    field(
        "drop.packets",
        &["PktDropPackets"],
        Number(Unit::None),
        Json("PktDropPackets"),
        "Packets the kernel dropped",
    ),
    field(
        "drop.bytes",
        &["PktDropBytes"],
        Number(Unit::Bytes),
        Json("PktDropBytes"),
        "Bytes the kernel dropped",
    ),
    field(
        "drop.cause",
        &["PktDropLatestDropCause"],
        Text,
        Derived(drop_cause, &["PktDropLatestDropCause"]),
        "Kernel drop reason (NETFILTER_DROP or SKB_DROP_REASON_NETFILTER_DROP)",
    ),
    field(
        "drop.state",
        &["PktDropLatestState"],
        vocab(tcp_states),
        Json("PktDropLatestState"),
        "TCP state at the latest drop",
    ),
    field(
        "drop.category",
        &["PktDropCategory"],
        vocab(drop_categories),
        Json("PktDropCategory"),
        "Drop category: policy_denied, no_socket, no_route, ...",
    ),
    field(
        "flow.drop_reason",
        &["drop.reason"],
        Text,
        Derived(drop_reason, &["PktDropCategory", "PktDropLatestDropCause"]),
        "A drop's category or kernel reason, any spelling",
    ),
    field(
        "dns.id",
        &["DnsId"],
        Number(Unit::None),
        Json("DnsId"),
        "DNS transaction id",
    ),
    field(
        "dns.flags",
        &["DnsFlags"],
        Number(Unit::None),
        Json("DnsFlags"),
        "DNS header flags",
    ),
    field(
        "dns.rcode",
        &["DnsFlagsResponseCode", "dns.response_code"],
        vocab(rcodes),
        Json("DnsFlagsResponseCode"),
        "DNS response code: NoError, NXDomain, ServFail, Refused, ... or its number",
    ),
    field(
        "dns.latency",
        &["DnsLatencyMs"],
        Number(Unit::Millis),
        Json("DnsLatencyMs"),
        "Time from query to response",
    ),
    field(
        "dns.name",
        &["DnsName"],
        Text,
        Json("DnsName"),
        "Queried name",
    ),
    field(
        "dns.qtype",
        &["DnsQueryType"],
        Text,
        Json("DnsQueryType"),
        "Query type (A, AAAA, ...)",
    ),
    field(
        "dns.unanswered",
        &["DnsUnanswered"],
        Bool,
        Json("DnsUnanswered"),
        "No response within the DNS timeout",
    ),
    field(
        "src.host",
        &["SrcK8S_HostName", "src.node"],
        Text,
        Json("SrcK8S_HostName"),
        "Node of the source",
    ),
    field(
        "dst.host",
        &["DstK8S_HostName", "dst.node"],
        Text,
        Json("DstK8S_HostName"),
        "Node of the destination",
    ),
    field(
        "src.namespace",
        &["SrcK8S_Namespace"],
        Text,
        Json("SrcK8S_Namespace"),
        "Namespace (network namespace on a plain host) of the source",
    ),
    field(
        "dst.namespace",
        &["DstK8S_Namespace"],
        Text,
        Json("DstK8S_Namespace"),
        "Namespace of the destination",
    ),
    field(
        "namespace",
        &[],
        Text,
        Either("SrcK8S_Namespace", "DstK8S_Namespace"),
        "Either end's namespace",
    ),
    field(
        "src.name",
        &["SrcK8S_Name"],
        Text,
        Json("SrcK8S_Name"),
        "Name of the source (pod, or network namespace)",
    ),
    field(
        "dst.name",
        &["DstK8S_Name"],
        Text,
        Json("DstK8S_Name"),
        "Name of the destination",
    ),
    field(
        "src.type",
        &["SrcK8S_Type"],
        Text,
        Json("SrcK8S_Type"),
        "Kind of the source (Node, NetworkNamespace, Pod, ...)",
    ),
    field(
        "dst.type",
        &["DstK8S_Type"],
        Text,
        Json("DstK8S_Type"),
        "Kind of the destination",
    ),
    field(
        "src.subnet",
        &["SrcSubnetLabel"],
        Text,
        Json("SrcSubnetLabel"),
        "Subnet label of the source",
    ),
    field(
        "dst.subnet",
        &["DstSubnetLabel"],
        Text,
        Json("DstSubnetLabel"),
        "Subnet label of the destination",
    ),
    field(
        "record.type",
        &["_RecordType"],
        vocab(record_types),
        Json("_RecordType"),
        "flowLog, newConnection, heartbeat, endConnection",
    ),
    field(
        "conversation",
        &["_HashId"],
        Text,
        Json("_HashId"),
        "Conversation id",
    ),
];

/// The field named `name` (canonical or alias, case-insensitive).
pub fn lookup(name: &str) -> Option<&'static FieldDef> {
    FIELD_DEFS
        .iter()
        .find(|f| f.all_names().any(|n| n.eq_ignore_ascii_case(name)))
}

/// The field name nearest to `name`, if it looks like a typo of one.
pub fn nearest_field(name: &str) -> Option<String> {
    crate::error::nearest(name, all_field_names())
}

/// Every name a filter may use, for suggestions and completion.
pub fn all_field_names() -> impl Iterator<Item = &'static str> {
    FIELD_DEFS.iter().flat_map(|f| f.all_names())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are matched case-insensitively, so `Proto` is `proto`.
    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for name in all_field_names() {
            assert!(seen.insert(name.to_lowercase()), "{name} twice");
        }
    }

    #[test]
    fn every_json_name_of_the_model_that_filters_can_use_resolves() {
        for spec in flowlens_model::FIELDS {
            if matches!(spec.name, "IfDirections" | "NetworkEvents") {
                continue; // read through flow.direction and flow.status
            }
            assert!(
                lookup(spec.name).is_some(),
                "{} has no filter field",
                spec.name
            );
        }
    }
}
