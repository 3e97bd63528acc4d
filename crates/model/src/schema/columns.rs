//! The columns of the flow and conversation tables, each showing one field
//! of the filter language (a record field or a derived one), rendered by
//! the field's kind and unit. The console reads them from `/api/fields`.

/// One column of a table.
#[derive(Debug, Clone, Copy)]
pub struct TableColumn {
    pub id: &'static str,
    pub header: &'static str,
    /// The filter name of the field it shows.
    pub field: &'static str,
    /// Shown until the user picks columns.
    pub default: bool,
}

const fn column(
    id: &'static str,
    header: &'static str,
    field: &'static str,
    default: bool,
) -> TableColumn {
    TableColumn {
        id,
        header,
        field,
        default,
    }
}

/// The flow table: netobserv's defaults (time, the two ends, protocol,
/// bytes, packets) and the columns of flowlens's features.
pub const FLOW_TABLE: &[TableColumn] = &[
    column("end", "End time", "time.end", true),
    column("start", "Start time", "time.start", false),
    column("src", "Source", "src.endpoint", true),
    column("src_addr", "Source address", "src.socket", true),
    column("dst", "Destination", "dst.endpoint", true),
    column("dst_addr", "Destination address", "dst.socket", true),
    column("src_ns", "Source namespace", "src.namespace", false),
    column("dst_ns", "Destination namespace", "dst.namespace", false),
    column("src_host", "Source node", "src.host", false),
    column("dst_host", "Destination node", "dst.host", false),
    column("src_owner", "Source owner", "src.owner", false),
    column("dst_owner", "Destination owner", "dst.owner", false),
    column("src_zone", "Source zone", "src.zone", false),
    column("dst_zone", "Destination zone", "dst.zone", false),
    column("cluster", "Cluster", "cluster", false),
    column("proto", "Protocol", "proto", true),
    column("direction", "Direction", "flow.direction", false),
    column("interfaces", "Interfaces", "interface", false),
    column("bytes", "Bytes", "bytes", true),
    column("packets", "Packets", "packets", true),
    column("flags", "TCP flags", "tcp.flags", false),
    column("rtt", "RTT", "rtt", true),
    column("retransmits", "Retransmits", "tcp.retransmits", false),
    column("outcome", "Connection", "conn.outcome", false),
    column("dns_name", "DNS name", "dns.name", true),
    column("dns_rcode", "DNS response", "dns.rcode", true),
    column("dns_latency", "DNS latency", "dns.latency", false),
    column("drop_packets", "Dropped packets", "drop.packets", false),
    column("drop_cause", "Drop cause", "drop.cause", true),
    column("drop_state", "Drop TCP state", "drop.state", false),
];

/// The conversation table: both directions' counts and the record type.
pub const CONVERSATION_TABLE: &[TableColumn] = &[
    column("type", "Record", "record.type", true),
    column("start", "Start time", "time.start", true),
    column("end", "Last seen", "time.end", true),
    column("a", "Client (A)", "src.endpoint", true),
    column("a_addr", "Client address", "src.socket", true),
    column("b", "Server (B)", "dst.endpoint", true),
    column("b_addr", "Server address", "dst.socket", true),
    column("proto", "Protocol", "proto", true),
    column("a_owner", "Client owner", "src.owner", false),
    column("b_owner", "Server owner", "dst.owner", false),
    column("bytes_ab", "Bytes A→B", "bytes.ab", true),
    column("bytes_ba", "Bytes B→A", "bytes.ba", true),
    column("flows", "Flow logs", "conversation.flow_logs", true),
    column("rtt", "RTT avg", "rtt", true),
    column("retransmits", "Retransmits", "tcp.retransmits", false),
    column("close", "Close cause", "conn.close_cause", true),
    column("dns_rcode", "DNS response", "dns.rcode", false),
    column("drop_cause", "Drop cause", "drop.cause", false),
];
