//! The order-independent identity of a conversation: both directions of a
//! 5-tuple give the same key.

use flowlens_model::{FlowRecord, Side};
use std::net::{IpAddr, Ipv4Addr};

/// One side of a conversation (keys are built for every flow: nothing in
/// them allocates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl Endpoint {
    /// The source or destination of a flow (0.0.0.0 for a flow without IP
    /// addresses, such as ARP).
    pub fn of(flow: &FlowRecord, side: Side) -> Endpoint {
        let (addr, port) = match side {
            Side::Src => (&flow.src_addr, flow.src_port),
            Side::Dst => (&flow.dst_addr, flow.dst_port),
        };
        Endpoint {
            addr: addr.ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversationKey {
    /// The lower endpoint in (address, port) order, then the higher.
    pub low: Endpoint,
    pub high: Endpoint,
    pub proto: u8,
}

impl ConversationKey {
    /// The key of a flow, and whether the flow goes from `low` to `high`.
    pub fn of(flow: &FlowRecord) -> (ConversationKey, bool) {
        let (src, dst) = (Endpoint::of(flow, Side::Src), Endpoint::of(flow, Side::Dst));
        let forward = src <= dst;
        let (low, high) = if forward { (src, dst) } else { (dst, src) };
        (
            ConversationKey {
                low,
                high,
                proto: flow.proto,
            },
            forward,
        )
    }

    /// A flow's (source, destination), given `forward` from `of`.
    pub fn ends(&self, forward: bool) -> (Endpoint, Endpoint) {
        if forward {
            (self.low, self.high)
        } else {
            (self.high, self.low)
        }
    }

    /// `_HashId`: FNV-1a over the key's text, the same for both
    /// directions and across restarts (hashed as it is formatted: no text
    /// is kept).
    pub fn hash_id(&self) -> HashId {
        use std::fmt::Write;
        let mut fnv = Fnv(0xcbf29ce484222325);
        let _ = write!(
            fnv,
            "{}|{}|{}|{}|{}",
            self.low.addr, self.low.port, self.high.addr, self.high.port, self.proto
        );
        HashId(fnv.0)
    }
}

/// FNV-1a of the bytes written.
struct Fnv(u64);

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        for byte in text.bytes() {
            self.0 ^= byte as u64;
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
        Ok(())
    }
}

pub use flowlens_model::HashId;

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(src: &str, sport: u16, dst: &str, dport: u16) -> FlowRecord {
        FlowRecord {
            src_addr: src.into(),
            src_port: sport,
            dst_addr: dst.into(),
            dst_port: dport,
            proto: 6,
            ..Default::default()
        }
    }

    fn fnv_of_text(text: &str) -> String {
        let mut hash: u64 = 0xcbf29ce484222325;
        for byte in text.bytes() {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x100000001b3);
        }
        format!("{hash:016x}")
    }

    #[test]
    fn both_directions_share_a_key() {
        let (a, a_forward) = ConversationKey::of(&flow("198.18.0.1", 40000, "198.18.0.2", 80));
        let (b, b_forward) = ConversationKey::of(&flow("198.18.0.2", 80, "198.18.0.1", 40000));
        assert_eq!(a, b);
        assert_ne!(a_forward, b_forward);
        assert_eq!(a.hash_id(), b.hash_id());
        assert_eq!(a.hash_id().to_string().len(), 16);
        // The same ids as before they were kept as numbers.
        assert_eq!(
            ConversationKey::of(&flow("198.18.0.1", 1, "198.18.0.2", 2))
                .0
                .hash_id()
                .to_string(),
            fnv_of_text("198.18.0.1|1|198.18.0.2|2|6")
        );
        let (c, _) = ConversationKey::of(&flow("198.18.0.1", 40001, "198.18.0.2", 80));
        assert_ne!(a.hash_id(), c.hash_id());
    }
}
