//! TCP flag bits as netobserv encodes them in `Flags`: the eight header bits
//! plus three synthetic per-packet combinations.

pub const FIN: u32 = 0x01;
pub const SYN: u32 = 0x02;
pub const RST: u32 = 0x04;
pub const PSH: u32 = 0x08;
pub const ACK: u32 = 0x10;
pub const URG: u32 = 0x20;
pub const ECE: u32 = 0x40;
pub const CWR: u32 = 0x80;
pub const SYN_ACK: u32 = 0x100;
pub const FIN_ACK: u32 = 0x200;
pub const RST_ACK: u32 = 0x400;

/// (bit, name) in the order users read them.
pub const TCP_FLAG_NAMES: [(u32, &str); 11] = [
    (FIN, "FIN"),
    (SYN, "SYN"),
    (RST, "RST"),
    (PSH, "PSH"),
    (ACK, "ACK"),
    (URG, "URG"),
    (ECE, "ECE"),
    (CWR, "CWR"),
    (SYN_ACK, "SYN_ACK"),
    (FIN_ACK, "FIN_ACK"),
    (RST_ACK, "RST_ACK"),
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
