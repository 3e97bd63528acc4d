//! The closed sets of names records carry — protocols, directions,
//! connection outcomes, close causes, drop categories, record types, TCP
//! states, DNS response codes — each defined once, as a Rust enum and as the
//! `Vocabulary` the filter language, `/api/fields` and the console read.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One name of a vocabulary, with the number it stands for where the
/// records store numbers (`tcp` is protocol 6) or where the name has one
/// (NXDomain is response code 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Term {
    pub name: &'static str,
    pub code: Option<i64>,
    /// How tables print it (`TCP` for `tcp`); the name unless given.
    pub label: &'static str,
}

/// A closed set of names a field takes.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Vocabulary {
    /// What the names are, for messages ("drop category").
    pub what: &'static str,
    pub terms: &'static [Term],
}

impl Vocabulary {
    /// The term named `name`, any case.
    pub fn find(&self, name: &str) -> Option<&'static Term> {
        self.terms
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Whether the names stand for numbers (so `<` and `>` apply).
    pub fn numbered(&self) -> bool {
        self.terms.iter().any(|t| t.code.is_some())
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        self.terms.iter().map(|t| t.name)
    }
}

/// An enum whose variants are a vocabulary's names: `as_str`, `from_name`,
/// `code`, `from_code`, serde as the name, and the `Vocabulary` static.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident in $vocab:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal $(: $code:literal)? $(as $label:literal)?),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        pub static $vocab: Vocabulary = Vocabulary {
            what: $what,
            terms: &[$(Term {
                name: $text,
                code: vocabulary!(@code $($code)?),
                label: vocabulary!(@label $text $(, $label)?),
            }),+],
        };

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The variant named exactly `name`.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub const fn code(self) -> Option<i64> {
                match self {
                    $($name::$variant => vocabulary!(@code $($code)?)),+
                }
            }

            pub fn from_code(code: i64) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.code() == Some(code))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;

            fn from_str(name: &str) -> Result<Self, UnknownName> {
                Self::from_name(name).ok_or_else(|| UnknownName::new(&$vocab, name))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
    (@label $text:literal, $label:literal) => { $label };
    (@label $text:literal) => { $text };
    (@code $code:literal) => { Some($code) };
    (@code) => { None };
}

/// A name that is not in its vocabulary; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    what: &'static str,
    name: String,
    valid: String,
}

impl UnknownName {
    pub fn new(vocabulary: &Vocabulary, name: &str) -> Self {
        UnknownName {
            what: vocabulary.what,
            name: name.chars().take(64).collect(),
            valid: vocabulary.names().collect::<Vec<_>>().join(", "),
        }
    }
}

impl std::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not a {} (valid: {})",
            self.name, self.what, self.valid
        )
    }
}

impl std::error::Error for UnknownName {}

vocabulary! {
    /// IP protocols by their IANA number; records keep the number
    /// (`Proto`), so any other number is valid too.
    pub enum Protocol in PROTOCOLS ("protocol") {
        Icmp = "icmp": 1 as "ICMP",
        Igmp = "igmp": 2 as "IGMP",
        Tcp = "tcp": 6 as "TCP",
        Udp = "udp": 17 as "UDP",
        Gre = "gre": 47 as "GRE",
        Esp = "esp": 50 as "ESP",
        Icmpv6 = "icmpv6": 58 as "ICMPv6",
        Sctp = "sctp": 132 as "SCTP",
    }
}

/// The table label of protocol number `proto`, or the number.
pub fn protocol_label(proto: u8) -> std::borrow::Cow<'static, str> {
    match PROTOCOLS
        .terms
        .iter()
        .find(|t| t.code == Some(proto.into()))
    {
        Some(t) => t.label.into(),
        None => proto.to_string().into(),
    }
}

vocabulary! {
    /// Which way a flow crossed this node (`FlowDirection`, as netobserv)
    /// or one interface (`IfDirections`: ingress or egress).
    pub enum Direction in DIRECTIONS ("flow direction") {
        Ingress = "ingress": 0,
        Egress = "egress": 1,
        /// Both ends on this node.
        Inner = "inner": 2,
    }
}

vocabulary! {
    /// How a connection attempt ended, as the kernel saw it (the agent's
    /// ConnectionTracking feature); the numbers are the eBPF program's.
    pub enum ConnOutcome in CONN_OUTCOMES ("connection outcome") {
        Established = "established": 1,
        Completed = "completed": 2,
        Refused = "refused": 3,
        Reset = "reset": 4,
        TimedOut = "timed_out": 5,
        Error = "error": 6,
        Aborted = "aborted": 7,
    }
}

vocabulary! {
    /// Why a conversation ended (`CloseCause` of an endConnection record).
    pub enum CloseCause in CLOSE_CAUSES ("close cause") {
        Completed = "completed",
        Reset = "reset",
        Refused = "refused",
        TimedOut = "timed_out",
        /// No packet for the idle timeout.
        Idle = "idle",
        /// Still open when the collector stopped.
        Active = "active",
    }
}

