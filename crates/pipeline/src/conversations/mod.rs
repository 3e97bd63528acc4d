//! Conversation tracking: the two directions of a connection joined into one
//! record, as flowlogs-pipeline's conntrack stage does, and further: ends on
//! RST as well as FIN, tracks ICMP, expires on a timer, says why a
//! conversation closed, and bounds its memory with a counter.

mod config;
mod key;
mod labels;
mod state;
mod table;
mod tracker;

pub use config::{LogTypes, Timeouts, TrackerConfig};
pub use key::{ConversationKey, Endpoint};
pub use tracker::{ConversationTracker, TrackerCounters};
