//! The agent's own counters: what it evicted, and every place a packet or
//! record could be lost. Printed by `flowlens agent --stats`, served as
//! Prometheus metrics and in `flowlens status`.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentStats {
    /// Evictions done (one per cacheActiveTimeout, plus the final one).
    pub evictions: u64,
    /// Flow records produced.
    pub records_evicted: u64,
    /// Per-interface entries read from the kernel flow maps.
    pub map_entries_drained: u64,
    /// Packets the kernel sent through the ring buffer because the flow map
    /// was full (map-full events).
    pub map_full_packets: u64,
    /// Ring buffer records the agent read.
    pub ringbuf_records: u64,
    /// Ring buffer records too short to decode.
    pub ringbuf_malformed: u64,
    /// Packets (and their bytes) lost: map full and ring buffer full.
    pub lost_packets: u64,
    pub lost_bytes: u64,
    /// Packets whose headers were not readable in full; still counted.
    pub truncated_headers: u64,
    /// Packets seen on a secondary interface after an eviction, already
    /// counted on the flow's primary interface.
    pub in_flight_duplicates: u64,
    /// Feature data of loopback sockets left out while `lo` is not watched.
    pub loopback_extras_skipped: u64,
    /// Times a flow's reporting interface changed.
    pub primary_changes: u64,
    /// Interfaces attached now, attached and forgotten over the run.
    pub interfaces_attached: u64,
    pub interfaces_attached_total: u64,
    pub interfaces_detached_total: u64,
    pub attach_failures: u64,
    /// "tcx" or "netlink": how the last interface was attached.
    pub attach_mode: String,
    /// Features on, and the tracepoint programs attached for them.
    pub features: String,
    pub feature_hooks_attached: String,
    /// Feature hooks the kernel refused (their features report nothing).
    pub feature_hook_failures: u64,
    /// Feature events (RTT, drops, DNS, ...) lost because the extras map
    /// was full.
    pub feature_events_lost: u64,
    /// DNS queries whose latency could not be tracked (pending map full).
    pub dns_pending_full: u64,
    /// DNS queries that got no response within the DNS timeout.
    pub dns_unanswered: u64,
    /// NFLOG messages lost because a listener fell behind.
    pub nflog_lost: u64,
}
