//! Per-interface kernel entries to flow records, counting each packet once.
//!
//! The kernel keeps exact counters per (flow, interface, direction). A packet
//! that crosses veth → bridge → veth shows in several of them. For each flow
//! we report the counters of one interface, its *primary*: the one that saw
//! the flow first. The choice is remembered across evictions, so a packet that
//! crossed the primary before an eviction and another interface after it is
//! never counted twice, and every packet on the primary is counted once.
//! The record still lists every interface the flow crossed.

use crate::clock::MonoToWall;
use crate::extras::{ExtrasNames, FlowExtras, apply};
use crate::kernel_types::{FlowKey, FlowMetrics, ip_from_kernel};
use flowlens_model::FlowRecord;
use flowlens_model::{Address, MacAddr};
use std::collections::HashMap;

/// A flow without the interface it was seen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct FlowIdentity {
    key: FlowKey,
}

impl FlowIdentity {
    fn of(key: &FlowKey) -> (FlowIdentity, Crossing) {
        let mut k = *key;
        let crossing = Crossing {
            if_index: k.if_index,
            direction: k.direction,
        };
        k.if_index = 0;
        k.direction = 0;
        (FlowIdentity { key: k }, crossing)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Crossing {
    if_index: u32,
    direction: u8,
}

/// One kernel entry: a flow on one interface, in one direction. The key
/// keeps its crossing (identity and crossing are derived from it), so an
/// entry is the size of the kernel's and the drained vector becomes the
/// entries in place.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: FlowKey,
    metrics: FlowMetrics,
}

/// A flow's primary: its key on the crossing that counts it.
#[derive(Debug, Clone, Copy)]
struct Primary {
    key: FlowKey,
    last_counted_period: u64,
}

/// The flow and interface of a kernel key.
trait OnCrossing {
    fn kernel_key(&self) -> &FlowKey;
    fn identity(&self) -> FlowIdentity {
        FlowIdentity::of(self.kernel_key()).0
    }
    fn crossing(&self) -> Crossing {
        FlowIdentity::of(self.kernel_key()).1
    }
}

impl OnCrossing for Entry {
    fn kernel_key(&self) -> &FlowKey {
        &self.key
    }
}

impl OnCrossing for Primary {
    fn kernel_key(&self) -> &FlowKey {
        &self.key
    }
}

/// Periods a flow's primary is kept after the flow was last seen.
const PRIMARY_IDLE_PERIODS: u64 = 3;

impl Primary {
    /// Whether it is still kept in `period`.
    fn recent(&self, period: u64) -> bool {
        period - self.last_counted_period <= PRIMARY_IDLE_PERIODS
    }
}

/// Records made and handed on at a time: an eviction of 100,000 flows is
/// never all in memory as records (a record is ~450 bytes, its kernel
/// entry 104).
pub const RECORDS_PER_CHUNK: usize = 4096;

/// What the merger needs to know about the host.
pub trait InterfaceNames {
    /// The interface's name, or None when it is unknown (gone long ago).
    fn name_of(&self, if_index: u32) -> Option<String>;
    /// Whether the interface is still watched.
    fn is_watched(&self, if_index: u32) -> bool;
}

#[derive(Debug, Default)]
pub struct MergeCounters {
    /// Packets seen only on a secondary interface after an eviction, already
    /// counted on the primary before it (in flight across the eviction).
    pub in_flight_duplicates: u64,
    /// Times a flow's primary interface changed (the primary disappeared or
    /// stopped carrying the flow).
    pub primary_changes: u64,
    /// Feature data of loopback sockets (127.0.0.0/8, ::1) left out because
    /// `lo` is not watched: their traffic is not captured either, and they
    /// are mostly the host talking to itself (scrapes, API queries).
    pub loopback_extras_skipped: u64,
}

/// The interface index of `lo` in every network namespace.
const LOOPBACK_IF_INDEX: u32 = 1;

fn is_loopback(ip: &[u8; 16]) -> bool {
    ip_from_kernel(*ip).is_loopback()
}

#[derive(Default)]
pub struct FlowMerger {
    /// Each flow's primary, sorted by identity: merged with each
    /// eviction's sorted entries in one pass (no hashing of keys that
    /// packets choose).
    primaries: Vec<Primary>,
    period: u64,
    pub counters: MergeCounters,
}

pub struct RecordContext<'a> {
    pub clock: MonoToWall,
    pub agent_ip: std::net::IpAddr,
    pub sampling: u32,
    pub names: ExtrasNames<'a>,
}

