//! Kubernetes enrichment of `up` and `collector`: the watches of the API
//! named by `--kubeconfig`, `KUBECONFIG` or the pod's service account,
//! keeping the `Cluster` whose labels name flows' ends.

use crate::metrics::CounterSection;
use anyhow::Result;
use flowlens_kube::Source;
use flowlens_kube::watch::{SharedStats, WatchStats};
use flowlens_pipeline::enrich::Cluster;
use std::sync::{Arc, RwLock};

/// The gauges of the watches' counters.
const GAUGES: &[&str] = &["pods"];

pub struct KubeEnrichment {
    source: Source,
    pub cluster: Arc<RwLock<Cluster>>,
    stats: SharedStats,
}

impl KubeEnrichment {
    /// The enrichment `source` names, or None (with a log line saying so);
    /// deleted objects' addresses keep their labels `tombstone_ms`.
    pub fn new(source: Option<Source>, tombstone_ms: i64) -> Option<KubeEnrichment> {
        let Some(source) = source else {
            tracing::info!(
                "Kubernetes enrichment off: no --kubeconfig, KUBECONFIG or in-cluster service account"
            );
            return None;
        };
        Some(KubeEnrichment {
            source,
            cluster: Arc::new(RwLock::new(Cluster::new(tombstone_ms))),
            stats: Arc::default(),
        })
    }

    /// Connects and starts the watches (they retry on their own from then
    /// on); a kubeconfig that cannot be used is an error now.
    pub async fn start(&self) -> Result<()> {
        let client = flowlens_kube::client(&self.source).await?;
        tracing::info!(source = ?self.source, "Kubernetes enrichment on");
        flowlens_kube::watch::spawn(client, self.cluster.clone(), self.stats.clone());
        Ok(())
    }

    /// The watches' counters for /metrics and `flowlens status`.
    pub fn section(&self) -> CounterSection {
        let stats = self.stats.clone();
        CounterSection::new("kubernetes", GAUGES, move || -> WatchStats {
            stats.lock().map(|s| s.clone()).unwrap_or_default()
        })
    }
}
