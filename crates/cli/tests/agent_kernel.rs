//! The flow agent on the real kernel, checked against the kernel's own
//! counters. Needs root; fails (never skips) without it.

mod lab;

use flowlens_model::FlowRecord;
use flowlens_model::tcp_flags::flag_bit;
use lab::{Agent, Lab, sh, totals};
use std::net::UdpSocket;
use std::time::Duration;

/// Ethernet + IPv4 + UDP headers in front of a UDP payload at the TC hook.
const UDP4_OVERHEAD: u64 = 14 + 20 + 8;

fn from_mac<'a>(run: &'a [FlowRecord], mac: &'a str) -> impl Iterator<Item = &'a FlowRecord> + 'a {
    run.iter().filter(move |r| r.src_mac == mac)
}

fn send_udp(
    lab: &Lab,
    from: usize,
    to: usize,
    count: usize,
    payload: usize,
    ports: impl Fn(usize) -> (u16, u16) + Send + 'static,
) {
    let dst_ip = lab.hosts[to].ipv4.clone();
    let src_ip = lab.hosts[from].ipv4.clone();
    Lab::in_netns(&lab.hosts[from], move || {
        let mut sockets = std::collections::HashMap::new();
        let data = vec![0x5au8; payload];
        for i in 0..count {
            let (sport, dport) = ports(i);
            let sock = sockets
                .entry(sport)
                .or_insert_with(|| UdpSocket::bind((src_ip.as_str(), sport)).expect("bind"));
            sock.send_to(&data, (dst_ip.as_str(), dport)).expect("send");
            if i % 64 == 63 {
                // Pace the burst so that the receiver's socket keeps up.
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    });
}

#[test]
fn udp_datagrams_are_counted_exactly() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let agent = lab.start_agent(&["--cache-active-timeout", "100ms"]);
    let before = lab.counters(&lab.hosts[0]);
    // A receiver, so that no ICMP port-unreachable comes back.
    let rx_host = lab.hosts[1].clone();
    let receiver = std::thread::spawn(move || {
        Lab::in_netns(&rx_host, || {
            let sock = UdpSocket::bind("198.18.0.2:4000").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 2048];
            let mut n = 0;
            while sock.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    let (count, payload) = (1000usize, 333usize);
    send_udp(&lab, 0, 1, count, payload, |_| (5000, 4000));
    // The receiver's socket may overflow under load; that happens after the
    // hooks and is the stack's business, not the agent's.
    receiver.join().unwrap();
    let after = lab.counters(&lab.hosts[0]);
    let run = agent.stop();

    let flow: Vec<&FlowRecord> = run
        .records
        .iter()
        .filter(|r| r.proto == 17 && r.src_port == 5000 && r.dst_port == 4000)
        .collect();
    let (bytes, packets) = totals(flow.iter().copied());
    assert_eq!(packets, count as u64);
    assert_eq!(bytes, count as u64 * (payload as u64 + UDP4_OVERHEAD));
    // Ground truth: the sender's interface counters saw exactly this traffic.
    assert_eq!(
        after.tx_packets - before.tx_packets,
        packets,
        "{}",
        run.stderr
    );
    assert_eq!(after.tx_bytes - before.tx_bytes, bytes);
    // Every eviction of the flow names both interfaces it crossed, in path order.
    let a = &lab.hosts[0].host_if;
    let b = &lab.hosts[1].host_if;
    assert!(
        flow.iter()
            .any(|r| r.interfaces == vec![a.clone(), b.clone()] && r.if_directions == vec![0, 1]),
        "{flow:?}"
    );
    assert!(
        flow.iter()
            .all(|r| r.src_addr == "198.18.0.1" && r.dst_addr == "198.18.0.2" && r.etype == 0x0800)
    );
    assert!(
        flow.iter()
            .all(|r| r.time_flow_start_ms <= r.time_flow_end_ms && r.sampling == 1)
    );
    assert_eq!(run.stat("lost_packets"), 0);
}

#[test]
fn json_records_keep_netobserv_names_and_types() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    // The FlowCollector example users already have, with a flag overriding it.
    let config = std::env::temp_dir().join(format!("flowlens-example-{}.yaml", std::process::id()));
    std::fs::write(
        &config,
        "apiVersion: v1\nkind: FlowCollector\nmetadata:\n  name: your-flowcollector\n  \
         namespace: your-namespace\nspec:\n  agent:\n    type: ebpf\n    ebpf:\n      \
         privileged: true\n      features:\n        - FlowRTT\n",
    )
    .unwrap();
    let agent = lab.start_agent(&["--config", config.to_str().unwrap()]);
    send_udp(&lab, 0, 1, 3, 10, |_| (5001, 4001));
    // SIGINT, as Ctrl-C: the flows still held are printed before exit 0.
    let run = agent.stop_with(libc::SIGINT);
    std::fs::remove_file(&config).ok();
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    assert_eq!(run.stats["features"], "FlowRTT");
    assert!(run.stats["feature_hooks_attached"].contains("flowlens_tcp_probe"));
    let rec = run
        .raw
        .iter()
        .find(|v| v["SrcPort"] == 5001)
        .expect("the UDP flow");
    for field in [
        "Proto",
        "SrcPort",
        "DstPort",
        "Bytes",
        "Packets",
        "Etype",
        "Dscp",
        "Flags",
        "TimeFlowStartMs",
        "TimeFlowEndMs",
        "Sampling",
    ] {
        assert!(rec[field].is_u64(), "{field} must be a number: {rec}");
    }
    for field in ["SrcAddr", "DstAddr", "SrcMac", "DstMac", "AgentIP"] {
        assert!(rec[field].is_string(), "{field} must be text: {rec}");
    }
    assert!(rec["Interfaces"].is_array() && rec["IfDirections"].is_array());
    assert_eq!(rec["SrcMac"], lab.hosts[0].mac.as_str());
    assert_eq!(rec["DstMac"], lab.hosts[1].mac.as_str());
    // Wall-clock milliseconds, not kernel monotonic time.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let start = rec["TimeFlowStartMs"].as_u64().unwrap();
    assert!(now_ms - start < 60_000, "start {start} vs now {now_ms}");
}

#[test]
fn tcp_transfer_matches_interface_counters_in_both_directions() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (client, server) = (&lab.hosts[0], &lab.hosts[1]);
    // Evict every 100ms: exactness must hold across many evictions.
    let agent = lab.start_agent(&["--cache-active-timeout", "100ms"]);
    let mut iperf_server = Lab::iperf3_server(server, 5201);
    let c0 = lab.counters(client);
    let s0 = lab.counters(server);
    sh(&format!(
        "ip netns exec {} iperf3 -c {} -p 5201 -t 2 -J > /dev/null",
        client.netns, server.ipv4
    ));
    iperf_server.wait().unwrap();
    // A connect to a closed port is answered with RST.
    let target: std::net::SocketAddr = format!("{}:5999", server.ipv4).parse().unwrap();
    let refused = Lab::in_netns(client, move || {
        std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))
    });
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    std::thread::sleep(Duration::from_millis(300));
    let c1 = lab.counters(client);
    let s1 = lab.counters(server);
    let run = agent.stop();

    let (c_bytes, c_packets) = totals(from_mac(&run.records, &client.mac));
    let (s_bytes, s_packets) = totals(from_mac(&run.records, &server.mac));
    assert_eq!(
        c_packets,
        c1.tx_packets - c0.tx_packets,
        "client→server packets; {}",
        run.stderr
    );
    assert_eq!(c_bytes, c1.tx_bytes - c0.tx_bytes, "client→server bytes");
    assert_eq!(
        s_packets,
        s1.tx_packets - s0.tx_packets,
        "server→client packets"
    );
    assert_eq!(s_bytes, s1.tx_bytes - s0.tx_bytes, "server→client bytes");
    assert!(c_bytes > 10_000_000, "iperf3 moved data: {c_bytes}");

    let flags_of = |pred: &dyn Fn(&FlowRecord) -> bool| {
        run.records
            .iter()
            .filter(|r| pred(r))
            .fold(0, |f, r| f | r.flags)
    };
    let bit = |name| flag_bit(name).unwrap();
    let to_server = flags_of(&|r| r.proto == 6 && r.dst_port == 5201);
    for name in ["SYN", "ACK", "FIN", "PSH"] {
        assert!(
            to_server & bit(name) != 0,
            "client→server flags {to_server:#x} lack {name}"
        );
    }
    let from_server = flags_of(&|r| r.proto == 6 && r.src_port == 5201);
    assert!(
        from_server & bit("SYN_ACK") != 0 && from_server & bit("FIN_ACK") != 0,
        "{from_server:#x}"
    );
    let refusal = flags_of(&|r| r.proto == 6 && r.src_port == 5999);
    assert!(
        refusal & bit("RST") != 0 && refusal & bit("RST_ACK") != 0,
        "refusal flags {refusal:#x}"
    );
    assert_eq!(run.stat("lost_packets"), 0);
}

