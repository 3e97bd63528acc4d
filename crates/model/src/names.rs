//! Names of the numeric codes records carry, as netobserv prints them: one
//! table each, read both ways (the agent names codes; the wire format and
//! the filter language turn names back into codes).

/// Linux TCP states (include/net/tcp_states.h), indexed by number.
const TCP_STATES: [&str; 14] = [
    "TCP_INVALID_STATE",
    "TCP_ESTABLISHED",
    "TCP_SYN_SENT",
    "TCP_SYN_RECV",
    "TCP_FIN_WAIT1",
    "TCP_FIN_WAIT2",
    "TCP_TIME_WAIT",
    "TCP_CLOSE",
    "TCP_CLOSE_WAIT",
    "TCP_LAST_ACK",
    "TCP_LISTEN",
    "TCP_CLOSING",
    "TCP_NEW_SYN_RECV",
    "TCP_BOUND_INACTIVE",
];

/// DNS response codes (RFC 1035, 2136, 6895), indexed by number.
const DNS_RCODES: [&str; 12] = [
    "NoError",
    "FormErr",
    "ServFail",
    "NXDomain",
    "NotImp",
    "Refused",
    "YXDomain",
    "YXRRSet",
    "NXRRSet",
    "NotAuth",
    "NotZone",
    "DSOTYPENI",
];

pub fn tcp_state_name(state: u8) -> &'static str {
    TCP_STATES
        .get(state as usize)
        .copied()
        .unwrap_or(TCP_STATES[0])
}

/// The number of a TCP state name (`TCP_ESTABLISHED` or `ESTABLISHED`,
/// any case).
pub fn tcp_state_number(name: &str) -> Option<u8> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("TCP_") {
        upper
    } else {
        format!("TCP_{upper}")
    };
    TCP_STATES
        .iter()
        .position(|s| *s == full)
        .filter(|&n| n > 0)
        .map(|n| n as u8)
}

pub fn tcp_state_names() -> &'static [&'static str] {
    &TCP_STATES[1..]
}

/// The response code name of DNS header flags (their low 4 bits).
pub fn rcode_name(flags: u16) -> String {
    let code = flags & 0xf;
    DNS_RCODES
        .get(code as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("RCODE{code}"))
}

/// The number of a response code name (any case), or of `RCODE<n>`.
pub fn rcode_number(name: &str) -> Option<u16> {
    if let Some(n) = DNS_RCODES.iter().position(|s| s.eq_ignore_ascii_case(name)) {
        return Some(n as u16);
    }
    let digits = name.strip_prefix("RCODE").or(name.strip_prefix("rcode"))?;
    digits.parse().ok().filter(|n| *n < 16)
}

pub fn rcode_names() -> &'static [&'static str] {
    &DNS_RCODES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in 1..14u8 {
            assert_eq!(tcp_state_number(tcp_state_name(n)), Some(n));
        }
        assert_eq!(tcp_state_number("established"), Some(1));
        assert_eq!(tcp_state_number("TCP_INVALID_STATE"), None);
        assert_eq!(tcp_state_name(99), "TCP_INVALID_STATE");
        for n in 0..16u16 {
            assert_eq!(rcode_number(&rcode_name(0x8180 | n)), Some(n));
        }
        assert_eq!(rcode_name(0x8183), "NXDomain");
        assert_eq!(rcode_number("nxdomain"), Some(3));
    }
}
