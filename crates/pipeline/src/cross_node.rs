//! Counted once across nodes. A connection between pods on two nodes is
//! seen by both nodes' agents: the packets leave the source pod on its
//! node, cross the network and enter the destination pod on another. Each
//! agent reports the same flow; summing both would double every figure.
//!
//! The rule (docs/ARCHITECTURE.md): a flow's record is the one of the node
//! hosting its source, where the packets entered the cluster network — it
//! saw every packet the other nodes saw, and the ones they did not (lost
//! on the way). The records of other nodes for the same flow and time are
//! folded into it: their interfaces (with directions) and their drops
//! (packets lost on the receiving node are only there), and what it lacks
//! (RTT, DNS, outcome) from theirs. A flow from outside the cluster, or
//! whose reporters are unknown, keeps every record (nothing to join).
//!
//! Agents evict on their own clocks, so the two records of one period reach
//! the collector up to an active timeout apart: batches are held for a
//! join window, then released in the order they came (the write-ahead
//! log's order, so a store file still holds whole log entries). A joined
//! record settles with the later of the entries it was made of, so a crash
//! between them replays the later one and stores one node's record of that
//! period — never both. A record of another node whose source's record
//! never came within the window is kept as it is (counted as unjoined):
//! nothing is dropped on a guess.

use crate::enrich::Cluster;
use flowlens_model::{Address, FlowRecord, Label};
// foldhash, as the conversation tracker: keys come from our own agents,
// looked up several times per record.
use foldhash::{HashMap, HashMapExt};
use std::collections::VecDeque;

/// Who reported a record, relative to its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The node hosting the source: this record counts.
    Source,
    /// Another node: folded into the source node's record (kept whole if
    /// none comes, as when the source's node runs no agent).
    Other,
    /// No join: the source is outside the cluster or the reporter unknown.
    Alone,
}

/// What the join did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JoinCounters {
    /// Records held in the window now.
    pub held: u64,
    /// Records of other nodes folded into their source's record.
    pub joined: u64,
    /// Records of other nodes kept whole: no record of the source's node
    /// came within the window.
    pub unjoined: u64,
    /// Records released (each flow once).
    pub released: u64,
}

/// One direction of a connection.
type FlowKey = (Address, Address, u16, u16, u8);

fn key(f: &FlowRecord) -> FlowKey {
    (f.src_addr, f.dst_addr, f.src_port, f.dst_port, f.proto)
}

struct Held {
    flow: FlowRecord,
    role: Role,
}

struct HeldBatch {
    /// The batch's number (in the order batches came).
    seq: u64,
    arrived_ms: i64,
    /// Its write-ahead log entry (0: not logged).
    lsn: u64,
    /// None: folded into another record.
    records: Vec<Option<Held>>,
}

/// Batches held for the join window.
pub struct CrossNodeJoin {
    window_ms: i64,
    batches: VecDeque<HeldBatch>,
    next_seq: u64,
    /// Held records by flow: (batch number, index in it).
    by_key: HashMap<FlowKey, Vec<(u64, usize)>>,
    pub counters: JoinCounters,
}

/// The node an address was on at `t_ms`, as the cluster says (not the
/// plain-host labels, which name this host a node too): a pod's node, or
/// the node itself.
fn node_of(cluster: &Cluster, address: Address, t_ms: i64) -> Option<&Label> {
    let labels = cluster.labels_at(address.ip()?, t_ms)?;
    match labels.kind.as_deref() {
        Some("Pod") => labels.host_name.as_ref(),
        Some("Node") => labels.name.as_ref(),
        _ => None,
    }
}

/// How long two records' times overlap (negative: the gap between them).
fn overlap(a: &FlowRecord, b: &FlowRecord) -> i64 {
    a.time_flow_end_ms.min(b.time_flow_end_ms) - a.time_flow_start_ms.max(b.time_flow_start_ms)
}

/// Two records of one flow from two agents are of the same period when
/// they overlap, or nearly (agents' clocks and evictions differ).
const NEAR_MS: i64 = 1_000;

