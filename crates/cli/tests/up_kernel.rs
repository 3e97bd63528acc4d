//! `flowlens up`: conversations end to end against the kernel's counters,
//! and /metrics. Needs root.

mod lab;

use lab::tcp::{self, Ending};
use lab::{Lab, free_local_addr, serial, sh, status_json, stored_udp_packets};
use std::time::Duration;

fn conversations<'a>(
    raw: &'a [serde_json::Value],
    kind: &str,
    port: u64,
) -> Vec<&'a serde_json::Value> {
    raw.iter()
        .filter(|r| r["_RecordType"] == kind && r["DstPort"].as_u64() == Some(port))
        .collect()
}

#[test]
fn conversations_match_the_interface_counters_and_end_as_the_lab_closed_them() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (client, server) = (&lab.hosts[0], &lab.hosts[1]);
    let listen = format!("127.0.0.1:{}", 20000 + std::process::id() % 10000);
    let agent = lab.start_up(
        &listen,
        &[
            "--log-types",
            "All",
            "--features",
            "ConnectionTracking,FlowRTT",
            "--subnet-label",
            "lab=198.18.0.0/15,fd00:198:18::/48",
        ],
    );
    let c0 = lab.counters(client);
    let s0 = lab.counters(server);
    let resets_before = (
        tcp::snmp_tcp(&client.netns, "OutRsts"),
        tcp::snmp_tcp(&server.netns, "OutRsts"),
    );
    // How each connection ends is the lab's own doing: one orderly (FIN
    // both ways), one aborted by the client (SO_LINGER 0: one RST), and a
    // connect to a closed port (the server's RST).
    tcp::transfer(&lab, 5202, 4 << 20, Ending::Orderly);
    tcp::transfer(&lab, 5203, 256 << 10, Ending::Abort);
    let refused = Lab::in_netns(client, || {
        std::net::TcpStream::connect_timeout(
            &"198.18.0.2:5998".parse().unwrap(),
            Duration::from_secs(1),
        )
    });
    assert!(refused.is_err());
    let resets = (
        tcp::snmp_tcp(&client.netns, "OutRsts") - resets_before.0,
        tcp::snmp_tcp(&server.netns, "OutRsts") - resets_before.1,
    );
    assert_eq!(
        resets,
        (1, 1),
        "the kernel sent the RSTs the lab made, no other"
    );
    // Terminating timeout (5 s) then the tracker's tick ends them.
    std::thread::sleep(Duration::from_millis(7000));
    let c1 = lab.counters(client);
    let s1 = lab.counters(server);
    let metrics = sh(&format!("curl -s http://{listen}/metrics"));
    let status = lab::flowlens()
        .args(["status", "--server", &format!("http://{listen}")])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    let run = agent.stop();

    assert!(
        metrics.contains("flowlens_agent_records_evicted_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowlens_conversations_ended_total"),
        "{metrics}"
    );
    let flows_metric = format!(
        "netobserv_namespace_flows_total{{SrcK8S_Namespace=\"{}\",DstK8S_Namespace=\"{}\"}}",
        client.netns, server.netns
    );
    assert!(
        metrics.contains(&flows_metric),
        "{flows_metric} missing: {metrics}"
    );
    assert!(
        metrics.contains("netobserv_node_ingress_bytes_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("netobserv_namespace_connection_outcomes_total{"),
        "{metrics}"
    );
    for counter in [
        "lost_packets",
        "map_full_packets",
        "feature_events_lost",
        "conversations:",
        "dropped",
    ] {
        assert!(
            status.contains(counter),
            "`{counter}` missing from flowlens status: {status}"
        );
    }
    // The two transfers and the refused connect are all the traffic
    // between the two namespaces.
    let all_ended: Vec<_> = run
        .raw
        .iter()
        .filter(|r| r["_RecordType"] == "endConnection" && r["SrcAddr"] == "198.18.0.1")
        .collect();
    let sum = |field: &str| {
        all_ended
            .iter()
            .map(|r| r[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(
        sum("Bytes_AB"),
        c1.tx_bytes - c0.tx_bytes,
        "client to server bytes"
    );
    assert_eq!(sum("Packets_AB"), c1.tx_packets - c0.tx_packets);
    assert_eq!(
        sum("Bytes_BA"),
        s1.tx_bytes - s0.tx_bytes,
        "server to client bytes"
    );
    assert_eq!(sum("Packets_BA"), s1.tx_packets - s0.tx_packets);
    assert_eq!(all_ended.len(), 3, "{all_ended:?}");
    for (port, cause) in [(5202, "completed"), (5203, "reset"), (5998, "refused")] {
        let ended = conversations(&run.raw, "endConnection", port);
        assert_eq!(ended.len(), 1, "port {port}: {ended:?}");
        assert_eq!(ended[0]["CloseCause"], cause, "port {port}: {}", ended[0]);
        assert_eq!(ended[0]["SrcAddr"], "198.18.0.1");
        assert_eq!(
            conversations(&run.raw, "newConnection", port).len(),
            1,
            "port {port}"
        );
    }
    let data = conversations(&run.raw, "endConnection", 5202)[0];
    let logs: Vec<_> = run
        .raw
        .iter()
        .filter(|r| r["_RecordType"] == "flowLog" && r["_HashId"] == data["_HashId"])
        .collect();
    assert_eq!(logs.len() as u64, data["numFlowLogs"].as_u64().unwrap());
    assert!(data["TimeFlowRttMinNs"].as_u64().is_some());
}

#[test]
fn conversations_carry_dns_errors_and_timed_out_connects() {
    let _serial = lab::serial();
    let (lab, client, _server, _dns) = lab::dns_lab(7701);
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.tcp_syn_retries=1",
        client.netns
    ));
    let listen = format!("127.0.0.1:{}", 30000 + std::process::id() % 10000);
    let agent = lab.start_up(
        &listen,
        &[
            "--log-types",
            "EndedConversations",
            "--features",
            "ConnectionTracking,DNSTracking",
        ],
    );
    let rcode = Lab::in_netns(&client, || {
        let rcode = lab::ask_missing_name("198.18.0.1:5601", "198.18.0.2:53", 0x1234);
        let timed_out = std::net::TcpStream::connect("198.18.0.2:7701");
        assert_eq!(timed_out.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        rcode
    });
    assert_eq!(rcode, 3, "dnsmasq answered NXDOMAIN");
    // The kernel's timeout, then the terminating timeout (5 s).
    std::thread::sleep(Duration::from_millis(6500));
    let run = agent.stop();

    let timed_out = conversations(&run.raw, "endConnection", 7701);
    assert_eq!(timed_out.len(), 1, "{}", run.stderr);
    assert_eq!(timed_out[0]["CloseCause"], "timed_out");
    assert_eq!(timed_out[0]["SrcAddr"], "198.18.0.1");
    // The DNS conversation is still open at exit (UDP ends when idle): it
    // ends then, with its DNS outcome.
    let dns = conversations(&run.raw, "endConnection", 53);
    assert_eq!(dns.len(), 1, "{dns:?}");
    assert_eq!(dns[0]["DnsFlagsResponseCode"], "NXDomain");
    assert_eq!(dns[0]["DnsName"], "missing.test");
    assert!(
        run.raw.iter().all(|r| r["_RecordType"] == "endConnection"),
        "EndedConversations only"
    );
}

/// `kill -9` of `up` meets its documented bound (docs/ARCHITECTURE.md,
/// "Acknowledged means durable"): what is lost is at most the traffic of
/// one `--cache-active-timeout` before the kill (not evicted by the kernel
/// yet) and what was sent while no `up` ran; nothing is stored twice, and
/// what only the log held at the kill is replayed.
#[test]
fn kill_9_of_up_loses_at_most_one_active_timeout_of_traffic_and_nothing_twice() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let listen = format!("127.0.0.1:{}", 21000 + std::process::id() % 10000);
    const TIMEOUT_MS: u64 = 500;
    let args = ["--log-types", "Flows"];
    let mut up = lab.start_up(&listen, &args);
    // 8,000 UDP packets of one flow, 1 ms apart.
    const PACKETS: u64 = 8_000;
    const PORT: u16 = 9998;
    let (start, sender) = lab::paced_udp_flow(a, 40998, b.ipv4.parse().unwrap(), PORT, PACKETS);
    // Killed 3.2 s in (before the store's first 5-second flush: the log
    // alone holds what was evicted), restarted on the same data directory.
    std::thread::sleep(Duration::from_millis(3200));
    let killed_ms = start.elapsed().as_millis() as u64;
    up.kill();
    up = lab.start_up(&listen, &args);
    let back_ms = start.elapsed().as_millis() as u64;
    let replayed = status_json(&listen)["ingest"]["replayed_records"]
        .as_u64()
        .unwrap();
    sender.join().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    up.stop();
    let (stored, records) = stored_udp_packets(&lab.data_dir, &a.ipv4, PORT);
    // Packet i is sent at i ms: the bound allows losing those sent from one
    // active timeout before the kill (plus 100 ms of scheduling) until the
    // new `up` had attached.
    let may_lose = (back_ms + 100).min(PACKETS) - killed_ms.saturating_sub(TIMEOUT_MS + 100);
    let lost = PACKETS - stored.min(PACKETS);
    eprintln!(
        "kill -9 of up at {killed_ms} ms, back at {back_ms} ms: stored {stored} of {PACKETS} packets in {records} records ({lost} lost, the bound allows {may_lose}); {replayed} records replayed from the log"
    );
    assert!(stored <= PACKETS, "a packet stored twice: {stored}");
    assert!(
        lost <= may_lose,
        "lost {lost}, more than the bound {may_lose}"
    );
    assert!(
        replayed > 0,
        "the evictions before the kill were only in the log"
    );
}

/// (CapEff, CapPrm, CapBnd, NoNewPrivs) of each thread of process `pid`.
fn thread_privileges(pid: u32) -> Vec<(String, [u64; 3], String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let set = |name: &str| flowlens_agent::host::capability_set(&status, name).unwrap();
        let no_new_privs = status
            .lines()
            .find_map(|l| l.strip_prefix("NoNewPrivs:"))
            .unwrap()
            .trim()
            .to_string();
        let name = task.file_name().to_string_lossy().into_owned();
        out.push((
            name,
            [set("CapEff"), set("CapPrm"), set("CapBnd")],
            no_new_privs,
        ));
    }
    out
}

#[test]
fn up_started_as_root_keeps_only_the_capabilities_it_still_needs() {
    let _serial = serial();
    let lab = Lab::new(2, false);
    let listen = free_local_addr();
    let up = lab.start_up(&listen, &["--features", "FlowRTT,PacketDrop,DNSTracking"]);
    // Capture still works after the drop: a flow is seen and stored.
    let (_, sent) =
        lab::paced_udp_flow(&lab.hosts[0], 40_123, "198.18.0.2".parse().unwrap(), 9, 20);
    sent.join().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let threads = thread_privileges(up.pid());
    let run = up.stop();
    // CAP_BPF (maps), CAP_NET_ADMIN (interfaces that appear), CAP_SYS_ADMIN
    // (entering namespaces to name them); tracing programs are loaded
    // once, so not CAP_PERFMON (docs/features.md).
    let expected: u64 = 1 << 39 | 1 << 12 | 1 << 21;
    assert!(threads.len() > 2, "{threads:?}");
    for (tid, sets, no_new_privs) in &threads {
        assert_eq!(*sets, [expected; 3], "thread {tid}: {sets:x?}");
        assert_eq!(no_new_privs, "1", "thread {tid}");
    }
    let packets: u64 = run
        .records
        .iter()
        .filter(|r| r.src_port == 40_123)
        .map(|r| r.packets)
        .sum();
    assert_eq!(packets, 20, "{}", run.stderr);
    assert!(
        run.stderr.contains("capabilities dropped"),
        "{}",
        run.stderr
    );
}

/// Also two flowlens on the same interfaces at once: each passes packets on
/// to the next program (TCX_NEXT), so both count every one.
#[test]
fn up_and_the_agent_run_as_a_user_with_only_the_documented_capabilities() {
    let _serial = serial();
    let lab = Lab::new(2, false);
    // docs/features.md's capabilities, every feature on.
    let ambient = "cap_bpf,cap_perfmon,cap_net_admin,cap_sys_admin";
    let features =
        "--features=FlowRTT,DNSTracking,PacketDrop,NetworkEvents,TCPRetransmits,ConnectionTracking";
    let ifs = lab.host_ifs();
    let interfaces = format!("--interfaces={}", ifs.join(","));
    std::fs::create_dir_all(&lab.data_dir).unwrap();
    sh(&format!("chown nobody {}", lab.data_dir.display()));
    let listen = free_local_addr();
    let data_dir = format!("--data-dir={}", lab.data_dir.display());
    let listen_arg = format!("--listen={listen}");
    let up = lab::Agent::start_as(
        "nobody",
        ambient,
        "up",
        &[
            "--stats",
            &interfaces,
            &listen_arg,
            &data_dir,
            features,
            "--cache-active-timeout=500ms",
        ],
        &ifs,
    );
    let agent = lab::Agent::start_as(
        "nobody",
        ambient,
        "agent",
        &[
            "--output=json",
            "--stats",
            &interfaces,
            features,
            "--cache-active-timeout=500ms",
        ],
        &ifs,
    );
    let (_, sent) =
        lab::paced_udp_flow(&lab.hosts[0], 40_321, "198.18.0.2".parse().unwrap(), 9, 25);
    sent.join().unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    for (name, pid) in [("up", up.pid()), ("agent", agent.pid())] {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
        assert!(
            !uid.split_whitespace().any(|u| u == "0"),
            "{name} runs as root: {uid}"
        );
    }
    for (name, run) in [("up", up.stop()), ("agent", agent.stop())] {
        let packets: u64 = run
            .records
            .iter()
            .filter(|r| r.src_port == 40_321)
            .map(|r| r.packets)
            .sum();
        assert_eq!(packets, 25, "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains("capabilities dropped"),
            "{name}: {}",
            run.stderr
        );
    }
}
