//! What an exporter sends: flows, conversation records, or both (each
//! exporter chooses), and the filter that selects them.

use flowlens_model::{ConversationRecord, FlowRecord};
use flowlens_query::Filter;

/// One record on its way to a peer.
#[derive(Debug, Clone)]
pub enum ExportRecord {
    Flow(FlowRecord),
    /// A conversation's `newConnection`, `heartbeat` or `endConnection`.
    Conversation(ConversationRecord),
}

impl ExportRecord {
    pub fn as_flow(&self) -> Option<&FlowRecord> {
        match self {
            ExportRecord::Flow(f) => Some(f),
            ExportRecord::Conversation(_) => None,
        }
    }
}

/// Which records an exporter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordKinds {
    #[default]
    Flows,
    Conversations,
    Both,
    /// None at all (an OTLP exporter of metrics only).
    None,
}

impl RecordKinds {
    pub fn parse(text: &str) -> Result<RecordKinds, String> {
        match text.to_ascii_lowercase().as_str() {
            "flows" => Ok(RecordKinds::Flows),
            "conversations" => Ok(RecordKinds::Conversations),
            "both" | "all" => Ok(RecordKinds::Both),
            _ => Err(format!(
                "`{text}` is not a record choice (flows, conversations, both)"
            )),
        }
    }

    pub fn flows(self) -> bool {
        matches!(self, RecordKinds::Flows | RecordKinds::Both)
    }

    pub fn conversations(self) -> bool {
        matches!(self, RecordKinds::Conversations | RecordKinds::Both)
    }
}

/// Whether `filter` (if any) selects the flow.
pub fn selects_flow(filter: Option<&Filter>, flow: &FlowRecord) -> bool {
    filter.is_none_or(|f| f.matches(flow))
}

/// Whether `filter` (if any) selects the conversation record, read by its
/// JSON names (a conversation's `Bytes_AB`, `SrcAddr`, ...).
pub fn selects_conversation(filter: Option<&Filter>, record: &ConversationRecord) -> bool {
    let Some(filter) = filter else { return true };
    match serde_json::to_value(record) {
        Ok(serde_json::Value::Object(map)) => filter.matches_json(&map),
        _ => false,
    }
}
