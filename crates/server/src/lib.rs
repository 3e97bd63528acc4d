//! flowlens's HTTP side, one listener per command: the query API over the
//! store (`api`), the console's files (`console_http`), `/metrics` and
//! `/status` from every component's counters (`metrics`), served within
//! bounds a hostile client cannot stretch (`http_server`), each answer with
//! the headers and host checks of `http_guard`. The commands of
//! `crates/cli` assemble it; none of it depends on the eBPF agent.

pub mod api;
pub mod authorize;
pub mod console_http;
pub mod http_guard;
pub mod http_server;
pub mod metrics;
pub mod tokens;
