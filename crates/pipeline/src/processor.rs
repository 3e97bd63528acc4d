//! The pipeline's stages in order — enrichment, metrics, conversation
//! tracking — behind one entry point, whatever feeds it: the local agent in
//! `flowlens up`, or agents over gRPC in `flowlens collector`.

use crate::conversations::ConversationTracker;
use crate::enrich::{Cluster, Enricher, HostEnricher, HostInventory};
use crate::metrics::FlowMetrics;
use flowlens_model::{FlowRecord, Label, TrackerRecord};
use std::sync::{Arc, Mutex, RwLock};

pub struct Processor {
    enricher: RwLock<HostEnricher>,
    /// Only flows this filter selects feed the metrics (all without one).
    metrics_filter: Option<flowlens_query::Filter>,
    /// `K8S_ClusterName` of flows that do not name their cluster.
    cluster_name: RwLock<Option<Label>>,
    /// The Kubernetes API's view (kept by its watches): its labels win over
    /// the host's for the addresses it knows.
    cluster: Option<Arc<RwLock<Cluster>>>,
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
            metrics_filter: None,
            cluster_name: RwLock::new(None),
            cluster: None,
            metrics: Mutex::new(metrics),
            tracker: Mutex::new(tracker),
        }
    }

    /// Metrics count only the flows `filter` selects.
    pub fn with_metrics_filter(mut self, filter: flowlens_query::Filter) -> Processor {
        self.metrics_filter = Some(filter);
        self
    }

    /// Flows that do not name their cluster (a forwarding collector's do)
    /// are stamped with `name`.
    pub fn with_cluster_name(self, name: &str) -> Processor {
        self.set_cluster_name(Some(name));
        self
    }

    /// Labels ends from `cluster` (which the Kubernetes watches keep up to
    /// date) where it knows their address at the flow's time.
    pub fn with_cluster(mut self, cluster: Arc<RwLock<Cluster>>) -> Processor {
        self.cluster = Some(cluster);
        self
    }

    /// Takes flows (enriching them in place); returns the typed records
    /// they cause (flow logs, new conversations), as the log types say.
    pub fn ingest(&self, flows: &mut [FlowRecord], now_ms: i64) -> Vec<TrackerRecord> {
        self.enrich(flows);
        self.observe(flows, now_ms)
    }

    /// The cluster the Kubernetes watches keep, if enrichment is on.
    pub fn cluster(&self) -> Option<&Arc<RwLock<Cluster>>> {
        self.cluster.as_ref()
    }

    /// Labels flows' ends and cluster, in place.
    pub fn enrich(&self, flows: &mut [FlowRecord]) {
        if let Ok(e) = self.enricher.read() {
            flows.iter_mut().for_each(|f| e.enrich(f));
        }
        if let Some(cluster) = &self.cluster
            && let Ok(cluster) = cluster.read()
        {
            flows.iter_mut().for_each(|f| cluster.label(f));
        }
        if let Ok(name) = self.cluster_name.read()
            && let Some(cluster) = name.as_ref()
        {
            for f in flows.iter_mut().filter(|f| f.cluster_name.is_none()) {
                f.cluster_name = Some(cluster.clone());
            }
        }
    }

    /// Counts enriched flows in the metrics and conversations; the typed
    /// records they cause.
    pub fn observe(&self, flows: &[FlowRecord], now_ms: i64) -> Vec<TrackerRecord> {
        if let Ok(mut m) = self.metrics.lock() {
            let mut not_selected = 0;
            let selected = flows.iter().filter(|f| match &self.metrics_filter {
                Some(filter) if !filter.matches(f) => {
                    not_selected += 1;
                    false
                }
                _ => true,
            });
            m.observe_all(selected, now_ms);
            m.counters.flows_not_selected += not_selected;
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
    pub fn tick(&self, now_ms: i64) -> Vec<TrackerRecord> {
        if let Ok(mut m) = self.metrics.lock() {
            m.expire(now_ms);
        }
        if let Some(cluster) = &self.cluster
            && let Ok(mut cluster) = cluster.write()
        {
            cluster.expire(now_ms);
        }
        self.tracker
            .lock()
            .map(|mut t| t.tick(now_ms))
            .unwrap_or_default()
    }

    /// Ends every open conversation (at shutdown).
    pub fn flush(&self) -> Vec<TrackerRecord> {
        self.tracker
            .lock()
            .map(|mut t| t.flush())
            .unwrap_or_default()
    }

    /// The cluster's name from now on (a FlowCollector's
    /// `spec.processor.clusterName` changed).
    pub fn set_cluster_name(&self, name: Option<&str>) {
        if let Ok(mut current) = self.cluster_name.write() {
            *current = name.map(Label::from);
        }
    }

    /// Subnet labels from now on.
    pub fn set_subnets(&self, subnets: crate::enrich::SubnetLabels) {
        if let Ok(mut e) = self.enricher.write() {
            e.set_subnets(subnets);
        }
    }

    /// A fresh view of the host's addresses and network namespaces.
    pub fn set_inventory(&self, inventory: HostInventory) {
        if let Ok(mut e) = self.enricher.write() {
            e.set_inventory(inventory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::TrackerConfig;
    use crate::enrich::SubnetLabels;
    use crate::metrics::DEFAULT_INCLUDE_LIST;

    #[test]
    fn metrics_count_only_what_the_metrics_filter_selects() {
        let mut registry = prometheus_client::registry::Registry::default();
        let include: Vec<String> = DEFAULT_INCLUDE_LIST.iter().map(|s| s.to_string()).collect();
        let processor = Processor::new(
            HostEnricher::new(HostInventory::default(), SubnetLabels::parse(&[]).unwrap()),
            FlowMetrics::new(&mut registry, &include, 100, 60_000).unwrap(),
            ConversationTracker::new(TrackerConfig::default()),
        )
        .with_metrics_filter(flowlens_query::Filter::parse("proto = udp").unwrap());
        let flow = |proto: u8| FlowRecord {
            src_addr: "198.18.0.1".into(),
            dst_addr: "198.18.0.2".into(),
            proto,
            ..Default::default()
        };
        let mut flows = vec![flow(6), flow(17), flow(17)];
        processor.ingest(&mut flows, 0);
        let m = processor.metrics.lock().unwrap();
        assert_eq!(m.counters.flows_received, 2);
        assert_eq!(m.counters.flows_not_selected, 1);
        assert_eq!(
            processor.tracker.lock().unwrap().counters.flows_received,
            3,
            "conversations see every flow"
        );
    }

    #[test]
    fn flows_without_a_cluster_are_stamped_with_ours() {
        let mut registry = prometheus_client::registry::Registry::default();
        let processor = Processor::new(
            HostEnricher::new(HostInventory::default(), SubnetLabels::parse(&[]).unwrap()),
            FlowMetrics::new(&mut registry, &[], 100, 60_000).unwrap(),
            ConversationTracker::new(TrackerConfig::default()),
        )
        .with_cluster_name("east");
        let mut flows = vec![
            FlowRecord::default(),
            FlowRecord {
                cluster_name: Some("west".into()),
                ..Default::default()
            },
        ];
        processor.ingest(&mut flows, 0);
        assert_eq!(flows[0].cluster_name.as_deref(), Some("east"));
        assert_eq!(
            flows[1].cluster_name.as_deref(),
            Some("west"),
            "a forwarded flow keeps its own"
        );
    }

    #[test]
    fn the_clusters_labels_win_where_it_knows_the_address_at_the_flows_time() {
        use crate::enrich::{ClusterEvent, PodInfo};
        let mut registry = prometheus_client::registry::Registry::default();
        let cluster = Arc::new(RwLock::new(Cluster::new(60_000)));
        let processor = Processor::new(
            HostEnricher::new(HostInventory::default(), SubnetLabels::parse(&[]).unwrap()),
            FlowMetrics::new(&mut registry, &[], 100, 60_000).unwrap(),
            ConversationTracker::new(TrackerConfig::default()),
        )
        .with_cluster(cluster.clone());
        let pod = |uid: &str, name: &str, created_ms| {
            ClusterEvent::Pod(PodInfo {
                uid: uid.into(),
                namespace: "shop".into(),
                name: name.into(),
                node: Some("node-a".into()),
                host_ip: None,
                ips: vec!["198.18.4.2".parse().unwrap()],
                host_network: false,
                controller: None,
                created_ms,
            })
        };
        {
            let mut c = cluster.write().unwrap();
            c.apply(pod("p1", "old", 0), 0);
            c.apply(ClusterEvent::PodGone { uid: "p1".into() }, 50_000);
            c.apply(pod("p2", "new", 60_000), 60_000);
        }
        let flow = |start_ms| FlowRecord {
            src_addr: "198.18.4.2".into(),
            dst_addr: "198.18.9.9".into(),
            time_flow_start_ms: start_ms,
            time_flow_end_ms: start_ms + 1_000,
            ..Default::default()
        };
        let mut flows = vec![flow(40_000), flow(61_000)];
        processor.ingest(&mut flows, 62_000);
        assert_eq!(flows[0].src_labels.name.as_deref(), Some("old"));
        assert_eq!(flows[1].src_labels.name.as_deref(), Some("new"));
        assert_eq!(
            flows[1].src_labels.owner_type.as_deref(),
            Some("Pod"),
            "a bare pod owns itself"
        );
        assert!(
            flows[1].dst_labels.is_empty(),
            "an address the cluster does not know"
        );
    }
}
