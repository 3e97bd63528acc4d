//! Literal values as a field's type reads them: numbers with units,
//! addresses and CIDR blocks.

use crate::fields::Unit;
use std::net::IpAddr;

/// An address block; a single address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net) as u128, self.prefix, 32)
                    == masked(u32::from(ip) as u128, self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            // An IPv4 block holds IPv4-mapped IPv6 addresses too.
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            _ => false,
        }
    }
}

/// A number with an optional unit suffix, in the field's stored unit.
/// `bare` is the unit of a number written without one.
pub fn number(text: &str, stored: Unit, bare: Unit) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    let suffix = suffix.to_ascii_lowercase();
    let scale = |unit: Unit| -> Result<f64, String> {
        match unit {
            Unit::Bytes => Ok(match suffix.as_str() {
                "" | "b" => 1.0,
                "k" | "kb" => 1e3,
                "m" | "mb" => 1e6,
                "g" | "gb" => 1e9,
                "t" | "tb" => 1e12,
                "kib" => 1024.0,
                "mib" => 1024.0 * 1024.0,
                "gib" => 1024.0 * 1024.0 * 1024.0,
                "tib" => 1024.0f64.powi(4),
                _ => {
                    return Err(format!(
                        "unknown size unit `{suffix}` (B, KB, MB, GB, KiB, MiB, GiB, ...)"
                    ));
                }
            }),
            Unit::Nanos | Unit::Millis => {
                let ns = match suffix.as_str() {
                    "" => match bare {
                        Unit::Nanos => 1.0,
                        _ => 1e6,
                    },
                    "ns" => 1.0,
                    "us" | "µs" => 1e3,
                    "ms" => 1e6,
                    "s" => 1e9,
                    "m" | "min" => 60e9,
                    "h" => 3600e9,
                    "d" => 86400e9,
                    _ => {
                        return Err(format!(
                            "unknown duration unit `{suffix}` (ns, us, ms, s, m, h, d)"
                        ));
                    }
                };
                Ok(if unit == Unit::Millis { ns / 1e6 } else { ns })
            }
            Unit::None | Unit::Packets | Unit::Segments | Unit::TimestampMs
                if suffix.is_empty() =>
            {
                Ok(1.0)
            }
            _ => Err(format!("`{text}`: this field takes a plain number")),
        }
    };
    Ok(value * scale(stored)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let net = Cidr::parse("198.18.0.0/15").unwrap();
        assert!(net.contains("198.19.255.1".parse().unwrap()));
        assert!(!net.contains("198.20.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:198.18.0.9".parse().unwrap()));
        let v6 = Cidr::parse("fd00:198:18::/48").unwrap();
        assert!(v6.contains("fd00:198:18::5".parse().unwrap()));
        assert!(!v6.contains("fd00:198:19::5".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert_eq!(Cidr::parse("198.18.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }

    #[test]
    fn units() {
        assert_eq!(number("50ms", Unit::Nanos, Unit::Millis), Ok(50e6));
        assert_eq!(number("50", Unit::Nanos, Unit::Millis), Ok(50e6));
        assert_eq!(number("50000", Unit::Nanos, Unit::Nanos), Ok(50000.0));
        assert_eq!(number("1.5s", Unit::Millis, Unit::Millis), Ok(1500.0));
        assert_eq!(number("1MiB", Unit::Bytes, Unit::Bytes), Ok(1048576.0));
        assert_eq!(number("2kb", Unit::Bytes, Unit::Bytes), Ok(2000.0));
        assert!(number("5parsecs", Unit::Nanos, Unit::Millis).is_err());
        assert!(number("5ms", Unit::None, Unit::None).is_err());
        assert!(number("x", Unit::None, Unit::None).is_err());
    }
}
