//! The flowlens eBPF flow agent: loads the kernel programs, follows the
//! host's interfaces, evicts flows exactly, and turns them into records.

pub mod agent;
pub mod attach;
pub mod btf_enums;
pub mod clock;
pub use flowlens_config as config;
pub mod dns;
pub mod drop_reasons;
pub mod extras;
pub mod host;
pub mod interfaces;
pub mod kernel;
pub mod kernel_types;
pub mod merge;
pub mod nflog;
pub mod policy_events;
pub mod shared_map;
pub mod stats;

pub use agent::FlowAgent;
pub use stats::AgentStats;
