//! A running pipeline: the processor, its timers (conversation heartbeats
//! and ends, metric series expiry, a fresh host inventory) and the writer of
//! the records it produces (JSON lines on stdout).

use crate::metrics::CounterSection;
use crate::output::JsonLineWriter;
use flowlens_model::FlowRecord;
use flowlens_pipeline::Processor;
use flowlens_pipeline::enrich::HostInventory;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often conversations are checked for heartbeats and ends.
const TRACKER_TICK: Duration = Duration::from_secs(1);
/// How often the host's addresses and network namespaces are listed again.
const INVENTORY_REFRESH: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn scan_inventory() -> HostInventory {
    HostInventory {
        host_name: flowlens_agent::host::host_name(),
        owners: flowlens_agent::host::namespace_addresses()
            .into_iter()
            .collect(),
    }
}

#[derive(Clone)]
pub struct PipelineRun {
    processor: Arc<Processor>,
    writer: Arc<Mutex<JsonLineWriter>>,
}

impl PipelineRun {
    /// Starts the timers on the current runtime (after a first inventory).
    pub async fn start(processor: Processor) -> (PipelineRun, Vec<tokio::task::JoinHandle<()>>) {
        let run = PipelineRun {
            processor: Arc::new(processor),
            writer: Arc::default(),
        };
        if let Ok(inventory) = tokio::task::spawn_blocking(scan_inventory).await {
            run.processor.set_inventory(inventory);
        }
        let refreshing = run.processor.clone();
        let inventory = tokio::spawn(async move {
            let mut timer = tokio::time::interval(INVENTORY_REFRESH);
            timer.tick().await;
            loop {
                timer.tick().await;
                if let Ok(fresh) = tokio::task::spawn_blocking(scan_inventory).await {
                    refreshing.set_inventory(fresh);
                }
            }
        });
        let ticking = run.clone();
        let ticker = tokio::spawn(async move {
            let mut timer = tokio::time::interval(TRACKER_TICK);
            loop {
                timer.tick().await;
                let records = ticking.processor.tick(now_ms());
                ticking.write(&records);
            }
        });
        (run, vec![inventory, ticker])
    }

    fn write(&self, records: &[serde_json::Value]) {
        if let Ok(mut w) = self.writer.lock() {
            w.write(records);
        }
    }

    pub fn ingest(&self, mut flows: Vec<FlowRecord>) {
        let records = self.processor.ingest(&mut flows, now_ms());
        self.write(&records);
    }

    /// Conversations still open end now, with cause `active`.
    pub fn finish(&self) {
        let last = self.processor.flush();
        self.write(&last);
    }

    /// The counters of the conversation and metrics stages.
    pub fn counter_sections(&self) -> Vec<CounterSection> {
        let tracker = self.processor.clone();
        let metrics = self.processor.clone();
        vec![
            CounterSection::new("conversations", &["tracked"], move || {
                tracker
                    .tracker
                    .lock()
                    .map(|t| {
                        let c = &t.counters;
                        serde_json::json!({
                            "flows_received": c.flows_received,
                            "records_sent": c.records_sent,
                            "started": c.conversations_started,
                            "ended": c.conversations_ended,
                            "dropped": c.conversations_dropped,
                            "tracked": t.tracked(),
                        })
                    })
                    .unwrap_or_default()
            }),
            CounterSection::new("metrics", &[], move || {
                metrics
                    .metrics
                    .lock()
                    .map(|m| {
                        let c = &m.counters;
                        serde_json::json!({
                            "flows_received": c.flows_received,
                            "series_dropped": c.series_dropped,
                            "series_expired": c.series_expired,
                        })
                    })
                    .unwrap_or_default()
            }),
        ]
    }
}
