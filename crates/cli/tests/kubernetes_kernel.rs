//! Kubernetes enrichment end to end: `flowlens up --kubeconfig` against the
//! stand-in API server (HTTPS, the real list/watch protocol), the lab's
//! namespaces as pods. Pods come, go and hand their addresses on, and the
//! watch breaks, while traffic flows; every flow of a known source port
//! must carry exactly the names of the pod that held its address then.

mod lab;

use flowlens_kube_standin::objects::{PodObject, node, replica_set};
use flowlens_kube_standin::{ApiServer, Options};
use lab::{Lab, flowlens, free_local_addr, paced_udp_flow, serial, status_json, stdout_of};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const NODE: &str = "node-a";
const NODE_IP: &str = "198.18.0.250";

fn pod(namespace: &str, name: &str, ip: &str) -> PodObject {
    PodObject::new(namespace, name).on(NODE, NODE_IP).ips(&[ip])
}

/// Waits until `flowlens status` says `check` of its Kubernetes section.
fn wait_for_kubernetes(listen: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = status_json(listen)["kubernetes"].clone();
        if check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `count` UDP flows from `host`, source ports `first_port`.., one every
/// `every`, of 5 packets each, to `target`:9.
fn flows_from(
    host: &lab::Host,
    first_port: u16,
    count: u16,
    every: Duration,
    target: Ipv4Addr,
) -> std::thread::JoinHandle<()> {
    let host = host.clone();
    std::thread::spawn(move || {
        for i in 0..count {
            let (_, sender) = paced_udp_flow(&host, first_port + i, target, 9, 5);
            sender.join().unwrap();
            std::thread::sleep(every);
        }
    })
}

/// The printed flow records by source port: (start ms, the source's and
/// destination's names and owners, the cluster).
fn by_source_port(raw: &[Value]) -> BTreeMap<u64, Vec<Value>> {
    let mut out: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for r in raw
        .iter()
        .filter(|r| r.get("_RecordType").is_none_or(|t| t == "flowLog"))
        .filter(|r| r["Proto"] == 17)
    {
        if let Some(port) = r["SrcPort"].as_u64() {
            out.entry(port).or_default().push(r.clone());
        }
    }
    out
}

fn field<'a>(r: &'a Value, name: &str) -> &'a str {
    r[name].as_str().unwrap_or("")
}

/// Asserts every flow of source ports `ports` (at least one each) names
/// its source `src` = [name, namespace, owner, owner type].
fn assert_sources(flows: &BTreeMap<u64, Vec<Value>>, ports: std::ops::Range<u64>, src: [&str; 4]) {
    for port in ports {
        let records = flows
            .get(&port)
            .unwrap_or_else(|| panic!("no flow from source port {port}"));
        for r in records {
            let got = [
                field(r, "SrcK8S_Name"),
                field(r, "SrcK8S_Namespace"),
                field(r, "SrcK8S_OwnerName"),
                field(r, "SrcK8S_OwnerType"),
            ];
            assert_eq!(got, src, "flow of source port {port}: {r}");
        }
    }
}

