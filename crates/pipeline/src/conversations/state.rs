//! One conversation's running totals, and the record it renders.

use super::key::Endpoint;
use super::labels::LabelInterner;
use flowlens_model::names::{rcode_name, rcode_number};
use flowlens_model::tcp_flags::{
    FIN as TCP_FIN, RST as TCP_RST, SYN as TCP_SYN, SYN_ACK as TCP_SYN_ACK,
};
use flowlens_model::vocab::{CloseCause, ConnOutcome, RecordType};
use flowlens_model::{ConversationRecord, HashId};
use flowlens_model::{FlowRecord, Label, Side, SideLabels};

pub struct Conversation {
    pub hash_id: HashId,
    side_a: SideLabels,
    side_b: SideLabels,
    /// The cluster of its flows (the latest wins).
    cluster: Option<Label>,
    /// The initiator (A) and the responder (B).
    pub a: Endpoint,
    pub b: Endpoint,
    /// Whether A was told by a SYN or SYN-ACK; until then a later flow that
    /// tells may swap the sides (flows of one eviction come in any order).
    initiator_known: bool,
    pub proto: u8,
    pub bytes_ab: u64,
    pub bytes_ba: u64,
    pub packets_ab: u64,
    pub packets_ba: u64,
    pub flow_logs: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub flags: u32,
    fin_ab: bool,
    fin_ba: bool,
    /// Which of the optional totals below a flow has given (`seen::*`):
    /// a bit each instead of an `Option` each (8 bytes a field less).
    seen: u8,
    rtt_min: u64,
    rtt_max: u64,
    rtt_sum: u64,
    rtt_count: u64,
    retransmits: u64,
    drop_packets: u64,
    drop_bytes: u64,
    drop_cause: Option<Box<str>>,
    /// The DNS response code's number (named when the record is made).
    dns_rcode: Option<u16>,
    dns_name: Option<Box<str>>,
    dns_unanswered: bool,
    sampling: u32,
    /// Why it is closing, once it is, and since when (flow time).
    pub close_cause: Option<CloseCause>,
    pub terminating_since_ms: Option<i64>,
    pub last_heartbeat_ms: i64,
}

/// What a TCP flow says of who opened the connection: Some(true) when its
/// sender did (a SYN without SYN-ACK), Some(false) when its receiver did (a
/// SYN-ACK), None when it does not tell.
fn opened_by_sender(flow: &FlowRecord) -> Option<bool> {
    if flow.proto != 6 || flow.flags & TCP_SYN == 0 {
        return None;
    }
    Some(flow.flags & TCP_SYN_ACK == 0)
}

/// Who started a conversation seen first through `flow`: the sender of a
/// SYN, the receiver of a SYN-ACK, else (until a flow tells) its sender.
fn initiator(flow: &FlowRecord, src: Endpoint, dst: Endpoint) -> (Endpoint, Endpoint, bool) {
    match opened_by_sender(flow) {
        Some(true) => (src, dst, true),
        Some(false) => (dst, src, true),
        // A well-known service port (< 1024) against an ephemeral one: the
        // service is B, as for a DNS query and its response.
        None if flow.src_port < 1024 && flow.dst_port >= 1024 => (dst, src, false),
        None => (src, dst, false),
    }
}

impl Conversation {
    /// A conversation begun by `flow`, from `src` to `dst` (its endpoints,
    /// as its key gives them: parsed once per flow).
    pub fn new(
        hash_id: HashId,
        flow: &FlowRecord,
        (src, dst): (Endpoint, Endpoint),
        now_ms: i64,
    ) -> Conversation {
        let (a, b, initiator_known) = initiator(flow, src, dst);
        Conversation {
            hash_id,
            side_a: SideLabels::default(),
            side_b: SideLabels::default(),
            cluster: None,
            a,
            b,
            initiator_known,
            proto: flow.proto,
            bytes_ab: 0,
            bytes_ba: 0,
            packets_ab: 0,
            packets_ba: 0,
            flow_logs: 0,
            first_ms: flow.time_flow_start_ms,
            last_ms: flow.time_flow_end_ms,
            flags: 0,
            fin_ab: false,
            fin_ba: false,
            seen: 0,
            rtt_min: 0,
            rtt_max: 0,
            rtt_sum: 0,
            rtt_count: 0,
            retransmits: 0,
            drop_packets: 0,
            drop_bytes: 0,
            drop_cause: None,
            dns_rcode: None,
            dns_name: None,
            dns_unanswered: false,
            sampling: flow.sampling,
            close_cause: None,
            terminating_since_ms: None,
            last_heartbeat_ms: now_ms,
        }
    }

