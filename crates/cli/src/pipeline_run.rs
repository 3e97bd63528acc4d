//! A running pipeline: the processor, its timers (conversation heartbeats
//! and ends, metric series expiry, store flushes and retention, a fresh host
//! inventory), the store that keeps flows and conversations, and the writer
//! of the records to print (JSON lines on stdout, as the log types say).

use crate::metrics::CounterSection;
use crate::output::JsonLineWriter;
use flowlens_export::{ExportTarget, Exporters, SinkConfig, SinkStats};
use flowlens_model::{ConversationRecord, FlowRecord, TrackerRecord};
use flowlens_pipeline::Processor;
use flowlens_pipeline::conversations::LogTypes;
use flowlens_pipeline::cross_node::{CrossNodeJoin, JoinCounters};
use flowlens_pipeline::enrich::HostInventory;
use flowlens_store::{Store, StoreCounters};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often conversations are checked for heartbeats and ends.
/// How often closed hours are looked for to roll up.
const ROLLUP_TICK: Duration = Duration::from_secs(30);

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
    print: LogTypes,
    store: Option<Arc<Store>>,
    /// The join of several nodes' records of one flow (a collector with
    /// Kubernetes enrichment), and how far the pipeline's clock lags the
    /// wall clock because of it (its window).
    join: Option<Arc<Mutex<CrossNodeJoin>>>,
    lag_ms: i64,
    /// Where settled flows go on to (IPFIX, ...).
    exporters: Arc<Exporters>,
}

