//! Agent feature names, as in `spec.agent.ebpf.features` and `--features`.

use serde::Deserialize;
use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Feature {
    FlowRTT,
    DNSTracking,
    PacketDrop,
    NetworkEvents,
    PacketTranslation,
    EbpfManager,
    UDNMapping,
    IPSec,
    /// flowlens: retransmitted TCP segments per flow.
    TCPRetransmits,
    /// flowlens: TCP connection outcomes (refused, reset, timed out, ...).
    ConnectionTracking,
}

impl Feature {
    pub const ALL: [Feature; 10] = [
        Feature::FlowRTT,
        Feature::DNSTracking,
        Feature::PacketDrop,
        Feature::NetworkEvents,
        Feature::PacketTranslation,
        Feature::EbpfManager,
        Feature::UDNMapping,
        Feature::IPSec,
        Feature::TCPRetransmits,
        Feature::ConnectionTracking,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::FlowRTT => "FlowRTT",
            Feature::DNSTracking => "DNSTracking",
            Feature::PacketDrop => "PacketDrop",
            Feature::NetworkEvents => "NetworkEvents",
            Feature::PacketTranslation => "PacketTranslation",
            Feature::EbpfManager => "EbpfManager",
            Feature::UDNMapping => "UDNMapping",
            Feature::IPSec => "IPSec",
            Feature::TCPRetransmits => "TCPRetransmits",
            Feature::ConnectionTracking => "ConnectionTracking",
        }
    }

    /// Whether this build implements the feature. Accepted features that are
    /// not yet implemented are reported at start, never silently ignored.
    pub fn is_supported(self) -> bool {
        !matches!(
            self,
            Feature::PacketTranslation
                | Feature::EbpfManager
                | Feature::UDNMapping
                | Feature::IPSec
        )
    }

    pub fn valid_names() -> String {
        Feature::ALL.map(Feature::name).join(", ")
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Feature {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Feature::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown feature `{s}`; valid features: {}",
                    Feature::valid_names()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_lists_choices_on_error() {
        assert_eq!("flowrtt".parse::<Feature>().unwrap(), Feature::FlowRTT);
        let err = "FlowRT".parse::<Feature>().unwrap_err();
        assert!(
            err.contains("`FlowRT`") && err.contains("DNSTracking"),
            "{err}"
        );
    }
}
