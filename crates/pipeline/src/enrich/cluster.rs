//! Kubernetes enrichment: the pods, services and nodes of a cluster, as the
//! API's watches tell them (`ClusterEvent`, made by the watcher from the
//! API's objects), and the labels of a flow's ends at the flow's time.
//!
//! A pod's labels name its node, namespace and name, its top workload
//! (`Owners`), its node's address and zone; a service's its namespace and
//! name; a node's itself. Host-network pods share their node's address and
//! are the node. Labels are made once per object (and again when its node's
//! zone or its owner changes), and every flow of an address shares them.

use super::owners::{OwnerRef, Owners};
use super::tenancy::Tenancies;
use flowlens_model::{EndpointLabels, FlowRecord, Label, SideLabels};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// A pod as enrichment needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Its node (None until scheduled).
    pub node: Option<String>,
    pub host_ip: Option<String>,
    /// `status.podIPs` (none until started).
    pub ips: Vec<IpAddr>,
    pub host_network: bool,
    /// Its controlling owner (`ownerReferences` with `controller: true`).
    pub controller: Option<OwnerRef>,
    /// Its creation time (the start of its addresses' tenancy).
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// `spec.clusterIPs` (none for a headless service).
    pub cluster_ips: Vec<IpAddr>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub uid: String,
    pub name: String,
    /// `status.addresses` of type InternalIP and ExternalIP.
    pub addresses: Vec<IpAddr>,
    /// Label `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    pub created_ms: i64,
}

/// What a watch saw, at `at_ms` (when it was seen).
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    Pod(PodInfo),
    PodGone {
        uid: String,
    },
    Service(ServiceInfo),
    ServiceGone {
        uid: String,
    },
    Node(NodeInfo),
    NodeGone {
        uid: String,
    },
    /// A ReplicaSet or Job and its controller.
    Controller {
        kind: String,
        namespace: String,
        name: String,
        controller: Option<OwnerRef>,
    },
    ControllerGone {
        kind: String,
        namespace: String,
        name: String,
    },
}

/// The cluster as the watches told it.
#[derive(Debug)]
pub struct Cluster {
    tenancies: Tenancies,
    owners: Owners,
    pods: HashMap<String, PodInfo>,
    /// Pods by what their labels come from besides themselves: their
    /// controller (namespace, kind, name) and their node; a change of
    /// either relabels only its own pods.
    by_controller: HashMap<(String, String, String), HashSet<String>>,
    by_node: HashMap<String, HashSet<String>>,
    nodes: HashMap<String, NodeInfo>,
    /// Each live object's number (tenancies name objects by number); a
    /// number is never given twice, so a tombstone is never taken for a
    /// later object's tenancy.
    numbers: HashMap<String, u64>,
    next_number: u64,
    /// One shared copy of each repeated text (namespaces, nodes, owners,
    /// kinds, zones): as many as the cluster has, not one per pod.
    texts: HashSet<Label>,
}

impl Cluster {
    /// Addresses released by deleted objects keep their labels for
    /// `tombstone_ms` (late flows).
    pub fn new(tombstone_ms: i64) -> Cluster {
        Cluster {
            tenancies: Tenancies::new(tombstone_ms),
            owners: Owners::default(),
            pods: HashMap::new(),
            by_controller: HashMap::new(),
            by_node: HashMap::new(),
            nodes: HashMap::new(),
            numbers: HashMap::new(),
            next_number: 0,
            texts: Default::default(),
        }
    }

    /// Applies what a watch saw at `now_ms`.
    pub fn apply(&mut self, event: ClusterEvent, now_ms: i64) {
        match event {
            ClusterEvent::Pod(pod) => self.set_pod(pod, now_ms),
            ClusterEvent::PodGone { uid } => {
                if let Some(pod) = self.pods.remove(&uid) {
                    self.unindex(&pod);
                }
                self.forget(&uid, now_ms);
            }
            ClusterEvent::Service(service) => {
                let number = self.number(&service.uid);
                let labels = SideLabels::new(EndpointLabels {
                    namespace: Some(self.text(&service.namespace)),
                    name: Some(self.text(&service.name)),
                    kind: Some(self.text("Service")),
                    owner_name: Some(self.text(&service.name)),
                    owner_type: Some(self.text("Service")),
                    ..EndpointLabels::default()
                });
                let ips = &service.cluster_ips;
                self.tenancies
                    .hold(number, ips, &labels, service.created_ms, now_ms);
            }
            ClusterEvent::ServiceGone { uid } => self.forget(&uid, now_ms),
            ClusterEvent::Node(node) => self.set_node(node, now_ms),
            ClusterEvent::NodeGone { uid } => {
                self.nodes.retain(|_, n| n.uid != uid);
                self.forget(&uid, now_ms);
            }
            ClusterEvent::Controller {
                kind,
                namespace,
                name,
                controller,
            } => {
                if self.owners.set(&kind, &namespace, &name, controller) {
                    let pods = self.by_controller.get(&(namespace, kind, name)).cloned();
                    self.relabel(pods.unwrap_or_default(), now_ms);
                }
            }
            ClusterEvent::ControllerGone {
                kind,
                namespace,
                name,
            } => self.owners.remove(&kind, &namespace, &name),
        }
    }