    /// Adds a flow of this conversation, whose source is `src`.
    pub fn add(&mut self, flow: &FlowRecord, src: Endpoint, labels: &mut LabelInterner) {
        let mut ab = src == self.a;
        if !self.initiator_known
            && let Some(sender_opened) = opened_by_sender(flow)
        {
            self.initiator_known = true;
            if sender_opened != ab {
                self.swap_sides();
                ab = !ab;
            }
        }
        // The latest enrichment wins; copied only when it changed.
        let (a_side, b_side) = if ab {
            (Side::Src, Side::Dst)
        } else {
            (Side::Dst, Side::Src)
        };
        if *flow.labels(a_side) != self.side_a {
            self.side_a = labels.intern(flow.labels(a_side));
        }
        if *flow.labels(b_side) != self.side_b {
            self.side_b = labels.intern(flow.labels(b_side));
        }
        if flow.cluster_name != self.cluster {
            self.cluster.clone_from(&flow.cluster_name);
        }
        if ab {
            self.bytes_ab += flow.bytes;
            self.packets_ab += flow.packets;
            self.fin_ab |= flow.flags & TCP_FIN != 0;
        } else {
            self.bytes_ba += flow.bytes;
            self.packets_ba += flow.packets;
            self.fin_ba |= flow.flags & TCP_FIN != 0;
        }
        self.flow_logs += 1;
        if flow.packets > 0 {
            self.first_ms = self.first_ms.min(flow.time_flow_start_ms);
        }
        self.last_ms = self.last_ms.max(flow.time_flow_end_ms);
        self.flags |= flow.flags;
        self.sampling = self.sampling.max(flow.sampling);
        for rtt in [
            flow.time_flow_rtt_ns,
            flow.time_flow_rtt_min_ns,
            flow.time_flow_rtt_max_ns,
        ]
        .into_iter()
        .flatten()
        {
            let first = self.seen & seen::RTT == 0;
            self.rtt_min = if first { rtt } else { self.rtt_min.min(rtt) };
            self.rtt_max = if first { rtt } else { self.rtt_max.max(rtt) };
            self.seen |= seen::RTT;
        }
        if let Some(rtt) = flow.time_flow_rtt_ns {
            // u64 ns: 584 years of summed RTTs.
            self.rtt_sum = self.rtt_sum.saturating_add(rtt);
            self.rtt_count += 1;
        }
        let bits = &mut self.seen;
        add_total(
            &mut self.retransmits,
            bits,
            seen::RETRANSMITS,
            flow.tcp_retransmits,
        );
        add_total(
            &mut self.drop_packets,
            bits,
            seen::DROP_PACKETS,
            flow.pkt_drop_packets,
        );
        add_total(
            &mut self.drop_bytes,
            bits,
            seen::DROP_BYTES,
            flow.pkt_drop_bytes,
        );
        if let Some(cause) = &flow.pkt_drop_latest_drop_cause
            && self.drop_cause.as_deref() != Some(cause.as_str())
        {
            self.drop_cause = Some(cause.as_str().into());
        }
        if let Some(rcode) = flow.dns_flags_response_code.as_deref() {
            self.dns_rcode = rcode_number(rcode).or(self.dns_rcode);
        }
        if let Some(name) = &flow.dns_name
            && self.dns_name.as_deref() != Some(name.as_str())
        {
            self.dns_name = Some(name.as_str().into());
        }
        self.dns_unanswered |= flow.dns_unanswered == Some(true);
        self.update_close_cause(flow);
    }

