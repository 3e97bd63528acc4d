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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Crossing {
    if_index: u32,
    direction: u8,
}

#[derive(Debug, Clone, Copy)]
struct Primary {
    crossing: Crossing,
    last_counted_period: u64,
}

/// Periods a flow's primary is kept after the flow was last seen.
const PRIMARY_IDLE_PERIODS: u64 = 3;

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
    primaries: HashMap<FlowIdentity, Primary>,
    period: u64,
    pub counters: MergeCounters,
}

pub struct RecordContext<'a> {
    pub clock: MonoToWall,
    pub agent_ip: std::net::IpAddr,
    pub sampling: u32,
    pub names: ExtrasNames<'a>,
}

impl FlowMerger {
    /// Turns one eviction's entries (every key at most once) and the feature
    /// data of the period (keyed by flow identity: interface and direction
    /// zero) into records. Feature data of a flow that moved no packet
    /// through a watched interface (a packet dropped before it got there)
    /// makes a record of its own, with zero bytes and packets.
    pub fn merge(
        &mut self,
        entries: impl IntoIterator<Item = (FlowKey, FlowMetrics)>,
        mut extras: HashMap<FlowKey, FlowExtras>,
        names: &dyn InterfaceNames,
        ctx: &RecordContext<'_>,
    ) -> Vec<FlowRecord> {
        self.period += 1;
        let mut groups: HashMap<FlowIdentity, Vec<(Crossing, FlowMetrics)>> = HashMap::new();
        for (key, metrics) in entries {
            if metrics.packets == 0 {
                continue;
            }
            let (identity, crossing) = FlowIdentity::of(&key);
            groups
                .entry(identity)
                .or_default()
                .push((crossing, metrics));
        }

        // (first packet's monotonic ns, record): records leave in the order
        // their first packets were seen, finer than the milliseconds they
        // carry (a DNS query comes before its response).
        let mut records: Vec<(u64, FlowRecord)> = Vec::with_capacity(groups.len());
        for (identity, mut crossings) in groups {
            // Path order: the interface that saw the flow first comes first.
            crossings.sort_by_key(|(c, m)| (m.start_mono_ns, c.if_index, c.direction));
            let Some(primary) = self.choose_primary(identity, &crossings, names) else {
                let stragglers: u64 = crossings.iter().map(|(_, m)| m.packets).sum();
                self.counters.in_flight_duplicates += stragglers;
                continue;
            };
            let mut record = build_record(&identity.key, &crossings, primary, names, ctx);
            if let Some(x) = extras.remove(&identity.key) {
                apply(&mut record, &x, &ctx.names);
            }
            records.push((crossings[0].1.start_mono_ns, record));
        }
        let loopback_watched = names.is_watched(LOOPBACK_IF_INDEX);
        for (identity, x) in extras {
            if !loopback_watched && is_loopback(&identity.src_ip) && is_loopback(&identity.dst_ip) {
                self.counters.loopback_extras_skipped += 1;
                continue;
            }
            let at = x.last_mono_ns();
            let mut record = build_record(
                &identity,
                &[],
                Crossing {
                    if_index: 0,
                    direction: 0,
                },
                names,
                ctx,
            );
            record.time_flow_start_ms = ctx.clock.wall_ms(at);
            record.time_flow_end_ms = ctx.clock.wall_ms(at);
            apply(&mut record, &x, &ctx.names);
            records.push((at, record));
        }
        let period = self.period;
        self.primaries
            .retain(|_, p| period - p.last_counted_period <= PRIMARY_IDLE_PERIODS);
        records.sort_by_key(|(first_ns, _)| *first_ns);
        records.into_iter().map(|(_, record)| record).collect()
    }

