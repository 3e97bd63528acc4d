//! Exports to the tools users already run. Each exporter is a sink of the
//! pipeline (`sink`): records wait in a bounded buffer and leave in batches;
//! a peer that is down is retried with backoff and jitter while the buffer
//! holds what it can, and what the buffer cannot hold is dropped and
//! counted — capture and the other sinks never wait for an exporter.
//! Every exporter counts received = sent + dropped (by reason) + buffered.
//!
//! - `target`: `--export [NAME=]ipfix+udp://HOST:PORT` and its filter;
//! - `ipfix`: RFC 7011 messages (templates for IPv4 and IPv6 flows);
//! - `ipfix_transport`: UDP datagrams (templates refreshed) or a TCP stream.

pub mod exporters;
pub mod ipfix;
pub mod ipfix_transport;
pub mod sink;
pub mod target;

pub use exporters::Exporters;
pub use sink::{SinkConfig, SinkStats};
pub use target::{ExportTarget, Protocol};
