//! Every exporter of a process, fed by the pipeline with each settled batch
//! of flows and each batch of conversation records; their counters by name
//! for /status and /metrics.

use crate::ipfix_transport::{IpfixTcp, IpfixUdp};
use crate::otlp_transport::{MetricsSource, OtlpClient, push_metrics};
use crate::sink::{Sink, SinkConfig, SinkStats};
use crate::target::{ExportTarget, Protocol};
use flowlens_model::{ConversationRecord, FlowRecord};

pub struct Exporters {
    sinks: Vec<Sink>,
    /// Tells the metrics pushers to push once more and stop.
    stop: tokio::sync::watch::Sender<bool>,
    pushers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Default for Exporters {
    fn default() -> Exporters {
        Exporters {
            sinks: Vec::new(),
            stop: tokio::sync::watch::channel(false).0,
            pushers: Default::default(),
        }
    }
}

impl Exporters {
    /// Starts one sink per target on the current runtime (and, for OTLP
    /// with metrics, a pusher reading `metrics`). An exporter that cannot
    /// be made (a Kafka client refusing its settings) is an error.
    pub fn start(
        targets: Vec<ExportTarget>,
        config: &SinkConfig,
        metrics: Option<MetricsSource>,
    ) -> Result<Exporters, String> {
        let mut exporters = Exporters::default();
        for t in targets {
            tracing::info!(exporter = %t.name, address = %t.address, records = ?t.records, "exporting");
            let (name, filter, kinds, config) =
                (t.name.clone(), t.filter.clone(), t.records, config.clone());
            let sink = match t.protocol {
                Protocol::IpfixUdp => {
                    Sink::start(name, filter, kinds, config, IpfixUdp::new(&t.address))
                }
                Protocol::IpfixTcp => {
                    Sink::start(name, filter, kinds, config, IpfixTcp::new(&t.address))
                }
                Protocol::OtlpGrpc | Protocol::OtlpHttp => {
                    let client = || -> Result<OtlpClient, String> {
                        match t.protocol {
                            Protocol::OtlpGrpc => OtlpClient::grpc(&t.address, &t.otlp),
                            _ => OtlpClient::http(&t.address, &t.otlp),
                        }
                    };
                    // Without logs, the sink takes no records (its
                    // counters still show the metrics pushes).
                    let kinds = if t.otlp.logs {
                        kinds
                    } else {
                        crate::RecordKinds::None
                    };
                    let sink = Sink::start(name.clone(), filter, kinds, config, client()?);
                    if t.otlp.metrics
                        && let Some(source) = &metrics
                    {
                        let pusher = tokio::spawn(push_metrics(
                            client()?,
                            source.clone(),
                            t.otlp.push_interval,
                            sink.stats_handle(),
                            name,
                            exporters.stop.subscribe(),
                        ));
                        exporters
                            .pushers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(pusher);
                    }
                    sink
                }
                Protocol::Kafka => {
                    let producer = crate::kafka::KafkaExport::new(&t)?;
                    Sink::start(name, filter, kinds, config, producer)
                }
            };
            exporters.sinks.push(sink);
        }
        Ok(exporters)
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Hands settled flows to every exporter that takes flows (copied into
    /// each buffer; never waits for a peer).
    pub fn flows(&self, flows: &[FlowRecord]) {
        for sink in &self.sinks {
            sink.push(flows);
        }
    }

    /// Hands conversation records to every exporter that takes them.
    pub fn conversations(&self, records: &[ConversationRecord]) {
        if records.is_empty() {
            return;
        }
        for sink in &self.sinks {
            sink.push_conversations(records);
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

    /// Sends what is buffered (within each one's grace) and the metrics
    /// once more, then stops.
    pub async fn finish(&self) {
        let _ = self.stop.send(true);
        let pushers: Vec<_> =
            std::mem::take(&mut *self.pushers.lock().unwrap_or_else(|e| e.into_inner()));
        for sink in &self.sinks {
            let _ = sink.finish().await;
        }
        for pusher in pushers {
            if tokio::time::timeout(std::time::Duration::from_secs(5), pusher)
                .await
                .is_err()
            {
                tracing::warn!("an OTLP metrics push did not end within 5s");
            }
        }
    }
}
