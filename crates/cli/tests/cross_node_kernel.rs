//! Counted once across nodes: two "nodes" (network namespaces on a
//! management bridge, each with its own agent), a pod in each (a namespace
//! behind a veth of its node), a link between the nodes routing the pod
//! subnets, one collector with Kubernetes enrichment from the stand-in API
//! server. Traffic between the pods is seen by both agents; the collector
//! must store it once: its bytes and packets equal the sending pod's
//! interface counters, with both nodes' interfaces, and the receiving
//! node's drops, on the one record. Agents and collector speak mutual TLS,
//! as across a real node network: each node has its own certificate (node
//! 1's from flags, with its address; node 2's from its FlowCollector file's
//! spec.agent.ebpf.advanced, naming the node only, held to the Node
//! object's address), and every stored record carries the name its
//! certificate gives.

mod lab;

use flowlens_kube_standin::objects::{PodObject, node, replica_set};
use flowlens_kube_standin::{ApiServer, Options};
use flowlens_tls::test_pki::{Leaf, TestCa};
use lab::{Agent, Host, Lab, flowlens, free_local_addr, nft, nft_counter, serial, sh, stdout_of};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The test's certificates: a CA and the files it signed, removed when
/// dropped.
struct Pki {
    dir: std::path::PathBuf,
    ca: TestCa,
    ca_file: std::path::PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir =
            std::env::temp_dir().join(format!("flowlens-cross-node-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new("flowlens cross-node test CA");
        let ca_file = ca.write(&dir.join("ca.crt"));
        Pki { dir, ca, ca_file }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Namespaces the test made beyond the lab's, removed when dropped.
struct Pods(Vec<String>);

impl Drop for Pods {
    fn drop(&mut self) {
        for netns in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", netns])
                .status();
        }
    }
}

fn mac(netns: &str, dev: &str) -> String {
    let json = sh(&format!("ip -n {netns} -j link show dev {dev}"));
    let v: Value = serde_json::from_str(&json).unwrap();
    v[0]["address"].as_str().unwrap().to_string()
}

/// tx bytes and packets of `dev` in `netns`.
fn sent(netns: &str, dev: &str) -> (u64, u64) {
    let c = lab::interface_counters(netns, dev);
    (c.tx_bytes, c.tx_packets)
}

/// The stored flows the filter selects, as JSON records.
fn stored(server: &str, filter: &str) -> Vec<Value> {
    let out = stdout_of(flowlens().args([
        "flows", "--server", server, "--since", "1h", "--limit", "100000", "-o", "json",
        "--filter", filter,
    ]));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sum(records: &[Value], field: &str) -> u64 {
    records.iter().map(|r| r[field].as_u64().unwrap_or(0)).sum()
}

#[test]
fn a_flow_between_pods_on_two_nodes_is_stored_once() {
    let _serial = serial();
    let lab = Lab::new(2, false);
    let p = lab.prefix.clone();
    let (n1, n2) = (lab.hosts[0].netns.clone(), lab.hosts[1].netns.clone());
    // The management network: agents reach the collector on the bridge.
    sh(&format!("ip addr add 198.18.0.254/24 dev {}", lab.bridge));
    // The link between the nodes.
    let (x1, x2) = (format!("{p}x1"), format!("{p}x2"));
    sh(&format!(
        "ip link add {x1} netns {n1} type veth peer name {x2} netns {n2}"
    ));
    for (netns, dev, addr) in [(&n1, &x1, "198.18.10.1/30"), (&n2, &x2, "198.18.10.2/30")] {
        sh(&format!(
            "ip -n {netns} addr add {addr} dev {dev} && ip -n {netns} link set {dev} up"
        ));
        sh(&format!(
            "ip netns exec {netns} sysctl -qw net.ipv4.ip_forward=1"
        ));
    }
    // A pod on each node: 198.18.11.2 on node 1, 198.18.12.2 on node 2.
    let (pa, pb) = (format!("{p}pa"), format!("{p}pb"));
    let pods = Pods(vec![pa.clone(), pb.clone()]);
    for (node_ns, pod, subnet) in [(&n1, &pa, 11), (&n2, &pb, 12)] {
        sh(&format!("ip netns add {pod}"));
        for key in ["all", "default"] {
            sh(&format!(
                "ip netns exec {pod} sysctl -qw net.ipv6.conf.{key}.disable_ipv6=1"
            ));
        }
        sh(&format!(
            "ip link add {pod}v netns {node_ns} type veth peer name eth0 netns {pod}"
        ));
        sh(&format!(
            "ip -n {node_ns} addr add 198.18.{subnet}.1/24 dev {pod}v && ip -n {node_ns} link set {pod}v up"
        ));
        sh(&format!(
            "ip -n {pod} addr add 198.18.{subnet}.2/24 dev eth0 && ip -n {pod} link set eth0 up \
             && ip -n {pod} link set lo up && ip -n {pod} route add default via 198.18.{subnet}.1"
        ));
    }
    sh(&format!(
        "ip -n {n1} route add 198.18.12.0/24 via 198.18.10.2"
    ));
    sh(&format!(
        "ip -n {n2} route add 198.18.11.0/24 via 198.18.10.1"
    ));
    // Static neighbours: the only packets on the wire are the test's.
    let neighbour = |netns: &str, ip: &str, dev: &str, peer_ns: &str, peer_dev: &str| {
        let lladdr = mac(peer_ns, peer_dev);
        sh(&format!(
            "ip -n {netns} neigh replace {ip} lladdr {lladdr} dev {dev} nud permanent"
        ));
    };
    neighbour(&pa, "198.18.11.1", "eth0", &n1, &format!("{pa}v"));
    neighbour(&n1, "198.18.11.2", &format!("{pa}v"), &pa, "eth0");
    neighbour(&pb, "198.18.12.1", "eth0", &n2, &format!("{pb}v"));
    neighbour(&n2, "198.18.12.2", &format!("{pb}v"), &pb, "eth0");
    neighbour(&n1, "198.18.10.2", &x1, &n2, &x2);
    neighbour(&n2, "198.18.10.1", &x2, &n1, &x1);
    // The receiving node drops UDP to 7777 (counted by nftables).
    nft(
        &n2,
        "table inet lab {\n chain passing {\n  type filter hook forward priority 0;\n  \
         udp dport 7777 counter drop comment \"deny-7777\"\n }\n}\n",
    );

    let server = ApiServer::start(Options::default()).unwrap();
    server
        .apply(node("node-1", "198.18.10.1", Some("zone-a")))
        .unwrap();
    server
        .apply(node("node-2", "198.18.10.2", Some("zone-b")))
        .unwrap();
    server
        .apply(replica_set("shop", "front-6b8c", "front"))
        .unwrap();
    let pod_a = PodObject::new("shop", "pod-a")
        .on("node-1", "198.18.10.1")
        .ips(&["198.18.11.2"])
        .owned_by("ReplicaSet", "front-6b8c");
    let pod_b = PodObject::new("shop", "pod-b")
        .on("node-2", "198.18.10.2")
        .ips(&["198.18.12.2"])
        .owned_by("StatefulSet", "back");
    server.apply(pod_a.object()).unwrap();
    server.apply(pod_b.object()).unwrap();

    let grpc = {
        let l = std::net::TcpListener::bind("198.18.0.254:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let listen = free_local_addr();
    let data_dir = lab.data_dir.display().to_string();
    let kubeconfig = server.kubeconfig().display().to_string();
    let pki = Pki::new();
    let collector_cert = pki.ca.issue(
        &Leaf::named("collector", &["198.18.0.254"]),
        &pki.dir,
        "collector",
    );
    let (cert, key, ca) = (
        path(&collector_cert.cert),
        path(&collector_cert.key),
        path(&pki.ca_file),
    );
    let collector = Agent::start_collector(
        &grpc,
        &[
            "--grpc-tls-cert",
            &cert,
            "--grpc-tls-key",
            &key,
            "--grpc-client-ca",
            &ca,
            "--listen",
            &listen,
            "--kubeconfig",
            &kubeconfig,
            "--data-dir",
            &data_dir,
            "--cross-node-window",
            "3s",
            "--log-types",
            "All",
        ],
    );
    let agent_on = |netns: &str, ifaces: [String; 2], ip: &str, features: &str, tls: &[String]| {
        let list = ifaces.join(",");
        let mut args = vec![
            "--interfaces",
            &list,
            "--collector",
            &grpc,
            "--agent-ip",
            ip,
            "--cache-active-timeout",
            "1s",
            "--features",
            features,
        ];
        args.extend(tls.iter().map(String::as_str));
        Agent::start_in(netns, &args, &ifaces)
    };
    let node1 = pki
        .ca
        .issue(&Leaf::named("node-1", &["198.18.10.1"]), &pki.dir, "node-1");
    let node1_tls = [
        "--collector-ca".to_string(),
        ca.clone(),
        "--collector-cert".into(),
        path(&node1.cert),
        "--collector-key".into(),
        path(&node1.key),
    ];
    // Node 2's certificate names its node only: the collector holds its
    // records to the addresses of the cluster's Node node-2.
    let node2 = pki
        .ca
        .issue(&Leaf::named("node-2", &[]), &pki.dir, "node-2");
    let node2_file = pki.dir.join("node-2.yaml");
    std::fs::write(
        &node2_file,
        format!(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nmetadata: {{name: cluster}}\n\
             spec:\n  agent:\n    ebpf:\n      advanced:\n        collectorCA: {ca}\n        \
             collectorCert: {}\n        collectorKey: {}\n",
            path(&node2.cert),
            path(&node2.key)
        ),
    )
    .unwrap();
    let node2_tls = ["--config".to_string(), path(&node2_file)];
    // The two nodes share this machine's kernel, whose drop tracepoint
    // every agent sees: on real nodes node 1 never sees node 2's drops, so
    // here only node 2's agent watches them.
    let agent1 = agent_on(
        &n1,
        [format!("{pa}v"), x1.clone()],
        "198.18.10.1",
        "FlowRTT",
        &node1_tls,
    );
    let agent2 = agent_on(
        &n2,
        [format!("{pb}v"), x2.clone()],
        "198.18.10.2",
        "PacketDrop",
        &node2_tls,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while lab::status_json(&listen)["kubernetes"]["pods"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the collector never listed the pods"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let before_a = sent(&pa, "eth0");
    let before_b = sent(&pb, "eth0");
    // TCP between the pods, both ways, for a few of the agents' evictions.
    let mut iperf = std::process::Command::new("ip")
        .args(["netns", "exec", &pb, "iperf3", "-s", "-1", "-p", "5201"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sh(&format!("ip netns exec {pb} ss -Htln sport = :5201"))
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "iperf3 never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    sh(&format!(
        "ip netns exec {pa} iperf3 -c 198.18.12.2 -p 5201 -t 3 -b 20M -l 1200 >/dev/null"
    ));
    iperf.wait().unwrap();
    // UDP the receiving node drops.
    let pod_a_host = Host {
        netns: pa.clone(),
        host_if: format!("{pa}v"),
        ipv4: "198.18.11.2".into(),
        ipv6: String::new(),
        mac: mac(&pa, "eth0"),
    };
    let (_, udp) = lab::paced_udp_flow(
        &pod_a_host,
        40_777,
        "198.18.12.2".parse().unwrap(),
        7777,
        200,
    );
    udp.join().unwrap();
    let after_a = sent(&pa, "eth0");
    let after_b = sent(&pb, "eth0");
    let dropped = nft_counter(&n2, "deny-7777");
    assert_eq!(dropped, 200, "nftables on node 2 dropped every UDP packet");

    // Every record evicted, sent, out of the join window and stored.
    std::thread::sleep(Duration::from_millis(2_500));
    agent1.stop();
    agent2.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = lab::status_json(&listen);
        let join = &status["cross_node"];
        if join["held"] == 0 && status["store"]["buffered_records"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "records still held: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let server_url = format!("http://{listen}");
    let a_to_b = stored(&server_url, r#"src.name = "pod-a" and dst.name = "pod-b""#);
    let b_to_a = stored(&server_url, r#"src.name = "pod-b" and dst.name = "pod-a""#);
    let status = lab::status_json(&listen);
    let run = collector.stop();
    drop(pods);

    // Once: what the sending interfaces sent, not twice.
    assert!(!a_to_b.is_empty() && !b_to_a.is_empty());
    let sent_a = (after_a.0 - before_a.0, after_a.1 - before_a.1);
    let sent_b = (after_b.0 - before_b.0, after_b.1 - before_b.1);
    assert_eq!(
        (sum(&a_to_b, "Bytes"), sum(&a_to_b, "Packets")),
        sent_a,
        "pod-a → pod-b"
    );
    assert_eq!(
        (sum(&b_to_a, "Bytes"), sum(&b_to_a, "Packets")),
        sent_b,
        "pod-b → pod-a"
    );
    let tls = &status["grpc_tls"];
    assert_eq!(tls["handshakes"], 2, "one connection per agent: {tls}");
    assert_eq!(tls["mutual"], 1, "{tls}");
    assert_eq!(
        status["receiver"]["records_refused_identity"],
        serde_json::json!({})
    );
    let join = &status["cross_node"];
    assert!(join["joined"].as_u64().unwrap() >= 4, "{join}");
    assert_eq!(join["unjoined"], 0, "{join}: {a_to_b:?} {b_to_a:?}");
    // Each record is its source node's; the other node's interfaces are
    // on the records its own were folded into (each of its periods into
    // the source's period it overlaps most).
    for (records, agent, name, source_if, other_if) in [
        (
            &a_to_b,
            "198.18.10.1",
            "node-1",
            format!("{pa}v"),
            format!("{pb}v"),
        ),
        (
            &b_to_a,
            "198.18.10.2",
            "node-2",
            format!("{pb}v"),
            format!("{pa}v"),
        ),
    ] {
        let mut joined = 0;
        for r in records.iter() {
            assert_eq!(r["AgentIP"], agent, "{r}");
            assert_eq!(r["AgentName"], name, "the name its certificate gives: {r}");
            let interfaces: Vec<&str> = r["Interfaces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap())
                .collect();
            assert!(interfaces.contains(&source_if.as_str()), "{r}");
            assert_eq!(
                interfaces.len(),
                r["IfDirections"].as_array().unwrap().len(),
                "{r}"
            );
            joined += usize::from(interfaces.contains(&other_if.as_str()));
        }
        assert!(joined > 0, "no record of {agent} carries {other_if}");
    }
    // The drops only the receiving node saw are on the sender's record.
    let udp_records: Vec<&Value> = a_to_b.iter().filter(|r| r["DstPort"] == 7777).collect();
    assert!(!udp_records.is_empty());
    let udp_records: Vec<Value> = udp_records.into_iter().cloned().collect();
    assert_eq!(sum(&udp_records, "Packets"), 200);
    assert_eq!(
        sum(&udp_records, "PktDropPackets"),
        dropped,
        "{udp_records:?}"
    );
    // The conversation of the TCP connection joins both nodes' directions.
    let conversations: Vec<&Value> = run
        .raw
        .iter()
        .filter(|r| {
            r["_RecordType"] == "endConnection"
                && r["Proto"] == 6
                && (r["DstPort"] == 5201 || r["SrcPort"] == 5201)
        })
        .collect();
    assert!(!conversations.is_empty(), "no ended TCP conversation");
    let both = |c: &&Value| c["Bytes_AB"].as_u64().unwrap() + c["Bytes_BA"].as_u64().unwrap();
    let conversation_bytes: u64 = conversations.iter().map(both).sum();
    let tcp = |records: &[Value]| -> u64 {
        records
            .iter()
            .filter(|r| r["Proto"] == 6 && (r["DstPort"] == 5201 || r["SrcPort"] == 5201))
            .map(|r| r["Bytes"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        conversation_bytes,
        tcp(&a_to_b) + tcp(&b_to_a),
        "{conversations:?}"
    );
    for c in &conversations {
        assert!(
            c["Bytes_BA"].as_u64().unwrap() > 0,
            "both directions joined: {c}"
        );
        let mut owners = [c["SrcK8S_OwnerName"].clone(), c["DstK8S_OwnerName"].clone()];
        owners.sort_by_key(|o| o.to_string());
        assert_eq!(owners, ["back", "front"], "{c}");
    }
}