    /// The labels of `address` at `t_ms`, if the cluster had it then.
    pub fn labels_at(&self, address: IpAddr, t_ms: i64) -> Option<&SideLabels> {
        self.tenancies.labels_at(address, t_ms)
    }

    /// The addresses of the node named `name`, if the cluster has it.
    pub fn node_addresses(&self, name: &str) -> Option<&[IpAddr]> {
        self.nodes
            .values()
            .find(|n| n.name == name)
            .map(|n| n.addresses.as_slice())
    }

    /// The node whose address `address` was at `t_ms`.
    pub fn node_at(&self, address: IpAddr, t_ms: i64) -> Option<&Label> {
        let labels = self.labels_at(address, t_ms)?;
        if labels.kind.as_deref() == Some("Node") {
            labels.name.as_ref()
        } else {
            None
        }
    }

    /// Labels the ends of `flow` whose address the cluster had at the
    /// flow's start (a reused address's new holder began after the old
    /// one's last flow started); other ends keep theirs.
    pub fn label(&self, flow: &mut FlowRecord) {
        let at = flow.time_flow_start_ms;
        if let Some(ip) = flow.src_addr.ip()
            && let Some(labels) = self.labels_at(ip, at)
        {
            flow.src_labels = labels.clone();
        }
        if let Some(ip) = flow.dst_addr.ip()
            && let Some(labels) = self.labels_at(ip, at)
        {
            flow.dst_labels = labels.clone();
        }
    }

    /// Forgets expired tombstones.
    pub fn expire(&mut self, now_ms: i64) {
        self.tenancies.expire(now_ms);
    }

    /// Pods known (for status and memory figures).
    pub fn pods(&self) -> usize {
        self.pods.len()
    }

    fn forget(&mut self, uid: &str, now_ms: i64) {
        if let Some(number) = self.numbers.remove(uid) {
            self.tenancies.release(number, now_ms);
        }
    }

    fn set_pod(&mut self, pod: PodInfo, now_ms: i64) {
        let number = self.number(&pod.uid);
        // A host-network pod's addresses are its node's: they are the node.
        let ips: &[IpAddr] = if pod.host_network { &[] } else { &pod.ips };
        let labels = self.pod_labels(&pod);
        self.tenancies
            .hold(number, ips, &labels, pod.created_ms, now_ms);
        if let Some(old) = self.pods.remove(&pod.uid) {
            self.unindex(&old);
        }
        if let Some(c) = &pod.controller {
            let key = (pod.namespace.clone(), c.kind.clone(), c.name.clone());
            self.by_controller
                .entry(key)
                .or_default()
                .insert(pod.uid.clone());
        }
        if let Some(node) = &pod.node {
            self.by_node
                .entry(node.clone())
                .or_default()
                .insert(pod.uid.clone());
        }
        self.pods.insert(pod.uid.clone(), pod);
    }

    fn unindex(&mut self, pod: &PodInfo) {
        if let Some(c) = &pod.controller {
            let key = (pod.namespace.clone(), c.kind.clone(), c.name.clone());
            if let Some(set) = self.by_controller.get_mut(&key) {
                set.remove(&pod.uid);
                if set.is_empty() {
                    self.by_controller.remove(&key);
                }
            }
        }
        if let Some(node) = &pod.node
            && let Some(set) = self.by_node.get_mut(node)
        {
            set.remove(&pod.uid);
            if set.is_empty() {
                self.by_node.remove(node);
            }
        }
    }

