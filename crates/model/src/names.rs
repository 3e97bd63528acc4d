//! DNS response code names, as netobserv prints them: the names of
//! `vocab::DnsRcode`, and `RCODE<n>` for the codes that have none.

use crate::vocab::DnsRcode;

/// The response code name of DNS header flags (their low 4 bits).
pub fn rcode_name(flags: u16) -> String {
    let code = flags & 0xf;
    match DnsRcode::from_code(code.into()) {
        Some(rcode) => rcode.as_str().to_string(),
        None => format!("RCODE{code}"),
    }
}

/// The number of a response code name (any case), or of `RCODE<n>`.
pub fn rcode_number(name: &str) -> Option<u16> {
    if let Some(term) = crate::vocab::DNS_RCODES.find(name) {
        return term.code.map(|c| c as u16);
    }
    let digits = name.strip_prefix("RCODE").or(name.strip_prefix("rcode"))?;
    digits.parse().ok().filter(|n| *n < 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in 0..16u16 {
            assert_eq!(rcode_number(&rcode_name(0x8180 | n)), Some(n));
        }
        assert_eq!(rcode_name(0x8183), "NXDomain");
        assert_eq!(rcode_number("nxdomain"), Some(3));
    }
}
