//! Enrichment: who the two ends of a flow are. Pluggable: an `Enricher`
//! fills netobserv-style fields; this one knows a plain Linux host (its name,
//! its network namespaces, configured subnets). Kubernetes comes later as
//! another implementation.

mod cluster;
mod owners;
mod subnets;
mod tenancy;

pub use cluster::{Cluster, ClusterEvent, NodeInfo, PodInfo, ServiceInfo};
pub use owners::{OwnerRef, Owners};
pub use subnets::{SubnetError, SubnetLabels};
pub use tenancy::Tenancies;

use flowlens_model::{Address, EndpointLabels, FlowRecord, Label, SideLabels};
use foldhash::HashMap;
use std::net::IpAddr;

pub trait Enricher: Send + Sync {
    fn enrich(&self, record: &mut FlowRecord);
}

/// What a plain host knows of its addresses.
#[derive(Debug, Clone, Default)]
pub struct HostInventory {
    pub host_name: String,
    /// Address -> the network namespace holding it (None: the host's own).
    pub owners: HashMap<IpAddr, Option<String>>,
}

/// Fills, for each end on this host: `*K8S_HostName` (this node),
/// `*K8S_Namespace` and `*K8S_Name` (the network namespace's name),
/// `*K8S_Type` (`Node` or `NetworkNamespace`); for each end in a configured
/// subnet `*SubnetLabel`; and `FlowDirection` (0 ingress, 1 egress, 2 inner;
/// for a flow with neither end here, the direction it crossed its first
/// interface). The labels of each known address are made once, when the
/// inventory is set, and shared by every flow (no copy per flow).
pub struct HostEnricher {
    inventory: HostInventory,
    subnets: SubnetLabels,
    /// The labels of each address of the host, its subnet's included.
    resolved: HashMap<IpAddr, SideLabels>,
}

impl HostEnricher {
    pub fn new(inventory: HostInventory, subnets: SubnetLabels) -> HostEnricher {
        let mut enricher = HostEnricher {
            inventory: HostInventory::default(),
            subnets,
            resolved: HashMap::default(),
        };
        enricher.set_inventory(inventory);
        enricher
    }

    pub fn inventory(&self) -> &HostInventory {
        &self.inventory
    }

    /// New subnet labels (a FlowCollector's `spec.processor.subnetLabels`
    /// changed): every known address is labelled again.
    pub fn set_subnets(&mut self, subnets: SubnetLabels) {
        self.subnets = subnets;
        let inventory = std::mem::take(&mut self.inventory);
        self.set_inventory(inventory);
    }

    /// A fresh view of the host's addresses and network namespaces.
    pub fn set_inventory(&mut self, inventory: HostInventory) {
        let host = Label::from(inventory.host_name.as_str());
        let node = Label::from("Node");
        let netns_kind = Label::from("NetworkNamespace");
        self.resolved = inventory
            .owners
            .iter()
            .map(|(ip, owner)| {
                let labels = match owner {
                    // The node and each network namespace are their own
                    // owners (as netobserv names a host-network end).
                    None => EndpointLabels {
                        host_name: Some(host.clone()),
                        namespace: None,
                        name: Some(host.clone()),
                        kind: Some(node.clone()),
                        owner_name: Some(host.clone()),
                        owner_type: Some(node.clone()),
                        subnet: self.subnets.label_of(*ip).cloned(),
                        ..EndpointLabels::default()
                    },
                    Some(netns) => {
                        let (namespace, name) = namespace_and_name(netns);
                        let name = Label::from(name);
                        EndpointLabels {
                            host_name: Some(host.clone()),
                            namespace: Some(Label::from(namespace)),
                            name: Some(name.clone()),
                            kind: Some(netns_kind.clone()),
                            owner_name: Some(name),
                            owner_type: Some(netns_kind.clone()),
                            subnet: self.subnets.label_of(*ip).cloned(),
                            ..EndpointLabels::default()
                        }
                    }
                };
                (*ip, SideLabels::new(labels))
            })
            .collect();
        self.inventory = inventory;
    }