    fn pod_labels(&mut self, pod: &PodInfo) -> SideLabels {
        let owner = self
            .owners
            .top_of(&pod.namespace, &pod.name, pod.controller.as_ref());
        let zone = pod
            .node
            .as_ref()
            .and_then(|n| self.nodes.get(n))
            .and_then(|n| n.zone.clone());
        SideLabels::new(EndpointLabels {
            host_name: pod.node.as_deref().map(|n| self.text(n)),
            namespace: Some(self.text(&pod.namespace)),
            name: Some(Label::from(pod.name.as_str())),
            kind: Some(self.text("Pod")),
            owner_name: Some(self.text(&owner.name)),
            owner_type: Some(self.text(&owner.kind)),
            host_ip: pod.host_ip.as_deref().map(|ip| self.text(ip)),
            zone: zone.as_deref().map(|z| self.text(z)),
            subnet: None,
        })
    }

    fn set_node(&mut self, node: NodeInfo, now_ms: i64) {
        let number = self.number(&node.uid);
        let host_ip = node.addresses.first().map(|ip| self.text(&ip.to_string()));
        let name = self.text(&node.name);
        let labels = SideLabels::new(EndpointLabels {
            host_name: Some(name.clone()),
            name: Some(name.clone()),
            kind: Some(self.text("Node")),
            owner_name: Some(name),
            owner_type: Some(self.text("Node")),
            host_ip,
            zone: node.zone.as_deref().map(|z| self.text(z)),
            ..EndpointLabels::default()
        });
        self.tenancies
            .hold(number, &node.addresses, &labels, node.created_ms, now_ms);
        let zone_changed = self
            .nodes
            .insert(node.name.clone(), node.clone())
            .is_none_or(|old| old.zone != node.zone);
        if zone_changed {
            let pods = self.by_node.get(&node.name).cloned();
            self.relabel(pods.unwrap_or_default(), now_ms);
        }
    }

    /// Makes the labels of the pods `uids` again (their owner or their
    /// node's zone changed).
    fn relabel(&mut self, uids: HashSet<String>, now_ms: i64) {
        for uid in uids {
            if let Some(pod) = self.pods.get(&uid).cloned() {
                self.set_pod(pod, now_ms);
            }
        }
    }

    fn number(&mut self, uid: &str) -> u64 {
        if let Some(&n) = self.numbers.get(uid) {
            return n;
        }
        let n = self.next_number;
        self.next_number += 1;
        self.numbers.insert(uid.to_string(), n);
        n
    }

