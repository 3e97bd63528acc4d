//! An IP address of a record, typed: parsed once where it enters (the
//! agent's kernel bytes, the wire's bytes) and formatted only where text
//! goes out (JSON, tables, the store's text column). A record of an
//! EtherType without addresses has none, shown as "" as netobserv does.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub Option<IpAddr>);

impl Address {
    pub const NONE: Address = Address(None);

    pub fn ip(self) -> Option<IpAddr> {
        self.0
    }
}

/// An address's text, made on the stack: the store formats three per
/// record, and `core::fmt` costs several times this for IPv4.
pub struct AddressText {
    bytes: [u8; 48],
    len: usize,
}

impl AddressText {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, dots, colons and hex letters are written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    /// Appends `octet` in decimal and then `sep` (one byte past it is
    /// written and left out when `sep` is None). Never past 16 bytes: an
    /// IPv4 address's text is at most 15.
    fn push_octet(&mut self, octet: u8, sep: Option<u8>) {
        let (digits, len) = DECIMAL[usize::from(octet)];
        let at = self.len.min(12);
        self.bytes[at..at + 3].copy_from_slice(&digits);
        self.bytes[at + len] = sep.unwrap_or(0);
        self.len = at + len + usize::from(sep.is_some());
    }
}

/// Each octet's decimal digits (left-aligned) and their count.
static DECIMAL: [([u8; 3], usize); 256] = {
    let mut table = [([0u8; 3], 0usize); 256];
    let mut n = 0;
    while n < 256 {
        let (h, t, o) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        table[n] = if n >= 100 {
            ([b'0' + h, b'0' + t, b'0' + o], 3)
        } else if n >= 10 {
            ([b'0' + t, b'0' + o, 0], 2)
        } else {
            ([b'0' + o, 0, 0], 1)
        };
        n += 1;
    }
    table
};

impl std::fmt::Write for AddressText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Address {
    /// The text `Display` makes, without a formatter.
    pub fn text(self) -> AddressText {
        let mut text = AddressText {
            bytes: [0; 48],
            len: 0,
        };
        match self.0 {
            Some(IpAddr::V4(v4)) => {
                let [a, b, c, d] = v4.octets();
                text.push_octet(a, Some(b'.'));
                text.push_octet(b, Some(b'.'));
                text.push_octet(c, Some(b'.'));
                text.push_octet(d, None);
            }
            // The longest IPv6 text (an IPv4-mapped one) is 45 bytes.
            Some(ip @ IpAddr::V6(_)) => {
                use std::fmt::Write;
                let _ = write!(text, "{ip}");
            }
            None => {}
        }
        text
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => Ok(()),
        }
    }
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Address {
        Address(Some(ip))
    }
}

impl std::str::FromStr for Address {
    type Err = std::net::AddrParseError;

    /// "" is no address; anything else must be one.
    fn from_str(text: &str) -> Result<Address, Self::Err> {
        if text.is_empty() {
            return Ok(Address::NONE);
        }
        text.parse().map(|ip| Address(Some(ip)))
    }
}

/// For literals (tests, fixtures): text that is not an address is none.
impl From<&str> for Address {
    fn from(text: &str) -> Address {
        text.parse().unwrap_or_default()
    }
}

impl From<String> for Address {
    fn from(text: String) -> Address {
        text.as_str().into()
    }
}

impl PartialEq<str> for Address {
    fn eq(&self, text: &str) -> bool {
        text.parse::<Address>().is_ok_and(|a| a == *self)
    }
}

impl PartialEq<&str> for Address {
    fn eq(&self, text: &&str) -> bool {
        *self == **text
    }
}

impl PartialEq<String> for Address {
    fn eq(&self, text: &String) -> bool {
        *self == *text.as_str()
    }
}

impl Serialize for Address {
    /// The text made on the stack (`text`), not through `core::fmt`: every
    /// record written as JSON has three.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text().as_str())
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Address, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_what_display_makes() {
        let mut addresses: Vec<Address> = [
            "0.0.0.0",
            "255.255.255.255",
            "198.18.0.1",
            "10.0.100.9",
            "fd00:198:18::1",
            "::ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ]
        .iter()
        .map(|t| Address::from(*t))
        .collect();
        addresses.push(Address::NONE);
        addresses
            .extend((0..=255u8).map(|o| Address::from(IpAddr::from([o, o / 3, o / 7, 255 - o]))));
        for a in addresses {
            assert_eq!(a.text().as_str(), a.to_string());
        }
    }

    #[test]
    fn text_in_json_and_none_as_empty() {
        let v4: Address = "198.18.0.1".into();
        let v6: Address = "fd00:198:18::2".into();
        assert_eq!(serde_json::to_string(&v4).unwrap(), "\"198.18.0.1\"");
        assert_eq!(serde_json::to_string(&v6).unwrap(), "\"fd00:198:18::2\"");
        assert_eq!(serde_json::to_string(&Address::NONE).unwrap(), "\"\"");
        for a in [v4, v6, Address::NONE] {
            let back: Address = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
            assert_eq!(back, a);
        }
        assert!(serde_json::from_str::<Address>("\"not an address\"").is_err());
        assert!(v4 == "198.18.0.1" && v4 != "198.18.0.2");
    }
}
