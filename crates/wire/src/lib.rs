//! The flow wire format: netobserv's pbflow over gRPC. `convert` maps flow
//! records to and from protobuf, `exporter` is the agent's sending side
//! (batches, a bounded buffer, reconnects) and `receiver` the collector's
//! gRPC service; `connections` bounds the connections of every listener and
//! `secure` puts TLS on them.

pub mod agent_config;
pub mod codec;
pub mod connections;
pub mod convert;
pub mod exporter;
pub mod log_entry;
pub mod raw;
pub mod receiver;
pub mod records;
pub mod secure;

/// The generated pbflow messages and Collector service.
pub mod pbflow {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/pbflow.rs"));
    pub use crate::records::Records;
}

/// The generated AgentConfig service (the agents' settings from the
/// collector).
pub mod agentconfig {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/flowlens.agentconfig.rs"));
}
