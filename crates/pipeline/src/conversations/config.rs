//! What the conversation tracker emits, and when.

use flowlens_model::vocab::RecordType;
use std::collections::HashMap;
use std::str::FromStr;

/// netobserv's `spec.processor.logTypes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTypes {
    /// Flow logs only (each with `_RecordType: flowLog` and `_HashId`).
    Flows,
    /// newConnection, heartbeat and endConnection records.
    Conversations,
    /// endConnection records only.
    EndedConversations,
    /// Everything.
    All,
}

impl LogTypes {
    pub fn flows(self) -> bool {
        matches!(self, LogTypes::Flows | LogTypes::All)
    }
    pub fn conversation_updates(self) -> bool {
        matches!(self, LogTypes::Conversations | LogTypes::All)
    }
    pub fn ended_conversations(self) -> bool {
        !matches!(self, LogTypes::Flows)
    }

    /// These types plus every conversation record (what a store keeps).
    pub fn with_conversations(self) -> LogTypes {
        if self.flows() {
            LogTypes::All
        } else {
            LogTypes::Conversations
        }
    }

    /// Whether a record of `_RecordType` `record_type` is of these types.
    pub fn includes(self, record_type: RecordType) -> bool {
        match record_type {
            RecordType::FlowLog => self.flows(),
            RecordType::EndConnection => self.ended_conversations(),
            RecordType::NewConnection | RecordType::Heartbeat => self.conversation_updates(),
        }
    }
}

impl FromStr for LogTypes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "flows" => Ok(LogTypes::Flows),
            "conversations" => Ok(LogTypes::Conversations),
            "endedconversations" => Ok(LogTypes::EndedConversations),
            "all" => Ok(LogTypes::All),
            _ => Err(format!(
                "unknown log type `{s}`; valid: Flows, Conversations, EndedConversations, All"
            )),
        }
    }
}

/// netobserv's conversation timeouts, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A heartbeat record for a conversation still going, this often.
    pub heartbeat_ms: i64,
    /// A conversation with no flow for this long ends (cause `idle` unless
    /// it was already terminating).
    pub end_ms: i64,
    /// After FIN both ways, RST or a known outcome, the conversation ends
    /// this much later (late flows of it still count).
    pub terminating_ms: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            heartbeat_ms: 30_000,
            end_ms: 10_000,
            terminating_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrackerConfig {
    pub log_types: LogTypes,
    pub timeouts: Timeouts,
    /// Timeouts for one IP protocol (6 TCP, 17 UDP, 1 ICMP, ...).
    pub per_protocol: HashMap<u8, Timeouts>,
    /// Conversations tracked at once; beyond, new ones are counted and
    /// their flows still logged.
    pub max_connections_tracked: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            log_types: LogTypes::Flows,
            timeouts: Timeouts::default(),
            per_protocol: HashMap::new(),
            max_connections_tracked: 100_000,
        }
    }
}

impl TrackerConfig {
    pub fn timeouts_for(&self, proto: u8) -> Timeouts {
        self.per_protocol
            .get(&proto)
            .copied()
            .unwrap_or(self.timeouts)
    }
}
