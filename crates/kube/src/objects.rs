//! The API's objects as enrichment needs them: the few fields of pods,
//! services, nodes, ReplicaSets and Jobs that name a flow's ends.

use flowlens_pipeline::enrich::{ClusterEvent, NodeInfo, OwnerRef, PodInfo, ServiceInfo};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::net::IpAddr;

/// The node label naming its zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

fn uid(meta: &ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_default()
}

fn created_ms(meta: &ObjectMeta) -> i64 {
    meta.creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_millisecond())
}

/// The controlling owner among `ownerReferences`.
fn controller(meta: &ObjectMeta) -> Option<OwnerRef> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|r: &&OwnerReference| r.controller == Some(true))
        .map(|r| OwnerRef {
            kind: r.kind.clone(),
            name: r.name.clone(),
        })
}

/// Addresses as the API writes them; one that does not parse is left out.
fn addresses<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = texts.filter_map(|t| t.parse().ok()).collect();
    out.dedup();
    out
}

pub fn pod(p: &Pod) -> ClusterEvent {
    let spec = p.spec.as_ref();
    let status = p.status.as_ref();
    // A finished pod's addresses are free for others (its object stays,
    // a Job's for its history, with the last status listing them).
    let finished = status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| matches!(phase, "Succeeded" | "Failed"));
    let running = status.filter(|_| !finished);
    let ips = running
        .and_then(|s| s.pod_ips.as_deref())
        .map(|ips| addresses(ips.iter().map(|ip| ip.ip.as_str())))
        .filter(|ips| !ips.is_empty())
        .or_else(|| {
            let ip = running?.pod_ip.as_deref()?;
            Some(addresses(std::iter::once(ip)))
        })
        .unwrap_or_default();
    ClusterEvent::Pod(PodInfo {
        uid: uid(&p.metadata),
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        node: spec.and_then(|s| s.node_name.clone()),
        host_ip: status.and_then(|s| s.host_ip.clone()),
        ips,
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        controller: controller(&p.metadata),
        created_ms: created_ms(&p.metadata),
    })
}

pub fn service(s: &Service) -> ClusterEvent {
    let spec = s.spec.as_ref();
    let listed = spec
        .and_then(|s| s.cluster_ips.as_deref())
        .unwrap_or_default();
    let single = spec.and_then(|s| s.cluster_ip.as_deref());
    // "None" marks a headless service: no address of its own.
    let texts = listed.iter().map(String::as_str).chain(single);
    ClusterEvent::Service(ServiceInfo {
        uid: uid(&s.metadata),
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        cluster_ips: addresses(texts.filter(|t| *t != "None")),
        created_ms: created_ms(&s.metadata),
    })
}

pub fn node(n: &Node) -> ClusterEvent {
    let listed = n
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    // Internal addresses first: they name the node in host_ip.
    let of_type = |kind: &'static str| {
        listed
            .iter()
            .filter(move |a| a.type_ == kind)
            .map(|a| a.address.as_str())
    };
    ClusterEvent::Node(NodeInfo {
        uid: uid(&n.metadata),
        name: n.metadata.name.clone().unwrap_or_default(),
        addresses: addresses(of_type("InternalIP").chain(of_type("ExternalIP"))),
        zone: n
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL).cloned()),
        created_ms: created_ms(&n.metadata),
    })
}

fn controlled(kind: &str, meta: &ObjectMeta) -> ClusterEvent {
    ClusterEvent::Controller {
        kind: kind.to_string(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        controller: controller(meta),
    }
}

pub fn replica_set(r: &ReplicaSet) -> ClusterEvent {
    controlled("ReplicaSet", &r.metadata)
}

pub fn job(j: &Job) -> ClusterEvent {
    controlled("Job", &j.metadata)
}

/// The event of an object's deletion.
pub fn gone(kind: Kind, meta: &ObjectMeta) -> ClusterEvent {
    let uid = uid(meta);
    let named = |kind: &str| ClusterEvent::ControllerGone {
        kind: kind.to_string(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    };
    match kind {
        Kind::Pod => ClusterEvent::PodGone { uid },
        Kind::Service => ClusterEvent::ServiceGone { uid },
        Kind::Node => ClusterEvent::NodeGone { uid },
        Kind::ReplicaSet => named("ReplicaSet"),
        Kind::Job => named("Job"),
    }
}

/// The kinds enrichment watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pod,
    Service,
    Node,
    ReplicaSet,
    Job,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::Node => "nodes",
            Kind::ReplicaSet => "replicasets",
            Kind::Job => "jobs",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        NodeAddress, NodeStatus, PodIP, PodSpec, PodStatus, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn meta(name: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            uid: Some(uid.into()),
            creation_timestamp: Some(Time("2026-12-03T10:00:00Z".parse().unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_gives_its_addresses_node_and_controller() {
        let mut m = meta("web-7d9f-x", "u1");
        m.owner_references = Some(vec![
            OwnerReference {
                kind: "ConfigMap".into(),
                name: "not-the-controller".into(),
                ..Default::default()
            },
            OwnerReference {
                kind: "ReplicaSet".into(),
                name: "web-7d9f".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        let p = Pod {
            metadata: m,
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                host_ip: Some("198.18.0.10".into()),
                pod_ip: Some("198.18.4.2".into()),
                pod_ips: Some(vec![
                    PodIP {
                        ip: "198.18.4.2".into(),
                    },
                    PodIP {
                        ip: "fd00:198:18::4:2".into(),
                    },
                ]),
                ..Default::default()
            }),
        };
        let ClusterEvent::Pod(info) = pod(&p) else {
            panic!("a pod event")
        };
        assert_eq!(info.uid, "u1");
        assert_eq!(info.node.as_deref(), Some("node-a"));
        assert_eq!(
            info.ips,
            vec![
                "198.18.4.2".parse::<IpAddr>().unwrap(),
                "fd00:198:18::4:2".parse().unwrap()
            ]
        );
        assert_eq!(info.controller.unwrap().name, "web-7d9f");
        assert_eq!(info.created_ms, 1_796_292_000_000);
    }

    #[test]
    fn a_finished_pod_holds_no_address() {
        for phase in ["Succeeded", "Failed"] {
            let p = Pod {
                metadata: meta("backup-29011-x", "u4"),
                status: Some(PodStatus {
                    phase: Some(phase.into()),
                    pod_ip: Some("198.18.4.9".into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let ClusterEvent::Pod(info) = pod(&p) else {
                panic!("a pod event")
            };
            assert!(info.ips.is_empty(), "{phase}: {:?}", info.ips);
        }
    }

    #[test]
    fn headless_services_have_no_address_and_nodes_list_internal_first() {
        let s = Service {
            metadata: meta("db", "u2"),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                cluster_ips: Some(vec!["None".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ClusterEvent::Service(info) = service(&s) else {
            panic!("a service event")
        };
        assert!(info.cluster_ips.is_empty());
        let mut m = meta("node-a", "u3");
        m.labels = Some([(ZONE_LABEL.to_string(), "zone-a".to_string())].into());
        let n = Node {
            metadata: m,
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: "node-a".into(),
                    },
                    NodeAddress {
                        type_: "ExternalIP".into(),
                        address: "198.19.0.1".into(),
                    },
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: "198.18.0.10".into(),
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ClusterEvent::Node(info) = node(&n) else {
            panic!("a node event")
        };
        assert_eq!(info.addresses[0].to_string(), "198.18.0.10");
        assert_eq!(info.addresses.len(), 2);
        assert_eq!(info.zone.as_deref(), Some("zone-a"));
    }
}
