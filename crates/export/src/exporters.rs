//! Every exporter of a process, fed by the pipeline with each settled batch
//! of flows; their counters by name for /status and /metrics.

use crate::ipfix_transport::{IpfixTcp, IpfixUdp};
use crate::sink::{Sink, SinkConfig, SinkStats};
use crate::target::{ExportTarget, Protocol};
use flowlens_model::FlowRecord;

#[derive(Default)]
pub struct Exporters {
    sinks: Vec<Sink>,
}

impl Exporters {
    /// Starts one sink per target on the current runtime.
    pub fn start(targets: Vec<ExportTarget>, config: &SinkConfig) -> Exporters {
        let sinks = targets
            .into_iter()
            .map(|t| {
                tracing::info!(exporter = %t.name, address = %t.address, "exporting flows");
                match t.protocol {
                    Protocol::IpfixUdp => {
                        Sink::start(t.name, t.filter, config.clone(), IpfixUdp::new(&t.address))
                    }
                    Protocol::IpfixTcp => {
                        Sink::start(t.name, t.filter, config.clone(), IpfixTcp::new(&t.address))
                    }
                }
            })
            .collect();
        Exporters { sinks }
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Hands settled flows to every exporter (copied into each buffer;
    /// never waits for a peer).
    pub fn flows(&self, flows: &[FlowRecord]) {
        for sink in &self.sinks {
            sink.push(flows);
        }
    }

    /// Each exporter's counters, as a /status section name and a reader.
    pub fn sections(&self) -> Vec<(String, Box<dyn Fn() -> SinkStats + Send + Sync>)> {
        self.sinks
            .iter()
            .map(|s| {
                let name: String = s
                    .name()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                (
                    format!("export_{name}"),
                    Box::new(s.stats_reader()) as Box<_>,
                )
            })
            .collect()
    }

    /// Sends what is buffered (within each one's grace), then stops.
    pub async fn finish(&self) {
        for sink in &self.sinks {
            let _ = sink.finish().await;
        }
    }
}