/// Where a record of this eviction comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The entries `start..end` of one flow, counted on `primary`.
    Flow {
        start: u32,
        end: u32,
        primary: Crossing,
    },
    /// Feature data of a flow that moved no packet through a watched
    /// interface.
    ExtrasOnly(u32),
}

impl FlowMerger {
    /// Turns one eviction's entries (in any order; a key seen twice is
    /// summed) and the feature data of the period (keyed by flow identity:
    /// interface and direction zero) into records, handed to `emit`
    /// `RECORDS_PER_CHUNK` at a time in the order their first packets were
    /// seen. Feature data of a flow that moved no packet through a watched
    /// interface (a packet dropped before it got there) makes a record of
    /// its own, with zero bytes and packets. Returns how many records.
    pub fn merge(
        &mut self,
        entries: Vec<(FlowKey, FlowMetrics)>,
        mut extras: HashMap<FlowKey, FlowExtras>,
        names: &dyn InterfaceNames,
        ctx: &RecordContext<'_>,
        emit: &mut dyn FnMut(&[FlowRecord]),
    ) -> u64 {
        self.period += 1;
        let entries = flows_side_by_side(entries);
        let mut sources = self.choose_primaries(&entries, names);

        // Feature data of flows without entries.
        let has_entries = |key: &FlowKey| {
            entries
                .binary_search_by(|e| e.identity().key.cmp(key))
                .is_ok()
        };
        let mut extras_only: Vec<(FlowKey, FlowExtras)> =
            extras.extract_if(|key, _| !has_entries(key)).collect();
        let loopback_watched = names.is_watched(LOOPBACK_IF_INDEX);
        extras_only.retain(|(identity, _)| {
            let skipped =
                !loopback_watched && is_loopback(&identity.src_ip) && is_loopback(&identity.dst_ip);
            self.counters.loopback_extras_skipped += skipped as u64;
            !skipped
        });
        sources.extend(
            extras_only
                .iter()
                .enumerate()
                .map(|(i, (_, x))| (x.last_mono_ns(), Source::ExtrasOnly(i as u32))),
        );
        // Records leave in the order their first packets were seen, finer
        // than the milliseconds they carry (a DNS query comes before its
        // response).
        sources.sort_by_key(|(first_ns, _)| *first_ns);

        let mut chunk = Vec::with_capacity(RECORDS_PER_CHUNK.min(sources.len()));
        let mut made = 0;
        for (_, source) in sources {
            let record = match source {
                Source::Flow {
                    start,
                    end,
                    primary,
                } => {
                    let flow = &entries[start as usize..end as usize];
                    let key = flow[0].identity().key;
                    let mut record = build_record(&key, flow, primary, names, ctx);
                    if let Some(x) = extras.remove(&key) {
                        apply(&mut record, &x, &ctx.names);
                    }
                    record
                }
                Source::ExtrasOnly(i) => {
                    let (identity, x) = &extras_only[i as usize];
                    let at = x.last_mono_ns();
                    let none = Crossing {
                        if_index: 0,
                        direction: 0,
                    };
                    let mut record = build_record(identity, &[], none, names, ctx);
                    record.time_flow_start_ms = ctx.clock.wall_ms(at);
                    record.time_flow_end_ms = ctx.clock.wall_ms(at);
                    apply(&mut record, x, &ctx.names);
                    record
                }
            };
            chunk.push(record);
            if chunk.len() == RECORDS_PER_CHUNK {
                made += chunk.len() as u64;
                emit(&chunk);
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            made += chunk.len() as u64;
            emit(&chunk);
        }
        made
    }

    /// Each flow's run of entries with the crossing its record counts, by
    /// first packet's time; the primaries of flows gone quiet for longer
    /// than `PRIMARY_IDLE_PERIODS` are forgotten.
    fn choose_primaries(
        &mut self,
        entries: &[Entry],
        names: &dyn InterfaceNames,
    ) -> Vec<(u64, Source)> {
        let period = self.period;
        let old = std::mem::take(&mut self.primaries);
        let mut old = old.into_iter().peekable();
        let mut kept = Vec::with_capacity(old.len().max(entries.len() / 2));
        let mut sources = Vec::new();
        for (start, end) in flow_runs(entries) {
            let identity = entries[start].identity();
            // Primaries of flows before this one, in identity order.
            while let Some(p) = old.next_if(|p| p.identity() < identity) {
                if p.recent(period) {
                    kept.push(p);
                }
            }
            let known = old.next_if(|p| p.identity() == identity);
            let flow = &entries[start..end];
            let (primary, counted) = self.primary_of(known, flow, names);
            kept.push(primary);
            match counted {
                Some(crossing) => sources.push((
                    flow[0].metrics.start_mono_ns,
                    Source::Flow {
                        start: start as u32,
                        end: end as u32,
                        primary: crossing,
                    },
                )),
                None => {
                    let stragglers: u64 = flow.iter().map(|e| e.metrics.packets).sum();
                    self.counters.in_flight_duplicates += stragglers;
                }
            }
        }
        kept.extend(old.filter(|p| p.recent(period)));
        self.primaries = kept;
        sources
    }

    /// The flow's primary after this period, and the crossing whose
    /// counters this period's record reports — None when this period only
    /// holds packets already counted on the primary.
    fn primary_of(
        &mut self,
        known: Option<Primary>,
        flow: &[Entry],
        names: &dyn InterfaceNames,
    ) -> (Primary, Option<Crossing>) {
        let period = self.period;
        let first_seen = Primary {
            key: flow[0].key,
            last_counted_period: period,
        };
        let Some(mut primary) = known else {
            return (first_seen, Some(first_seen.crossing()));
        };
        if flow.iter().any(|e| e.key == primary.key) {
            primary.last_counted_period = period;
            return (primary, Some(primary.crossing()));
        }
        // The primary saw nothing this period. Right after a period in which
        // it counted, what the others saw is the tail already counted on it;
        // if it has gone or stayed silent longer, the flow's path changed.
        let in_flight_tail =
            period - primary.last_counted_period <= 1 && names.is_watched(primary.key.if_index);
        if in_flight_tail {
            return (primary, None);
        }
        self.counters.primary_changes += 1;
        (first_seen, Some(first_seen.crossing()))
    }
}

/// The entries with a packet, a key seen twice summed, sorted by flow and
/// each flow's in path order: the interface that saw it first comes first.
fn flows_side_by_side(entries: Vec<(FlowKey, FlowMetrics)>) -> Vec<Entry> {
    let mut entries = entries_of(entries);
    entries.sort_unstable_by_key(|e| (e.identity(), e.crossing()));
    entries.dedup_by(|later, kept| {
        let same = later.key == kept.key;
        if same {
            kept.metrics.absorb(&later.metrics);
        }
        same
    });
    entries.retain(|e| e.metrics.packets > 0);
    for flow in entries.chunk_by_mut(same_flow) {
        flow.sort_unstable_by_key(|e| (e.metrics.start_mono_ns, e.key.if_index, e.key.direction));
    }
    entries
}

/// The drained kernel entries as entries: the same size and alignment, so
/// collected in place, without a second vector.
fn entries_of(drained: Vec<(FlowKey, FlowMetrics)>) -> Vec<Entry> {
    drained
        .into_iter()
        .map(|(key, metrics)| Entry { key, metrics })
        .collect()
}

/// The (start, end) of each flow's run of entries sorted by identity.
fn flow_runs(entries: &[Entry]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    entries.chunk_by(same_flow).map(move |run| {
        start += run.len();
        (start - run.len(), start)
    })
}

fn same_flow(a: &Entry, b: &Entry) -> bool {
    a.identity() == b.identity()
}

fn build_record(
    key: &FlowKey,
    crossings: &[Entry],
    primary: Crossing,
    names: &dyn InterfaceNames,
    ctx: &RecordContext<'_>,
) -> FlowRecord {
    let counted = crossings
        .iter()
        .find(|e| e.crossing() == primary)
        .map(|e| e.metrics)
        .unwrap_or_default();
    let start = crossings
        .iter()
        .map(|e| e.metrics.start_mono_ns)
        .min()
        .unwrap_or(0);
    let end = crossings
        .iter()
        .map(|e| e.metrics.end_mono_ns)
        .max()
        .unwrap_or(0);
    let flags = crossings.iter().fold(0, |acc, e| acc | e.metrics.flags);
    let is_icmp = matches!(key.protocol, 1 | 58);
    // IPv4, IPv6 and ARP carry addresses; other EtherTypes have none.
    let has_addresses = matches!(key.eth_protocol, 0x0800 | 0x86DD | 0x0806);
    let address = |bytes| {
        if has_addresses {
            Address::from(ip_from_kernel(bytes))
        } else {
            Address::NONE
        }
    };
    FlowRecord {
        src_addr: address(key.src_ip),
        dst_addr: address(key.dst_ip),
        src_port: key.src_port,
        dst_port: key.dst_port,
        proto: key.protocol,
        etype: key.eth_protocol,
        src_mac: MacAddr(counted.src_mac),
        dst_mac: MacAddr(counted.dst_mac),
        dscp: counted.dscp,
        icmp_type: is_icmp.then_some(key.icmp_type),
        icmp_code: is_icmp.then_some(key.icmp_code),
        bytes: counted.bytes,
        packets: counted.packets,
        flags,
        time_flow_start_ms: ctx.clock.wall_ms(start),
        time_flow_end_ms: ctx.clock.wall_ms(end),
        interfaces: crossings
            .iter()
            .map(|e| {
                names
                    .name_of(e.key.if_index)
                    .unwrap_or_else(|| format!("if{}", e.key.if_index))
            })
            .collect(),
        if_directions: crossings.iter().map(|e| e.key.direction).collect(),
        agent_ip: ctx.agent_ip.into(),
        sampling: ctx.sampling,
        ..FlowRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_take_the_drained_vector_in_place() {
        // In-place collection needs the same size and alignment; otherwise
        // an eviction holds the drained vector and the entries at once.
        use std::mem::{align_of, size_of};
        assert_eq!(size_of::<Entry>(), size_of::<(FlowKey, FlowMetrics)>());
        assert_eq!(align_of::<Entry>(), align_of::<(FlowKey, FlowMetrics)>());
        let drained = vec![(FlowKey::default(), FlowMetrics::default()); 3];
        let before = drained.as_ptr() as usize;
        let entries = entries_of(drained);
        assert_eq!(entries.as_ptr() as usize, before);
    }

    struct Names;
    impl InterfaceNames for Names {
        fn name_of(&self, if_index: u32) -> Option<String> {
            Some(format!("veth{if_index}"))
        }
        fn is_watched(&self, if_index: u32) -> bool {
            if_index != 99
        }
    }

    fn key(if_index: u32, direction: u8) -> FlowKey {
        FlowKey {
            if_index,
            direction,
            protocol: 17,
            src_port: 1000,
            dst_port: 2000,
            eth_protocol: 0x800,
            ..Default::default()
        }
    }

    fn metrics(packets: u64, start: u64) -> FlowMetrics {
        FlowMetrics {
            packets,
            bytes: packets * 100,
            start_mono_ns: start,
            end_mono_ns: start + 10,
            ..Default::default()
        }
    }

    static NO_REASONS: std::sync::LazyLock<HashMap<u64, String>> =
        std::sync::LazyLock::new(HashMap::new);

    /// One eviction's records, every chunk of them.
    fn merged(merger: &mut FlowMerger, entries: Vec<(FlowKey, FlowMetrics)>) -> Vec<FlowRecord> {
        let mut records = Vec::new();
        let made = merger.merge(entries, HashMap::new(), &Names, &ctx(), &mut |chunk| {
            records.extend_from_slice(chunk)
        });
        assert_eq!(made, records.len() as u64);
        records
    }

    fn ctx() -> RecordContext<'static> {
        RecordContext {
            clock: MonoToWall::now(),
            agent_ip: "198.18.0.254".parse().unwrap(),
            sampling: 1,
            names: ExtrasNames {
                drop_reasons: &NO_REASONS,
            },
        }
    }

    #[test]
    fn a_packet_crossing_two_interfaces_counts_once() {
        let mut merger = FlowMerger::default();
        let records = merged(
            &mut merger,
            vec![(key(1, 0), metrics(5, 100)), (key(2, 1), metrics(5, 110))],
        );
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].packets, 5);
        assert_eq!(records[0].bytes, 500);
        assert_eq!(records[0].interfaces, vec!["veth1", "veth2"]);
        assert_eq!(records[0].if_directions, vec![0, 1]);
    }

    #[test]
    fn in_flight_packets_across_an_eviction_are_not_counted_twice() {
        let mut merger = FlowMerger::default();
        // 5 packets crossed interface 1; 4 of them reached interface 2 before
        // the eviction, the 5th right after it.
        let first = merged(
            &mut merger,
            vec![(key(1, 0), metrics(5, 100)), (key(2, 1), metrics(4, 110))],
        );
        let second = merged(&mut merger, vec![(key(2, 1), metrics(1, 200))]);
        assert_eq!(first[0].packets, 5);
        assert!(second.is_empty());
        assert_eq!(merger.counters.in_flight_duplicates, 1);
        // The primary stays interface 1 when traffic resumes on both.
        let third = merged(
            &mut merger,
            vec![(key(2, 1), metrics(3, 290)), (key(1, 0), metrics(3, 300))],
        );
        assert_eq!(third[0].packets, 3);
        assert_eq!(third[0].interfaces, vec!["veth2", "veth1"]);
    }

    #[test]
    fn primary_moves_when_its_interface_goes_away() {
        let mut merger = FlowMerger::default();
        merged(&mut merger, vec![(key(99, 0), metrics(2, 100))]);
        let records = merged(&mut merger, vec![(key(3, 1), metrics(7, 200))]);
        assert_eq!(records[0].packets, 7);
        assert_eq!(merger.counters.primary_changes, 1);
    }

    #[test]
    fn icmp_fields_only_on_icmp_flows() {
        let mut merger = FlowMerger::default();
        let mut k = key(1, 0);
        k.protocol = 1;
        k.icmp_type = 8;
        let records = merged(
            &mut merger,
            vec![(k, metrics(1, 1)), (key(1, 0), metrics(1, 1))],
        );
        let icmp = records.iter().find(|r| r.proto == 1).unwrap();
        assert_eq!((icmp.icmp_type, icmp.icmp_code), (Some(8), Some(0)));
        assert_eq!(
            records.iter().find(|r| r.proto == 17).unwrap().icmp_type,
            None
        );
    }

    #[test]
    fn a_large_eviction_leaves_in_chunks_in_first_packet_order() {
        let mut merger = FlowMerger::default();
        let flows = RECORDS_PER_CHUNK * 2 + 7;
        // Keys in an order unrelated to their first packets' times.
        let entries: Vec<_> = (0..flows)
            .map(|i| {
                let mut k = key(1, 0);
                k.src_port = (i % 60_000) as u16;
                k.dst_port = (i / 60_000) as u16;
                (k, metrics(1, ((i * 7919) % flows) as u64 * 10))
            })
            .collect();
        let mut chunks = Vec::new();
        let made = merger.merge(entries, HashMap::new(), &Names, &ctx(), &mut |chunk| {
            chunks.push(chunk.to_vec())
        });
        assert_eq!(made, flows as u64);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, [RECORDS_PER_CHUNK, RECORDS_PER_CHUNK, 7]);
        let starts: Vec<i64> = chunks
            .iter()
            .flatten()
            .map(|r| r.time_flow_start_ms)
            .collect();
        assert!(starts.is_sorted());
    }

    #[test]
    fn a_key_seen_twice_in_an_eviction_is_summed() {
        let mut merger = FlowMerger::default();
        let records = merged(
            &mut merger,
            vec![(key(1, 0), metrics(2, 100)), (key(1, 0), metrics(3, 50))],
        );
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].packets, 5);
        assert_eq!(records[0].interfaces, vec!["veth1"]);
    }

    #[test]
    fn a_primary_is_kept_while_its_flow_is_quiet_then_forgotten() {
        let mut merger = FlowMerger::default();
        let other = |port| {
            let mut k = key(5, 0);
            k.src_port = port;
            (k, metrics(1, 1))
        };
        merged(&mut merger, vec![(key(1, 0), metrics(4, 100)), other(1)]);
        // Quiet for a period (other flows, before and after it in key
        // order, go on), then back on both interfaces: still counted on 1.
        merged(&mut merger, vec![other(1), other(3000)]);
        let back = merged(
            &mut merger,
            vec![(key(2, 1), metrics(2, 300)), (key(1, 0), metrics(3, 310))],
        );
        assert_eq!(back[0].packets, 3);
        assert_eq!(merger.counters.primary_changes, 0);
        // Quiet past PRIMARY_IDLE_PERIODS: the flow starts afresh on
        // whichever interface sees it first.
        for _ in 0..=PRIMARY_IDLE_PERIODS {
            merged(&mut merger, vec![other(1)]);
        }
        let fresh = merged(
            &mut merger,
            vec![(key(2, 1), metrics(6, 500)), (key(1, 0), metrics(5, 510))],
        );
        assert_eq!(fresh[0].packets, 6);
        assert_eq!(fresh[0].interfaces, vec!["veth2", "veth1"]);
        assert_eq!(
            merger.primaries.len(),
            2,
            "the flow and the one still sending"
        );
    }
}