#[test]
fn ipv6_and_icmp_echo_carry_type_and_code() {
    let _serial = lab::serial();
    let lab = Lab::new(2, true);
    let agent = lab.start_agent(&[]);
    let ns = &lab.hosts[0].netns;
    sh(&format!(
        "ip netns exec {ns} ping -c 4 -i 0.05 -s 56 198.18.0.2 > /dev/null"
    ));
    sh(&format!(
        "ip netns exec {ns} ping -6 -c 3 -i 0.05 -s 56 fd00:198:18::2 > /dev/null"
    ));
    send_udp_v6(&lab);
    let run = agent.stop();

    let find = |src: &str, proto: u8, icmp_type: u8| -> (u64, u64, Option<u8>) {
        let matching: Vec<&FlowRecord> = run
            .records
            .iter()
            .filter(|r| r.src_addr == src && r.proto == proto && r.icmp_type == Some(icmp_type))
            .collect();
        let (b, p) = totals(matching.iter().copied());
        (b, p, matching.first().and_then(|r| r.icmp_code))
    };
    // 56 bytes of payload + 8 ICMP + 20 IPv4 / 40 IPv6 + 14 Ethernet.
    assert_eq!(
        find("198.18.0.1", 1, 8),
        (4 * 98, 4, Some(0)),
        "echo request"
    );
    assert_eq!(find("198.18.0.2", 1, 0), (4 * 98, 4, Some(0)), "echo reply");
    assert_eq!(
        find("fd00:198:18::1", 58, 128),
        (3 * 118, 3, Some(0)),
        "ICMPv6 echo request"
    );
    assert_eq!(
        find("fd00:198:18::2", 58, 129),
        (3 * 118, 3, Some(0)),
        "ICMPv6 echo reply"
    );
    let udp6: Vec<&FlowRecord> = run
        .records
        .iter()
        .filter(|r| r.proto == 17 && r.dst_port == 4006)
        .collect();
    assert_eq!(totals(udp6.iter().copied()), (5 * (14 + 40 + 8 + 100), 5));
    assert!(
        udp6.iter()
            .all(|r| r.etype == 0x86dd && r.src_addr == "fd00:198:18::1")
    );
}