impl PipelineRun {
    /// Starts the timers on the current runtime (after a first inventory).
    /// With `join_window` and Kubernetes enrichment, the records of one
    /// flow from several nodes are counted once (`cross_node`).
    pub async fn start(
        processor: Processor,
        print: LogTypes,
        store: Option<Store>,
        join_window: Option<Duration>,
        exports: Vec<ExportTarget>,
    ) -> anyhow::Result<(PipelineRun, Vec<tokio::task::JoinHandle<()>>)> {
        let window_ms = join_window
            .filter(|_| processor.cluster().is_some())
            .map_or(0, |w| w.as_millis().min(i64::MAX as u128) as i64);
        let series = processor
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .series();
        let metrics: flowlens_export::MetricsSource = Arc::new(move || series.snapshot());
        let exporters = Exporters::start(exports, &SinkConfig::default(), Some(metrics))
            .map_err(anyhow::Error::msg)?;
        let run = PipelineRun {
            processor: Arc::new(processor),
            writer: Arc::default(),
            print,
            store: store.map(Arc::new),
            join: (window_ms > 0).then(|| Arc::new(Mutex::new(CrossNodeJoin::new(window_ms)))),
            lag_ms: window_ms,
            exporters: Arc::new(exporters),
        };
        // Files are written on a thread of their own: ingest never waits
        // for a Parquet encode or a sync.
        if let Some(store) = &run.store
            && let Err(e) = Store::start_writer(store)
        {
            tracing::error!(
                "cannot start the store's writer thread ({e}); ingest writes files itself"
            );
        }
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
                ticking.release_joined();
                let records = ticking.processor.tick(now_ms() - ticking.lag_ms);
                ticking.write(records);
                if let Some(store) = ticking.store.clone() {
                    let _ = tokio::task::spawn_blocking(move || store.maintain()).await;
                }
            }
        });
        // Rollups read an hour of flows: on their own timer, so conversation
        // ticks and flushes never wait for one.
        let rolling = run.store();
        let roller = tokio::spawn(async move {
            let Some(store) = rolling else { return };
            let mut timer = tokio::time::interval(ROLLUP_TICK);
            loop {
                timer.tick().await;
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || while store.roll_up() {}).await;
            }
        });
        Ok((run, vec![inventory, ticker, roller]))
    }

    /// Prints the records the log types ask for; stores the conversation
    /// records.
    fn write(&self, records: Vec<TrackerRecord>) {
        let printed: Vec<&TrackerRecord> = records
            .iter()
            .filter(|r| self.print.includes(r.record_type()))
            .collect();
        if !printed.is_empty()
            && let Ok(mut w) = self.writer.lock()
        {
            w.write(&printed);
        }
        if self.store.is_none() && self.exporters.is_empty() {
            return;
        }
        let conversations: Vec<ConversationRecord> = records
            .into_iter()
            .filter_map(|r| match r {
                TrackerRecord::Conversation(c) => Some(c),
                TrackerRecord::FlowLog(_) => None,
            })
            .collect();
        self.exporters.conversations(&conversations);
        if let Some(store) = &self.store
            && !conversations.is_empty()
        {
            store.append_conversations(&conversations);
        }
    }

    pub fn ingest(&self, flows: Vec<FlowRecord>) {
        self.ingest_logged(flows, 0);
    }

    /// Ingests flows the write-ahead log holds as entry `wal_lsn` (0: not
    /// logged).
    pub fn ingest_logged(&self, mut flows: Vec<FlowRecord>, wal_lsn: u64) {
        self.processor.enrich(&mut flows);
        let (Some(join), Some(cluster)) = (&self.join, self.processor.cluster()) else {
            return self.settle(flows, wal_lsn);
        };
        let now = now_ms();
        // A panic elsewhere never makes a batch vanish: the state behind a
        // poisoned lock is still whole (each change is one call).
        let mut join = join.lock().unwrap_or_else(|e| e.into_inner());
        let cluster = cluster.read().unwrap_or_else(|e| e.into_inner());
        let flows = CrossNodeJoin::roles(&cluster, flows);
        drop(cluster);
        join.push(flows, wal_lsn, now);
        // Settled under the join's lock: batches reach the store in the
        // log's order, so its files hold whole entries.
        self.settle_all(join.release(now));
    }

    /// Batches whose join window has passed (a timer's work).
    fn release_joined(&self) {
        if let Some(join) = &self.join {
            let mut join = join.lock().unwrap_or_else(|e| e.into_inner());
            self.settle_all(join.release(now_ms()));
        }
    }

    fn settle_all(&self, batches: Vec<(Vec<FlowRecord>, u64)>) {
        for (flows, lsn) in batches {
            self.settle(flows, lsn);
        }
    }

    /// Enriched flows, counted and stored.
    fn settle(&self, flows: Vec<FlowRecord>, wal_lsn: u64) {
        let records = self.processor.observe(&flows, now_ms() - self.lag_ms);
        if let Some(store) = &self.store {
            store.append_flows_logged(&flows, wal_lsn);
        }
        self.exporters.flows(&flows);
        self.write(records);
    }

    /// Conversations still open end now, with cause `active`; the store
    /// writes out what it holds.
    pub fn finish(&self) {
        if let Some(join) = &self.join {
            let mut join = join.lock().unwrap_or_else(|e| e.into_inner());
            self.settle_all(join.drain());
        }
        let last = self.processor.flush();
        self.write(last);
        if let Some(store) = &self.store {
            store.close();
        }
    }

    /// Sends what the exporters still hold (within their grace).
    pub async fn finish_exports(&self) {
        self.exporters.finish().await;
    }

    pub fn processor(&self) -> Arc<Processor> {
        self.processor.clone()
    }

    pub fn store(&self) -> Option<Arc<Store>> {
        self.store.clone()
    }

    /// The counters of the conversation and metrics stages.
    pub fn counter_sections(&self) -> Vec<CounterSection> {
        let tracker = self.processor.clone();
        let metrics = self.processor.clone();
        let mut sections = vec![
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
                            "late_flows": c.late_flows,
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
                            "flows_not_selected": c.flows_not_selected,
                            "series_dropped": c.series_dropped,
                            "series_expired": c.series_expired,
                        })
                    })
                    .unwrap_or_default()
            }),
        ];
        for (name, read) in self.exporters.sections() {
            // A handful of exporters per process, named once at start.
            let name: &'static str = Box::leak(name.into_boxed_str());
            sections.push(CounterSection::new(name, SinkStats::GAUGES, read));
        }
        if let Some(join) = self.join.clone() {
            sections.push(CounterSection::new("cross_node", &["held"], move || {
                join.lock()
                    .map(|j| j.counters.clone())
                    .unwrap_or_else(|_| JoinCounters::default())
            }));
        }
        if let Some(store) = self.store.clone() {
            sections.push(CounterSection::new(
                "store",
                StoreCounters::GAUGES,
                move || store.counters(),
            ));
        }
        sections
    }
}
