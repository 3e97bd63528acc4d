//! The `flowlens` binary's commands, as a library (the HTTP side is
//! `crates/server`, re-exported here): the binary
//! (`main.rs`) parses the command line and calls them, and the fuzz targets
//! (`fuzz/`) drive the API's routes in process.

pub use flowlens_server::{api, console_http, http_server, metrics};

pub mod agent_cmd;
pub mod agent_reload;
pub mod allocator;
pub mod capture_args;
pub mod collector_cmd;
pub mod demo;
pub mod durable_ingest;
pub mod export_config;
pub mod flowcollector_watch;
pub mod http_client;
pub mod kubernetes;
pub mod netlab;
pub mod output;
pub mod pipeline_run;
pub mod privileges;
pub mod processor_args;
pub mod query_cmd;
pub mod shutdown;
pub mod status_cmd;
pub mod store_args;
pub mod tls_args;
pub mod up_cmd;
