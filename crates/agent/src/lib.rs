//! The flowlens eBPF flow agent.

pub mod config;
