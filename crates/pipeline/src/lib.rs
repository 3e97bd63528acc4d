//! flowlens pipeline components, one folder each (Vector's model: every
//! component counts what it received, sent and dropped).

pub mod conversations;
pub mod cross_node;
pub mod enrich;
pub mod metrics;
pub mod processor;

pub use processor::Processor;
