//! The flowlens data model: the flow record and the one schema table that
//! describes its fields. JSON names follow netobserv so that tools written for
//! netobserv read flowlens records unchanged.

pub mod address;
pub mod conversation;
pub mod endpoint;
pub mod fixtures;
pub mod mac;
pub mod metric_snapshot;
pub mod names;
pub mod record;
mod record_view;
pub mod schema;
pub mod tcp_flags;
pub mod view;
pub mod vocab;

pub use address::Address;
pub use conversation::{ConversationRecord, FlowLog, HashId, TrackerRecord};
pub use endpoint::{EndpointLabels, Side, SideLabels};
pub use mac::MacAddr;
pub use metric_snapshot::{MetricPoint, MetricSnapshot, PointValue};
pub use record::{FlowRecord, Label, NetworkEvent};
pub use schema::{FIELDS, FieldSpec, FieldType};
pub use view::{RecordView, Scalar};