impl CrossNodeJoin {
    pub fn new(window_ms: i64) -> CrossNodeJoin {
        CrossNodeJoin {
            window_ms,
            batches: VecDeque::new(),
            next_seq: 0,
            by_key: HashMap::new(),
            counters: JoinCounters::default(),
        }
    }

    /// Each flow with its role: its reporter (the node whose address is
    /// the record's AgentIP) against its source's node.
    pub fn roles(cluster: &Cluster, flows: Vec<FlowRecord>) -> Vec<(FlowRecord, Role)> {
        flows
            .into_iter()
            .map(|flow| {
                let at = flow.time_flow_start_ms;
                let reporter = flow.agent_ip.ip().and_then(|ip| cluster.node_at(ip, at));
                let role = match (reporter, node_of(cluster, flow.src_addr, at)) {
                    (Some(r), Some(source)) if r == source => Role::Source,
                    (Some(_), Some(_)) => Role::Other,
                    _ => Role::Alone,
                };
                (flow, role)
            })
            .collect()
    }

    /// Holds a batch (enriched, each record with its role) that came at
    /// `now_ms`.
    pub fn push(&mut self, flows: Vec<(FlowRecord, Role)>, lsn: u64, now_ms: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut records = Vec::with_capacity(flows.len());
        for (i, (flow, role)) in flows.into_iter().enumerate() {
            if role != Role::Alone {
                self.by_key.entry(key(&flow)).or_default().push((seq, i));
            }
            records.push(Some(Held { flow, role }));
        }
        self.counters.held += records.len() as u64;
        self.batches.push_back(HeldBatch {
            seq,
            arrived_ms: now_ms,
            lsn,
            records,
        });
    }

    /// The batches whose window has passed at `now_ms`, in the order they
    /// came, each with its log entry.
    pub fn release(&mut self, now_ms: i64) -> Vec<(Vec<FlowRecord>, u64)> {
        let mut out = Vec::new();
        while self
            .batches
            .front()
            .is_some_and(|b| now_ms - b.arrived_ms >= self.window_ms)
        {
            out.push(self.release_oldest());
        }
        out
    }

    /// Every batch held (at shutdown).
    pub fn drain(&mut self) -> Vec<(Vec<FlowRecord>, u64)> {
        let mut out = Vec::new();
        while !self.batches.is_empty() {
            out.push(self.release_oldest());
        }
        out
    }

    fn release_oldest(&mut self) -> (Vec<FlowRecord>, u64) {
        // The batch stays in place while its records go: a record of it
        // can still be found by another of it.
        let Some((seq, lsn, len)) = self
            .batches
            .front()
            .map(|b| (b.seq, b.lsn, b.records.len()))
        else {
            return (Vec::new(), 0);
        };
        let mut flows = Vec::with_capacity(len);
        for i in 0..len {
            let Some(held) = self.batches[0].records[i].take() else {
                continue;
            };
            self.counters.held -= 1;
            let k = key(&held.flow);
            match held.role {
                Role::Alone => flows.push(held.flow),
                Role::Source => {
                    let mut flow = held.flow;
                    self.forget(&k, seq, i);
                    let mut latest = None;
                    for (seq, j) in self.others_for(&k, &flow) {
                        if let Some(other) = self.take(seq, j) {
                            absorb(&mut flow, other);
                            self.counters.joined += 1;
                            latest = latest.max(Some((seq, j)));
                        }
                    }
                    // Joined, it settles with the latest entry it took a
                    // record from: a crash before that entry is stored
                    // replays it, and nothing is stored twice.
                    match latest {
                        Some((seq, j)) => self.put(seq, j, flow),
                        None => flows.push(flow),
                    }
                }
                Role::Other => {
                    self.forget(&k, seq, i);
                    // Its source's record came later: fold into that one.
                    match self.best(&k, &held.flow, Role::Source) {
                        Some((seq, j)) => {
                            if let Some(source) = self.record_mut(seq, j) {
                                absorb(source, held.flow);
                                self.counters.joined += 1;
                            }
                        }
                        None => {
                            self.counters.unjoined += 1;
                            flows.push(held.flow);
                        }
                    }
                }
            }
        }
        self.batches.pop_front();
        self.counters.released += flows.len() as u64;
        (flows, lsn)
    }

