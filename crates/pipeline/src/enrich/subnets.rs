//! Subnet labels (netobserv's `spec.processor.subnetLabels.customLabels`):
//! CIDR lists named by users; the most specific match names an address.

use flowlens_model::{EndpointLabels, Label, SideLabels};
use std::net::IpAddr;

/// A CIDR that does not parse, named in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetError(pub String);

impl std::error::Error for SubnetError {}

impl std::fmt::Display for SubnetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: u128,
    prefix: u8,
    v4: bool,
}

impl Cidr {
    fn parse(text: &str) -> Result<Cidr, SubnetError> {
        let err = |why: &str| {
            SubnetError(format!(
                "invalid CIDR `{text}`: {why} (e.g. 198.18.0.0/15, fd00::/8)"
            ))
        };
        let (addr, prefix) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| err("missing /prefix"))?;
        let addr: IpAddr = addr.parse().map_err(|_| err("bad address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| err("bad prefix"))?;
        let (bits, v4) = match addr {
            IpAddr::V4(a) => (u32::from(a) as u128, true),
            IpAddr::V6(a) => (u128::from(a), false),
        };
        let width = if v4 { 32 } else { 128 };
        if prefix > width {
            return Err(err("prefix too long"));
        }
        Ok(Cidr {
            network: bits & mask(prefix, width),
            prefix,
            v4,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (ip, self.v4) {
            (IpAddr::V4(a), true) => u32::from(a) as u128 & mask(self.prefix, 32) == self.network,
            (IpAddr::V6(a), false) => u128::from(a) & mask(self.prefix, 128) == self.network,
            _ => false,
        }
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if width == 32 {
        u32::MAX as u128
    } else {
        u128::MAX
    };
    (all << (width - prefix)) & all
}

#[derive(Debug, Clone, Default)]
pub struct SubnetLabels {
    /// Each subnet's label, and the labels of an end known only by it
    /// (made once: shared by every flow of the subnet).
    entries: Vec<(Cidr, Label, SideLabels)>,
}

impl SubnetLabels {
    /// From (name, CIDRs) pairs; errors name the bad CIDR.
    pub fn parse(labels: &[(String, Vec<String>)]) -> Result<SubnetLabels, SubnetError> {
        let mut entries = Vec::new();
        for (name, cidrs) in labels {
            for cidr in cidrs {
                let label = Label::from(name.as_str());
                let side = SideLabels::new(EndpointLabels {
                    subnet: Some(label.clone()),
                    ..EndpointLabels::default()
                });
                entries.push((Cidr::parse(cidr)?, label, side));
            }
        }
        // The most specific subnet wins.
        entries.sort_by_key(|(cidr, _, _)| std::cmp::Reverse(cidr.prefix));
        Ok(SubnetLabels { entries })
    }

    fn entry_of(&self, ip: IpAddr) -> Option<&(Cidr, Label, SideLabels)> {
        self.entries.iter().find(|(c, _, _)| c.contains(ip))
    }

    pub fn label_of(&self, ip: IpAddr) -> Option<&Label> {
        self.entry_of(ip).map(|(_, label, _)| label)
    }

    /// The labels of an end known by its subnet only (none outside them).
    pub fn side_of(&self, ip: IpAddr) -> SideLabels {
        self.entry_of(ip)
            .map(|(_, _, side)| side.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_wins_and_errors_name_the_cidr() {
        let labels = SubnetLabels::parse(&[
            (
                "lab".into(),
                vec!["198.18.0.0/15".into(), "fd00:198:18::/48".into()],
            ),
            ("db".into(), vec!["198.18.3.0/24".into()]),
        ])
        .unwrap();
        let of = |ip: &str| labels.label_of(ip.parse().unwrap()).map(|l| l.to_string());
        assert_eq!(of("198.19.1.1").as_deref(), Some("lab"));
        assert_eq!(of("198.18.3.9").as_deref(), Some("db"));
        assert_eq!(of("fd00:198:18::5").as_deref(), Some("lab"));
        assert_eq!(of("192.0.2.1"), None);
        let err = SubnetLabels::parse(&[("x".into(), vec!["198.18.0.0/40".into()])]).unwrap_err();
        assert!(err.0.contains("198.18.0.0/40"), "{err}");
    }
}
