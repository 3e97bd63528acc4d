//! The pipeline's stages in order — enrichment, metrics, conversation
//! tracking — behind one entry point, whatever feeds it: the local agent in
//! `flowlens up`, or agents over gRPC in `flowlens collector`.

use crate::conversations::ConversationTracker;
use crate::enrich::{Enricher, HostEnricher, HostInventory};
use crate::metrics::FlowMetrics;
use flowlens_model::FlowRecord;
use serde_json::Value;
use std::sync::{Mutex, RwLock};

pub struct Processor {
    enricher: RwLock<HostEnricher>,
    pub metrics: Mutex<FlowMetrics>,
    pub tracker: Mutex<ConversationTracker>,
}

impl Processor {
    pub fn new(
        enricher: HostEnricher,
        metrics: FlowMetrics,
        tracker: ConversationTracker,
    ) -> Processor {
        Processor {
            enricher: RwLock::new(enricher),
            metrics: Mutex::new(metrics),
            tracker: Mutex::new(tracker),
        }
    }

    /// Takes flows (enriching them in place); returns the records they
    /// cause (flow logs, new conversations), as the log types say.
    pub fn ingest(&self, flows: &mut [FlowRecord], now_ms: i64) -> Vec<Value> {
        if let Ok(e) = self.enricher.read() {
            flows.iter_mut().for_each(|f| e.enrich(f));
        }
        if let Ok(mut m) = self.metrics.lock() {
            flows.iter().for_each(|f| m.observe(f, now_ms));
        }
        let mut records = Vec::new();
        if let Ok(mut t) = self.tracker.lock() {
            for flow in flows.iter() {
                records.extend(t.on_flow(flow, now_ms));
            }
        }
        records
    }

    /// Timer work: heartbeats and ended conversations, expired series.
    pub fn tick(&self, now_ms: i64) -> Vec<Value> {
        if let Ok(mut m) = self.metrics.lock() {
            m.expire(now_ms);
        }
        self.tracker
            .lock()
            .map(|mut t| t.tick(now_ms))
            .unwrap_or_default()
    }

    /// Ends every open conversation (at shutdown).
    pub fn flush(&self) -> Vec<Value> {
        self.tracker
            .lock()
            .map(|mut t| t.flush())
            .unwrap_or_default()
    }

    /// A fresh view of the host's addresses and network namespaces.
    pub fn set_inventory(&self, inventory: HostInventory) {
        if let Ok(mut e) = self.enricher.write() {
            e.inventory = inventory;
        }
    }
}
