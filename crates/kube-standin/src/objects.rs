//! Objects as a cluster's API serves them, for tests to put in the
//! stand-in: each has the fields the real schemas require (the tests check
//! them with `kubernetes-validate --strict`) and the ones enrichment reads.

use serde_json::{Value, json};

/// The uid an owner reference names; owners are looked up by kind and
/// name, so a stable made-up uid per name is enough.
fn owner_uid(kind: &str, name: &str) -> String {
    let hash = format!("{kind}/{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    format!("0e0e0e0e-0000-4000-8000-{:012x}", hash & 0xffff_ffff_ffff)
}

fn owner_reference(api_version: &str, kind: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name,
           "uid": owner_uid(kind, name), "controller": true, "blockOwnerDeletion": true})
}

/// The apiVersion of an owner kind.
fn api_version_of(kind: &str) -> &'static str {
    match kind {
        "ReplicaSet" | "Deployment" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "v1",
    }
}

fn container() -> Value {
    json!([{"name": "main", "image": "registry.example/flowlens-lab:1"}])
}

/// A pod, built up field by field.
#[derive(Debug, Clone)]
pub struct PodObject {
    namespace: String,
    name: String,
    node: Option<(String, String)>,
    ips: Vec<String>,
    owner: Option<(String, String)>,
    host_network: bool,
    phase: String,
}

impl PodObject {
    pub fn new(namespace: &str, name: &str) -> PodObject {
        PodObject {
            namespace: namespace.into(),
            name: name.into(),
            node: None,
            ips: Vec::new(),
            owner: None,
            host_network: false,
            phase: "Running".into(),
        }
    }

    /// Scheduled on `node`, whose address is `host_ip`.
    pub fn on(mut self, node: &str, host_ip: &str) -> PodObject {
        self.node = Some((node.into(), host_ip.into()));
        self
    }

    /// Its addresses (`status.podIPs`).
    pub fn ips(mut self, ips: &[&str]) -> PodObject {
        self.ips = ips.iter().map(|ip| ip.to_string()).collect();
        self
    }

    /// Controlled by `kind` `name` (a ReplicaSet, Job, StatefulSet, ...).
    pub fn owned_by(mut self, kind: &str, name: &str) -> PodObject {
        self.owner = Some((kind.into(), name.into()));
        self
    }

    pub fn host_network(mut self) -> PodObject {
        self.host_network = true;
        self
    }

    pub fn phase(mut self, phase: &str) -> PodObject {
        self.phase = phase.into();
        self
    }

    pub fn object(&self) -> Value {
        let mut metadata = json!({"name": self.name, "namespace": self.namespace,
                                  "labels": {"app": self.name}});
        if let Some((kind, name)) = &self.owner {
            metadata["ownerReferences"] =
                json!([owner_reference(api_version_of(kind), kind, name)]);
        }
        let mut spec = json!({"containers": container()});
        let mut status = json!({"phase": self.phase});
        if let Some((node, host_ip)) = &self.node {
            spec["nodeName"] = json!(node);
            status["hostIP"] = json!(host_ip);
            status["hostIPs"] = json!([{"ip": host_ip}]);
        }
        if self.host_network {
            spec["hostNetwork"] = json!(true);
        }
        if let Some(first) = self.ips.first() {
            status["podIP"] = json!(first);
            let ips: Vec<Value> = self.ips.iter().map(|ip| json!({"ip": ip})).collect();
            status["podIPs"] = json!(ips);
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
               "spec": spec, "status": status})
    }
}

/// A node with its internal address and zone.
pub fn node(name: &str, internal_ip: &str, zone: Option<&str>) -> Value {
    let mut labels = json!({"kubernetes.io/hostname": name});
    if let Some(zone) = zone {
        labels["topology.kubernetes.io/zone"] = json!(zone);
    }
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": labels},
           "status": {"addresses": [{"type": "InternalIP", "address": internal_ip},
                                    {"type": "Hostname", "address": name}]}})
}

fn template(app: &str, restart: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}},
           "spec": {"containers": container(), "restartPolicy": restart}})
}

/// A ReplicaSet controlled by Deployment `deployment`.
pub fn replica_set(namespace: &str, name: &str, deployment: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": name, "namespace": namespace,
                        "ownerReferences": [owner_reference("apps/v1", "Deployment", deployment)]},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": deployment}},
                    "template": template(deployment, "Always")}})
}

/// A Job, controlled by CronJob `cron_job` if given.
pub fn job(namespace: &str, name: &str, cron_job: Option<&str>) -> Value {
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let Some(cron_job) = cron_job {
        metadata["ownerReferences"] = json!([owner_reference("batch/v1", "CronJob", cron_job)]);
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
           "spec": {"template": template(name, "Never")}})
}

/// A ClusterIP service.
pub fn service(namespace: &str, name: &str, cluster_ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}})
}