    fn swap_sides(&mut self) {
        std::mem::swap(&mut self.a, &mut self.b);
        std::mem::swap(&mut self.side_a, &mut self.side_b);
        std::mem::swap(&mut self.bytes_ab, &mut self.bytes_ba);
        std::mem::swap(&mut self.packets_ab, &mut self.packets_ba);
        std::mem::swap(&mut self.fin_ab, &mut self.fin_ba);
    }

    /// A conversation starts closing on a known outcome, a RST, or FIN in
    /// both directions; the outcome the kernel saw wins over flags.
    fn update_close_cause(&mut self, flow: &FlowRecord) {
        let from_outcome = match flow.conn_outcome {
            Some(ConnOutcome::Refused) => Some(CloseCause::Refused),
            Some(ConnOutcome::TimedOut) => Some(CloseCause::TimedOut),
            Some(ConnOutcome::Reset) => Some(CloseCause::Reset),
            Some(ConnOutcome::Completed) => Some(CloseCause::Completed),
            _ => None,
        };
        let from_flags = if flow.flags & TCP_RST != 0 {
            // A RST before any SYN-ACK answers the SYN: refused.
            Some(if self.flags & TCP_SYN_ACK == 0 {
                CloseCause::Refused
            } else {
                CloseCause::Reset
            })
        } else if self.fin_ab && self.fin_ba {
            Some(CloseCause::Completed)
        } else {
            None
        };
        if let Some(cause) = from_outcome.or(if self.close_cause.is_none() {
            from_flags
        } else {
            None
        }) {
            self.close_cause = Some(cause);
            self.terminating_since_ms
                .get_or_insert(flow.time_flow_end_ms.max(self.last_ms));
        }
    }

    /// The conversation record of type `record_type`.
    pub fn record(&self, record_type: RecordType, is_first: bool) -> ConversationRecord {
        let total = |bit: u8, v: u64| (self.seen & bit != 0).then_some(v);
        ConversationRecord {
            record_type,
            hash_id: self.hash_id,
            is_first,
            src_addr: self.a.addr.into(),
            src_port: self.a.port,
            dst_addr: self.b.addr.into(),
            dst_port: self.b.port,
            proto: self.proto,
            src_labels: self.side_a.clone(),
            dst_labels: self.side_b.clone(),
            cluster_name: self.cluster.clone(),
            bytes_ab: self.bytes_ab,
            bytes_ba: self.bytes_ba,
            packets_ab: self.packets_ab,
            packets_ba: self.packets_ba,
            num_flow_logs: self.flow_logs,
            time_flow_start_ms: self.first_ms,
            time_flow_end_ms: self.last_ms,
            flags: self.flags,
            sampling: self.sampling,
            time_flow_rtt_min_ns: total(seen::RTT, self.rtt_min),
            time_flow_rtt_max_ns: total(seen::RTT, self.rtt_max),
            time_flow_rtt_avg_ns: (self.rtt_count > 0).then(|| self.rtt_sum / self.rtt_count),
            tcp_retransmits: total(seen::RETRANSMITS, self.retransmits),
            pkt_drop_packets: total(seen::DROP_PACKETS, self.drop_packets),
            pkt_drop_bytes: total(seen::DROP_BYTES, self.drop_bytes),
            pkt_drop_latest_drop_cause: self.drop_cause.as_deref().map(str::to_string),
            dns_flags_response_code: self.dns_rcode.map(rcode_name),
            dns_name: self.dns_name.as_deref().map(str::to_string),
            dns_unanswered: self.dns_unanswered.then_some(true),
            close_cause: (record_type == RecordType::EndConnection)
                .then(|| self.close_cause.unwrap_or(CloseCause::Idle)),
        }
    }
}

/// Adds a flow's optional count to a total, marking it seen.
fn add_total(total: &mut u64, seen: &mut u8, bit: u8, value: Option<u64>) {
    if let Some(v) = value {
        *total += v;
        *seen |= bit;
    }
}

/// The bits of `Conversation::seen`.
mod seen {
    pub const RTT: u8 = 1;
    pub const RETRANSMITS: u8 = 2;
    pub const DROP_PACKETS: u8 = 4;
    pub const DROP_BYTES: u8 = 8;
}