    /// The crossing whose counters this period's record reports, or None when
    /// this period only holds packets already counted on the primary.
    fn choose_primary(
        &mut self,
        identity: FlowIdentity,
        crossings: &[(Crossing, FlowMetrics)],
        names: &dyn InterfaceNames,
    ) -> Option<Crossing> {
        let period = self.period;
        let first_seen = crossings[0].0;
        let primary = self.primaries.entry(identity).or_insert(Primary {
            crossing: first_seen,
            last_counted_period: period,
        });
        if crossings.iter().any(|(c, _)| *c == primary.crossing) {
            primary.last_counted_period = period;
            return Some(primary.crossing);
        }
        // The primary saw nothing this period. Right after a period in which
        // it counted, what the others saw is the tail already counted on it;
        // if it has gone or stayed silent longer, the flow's path changed.
        let in_flight_tail = period - primary.last_counted_period <= 1
            && names.is_watched(primary.crossing.if_index);
        if in_flight_tail {
            return None;
        }
        self.counters.primary_changes += 1;
        *primary = Primary {
            crossing: first_seen,
            last_counted_period: period,
        };
        Some(first_seen)
    }
}

fn build_record(
    key: &FlowKey,
    crossings: &[(Crossing, FlowMetrics)],
    primary: Crossing,
    names: &dyn InterfaceNames,
    ctx: &RecordContext<'_>,
) -> FlowRecord {
    let counted = crossings
        .iter()
        .find(|(c, _)| *c == primary)
        .map(|(_, m)| *m)
        .unwrap_or_default();
    let start = crossings
        .iter()
        .map(|(_, m)| m.start_mono_ns)
        .min()
        .unwrap_or(0);
    let end = crossings
        .iter()
        .map(|(_, m)| m.end_mono_ns)
        .max()
        .unwrap_or(0);
    let flags = crossings.iter().fold(0, |acc, (_, m)| acc | m.flags);
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
            .map(|(c, _)| {
                names
                    .name_of(c.if_index)
                    .unwrap_or_else(|| format!("if{}", c.if_index))
            })
            .collect(),
        if_directions: crossings.iter().map(|(c, _)| c.direction).collect(),
        agent_ip: ctx.agent_ip.into(),
        sampling: ctx.sampling,
        ..FlowRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let records = merger.merge(
            [(key(1, 0), metrics(5, 100)), (key(2, 1), metrics(5, 110))],
            HashMap::new(),
            &Names,
            &ctx(),
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
        let first = merger.merge(
            [(key(1, 0), metrics(5, 100)), (key(2, 1), metrics(4, 110))],
            HashMap::new(),
            &Names,
            &ctx(),
        );
        let second = merger.merge(
            [(key(2, 1), metrics(1, 200))],
            HashMap::new(),
            &Names,
            &ctx(),
        );
        assert_eq!(first[0].packets, 5);
        assert!(second.is_empty());
        assert_eq!(merger.counters.in_flight_duplicates, 1);
        // The primary stays interface 1 when traffic resumes on both.
        let third = merger.merge(
            [(key(2, 1), metrics(3, 290)), (key(1, 0), metrics(3, 300))],
            HashMap::new(),
            &Names,
            &ctx(),
        );
        assert_eq!(third[0].packets, 3);
        assert_eq!(third[0].interfaces, vec!["veth2", "veth1"]);
    }

    #[test]
    fn primary_moves_when_its_interface_goes_away() {
        let mut merger = FlowMerger::default();
        merger.merge(
            [(key(99, 0), metrics(2, 100))],
            HashMap::new(),
            &Names,
            &ctx(),
        );
        let records = merger.merge(
            [(key(3, 1), metrics(7, 200))],
            HashMap::new(),
            &Names,
            &ctx(),
        );
        assert_eq!(records[0].packets, 7);
        assert_eq!(merger.counters.primary_changes, 1);
    }

    #[test]
    fn icmp_fields_only_on_icmp_flows() {
        let mut merger = FlowMerger::default();
        let mut k = key(1, 0);
        k.protocol = 1;
        k.icmp_type = 8;
        let records = merger.merge(
            [(k, metrics(1, 1)), (key(1, 0), metrics(1, 1))],
            HashMap::new(),
            &Names,
            &ctx(),
        );
        let icmp = records.iter().find(|r| r.proto == 1).unwrap();
        assert_eq!((icmp.icmp_type, icmp.icmp_code), (Some(8), Some(0)));
        assert_eq!(
            records.iter().find(|r| r.proto == 17).unwrap().icmp_type,
            None
        );
    }
}