#[test]
fn pods_name_their_flows_through_adds_reuse_deletes_and_a_broken_watch() {
    let _serial = serial();
    let lab = Lab::new(3, false);
    let [h1, h2, h3] = [&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]];
    let ip = |i: u8| Ipv4Addr::new(198, 18, 0, i);
    let server = ApiServer::start(Options {
        max_page: Some(1),
        max_watch: Some(Duration::from_secs(4)),
        bookmark_interval: Duration::from_millis(500),
    })
    .unwrap();
    server.apply(node(NODE, NODE_IP, Some("zone-a"))).unwrap();
    server
        .apply(replica_set("shop", "web-7d9f", "web"))
        .unwrap();
    server
        .apply(replica_set("shop", "api-5c4b", "api"))
        .unwrap();
    server
        .apply(
            pod("shop", "web-7d9f-a", "198.18.0.1")
                .owned_by("ReplicaSet", "web-7d9f")
                .object(),
        )
        .unwrap();
    server
        .apply(
            pod("shop", "db-0", "198.18.0.2")
                .owned_by("StatefulSet", "db")
                .object(),
        )
        .unwrap();

    let listen = free_local_addr();
    let kubeconfig = server.kubeconfig().display().to_string();
    let up = lab.start_up(
        &listen,
        &[
            "--kubeconfig",
            &kubeconfig,
            "--cluster-name",
            "lab",
            "--kube-tombstone",
            "1m",
        ],
    );
    wait_for_kubernetes(&listen, "both pods listed", |k| k["pods"] == 2);

    // Known pods, and an address the cluster does not know (plain host
    // labels stay).
    flows_from(h1, 40_000, 3, Duration::ZERO, ip(2))
        .join()
        .unwrap();
    flows_from(h3, 40_100, 1, Duration::ZERO, ip(1))
        .join()
        .unwrap();

    // A new pod at h3's address: its flows are named within 2 s of its
    // watch event. (Flows up to 2 s before an object's creation, which the
    // API gives in whole seconds, are its: wait longer than that.)
    std::thread::sleep(Duration::from_millis(3_500));
    server
        .apply(
            pod("shop", "api-5c4b-x", "198.18.0.3")
                .owned_by("ReplicaSet", "api-5c4b")
                .object(),
        )
        .unwrap();
    let added = lab::now_ms();
    flows_from(h3, 41_000, 30, Duration::from_millis(100), ip(2))
        .join()
        .unwrap();

    // web-7d9f-a is deleted right after its last packets: its flow is
    // still in the agent's cache and reaches the pipeline after the delete
    // (a late flow, named from the tombstone).
    flows_from(h1, 42_000, 1, Duration::ZERO, ip(2))
        .join()
        .unwrap();
    server.delete("Pod", "shop", "web-7d9f-a").unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    // Its address goes to another pod, a bare one: never the old name.
    server
        .apply(pod("shop", "debug", "198.18.0.1").object())
        .unwrap();
    wait_for_kubernetes(&listen, "the reused address's pod", |k| {
        k["objects_deleted"].as_u64() >= Some(1) && k["pods"] == 3
    });
    flows_from(h1, 43_000, 5, Duration::from_millis(50), ip(2))
        .join()
        .unwrap();

    // The watches break and the first requests after fail; while they
    // are away the node moves to another zone; then the history is
    // compacted and open watches are told 410 Gone: every watch lists
    // again. db-0 sends all through.
    let lists_before = status_json(&listen)["kubernetes"]["lists"]
        .as_u64()
        .unwrap();
    let during = flows_from(h2, 44_000, 20, Duration::from_millis(100), ip(1));
    std::thread::sleep(Duration::from_millis(300));
    server.fail_next(2);
    server.break_watches();
    std::thread::sleep(Duration::from_millis(300));
    server.apply(node(NODE, NODE_IP, Some("zone-b"))).unwrap();
    server.expire_watches();
    during.join().unwrap();
    // Each of the five kinds lists again.
    let k = wait_for_kubernetes(&listen, "re-listed after 410", |k| {
        k["lists"].as_u64() >= Some(lists_before + 5) && k["api_errors"].as_u64() >= Some(2)
    });
    assert!(
        k["last_api_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{k}"
    );
    let served = server.stats();
    assert!(
        served.broken >= 1 && served.gone >= 1 && served.continued_pages >= 1,
        "{served:?}"
    );

    // After the re-list: the node's new zone on its pods' flows.
    flows_from(h2, 45_000, 2, Duration::ZERO, ip(1))
        .join()
        .unwrap();

    std::thread::sleep(Duration::from_millis(1_500));
    let server_url = format!("http://{listen}");
    let api_flows = stdout_of(flowlens().args([
        "flows", "--server", &server_url, "--since", "1h", "-o", "json", "--filter",
        r#"src.owner = "api" and src.owner_type = "Deployment" and src.namespace = "shop" and cluster = "lab""#,
    ]));
    let run = up.stop();
    let flows = by_source_port(&run.raw);

    // Known pods on both ends, with their node, zone and cluster.
    assert_sources(
        &flows,
        40_000..40_003,
        ["web-7d9f-a", "shop", "web", "Deployment"],
    );
    for r in &flows[&40_000] {
        assert_eq!(field(r, "SrcK8S_Type"), "Pod");
        assert_eq!(field(r, "SrcK8S_HostName"), NODE);
        assert_eq!(field(r, "SrcK8S_HostIP"), NODE_IP);
        assert_eq!(field(r, "SrcK8S_Zone"), "zone-a");
        assert_eq!(field(r, "K8S_ClusterName"), "lab");
        assert_eq!(
            [
                field(r, "DstK8S_Name"),
                field(r, "DstK8S_OwnerName"),
                field(r, "DstK8S_OwnerType")
            ],
            ["db-0", "db", "StatefulSet"]
        );
    }
    // h3 before it was a pod: its namespace's plain-host labels.
    for r in &flows[&40_100] {
        assert_eq!(field(r, "SrcK8S_Type"), "NetworkNamespace", "{r}");
        assert_eq!(field(r, "SrcK8S_Name"), h3.netns, "{r}");
        assert_eq!(field(r, "DstK8S_Name"), "web-7d9f-a", "{r}");
    }
    // The new pod: every flow starting 2 s after its event is its.
    let mut named_after = None;
    for port in 41_000..41_030 {
        let records = flows
            .get(&port)
            .unwrap_or_else(|| panic!("no flow from {port}"));
        for r in records {
            let start = r["TimeFlowStartMs"].as_i64().unwrap();
            if field(r, "SrcK8S_Name") == "api-5c4b-x" {
                assert_eq!(field(r, "SrcK8S_OwnerName"), "api");
                named_after.get_or_insert(start - added);
            } else {
                assert!(
                    start < added + 2_000,
                    "flow at +{} ms not named: {r}",
                    start - added
                );
                assert_ne!(field(r, "SrcK8S_OwnerName"), "web", "{r}");
            }
        }
    }
    assert!(
        named_after.is_some_and(|t| t < 2_000),
        "named {named_after:?} ms after"
    );
    assert_eq!(
        api_flows
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        flows
            .range(41_000..41_030)
            .flat_map(|(_, r)| r)
            .filter(|r| field(r, "SrcK8S_Name") == "api-5c4b-x")
            .count(),
        "the filter language finds exactly the new pod's flows"
    );
    // The late flow of the deleted pod keeps its name; its address's next
    // holder never has it.
    assert_sources(
        &flows,
        42_000..42_001,
        ["web-7d9f-a", "shop", "web", "Deployment"],
    );
    assert_sources(&flows, 43_000..43_005, ["debug", "shop", "debug", "Pod"]);
    // Through the broken watch, the re-list and the errors: never
    // unlabelled, the destination the address's new holder.
    assert_sources(
        &flows,
        44_000..44_020,
        ["db-0", "shop", "db", "StatefulSet"],
    );
    for r in flows.range(44_000..44_020).flat_map(|(_, r)| r) {
        assert_eq!(field(r, "DstK8S_Name"), "debug", "{r}");
        assert!(
            ["zone-a", "zone-b"].contains(&field(r, "SrcK8S_Zone")),
            "{r}"
        );
    }
    assert_sources(
        &flows,
        45_000..45_002,
        ["db-0", "shop", "db", "StatefulSet"],
    );
    for r in flows.range(45_000..45_002).flat_map(|(_, r)| r) {
        assert_eq!(field(r, "SrcK8S_Zone"), "zone-b", "{r}");
        assert_eq!(field(r, "DstK8S_Zone"), "zone-b", "{r}");
    }
    flowlens_kube_standin::validate_objects(&server.stored())
        .expect("the stand-in's objects pass the real schemas");
}
