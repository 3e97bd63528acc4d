//! Exports to the tools users already run. Each exporter is a sink of the
//! pipeline (`sink`): records wait in a bounded buffer and leave in batches;
//! a peer that is down is retried with backoff and jitter while the buffer
//! holds what it can, and what the buffer cannot hold is dropped and
//! counted — capture and the other sinks never wait for an exporter.
//! Every exporter counts received = sent + dropped (by reason) + buffered.
//!
//! - `target`: `--export [NAME=]SCHEME://ADDRESS[?OPTIONS]`, its filter and
//!   its records (`record`: flows, conversations or both);
//! - `ipfix`: RFC 7011 messages (templates for IPv4 and IPv6 flows);
//! - `ipfix_transport`: UDP datagrams (templates refreshed) or a TCP stream;
//! - `otlp`, `otlp_transport`: log records and metrics, over gRPC or HTTP
//!   (`otlp_attributes`: a record's fields as attributes);
//! - `kafka`: JSON or pbflow messages keyed by connection, acks=all.

pub mod bus_consumer;
pub mod bus_producer;
pub mod exporters;
pub mod ipfix;
pub mod ipfix_transport;
pub mod kafka;
pub mod kafka_bus;
pub mod otlp;
pub mod otlp_attributes;
pub mod otlp_transport;
pub mod record;
pub mod sink;
pub mod target;

pub use exporters::Exporters;
pub use otlp_transport::MetricsSource;
pub use record::{ExportRecord, RecordKinds};
pub use sink::{SinkConfig, SinkStats};
pub use target::{ExportTarget, KafkaFormat, Protocol};
