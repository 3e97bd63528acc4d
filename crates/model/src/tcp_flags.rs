//! TCP flag bits as netobserv encodes them in `Flags`: the eight header bits
//! plus three synthetic per-packet combinations.

/// (bit, name) in the order users read them.
pub const TCP_FLAG_NAMES: [(u32, &str); 11] = [
    (0x01, "FIN"),
    (0x02, "SYN"),
    (0x04, "RST"),
    (0x08, "PSH"),
    (0x10, "ACK"),
    (0x20, "URG"),
    (0x40, "ECE"),
    (0x80, "CWR"),
    (0x100, "SYN_ACK"),
    (0x200, "FIN_ACK"),
    (0x400, "RST_ACK"),
];

/// The names of the flags set in `flags`, e.g. `["SYN", "ACK", "SYN_ACK"]`.
pub fn flag_names(flags: u32) -> Vec<&'static str> {
    TCP_FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The bit of a flag name (case-insensitive), for filters and tests.
pub fn flag_bit(name: &str) -> Option<u32> {
    TCP_FLAG_NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(bit, _)| *bit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_bits() {
        assert_eq!(flag_names(0x112), vec!["SYN", "ACK", "SYN_ACK"]);
        assert_eq!(flag_names(0), Vec::<&str>::new());
        assert_eq!(flag_bit("rst_ack"), Some(0x400));
        assert_eq!(flag_bit("XYZ"), None);
    }
}