vocabulary! {
    /// The stable groups of kernel drop reasons users filter on.
    pub enum DropCategory in DROP_CATEGORIES ("drop category") {
        PolicyDenied = "policy_denied",
        NoSocket = "no_socket",
        NoRoute = "no_route",
        Checksum = "checksum",
        TtlExceeded = "ttl_exceeded",
        QueueFull = "queue_full",
        Malformed = "malformed",
        Other = "other",
    }
}

vocabulary! {
    /// What a record is: a flow, or one of a conversation's records.
    pub enum RecordType in RECORD_TYPES ("record type") {
        FlowLog = "flowLog",
        NewConnection = "newConnection",
        Heartbeat = "heartbeat",
        EndConnection = "endConnection",
    }
}

vocabulary! {
    /// Linux TCP states (include/net/tcp_states.h).
    pub enum TcpState in TCP_STATES ("TCP state") {
        Invalid = "TCP_INVALID_STATE": 0,
        Established = "TCP_ESTABLISHED": 1,
        SynSent = "TCP_SYN_SENT": 2,
        SynRecv = "TCP_SYN_RECV": 3,
        FinWait1 = "TCP_FIN_WAIT1": 4,
        FinWait2 = "TCP_FIN_WAIT2": 5,
        TimeWait = "TCP_TIME_WAIT": 6,
        Close = "TCP_CLOSE": 7,
        CloseWait = "TCP_CLOSE_WAIT": 8,
        LastAck = "TCP_LAST_ACK": 9,
        Listen = "TCP_LISTEN": 10,
        Closing = "TCP_CLOSING": 11,
        NewSynRecv = "TCP_NEW_SYN_RECV": 12,
        BoundInactive = "TCP_BOUND_INACTIVE": 13,
    }
}

impl TcpState {
    /// The state of number `state`; unknown numbers are the invalid state.
    pub fn from_number(state: u8) -> Self {
        Self::from_code(state.into()).unwrap_or(TcpState::Invalid)
    }
}

vocabulary! {
    /// DNS response codes (RFC 1035, 2136, 6895). Records keep the name as
    /// text, since codes 12–15 have none (`RCODE12`).
    pub enum DnsRcode in DNS_RCODES ("DNS response code") {
        NoError = "NoError": 0,
        FormErr = "FormErr": 1,
        ServFail = "ServFail": 2,
        NxDomain = "NXDomain": 3,
        NotImp = "NotImp": 4,
        Refused = "Refused": 5,
        YxDomain = "YXDomain": 6,
        YxRrSet = "YXRRSet": 7,
        NxRrSet = "NXRRSet": 8,
        NotAuth = "NotAuth": 9,
        NotZone = "NotZone": 10,
        DsoTypeNi = "DSOTYPENI": 11,
    }
}

vocabulary! {
    /// What happened to a flow or conversation (the derived `flow.status`).
    pub enum Status in STATUSES ("flow status") {
        Ok = "ok",
        Dropped = "dropped",
        Refused = "refused",
        TimedOut = "timed_out",
        Reset = "reset",
        Error = "error",
        Aborted = "aborted",
        Established = "established",
        Completed = "completed",
        Idle = "idle",
        Active = "active",
        DnsError = "dns_error",
        DnsUnanswered = "dns_unanswered",
        Retransmitted = "retransmitted",
    }
}

impl Status {
    /// Whether the status is a problem (a record with none is `ok`).
    pub const fn is_problem(self) -> bool {
        matches!(
            self,
            Status::Dropped
                | Status::Refused
                | Status::TimedOut
                | Status::Reset
                | Status::Error
                | Status::Aborted
                | Status::DnsError
                | Status::DnsUnanswered
                | Status::Retransmitted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_codes() {
        for state in TcpState::ALL {
            let json = serde_json::to_string(state).unwrap();
            assert_eq!(serde_json::from_str::<TcpState>(&json).unwrap(), *state);
            assert_eq!(TcpState::from_number(state.code().unwrap() as u8), *state);
        }
        assert_eq!(TcpState::from_number(99), TcpState::Invalid);
        assert_eq!(ConnOutcome::from_code(5), Some(ConnOutcome::TimedOut));
        assert_eq!(PROTOCOLS.find("TCP").unwrap().code, Some(6));
        assert_eq!(protocol_label(58), "ICMPv6");
        assert_eq!(protocol_label(200), "200");
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_valid_ones() {
        let err = serde_json::from_str::<DropCategory>("\"filtered\"").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("`filtered` is not a drop category"),
            "{message}"
        );
        assert!(message.contains("policy_denied"), "{message}");
    }

    #[test]
    fn every_vocabulary_has_unique_names_and_codes() {
        for v in [
            &PROTOCOLS,
            &DIRECTIONS,
            &CONN_OUTCOMES,
            &CLOSE_CAUSES,
            &DROP_CATEGORIES,
            &RECORD_TYPES,
            &TCP_STATES,
            &DNS_RCODES,
            &STATUSES,
        ] {
            let mut names = std::collections::HashSet::new();
            let mut codes = std::collections::HashSet::new();
            for t in v.terms {
                assert!(names.insert(t.name.to_lowercase()), "{} twice", t.name);
                if let Some(c) = t.code {
                    assert!(codes.insert(c), "{} code {c} twice", v.what);
                }
            }
        }
    }
}