fn send_udp_v6(lab: &Lab) {
    Lab::in_netns(&lab.hosts[0], || {
        let sock = UdpSocket::bind("[fd00:198:18::1]:5006").unwrap();
        for _ in 0..5 {
            sock.send_to(&[1u8; 100], "[fd00:198:18::2]:4006").unwrap();
        }
    });
}

#[test]
fn interface_created_after_start_is_captured() {
    let _serial = lab::serial();
    let lab = Lab::new(1, false);
    let pattern = format!("/^{}/", lab.prefix);
    let agent = Agent::start(&["--interfaces", &pattern], &lab.host_ifs());
    // A second host (a container starting) joins after the agent is up.
    let mut lab = lab;
    let late = lab_add_late_host(&mut lab);
    agent.wait_for_attach(&late);
    send_udp(&lab, 1, 0, 7, 50, |_| (5007, 4007));
    // ...and goes away again (the container stops): the agent forgets it.
    sh(&format!("ip link del {late}"));
    agent.wait_for_log(&format!("interface gone; forgotten interface={late}"));
    let run = agent.stop();
    let flow: Vec<&FlowRecord> = run.records.iter().filter(|r| r.src_port == 5007).collect();
    assert_eq!(
        totals(flow.iter().copied()),
        (7 * (50 + UDP4_OVERHEAD), 7),
        "{}",
        run.stderr
    );
    assert_eq!(flow[0].interfaces[0], late);
    assert_eq!(run.stat("interfaces_detached_total"), 1);
}

