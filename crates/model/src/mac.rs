//! A MAC address of a record, six bytes: the agent copies the kernel's
//! bytes and the wire carries a u64, so text is made only where it goes out
//! (JSON, tables, the store's text column) as netobserv prints it: upper
//! case hex (`0A:58:0A:80:00:01`); any case is read.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The low 48 bits of `value` (the wire's form).
    pub fn from_u64(value: u64) -> MacAddr {
        let b = value.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    pub fn to_u64(self) -> u64 {
        self.0.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64)
    }

    /// "0A:58:0A:80:00:01" (upper case, as netobserv's agent prints it),
    /// without allocating.
    pub fn text(self) -> [u8; 17] {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [b':'; 17];
        for (i, byte) in self.0.iter().enumerate() {
            out[i * 3] = HEX[(byte >> 4) as usize];
            out[i * 3 + 1] = HEX[(byte & 0xf) as usize];
        }
        out
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.text();
        // Hex digits and colons: ASCII.
        f.write_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

/// A text that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMac(String);

impl std::fmt::Display for BadMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is not a MAC address (aa:bb:cc:dd:ee:ff)", self.0)
    }
}

impl std::error::Error for BadMac {}

impl std::str::FromStr for MacAddr {
    type Err = BadMac;

    fn from_str(text: &str) -> Result<MacAddr, BadMac> {
        let bad = || BadMac(text.chars().take(32).collect());
        let mut bytes = [0u8; 6];
        let mut parts = text.split(':');
        for byte in bytes.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            None => Ok(MacAddr(bytes)),
            Some(_) => Err(bad()),
        }
    }
}

/// For literals (tests, fixtures): text that is not a MAC is all zeros.
impl From<&str> for MacAddr {
    fn from(text: &str) -> MacAddr {
        text.parse().unwrap_or_default()
    }
}

impl PartialEq<str> for MacAddr {
    fn eq(&self, text: &str) -> bool {
        text.parse::<MacAddr>().is_ok_and(|m| m == *self)
    }
}

impl PartialEq<&str> for MacAddr {
    fn eq(&self, text: &&str) -> bool {
        *self == **text
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.text();
        serializer.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MacAddr, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bytes_and_the_wire_form_agree() {
        let mac: MacAddr = "0a:58:0a:80:00:01".parse().unwrap();
        assert_eq!(mac.0, [0x0a, 0x58, 0x0a, 0x80, 0x00, 0x01]);
        assert_eq!(mac.to_string(), "0A:58:0A:80:00:01");
        assert_eq!(mac.to_u64(), 0x0a58_0a80_0001);
        assert_eq!(MacAddr::from_u64(0xffff_0a58_0a80_0001), mac);
        assert_eq!(
            serde_json::to_string(&mac).unwrap(),
            "\"0A:58:0A:80:00:01\""
        );
        let back: MacAddr = serde_json::from_str("\"0A:58:0a:80:00:01\"").unwrap();
        assert_eq!(back, mac);
        for bad in [
            "",
            "0a:58:0a:80:00",
            "0a:58:0a:80:00:01:02",
            "0a:58:0a:80:00:zz",
            "a:58:0a:80:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
