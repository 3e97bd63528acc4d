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
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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