#[test]
fn sampling_accounts_one_packet_in_n_and_says_so() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let agent = lab.start_agent(&["--sampling", "10"]);
    send_udp(&lab, 0, 1, 2000, 20, |_| (5010, 4010));
    let run = agent.stop();
    let flow: Vec<&FlowRecord> = run.records.iter().filter(|r| r.src_port == 5010).collect();
    let (bytes, packets) = totals(flow.iter().copied());
    // Binomial(2000, 1/10): mean 200, standard deviation 13.4.
    assert!((120..=280).contains(&packets), "sampled packets {packets}");
    assert_eq!(bytes, packets * (20 + UDP4_OVERHEAD));
    assert!(flow.iter().all(|r| r.sampling == 10));
}

fn lab_add_late_host(lab: &mut Lab) -> String {
    let fresh = lab.add_host(2, false);
    lab.set_static_neighbours();
    fresh.host_if
}

#[test]
fn full_flow_map_still_accounts_every_packet() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let agent = lab.start_agent(&["--cache-max-flows", "16", "--cache-active-timeout", "1s"]);
    let before = lab.counters(&lab.hosts[0]);
    // 2,000 distinct flows: 20 source ports × 100 destination ports.
    send_udp(&lab, 0, 1, 2000, 64, |i| {
        (6000 + (i / 100) as u16, 7000 + (i % 100) as u16)
    });
    let after = lab.counters(&lab.hosts[0]);
    std::thread::sleep(Duration::from_millis(100));
    let run = agent.stop();
    let sent: Vec<&FlowRecord> = from_mac(&run.records, &lab.hosts[0].mac).collect();
    let (bytes, packets) = totals(sent.iter().copied());
    let distinct: std::collections::HashSet<(u16, u16)> =
        sent.iter().map(|r| (r.src_port, r.dst_port)).collect();
    assert_eq!(distinct.len(), 2000);
    assert!(
        run.stat("map_full_packets") > 0,
        "the ring buffer fallback ran: {}",
        run.stderr
    );
    let (lost_b, lost_p) = (run.stat("lost_bytes"), run.stat("lost_packets"));
    assert_eq!(
        packets + lost_p,
        after.tx_packets - before.tx_packets,
        "{}",
        run.stderr
    );
    assert_eq!(bytes + lost_b, after.tx_bytes - before.tx_bytes);
    assert_eq!(packets, 2000, "every packet accounted, none lost");
}

#[test]
fn agent_side_filter_keeps_only_what_it_selects_and_counts_the_rest() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let agent = lab.start_agent(&[
        "--cache-active-timeout",
        "100ms",
        "--filter",
        "dst.port in (4100, 4101) and bytes > 1KB",
    ]);
    // 10 ports, 20 datagrams of 100 B each: only ports 4100-4101 pass the
    // port test, and only when their flow carries more than 1 KB.
    send_udp(&lab, 0, 1, 200, 100, |i| {
        (5100 + (i % 10) as u16, 4100 + (i % 10) as u16)
    });
    std::thread::sleep(Duration::from_millis(300));
    let run = agent.stop();
    assert!(!run.records.is_empty());
    assert!(
        run.records
            .iter()
            .all(|r| (r.dst_port == 4100 || r.dst_port == 4101) && r.bytes > 1000),
        "{:?}",
        run.records
    );
    // What was meant to pass arrived: the lab sent 20 datagrams to each of
    // 4100 and 4101, and a record over 1 KB holds at least 8 of them
    // (142 B each on the wire).
    for port in [4100, 4101] {
        let packets: u64 = run
            .records
            .iter()
            .filter(|r| r.dst_port == port)
            .map(|r| r.packets)
            .sum();
        assert!(
            (8..=20).contains(&packets),
            "port {port}: {packets} of the 20 datagrams sent: {:?}",
            run.records
        );
    }
    let kept: u64 = run.stat("records_kept");
    let filtered: u64 = run.stat("records_filtered_out");
    assert_eq!(kept, run.records.len() as u64);
    assert_eq!(run.stat("records_in"), kept + filtered);
    assert!(filtered > 0);
}
