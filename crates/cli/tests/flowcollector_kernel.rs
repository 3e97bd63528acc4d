//! `collector --flowcollector cluster` follows the FlowCollector resource of
//! the stand-in API server: changes of spec.agent.ebpf reach a running
//! agent (`--config-from-collector`) over gRPC and apply without a
//! restart; spec.processor's live parts apply to the collector at once;
//! what cannot be applied is in status.conditions, with the reason.

mod lab;

use flowlens_kube_standin::{ApiServer, Options};
use lab::{Agent, Lab, free_local_addr, paced_udp_flow, serial};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn flowcollector(ebpf: Value, processor: Value) -> Value {
    json!({"apiVersion": "flows.netobserv.io/v1beta2", "kind": "FlowCollector",
           "metadata": {"name": "cluster"},
           "spec": {"agent": {"type": "eBPF", "ebpf": ebpf}, "processor": processor}})
}

/// Waits until the resource's condition `kind` is `status` for
/// `generation`; the condition.
fn wait_for_condition(server: &ApiServer, kind: &str, status: &str, generation: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let object = server.get("FlowCollector", "", "cluster").unwrap();
        let conditions = object["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(c) = conditions.iter().find(|c| {
            c["type"] == kind && c["status"] == status && c["observedGeneration"] == generation
        }) {
            return c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {kind}={status} for generation {generation}: {}",
            object["status"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The UDP flows from source port `port` the collector printed so far.
fn flows_from(collector: &Agent, port: u16) -> Vec<flowlens_model::FlowRecord> {
    collector
        .records_so_far()
        .into_iter()
        .filter(|r| r.proto == 17 && r.src_port == port)
        .collect()
}

/// The flows from `port` once some came and no more came for 1.5 s (three
/// evictions).
fn wait_for_flows(collector: &Agent, port: u16) -> Vec<flowlens_model::FlowRecord> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = 0;
    let mut still_since = Instant::now();
    loop {
        let flows = flows_from(collector, port);
        if flows.len() != seen {
            (seen, still_since) = (flows.len(), Instant::now());
        } else if seen > 0 && still_since.elapsed() > Duration::from_millis(1_500) {
            return flows;
        }
        assert!(
            Instant::now() < deadline,
            "flows from port {port}: {flows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_agents_and_the_collector_follow_the_flowcollector() {
    let _serial = serial();
    let lab = Lab::new(2, false);
    let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
    let ifs = lab.host_ifs();
    let server = ApiServer::start(Options::default()).unwrap();
    server
        .apply(flowcollector(
            json!({"sampling": 1, "cacheActiveTimeout": "500ms", "interfaces": [ifs[0]]}),
            json!({"clusterName": "lab-a"}),
        ))
        .unwrap();

    let grpc = free_local_addr();
    let listen = free_local_addr();
    let kubeconfig = server.kubeconfig().display().to_string();
    let data_dir = lab.data_dir.display().to_string();
    let collector = Agent::start_collector(
        &grpc,
        &[
            "--data-dir",
            &data_dir,
            "--listen",
            &listen,
            "--kubeconfig",
            &kubeconfig,
            "--flowcollector",
            "cluster",
            // One node: nothing to join across nodes, no records held.
            "--cross-node-window",
            "0s",
        ],
    );
    // The agent starts from its own file (its first interface only), then
    // takes the resource's settings from the collector.
    let config = lab.data_dir.with_extension("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nmetadata: {{name: local}}\n\
             spec:\n  agent:\n    ebpf:\n      interfaces: [{}]\n",
            ifs[0]
        ),
    )
    .unwrap();
    let agent_listen = free_local_addr();
    let agent = Agent::start(
        &[
            "--config",
            &config.display().to_string(),
            "--collector",
            &grpc,
            "--config-from-collector",
            "--listen",
            &agent_listen,
        ],
        &ifs[..1],
    );
    let pid = agent.pid();
    let applied = wait_for_condition(&server, "AgentConfigApplied", "True", 1);
    assert!(
        applied["message"].as_str().unwrap().contains("1 agents"),
        "{applied}"
    );
    wait_for_condition(&server, "ProcessorConfigApplied", "True", 1);
    wait_for_condition(&server, "Ready", "True", 1);

    let (_, sent) = paced_udp_flow(h1, 41_001, "198.18.0.2".parse().unwrap(), 9, 60);
    sent.join().unwrap();
    let first = wait_for_flows(&collector, 41_001);
    for r in &first {
        assert_eq!(r.sampling, 1, "{r:?}");
        assert_eq!(r.interfaces, [ifs[0].clone()], "{r:?}");
        assert_eq!(r.cluster_name.as_deref(), Some("lab-a"));
    }
    assert_eq!(first.iter().map(|r| r.packets).sum::<u64>(), 60);

    // Sampling, interfaces and the cluster's name change: applied while
    // both processes run.
    server
        .apply(flowcollector(
            json!({"sampling": 3, "cacheActiveTimeout": "500ms", "interfaces": ifs}),
            json!({"clusterName": "lab-b"}),
        ))
        .unwrap();
    wait_for_condition(&server, "AgentConfigApplied", "True", 2);
    wait_for_condition(&server, "ProcessorConfigApplied", "True", 2);
    agent.wait_for_attach(&ifs[1]);
    let (_, sent) = paced_udp_flow(h2, 41_002, "198.18.0.1".parse().unwrap(), 9, 300);
    sent.join().unwrap();
    let second = wait_for_flows(&collector, 41_002);
    for r in &second {
        assert_eq!(r.sampling, 3, "{r:?}");
        assert_eq!(r.cluster_name.as_deref(), Some("lab-b"));
        assert!(r.interfaces.contains(&ifs[1]), "{r:?}");
    }
    // 1 in 3 of 300 packets, as sampling goes (binomial: within 5 sigma).
    let sampled: u64 = second.iter().map(|r| r.packets).sum();
    assert!(
        (50..=150).contains(&sampled),
        "{sampled} packets sampled of 300"
    );

    // What the collector cannot apply: refused before any agent sees it.
    server
        .apply(flowcollector(
            json!({"sampling": 3, "cacheActiveTimeout": "500ms", "interfaces": ["/[unclosed/"]}),
            json!({"clusterName": "lab-b"}),
        ))
        .unwrap();
    let refused = wait_for_condition(&server, "AgentConfigApplied", "False", 3);
    assert_eq!(refused["reason"], "InvalidAgentSpec", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("[unclosed"),
        "{refused}"
    );
    wait_for_condition(&server, "Ready", "False", 3);

    // What the agent cannot apply (a flow table the kernel will not
    // allocate): it says why and keeps running with what it had.
    server
        .apply(flowcollector(
            json!({"sampling": 3, "cacheActiveTimeout": "500ms", "interfaces": ifs,
                   "cacheMaxFlows": 2_000_000_000u64}),
            json!({"clusterName": "lab-b", "logTypes": "All"}),
        ))
        .unwrap();
    let rejected = wait_for_condition(&server, "AgentConfigApplied", "False", 4);
    assert_eq!(rejected["reason"], "AgentRejected", "{rejected}");
    // A processor change the running pipeline cannot take.
    let restart = wait_for_condition(&server, "ProcessorConfigApplied", "False", 4);
    assert_eq!(restart["reason"], "RestartRequired", "{restart}");
    assert!(
        restart["message"]
            .as_str()
            .unwrap()
            .contains("spec.processor.logTypes")
    );
    let (_, sent) = paced_udp_flow(h1, 41_003, "198.18.0.2".parse().unwrap(), 9, 30);
    sent.join().unwrap();
    let third = wait_for_flows(&collector, 41_003);
    assert!(third.iter().all(|r| r.sampling == 3), "{third:?}");
    // The agent's own account: generation 2 runs, generation 4 refused.
    let applied = lab::status_json(&agent_listen)["config"].clone();
    assert_eq!(applied["generation"], 2, "{applied}");
    assert_eq!(applied["applied"], 2, "{applied}");
    assert!(applied["refused"].as_u64() >= Some(1), "{applied}");
    assert!(
        applied["last_error"].as_str().unwrap().contains("map"),
        "{applied}"
    );

    assert_eq!(agent.pid(), pid, "never restarted");
    let run = agent.stop();
    assert!(
        run.stderr.contains("settings from the collector applied"),
        "{}",
        run.stderr
    );
    collector.stop();
    std::fs::remove_file(config).ok();
}