    fn text(&mut self, text: &str) -> Label {
        if let Some(shared) = self.texts.get(text) {
            return shared.clone();
        }
        let label = Label::from(text);
        self.texts.insert(label.clone());
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn pod(uid: &str, name: &str, address: &str, created_ms: i64) -> PodInfo {
        PodInfo {
            uid: uid.into(),
            namespace: "shop".into(),
            name: name.into(),
            node: Some("node-a".into()),
            host_ip: Some("198.18.0.10".into()),
            ips: vec![ip(address)],
            host_network: false,
            controller: Some(OwnerRef {
                kind: "ReplicaSet".into(),
                name: "web-7d9f".into(),
            }),
            created_ms,
        }
    }

    /// The pods' ReplicaSet, seen with its Deployment `web`.
    fn web_deployment() -> ClusterEvent {
        ClusterEvent::Controller {
            kind: "ReplicaSet".into(),
            namespace: "shop".into(),
            name: "web-7d9f".into(),
            controller: Some(OwnerRef {
                kind: "Deployment".into(),
                name: "web".into(),
            }),
        }
    }

    fn node(zone: &str) -> NodeInfo {
        NodeInfo {
            uid: "n1".into(),
            name: "node-a".into(),
            addresses: vec![ip("198.18.0.10")],
            zone: Some(zone.into()),
            created_ms: 0,
        }
    }

    fn field(
        c: &Cluster,
        address: &str,
        t: i64,
        get: fn(&EndpointLabels) -> &Option<Label>,
    ) -> Option<String> {
        c.labels_at(ip(address), t)
            .and_then(|l| get(l).as_deref().map(str::to_string))
    }

    #[test]
    fn pods_carry_their_node_owner_host_and_zone() {
        let mut c = Cluster::new(60_000);
        c.apply(ClusterEvent::Node(node("zone-a")), 0);
        c.apply(
            ClusterEvent::Pod(pod("p1", "web-7d9f-x", "198.18.4.2", 1_000)),
            1_000,
        );
        let at = |get| field(&c, "198.18.4.2", 2_000, get);
        assert_eq!(at(|l| &l.name).as_deref(), Some("web-7d9f-x"));
        assert_eq!(at(|l| &l.kind).as_deref(), Some("Pod"));
        assert_eq!(at(|l| &l.namespace).as_deref(), Some("shop"));
        assert_eq!(at(|l| &l.host_name).as_deref(), Some("node-a"));
        assert_eq!(at(|l| &l.host_ip).as_deref(), Some("198.18.0.10"));
        assert_eq!(at(|l| &l.zone).as_deref(), Some("zone-a"));
        // Until its ReplicaSet is seen, the ReplicaSet is the owner.
        assert_eq!(at(|l| &l.owner_type).as_deref(), Some("ReplicaSet"));
        c.apply(web_deployment(), 3_000);
        let at = |get| field(&c, "198.18.4.2", 4_000, get);
        assert_eq!(at(|l| &l.owner_name).as_deref(), Some("web"));
        assert_eq!(at(|l| &l.owner_type).as_deref(), Some("Deployment"));
        // A node's new zone reaches its pods.
        c.apply(ClusterEvent::Node(node("zone-b")), 5_000);
        assert_eq!(
            field(&c, "198.18.4.2", 6_000, |l| &l.zone).as_deref(),
            Some("zone-b")
        );
        // The node's own address is the node.
        assert_eq!(
            field(&c, "198.18.0.10", 6_000, |l| &l.kind).as_deref(),
            Some("Node")
        );
    }

    #[test]
    fn a_deleted_pods_address_serves_late_flows_and_then_its_successor() {
        let mut c = Cluster::new(30_000);
        c.apply(ClusterEvent::Pod(pod("p1", "old", "198.18.4.7", 0)), 0);
        c.apply(ClusterEvent::PodGone { uid: "p1".into() }, 10_000);
        c.apply(
            ClusterEvent::Pod(pod("p2", "new", "198.18.4.7", 15_000)),
            15_500,
        );
        assert_eq!(
            field(&c, "198.18.4.7", 9_000, |l| &l.name).as_deref(),
            Some("old")
        );
        assert_eq!(
            field(&c, "198.18.4.7", 15_000, |l| &l.name).as_deref(),
            Some("new")
        );
        c.expire(41_000);
        assert_eq!(
            field(&c, "198.18.4.7", 9_000, |l| &l.name),
            None,
            "the tombstone expired"
        );
        assert_eq!(c.pods(), 1);
        // The deleted pod is no longer its ReplicaSet's: a change of the
        // ReplicaSet relabels the live pod only.
        c.apply(web_deployment(), 42_000);
        assert_eq!(c.pods(), 1);
        let late = |get| field(&c, "198.18.4.7", 43_000, get);
        assert_eq!(late(|l| &l.name).as_deref(), Some("new"));
        assert_eq!(late(|l| &l.owner_name).as_deref(), Some("web"));
    }

    #[test]
    fn host_network_pods_are_their_node_and_services_are_named() {
        let mut c = Cluster::new(30_000);
        c.apply(ClusterEvent::Node(node("zone-a")), 0);
        let mut agent = pod("p9", "agent-x", "198.18.0.10", 0);
        agent.host_network = true;
        c.apply(ClusterEvent::Pod(agent), 0);
        assert_eq!(
            field(&c, "198.18.0.10", 1_000, |l| &l.name).as_deref(),
            Some("node-a")
        );
        c.apply(
            ClusterEvent::Service(ServiceInfo {
                uid: "s1".into(),
                namespace: "shop".into(),
                name: "web".into(),
                cluster_ips: vec![ip("198.19.0.5"), ip("fd00:198:18:1::5")],
                created_ms: 0,
            }),
            0,
        );
        for address in ["198.19.0.5", "fd00:198:18:1::5"] {
            assert_eq!(
                field(&c, address, 1_000, |l| &l.kind).as_deref(),
                Some("Service")
            );
            assert_eq!(
                field(&c, address, 1_000, |l| &l.name).as_deref(),
                Some("web")
            );
        }
        c.apply(ClusterEvent::ServiceGone { uid: "s1".into() }, 2_000);
        assert_eq!(field(&c, "198.19.0.5", 40_000, |l| &l.name), None);
    }
}
