//! Rust mirrors of the structs in `ebpf/flow.h`, byte for byte.

use std::net::{IpAddr, Ipv6Addr};

#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub eth_protocol: u16,
    pub protocol: u8,
    pub direction: u8,
    pub if_index: u32,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub _pad: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowMetrics {
    pub packets: u64,
    pub bytes: u64,
    pub start_mono_ns: u64,
    pub end_mono_ns: u64,
    pub flags: u32,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub dscp: u8,
    pub _pad: [u8; 7],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowEvent {
    pub key: FlowKey,
    pub metrics: FlowMetrics,
}

/// A slot of the kernel's flow table (struct flow_slot).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowSlot {
    pub state: u32,
    pub _pad: u32,
    pub key: FlowKey,
    pub metrics: FlowMetrics,
    pub _tail: [u8; 16],
}

/// Slot states (SLOT_* in flow.h).
pub const SLOT_EMPTY: u32 = 0;
pub const SLOT_READY: u32 = 2;

/// The agent/kernel shared state (struct agent_state).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentState {
    pub generation: u32,
    pub _pad: u32,
    pub clock_ns: u64,
}

/// What feature hooks learned about a flow (struct flow_extra).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FlowExtra {
    pub present: u32,
    pub drop_latest_reason: u32,
    pub rtt_latest_ns: u64,
    pub rtt_min_ns: u64,
    pub rtt_max_ns: u64,
    pub handshake_rtt_ns: u64,
    pub retransmits: u64,
    pub drop_packets: u64,
    pub drop_bytes: u64,
    pub last_mono_ns: u64,
    pub drop_latest_if: u32,
    pub drop_latest_state: u8,
    pub outcome: u8,
    pub dns_question_len: u8,
    pub drop_latest_ttl: u8,
    pub dns_id: u16,
    pub dns_flags: u16,
    pub _pad2: u32,
    pub dns_latency_ns: u64,
    pub dns_question: [u8; 128],
}

impl Default for FlowExtra {
    fn default() -> Self {
        // SAFETY: all-zero is the kernel's empty extra and valid for every field.
        unsafe { std::mem::zeroed() }
    }
}

/// `present` bits of FlowExtra (EXTRA_* in flow.h).
pub mod extra_bits {
    pub const RTT: u32 = 1 << 0;
    pub const HANDSHAKE_RTT: u32 = 1 << 1;
    pub const RETRANSMITS: u32 = 1 << 2;
    pub const DROPS: u32 = 1 << 3;
    pub const OUTCOME: u32 = 1 << 4;
    pub const DNS: u32 = 1 << 5;
    pub const DNS_LATENCY: u32 = 1 << 6;
}

/// A DNS query waiting for its response (struct dns_pending_key).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DnsPendingKey {
    pub query: FlowKey,
    pub id: u16,
    pub _pad: [u8; 6],
}

// SAFETY: plain-old-data structs of integers and byte arrays with explicit
// padding, valid for any bit pattern, matching the C layout.
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for FlowMetrics {}
unsafe impl aya::Pod for FlowExtra {}
unsafe impl aya::Pod for DnsPendingKey {}

/// Slots of the kernel's per-CPU `agent_counters` array (enum agent_counter).
pub mod counter_slot {
    pub const MAP_FULL_PACKETS: u32 = 0;
    pub const LOST_PACKETS: u32 = 1;
    pub const LOST_BYTES: u32 = 2;
    pub const TRUNCATED_HEADERS: u32 = 3;
    pub const EXTRAS_FULL: u32 = 4;
    pub const DNS_PENDING_FULL: u32 = 5;
    pub const COUNT: u32 = 6;
}

impl FlowMetrics {
    /// Adds another sample of the same key (same interface and direction).
    pub fn absorb(&mut self, other: &FlowMetrics) {
        if self.packets == 0 {
            *self = *other;
            return;
        }
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.flags |= other.flags;
        if other.start_mono_ns < self.start_mono_ns {
            self.start_mono_ns = other.start_mono_ns;
            self.src_mac = other.src_mac;
            self.dst_mac = other.dst_mac;
            self.dscp = other.dscp;
        }
        self.end_mono_ns = self.end_mono_ns.max(other.end_mono_ns);
    }
}

impl FlowEvent {
    /// Reads an event from a ring buffer record; None when it is too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<FlowEvent> {
        if bytes.len() < std::mem::size_of::<FlowEvent>() {
            return None;
        }
        // SAFETY: length checked; FlowEvent is valid for any bit pattern and
        // read_unaligned copes with the ring buffer's 8-byte alignment.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<FlowEvent>()) })
    }
}

/// Addresses are stored IPv4-mapped for IPv4; show them as IPv4.
pub fn ip_from_kernel(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_flow_h() {
        assert_eq!(std::mem::size_of::<FlowKey>(), 48);
        assert_eq!(std::mem::size_of::<FlowMetrics>(), 56);
        assert_eq!(std::mem::size_of::<FlowEvent>(), 104);
        assert_eq!(std::mem::size_of::<FlowSlot>(), 128);
        assert_eq!(std::mem::size_of::<AgentState>(), 16);
        assert_eq!(std::mem::size_of::<FlowExtra>(), 224);
        assert_eq!(std::mem::size_of::<DnsPendingKey>(), 56);
    }

    #[test]
    fn addresses_render_naturally() {
        let mut v4 = [0u8; 16];
        v4[10] = 0xff;
        v4[11] = 0xff;
        v4[12..].copy_from_slice(&[198, 18, 0, 1]);
        assert_eq!(ip_from_kernel(v4).to_string(), "198.18.0.1");
        let v6: Ipv6Addr = "fd00:198:18::1".parse().unwrap();
        assert_eq!(ip_from_kernel(v6.octets()).to_string(), "fd00:198:18::1");
        assert_eq!(
            flowlens_model::MacAddr([0xde, 0xad, 0, 1, 2, 0xff]).to_string(),
            "DE:AD:00:01:02:FF"
        );
    }
}