    /// Whether `addr` is this host's, and its labels.
    fn endpoint(&self, addr: Address) -> (bool, SideLabels) {
        let Some(ip) = addr.ip() else {
            return (false, SideLabels::default());
        };
        match self.resolved.get(&ip) {
            Some(labels) => (true, labels.clone()),
            None => (false, self.subnets.side_of(ip)),
        }
    }
}

/// The namespace and workload a network namespace stands for: a name
/// `<namespace>.<workload>` (as `shop.frontend`) groups workloads into
/// namespaces on a plain host; any other name is both.
fn namespace_and_name(netns: &str) -> (&str, &str) {
    match netns.split_once('.') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => (namespace, name),
        _ => (netns, netns),
    }
}

impl Enricher for HostEnricher {
    fn enrich(&self, r: &mut FlowRecord) {
        let (src_local, src) = self.endpoint(r.src_addr);
        let (dst_local, dst) = self.endpoint(r.dst_addr);
        (r.src_labels, r.dst_labels) = (src, dst);
        r.flow_direction = match (src_local, dst_local) {
            (true, true) => Some(2),
            (true, false) => Some(1),
            (false, true) => Some(0),
            (false, false) => r.if_directions.first().copied(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enricher() -> HostEnricher {
        let owners = [
            ("198.18.0.1", Some("frontend")),
            ("198.18.0.2", Some("backend")),
            ("198.18.0.3", Some("shop.cart")),
            ("198.18.9.1", None),
        ]
        .into_iter()
        .map(|(a, ns)| (a.parse().unwrap(), ns.map(str::to_string)))
        .collect();
        HostEnricher::new(
            HostInventory {
                host_name: "node-1".into(),
                owners,
            },
            SubnetLabels::parse(&[("lab".to_string(), vec!["198.18.0.0/24".to_string()])]).unwrap(),
        )
    }

    fn flow(src: &str, dst: &str) -> FlowRecord {
        FlowRecord {
            src_addr: src.into(),
            dst_addr: dst.into(),
            if_directions: vec![1],
            ..Default::default()
        }
    }

    #[test]
    fn namespaces_and_directions() {
        let e = enricher();
        let mut inner = flow("198.18.0.1", "198.18.0.2");
        e.enrich(&mut inner);
        assert_eq!(inner.flow_direction, Some(2));
        assert_eq!(inner.src_labels.namespace.as_deref(), Some("frontend"));
        assert_eq!(inner.dst_labels.name.as_deref(), Some("backend"));
        assert_eq!(inner.dst_labels.kind.as_deref(), Some("NetworkNamespace"));
        assert_eq!(inner.src_labels.host_name.as_deref(), Some("node-1"));
        // `<namespace>.<workload>` names group workloads into a namespace.
        let mut grouped = flow("198.18.0.3", "198.18.0.1");
        e.enrich(&mut grouped);
        assert_eq!(grouped.src_labels.namespace.as_deref(), Some("shop"));
        assert_eq!(grouped.src_labels.name.as_deref(), Some("cart"));
        assert_eq!(inner.src_labels.subnet.as_deref(), Some("lab"));

        let mut out = flow("198.18.9.1", "198.19.1.1");
        e.enrich(&mut out);
        assert_eq!(out.flow_direction, Some(1));
        assert_eq!(out.src_labels.kind.as_deref(), Some("Node"));
        assert_eq!(out.dst_labels.host_name, None);
        assert_eq!(out.dst_labels.subnet, None);

        let mut incoming = flow("198.19.1.1", "198.18.0.2");
        e.enrich(&mut incoming);
        assert_eq!(incoming.flow_direction, Some(0));
        let mut through = flow("198.19.1.1", "198.19.1.2");
        e.enrich(&mut through);
        assert_eq!(
            through.flow_direction,
            Some(1),
            "neither end here: the interface's direction"
        );
    }
}