    /// The held records of other nodes that belong to `source`: those of
    /// its flow and period that no other held source record overlaps more.
    fn others_for(&self, k: &FlowKey, source: &FlowRecord) -> Vec<(u64, usize)> {
        let Some(places) = self.by_key.get(k) else {
            return Vec::new();
        };
        places
            .iter()
            .copied()
            .filter(|&(seq, j)| {
                let Some(other) = self.held(seq, j).filter(|h| h.role == Role::Other) else {
                    return false;
                };
                let mine = overlap(source, &other.flow);
                mine > -NEAR_MS
                    && self
                        .best(k, &other.flow, Role::Source)
                        .and_then(|(s, i)| self.held(s, i))
                        .is_none_or(|b| overlap(&b.flow, &other.flow) <= mine)
            })
            .collect()
    }

    /// The held record of `role` for flow `k` that overlaps `flow` most.
    fn best(&self, k: &FlowKey, flow: &FlowRecord, role: Role) -> Option<(u64, usize)> {
        self.by_key
            .get(k)?
            .iter()
            .copied()
            .filter_map(|(seq, j)| {
                let h = self.held(seq, j).filter(|h| h.role == role)?;
                let o = overlap(&h.flow, flow);
                (o > -NEAR_MS).then_some(((seq, j), o))
            })
            .max_by_key(|(_, o)| *o)
            .map(|(place, _)| place)
    }

    fn batch_index(&self, seq: u64) -> Option<usize> {
        let first = self.batches.front()?.seq;
        usize::try_from(seq.checked_sub(first)?).ok()
    }

    fn held(&self, seq: u64, j: usize) -> Option<&Held> {
        let b = self.batches.get(self.batch_index(seq)?)?;
        b.records.get(j)?.as_ref()
    }

    fn record_mut(&mut self, seq: u64, j: usize) -> Option<&mut FlowRecord> {
        let at = self.batch_index(seq)?;
        let b = self.batches.get_mut(at)?;
        b.records.get_mut(j)?.as_mut().map(|h| &mut h.flow)
    }

    /// Puts a joined record in a held batch's slot, to settle with it; it
    /// is still its flow's source record there (another node's record
    /// coming later folds into it).
    fn put(&mut self, seq: u64, j: usize, flow: FlowRecord) {
        let k = key(&flow);
        if let Some(at) = self.batch_index(seq)
            && let Some(slot) = self.batches.get_mut(at).and_then(|b| b.records.get_mut(j))
        {
            *slot = Some(Held {
                flow,
                role: Role::Source,
            });
            self.counters.held += 1;
            self.by_key.entry(k).or_default().push((seq, j));
        }
    }

    /// Takes a held record out of its batch (it is folded elsewhere).
    fn take(&mut self, seq: u64, j: usize) -> Option<FlowRecord> {
        let at = self.batch_index(seq)?;
        let held = self.batches.get_mut(at)?.records.get_mut(j)?.take()?;
        self.counters.held -= 1;
        self.forget(&key(&held.flow), seq, j);
        Some(held.flow)
    }

    fn forget(&mut self, k: &FlowKey, seq: u64, j: usize) {
        if let Some(places) = self.by_key.get_mut(k) {
            places.retain(|p| *p != (seq, j));
            if places.is_empty() {
                self.by_key.remove(k);
            }
        }
    }
}

fn add(into: &mut Option<u64>, more: Option<u64>) {
    if let Some(more) = more {
        *into = Some(into.unwrap_or(0) + more);
    }
}

/// Folds another node's record of the same flow and period into the
/// source node's: the counts stay the source's (it saw every packet);
/// interfaces, drops and flags add up; what the source's lacks comes from
/// the other.
pub fn absorb(source: &mut FlowRecord, other: FlowRecord) {
    // Each (interface, direction) once: two periods of the other node
    // folded into one of the source's name the same places.
    for (interface, direction) in other.interfaces.into_iter().zip(other.if_directions) {
        let known = source
            .interfaces
            .iter()
            .zip(&source.if_directions)
            .any(|(i, d)| *i == interface && *d == direction);
        if !known {
            source.interfaces.push(interface);
            source.if_directions.push(direction);
        }
    }
    source.flags |= other.flags;
    add(&mut source.pkt_drop_bytes, other.pkt_drop_bytes);
    add(&mut source.pkt_drop_packets, other.pkt_drop_packets);
    if source.pkt_drop_latest_drop_cause.is_none() {
        source.pkt_drop_latest_drop_cause = other.pkt_drop_latest_drop_cause;
        source.pkt_drop_latest_state = other.pkt_drop_latest_state;
        source.pkt_drop_category = other.pkt_drop_category;
    }
    if source.time_flow_rtt_ns.is_none() {
        source.time_flow_rtt_ns = other.time_flow_rtt_ns;
        source.time_flow_rtt_min_ns = other.time_flow_rtt_min_ns;
        source.time_flow_rtt_max_ns = other.time_flow_rtt_max_ns;
    }
    source.time_flow_handshake_rtt_ns = source
        .time_flow_handshake_rtt_ns
        .or(other.time_flow_handshake_rtt_ns);
    // The same packets retransmitted, seen twice: the larger count.
    source.tcp_retransmits = source.tcp_retransmits.max(other.tcp_retransmits);
    source.conn_outcome = source.conn_outcome.take().or(other.conn_outcome);
    if source.dns_id.is_none() && other.dns_id.is_some() {
        source.dns_id = other.dns_id;
        source.dns_flags = other.dns_flags;
        source.dns_flags_response_code = other.dns_flags_response_code;
        source.dns_latency_ms = other.dns_latency_ms;
        source.dns_name = other.dns_name;
        source.dns_query_type = other.dns_query_type;
        source.dns_unanswered = other.dns_unanswered;
    }
    if let Some(events) = other.network_events {
        let mine = source.network_events.get_or_insert_default();
        for e in events {
            if !mine.contains(&e) {
                mine.push(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(agent: &str, start: i64, end: i64, iface: &str) -> FlowRecord {
        FlowRecord {
            src_addr: "198.18.1.2".into(),
            dst_addr: "198.18.2.2".into(),
            src_port: 40_000,
            dst_port: 80,
            proto: 6,
            bytes: 1_000,
            packets: 10,
            time_flow_start_ms: start,
            time_flow_end_ms: end,
            interfaces: vec![iface.into()],
            if_directions: vec![1],
            agent_ip: agent.into(),
            ..FlowRecord::default()
        }
    }

    fn totals(batches: &[(Vec<FlowRecord>, u64)]) -> (u64, usize) {
        let flows: Vec<&FlowRecord> = batches.iter().flat_map(|(f, _)| f).collect();
        (flows.iter().map(|f| f.bytes).sum(), flows.len())
    }

    #[test]
    fn the_other_nodes_record_folds_into_the_sources_whichever_comes_first() {
        for source_first in [true, false] {
            let mut join = CrossNodeJoin::new(6_000);
            let source = flow("198.18.0.1", 1_000, 5_000, "veth-a");
            let mut other = flow("198.18.0.2", 1_001, 5_300, "veth-b");
            other.pkt_drop_packets = Some(2);
            other.pkt_drop_latest_drop_cause = Some("SKB_DROP_REASON_NETFILTER_DROP".into());
            let (first, second) = if source_first {
                ((source, Role::Source), (other, Role::Other))
            } else {
                ((other, Role::Other), (source, Role::Source))
            };
            join.push(vec![first], 7, 10_000);
            join.push(vec![second], 8, 10_500);
            assert!(join.release(15_999).is_empty(), "held for the window");
            let out = join.release(16_600);
            assert_eq!(out.iter().map(|(_, lsn)| *lsn).collect::<Vec<_>>(), [7, 8]);
            assert_eq!(totals(&out), (1_000, 1), "counted once");
            assert!(out[0].0.is_empty(), "stored with the later entry");
            let joined = out.iter().flat_map(|(f, _)| f).next().unwrap();
            assert_eq!(joined.agent_ip, Address::from("198.18.0.1"));
            assert_eq!(joined.interfaces, ["veth-a", "veth-b"]);
            assert_eq!(joined.pkt_drop_packets, Some(2));
            assert_eq!(join.counters.joined, 1);
            assert_eq!(join.counters.held, 0);
        }
    }

    #[test]
    fn a_record_of_a_third_node_joins_one_already_joined() {
        let mut join = CrossNodeJoin::new(6_000);
        join.push(
            vec![(flow("198.18.0.1", 0, 1_000, "a"), Role::Source)],
            1,
            0,
        );
        join.push(
            vec![(flow("198.18.0.2", 0, 1_000, "b"), Role::Other)],
            2,
            100,
        );
        // The source's record goes (joined with b's) before c's comes.
        assert_eq!(totals(&join.release(6_000)), (0, 0));
        join.push(
            vec![(flow("198.18.0.3", 0, 1_000, "c"), Role::Other)],
            3,
            6_050,
        );
        let out = join.drain();
        assert_eq!(totals(&out), (1_000, 1), "counted once");
        let f = out.iter().flat_map(|(f, _)| f).next().unwrap();
        assert_eq!(f.interfaces, ["a", "b", "c"]);
        assert_eq!(join.counters.unjoined, 0);
    }

    #[test]
    fn both_records_in_one_batch_join_too() {
        let mut join = CrossNodeJoin::new(6_000);
        let source = flow("198.18.0.1", 0, 1_000, "a");
        let other = flow("198.18.0.2", 0, 1_000, "b");
        join.push(vec![(other, Role::Other), (source, Role::Source)], 1, 0);
        let out = join.drain();
        assert_eq!(totals(&out), (1_000, 1));
        assert_eq!(join.counters.joined, 1);
    }

    #[test]
    fn periods_pair_with_the_period_they_overlap_most() {
        let mut join = CrossNodeJoin::new(6_000);
        // The source node evicts at 5 s and 10 s, the other at 5.3 and 10.3.
        join.push(
            vec![(flow("198.18.0.1", 0, 5_000, "a"), Role::Source)],
            1,
            5_000,
        );
        join.push(
            vec![(flow("198.18.0.2", 10, 5_300, "b"), Role::Other)],
            2,
            5_300,
        );
        join.push(
            vec![(flow("198.18.0.1", 5_001, 10_000, "a"), Role::Source)],
            3,
            10_000,
        );
        join.push(
            vec![(flow("198.18.0.2", 5_301, 10_300, "b"), Role::Other)],
            4,
            10_300,
        );
        let out = join.drain();
        assert_eq!(totals(&out), (2_000, 2));
        for (flows, _) in &out {
            for f in flows {
                assert_eq!(f.interfaces, ["a", "b"], "{f:?}");
            }
        }
    }

    #[test]
    fn a_record_without_its_sources_is_kept_and_counted() {
        let mut join = CrossNodeJoin::new(6_000);
        join.push(
            vec![(flow("198.18.0.2", 0, 1_000, "b"), Role::Other)],
            1,
            1_000,
        );
        // The source's record of a period long before does not take it.
        join.push(
            vec![(flow("198.18.0.1", -60_000, -50_000, "a"), Role::Source)],
            2,
            1_100,
        );
        join.push(
            vec![(flow("198.18.9.9", 0, 1_000, "x"), Role::Alone)],
            3,
            1_200,
        );
        let out = join.drain();
        assert_eq!(totals(&out), (3_000, 3));
        assert_eq!(join.counters.unjoined, 1);
        assert_eq!(join.counters.released, 3);
    }
}
