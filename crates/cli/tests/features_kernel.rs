//! The agent's kernel features against real peers and the kernel's own
//! truth: `ss -ti`, /proc/net/snmp, nftables counters, dnsmasq. Needs root.

mod lab;

use flowlens_model::FlowRecord;
use lab::delay::DelayedLink;
use lab::{Agent, AgentRun, Dnsmasq, Lab, nft, nft_counter, nft_input, sh};
use lab::{dns, tcp};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ALL_FEATURES: &str =
    "FlowRTT,DNSTracking,PacketDrop,NetworkEvents,TCPRetransmits,ConnectionTracking";

fn start_agent(lab: &Lab, extra: &[&str]) -> Agent {
    let mut args = vec!["--cache-active-timeout", "500ms"];
    args.extend_from_slice(extra);
    lab.start_agent(&args)
}

fn flows<'a>(run: &'a AgentRun, pred: impl Fn(&FlowRecord) -> bool + 'a) -> Vec<&'a FlowRecord> {
    run.records.iter().filter(|r| pred(r)).collect()
}

/// An nftables input rule, counter commented `lossy`, that drops one data
/// segment in ten on its way to TCP `port` (never a SYN, FIN or RST, so
/// connections open and close as usual).
fn lossy_rule(port: u16) -> String {
    format!(
        "tcp dport {port} tcp flags & (syn|fin|rst) == 0 numgen random mod 10 == 0 counter drop comment \"lossy\""
    )
}

/// Segments the TCP of `netns` dropped on receipt, by its own counters:
/// old data (a duplicate, counted as DelayedACKLost), out of order beyond
/// the window, a full receive queue or socket backlog, a zero window.
fn tcp_receive_drops(netns: &str) -> u64 {
    [
        "DelayedACKLost",
        "TCPOFODrop",
        "TCPRcvQDrop",
        "TCPBacklogDrop",
        "TCPZeroWindowDrop",
    ]
    .iter()
    .map(|f| tcp::kernel_counter(netns, "/proc/net/netstat", "TcpExt:", f))
    .sum()
}

/// Both peers' RTT against a known floor and against `ss -ti`. The server's
/// link waits 5 ms each way, so every round trip takes at least 10 ms. The
/// tracepoint the agent reads runs as a segment arrives, before it is
/// processed, so each side's last RTT sample is made visible by one more
/// segment that acknowledges nothing new, and `ss` is read before anything
/// else can change that socket's RTT.
#[test]
fn rtt_has_the_links_floor_and_agrees_with_ss_on_both_peers() {
    const FLOOR_NS: u64 = 10_000_000;
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let delay = DelayedLink::insert(&lab, &lab.hosts[1], Duration::from_millis(5));
    let agent = start_agent(&lab, &["--features", "FlowRTT"]);
    let (client, server) = (lab.hosts[0].clone(), lab.hosts[1].clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let (last_tx, last_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server_thread = std::thread::spawn(move || {
        Lab::in_netns(&server, move || {
            let listener = TcpListener::bind("198.18.0.2:6100").unwrap();
            ready_tx.send(()).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 100];
            loop {
                conn.read_exact(&mut buf).unwrap();
                if buf.starts_with(b"END") {
                    break;
                }
                conn.write_all(&buf).unwrap();
            }
            // After END is acknowledged on its own (delayed ACK), X shows
            // the client's final RTT to the tracepoint.
            std::thread::sleep(Duration::from_millis(300));
            conn.write_all(b"X").unwrap();
            // Y, after the client acknowledged X, shows the server's.
            let mut y = [0u8; 1];
            conn.read_exact(&mut y).unwrap();
            last_tx.send(()).unwrap();
            done_rx.recv().ok();
        })
    });
    ready_rx.recv().unwrap();
    let (sampled_tx, sampled_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (close_tx, close_rx) = mpsc::channel::<()>();
    let client_thread = std::thread::spawn(move || {
        Lab::in_netns(&client, move || {
            let mut conn = TcpStream::connect("198.18.0.2:6100").unwrap();
            let local_port = conn.local_addr().unwrap().port();
            let mut buf = [7u8; 100];
            for _ in 0..200 {
                conn.write_all(&buf).unwrap();
                conn.read_exact(&mut buf).unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
            let mut end = [0u8; 100];
            end[..3].copy_from_slice(b"END");
            conn.write_all(&end).unwrap();
            let mut x = [0u8; 1];
            conn.read_exact(&mut x).unwrap();
            sampled_tx.send(local_port).unwrap();
            go_rx.recv().unwrap();
            // The ACK of X leaves on its own first (delayed ACK ≤ 200 ms).
            std::thread::sleep(Duration::from_millis(300));
            conn.write_all(b"Y").unwrap();
            close_rx.recv().ok();
        })
    });
    let client_port = sampled_rx.recv().unwrap();
    let client_ss = tcp::ss_rtt_ns(
        &lab.hosts[0].netns,
        &format!("dst 198.18.0.2:6100 src :{client_port}"),
    );
    go_tx.send(()).unwrap();
    last_rx.recv().unwrap();
    let server_ss = tcp::ss_rtt_ns(
        &lab.hosts[1].netns,
        &format!("src 198.18.0.2:6100 dst 198.18.0.1:{client_port}"),
    );
    std::thread::sleep(Duration::from_millis(700));
    let run = agent.stop();
    close_tx.send(()).ok();
    done_tx.send(()).ok();
    client_thread.join().unwrap();
    server_thread.join().unwrap();

    assert_eq!(delay.send_errors(), 0, "the relay passed every frame");
    // Each peer's RTT belongs to the flow its socket receives.
    let peers = [
        ("client", 6100, client_port, client_ss),
        ("server", client_port, 6100, server_ss),
    ];
    for (peer, src_port, dst_port, kernel_ns) in peers {
        let received = flows(&run, |r| r.src_port == src_port && r.dst_port == dst_port);
        assert!(!received.is_empty(), "no flow {src_port} → {dst_port}");
        let latest = received
            .iter()
            .filter(|r| r.time_flow_rtt_ns.is_some())
            .max_by_key(|r| r.time_flow_end_ms)
            .unwrap_or_else(|| panic!("no RTT on the {peer}'s flow: {received:?}"));
        let ours_ns = latest.time_flow_rtt_ns.unwrap() as f64;
        assert!(
            kernel_ns >= FLOOR_NS as f64,
            "ss shows {kernel_ns} ns for the {peer}, below the link's floor"
        );
        assert!(
            (ours_ns - kernel_ns).abs() <= kernel_ns * 0.10,
            "{peer}: flow RTT {ours_ns} ns vs ss {kernel_ns} ns"
        );
        for record in received.iter().filter(|r| r.time_flow_rtt_ns.is_some()) {
            let (min, max) = (
                record.time_flow_rtt_min_ns.unwrap(),
                record.time_flow_rtt_max_ns.unwrap(),
            );
            let rtt = record.time_flow_rtt_ns.unwrap();
            assert!(
                FLOOR_NS <= min && min <= rtt && rtt <= max,
                "{peer}: RTT {rtt} ns (min {min}, max {max}) against the floor {FLOOR_NS} ns"
            );
        }
    }
    // The handshake gave an RTT too, on the client's flow, above the floor.
    let handshakes: Vec<u64> = flows(&run, |r| r.src_port == 6100 && r.dst_port == client_port)
        .iter()
        .filter_map(|r| r.time_flow_handshake_rtt_ns)
        .collect();
    assert!(!handshakes.is_empty(), "no handshake RTT");
    // Two-sided: the SYN and SYN-ACK met no delayed ACK, so the handshake
    // is the floor plus the relay's own scheduling (0.2–0.3 ms measured;
    // 5 ms leaves room for a loaded CI machine).
    assert!(
        handshakes
            .iter()
            .all(|h| (FLOOR_NS..=FLOOR_NS + 5_000_000).contains(h)),
        "handshake RTTs {handshakes:?} against the floor {FLOOR_NS} ns"
    );
}

#[test]
fn retransmits_add_up_to_the_kernels_count_and_drops_to_nftables() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (client, server) = (&lab.hosts[0], &lab.hosts[1]);
    nft_input(&server.netns, &[&lossy_rule(5301)]);
    let agent = start_agent(&lab, &["--features", ALL_FEATURES]);
    let retrans_before = tcp::snmp_tcp(&client.netns, "RetransSegs");
    let tcp_drops_before = tcp_receive_drops(&server.netns);
    tcp::orderly_transfer(&lab, 5301, 8 << 20);
    tcp::wait_until_closed(&client.netns, &server.ipv4, 5301);
    let retrans = tcp::snmp_tcp(&client.netns, "RetransSegs") - retrans_before;
    let dropped = nft_counter(&server.netns, "lossy");
    let tcp_drops = tcp_receive_drops(&server.netns) - tcp_drops_before;
    let run = agent.stop();

    let to_server = flows(&run, |r| r.proto == 6 && r.dst_port == 5301);
    let ours: u64 = to_server.iter().filter_map(|r| r.tcp_retransmits).sum();
    assert!(retrans > 0, "the lossy rule made retransmissions");
    assert_eq!(
        ours, retrans,
        "per-flow retransmits vs the kernel's TcpRetransSegs"
    );

    // Exactly the kernel's drops on that path: what the rule dropped, and
    // what the server's TCP itself dropped on receipt (a spurious
    // retransmission as old data, ...; usually none).
    let drops: u64 = to_server.iter().filter_map(|r| r.pkt_drop_packets).sum();
    assert!(dropped > 0, "the lossy rule dropped segments");
    assert_eq!(
        drops,
        dropped + tcp_drops,
        "drops vs the nftables rule's counter {dropped} and TCP's own {tcp_drops}: {to_server:?}"
    );
    // The latest drop is the rule's, with the server socket's state at
    // that moment (ESTABLISHED mostly; LAST_ACK when the client's last
    // retransmission came after the server had read all and closed).
    assert!(
        to_server.iter().any(|r| {
            r.pkt_drop_latest_drop_cause.as_deref() == Some("SKB_DROP_REASON_NETFILTER_DROP")
                && r.pkt_drop_category.map(|v| v.as_str()) == Some("policy_denied")
                && matches!(
                    r.pkt_drop_latest_state.map(|v| v.as_str()),
                    Some("TCP_ESTABLISHED" | "TCP_LAST_ACK")
                )
        }),
        "{to_server:?}"
    );
}

#[test]
fn udp_drops_by_policy_match_the_rule_counter() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    nft(
        &lab.hosts[1].netns,
        "table inet flowlens_test {\n chain input {\n  type filter hook input priority 0;\n  \
         udp dport 7100 counter drop comment \"deny-7100\"\n }\n}\n",
    );
    let agent = start_agent(&lab, &["--features", "PacketDrop"]);
    Lab::in_netns(&lab.hosts[0], || {
        let sock = UdpSocket::bind("198.18.0.1:7101").unwrap();
        for _ in 0..25 {
            sock.send_to(&[0u8; 200], "198.18.0.2:7100").unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let counted = nft_counter(&lab.hosts[1].netns, "deny-7100");
    let run = agent.stop();
    let flow = flows(&run, |r| r.src_port == 7101 && r.dst_port == 7100);
    let drops: u64 = flow.iter().filter_map(|r| r.pkt_drop_packets).sum();
    let bytes: u64 = flow.iter().filter_map(|r| r.pkt_drop_bytes).sum();
    assert_eq!(counted, 25);
    assert_eq!(drops, counted);
    // Dropped at the IP layer: the IP packet, without the Ethernet header.
    assert_eq!(bytes, 25 * (20 + 8 + 200));
    assert!(
        flow.iter()
            .filter(|r| r.pkt_drop_packets.is_some())
            .all(|r| {
                r.pkt_drop_latest_drop_cause.as_deref() == Some("SKB_DROP_REASON_NETFILTER_DROP")
                    && r.pkt_drop_category.map(|v| v.as_str()) == Some("policy_denied")
                    && r.pkt_drop_latest_state.is_none()
            })
    );
}

fn outcome_of(run: &AgentRun, dst_port: u16) -> Vec<String> {
    flows(run, |r| r.proto == 6 && r.dst_port == dst_port)
        .iter()
        .filter_map(|r| r.conn_outcome.map(|o| o.to_string()))
        .collect()
}

#[test]
fn connection_outcomes_tell_refused_from_timed_out_and_reset() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (client, server) = (lab.hosts[0].clone(), lab.hosts[1].clone());
    // SYNs to 7201 vanish; the client gives up after one retry.
    nft(
        &server.netns,
        "table inet flowlens_test {\n chain input {\n  type filter hook input priority 0;\n  \
         tcp dport 7201 drop\n }\n}\n",
    );
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.tcp_syn_retries=1",
        client.netns
    ));
    let agent = start_agent(&lab, &["--features", "ConnectionTracking"]);

    let (ready_tx, ready_rx) = mpsc::channel();
    let server_side = server.clone();
    let resetter = std::thread::spawn(move || {
        Lab::in_netns(&server_side, move || {
            let listener = TcpListener::bind("198.18.0.2:7202").unwrap();
            ready_tx.send(()).unwrap();
            let (conn, _) = listener.accept().unwrap();
            // Linger 0: close() aborts the connection with a RST.
            tcp::abort_on_close(&conn);
            std::thread::sleep(Duration::from_millis(200));
            drop(conn);
        })
    });
    ready_rx.recv().unwrap();
    let results = Lab::in_netns(&client, || {
        let refused = TcpStream::connect("198.18.0.2:7200")
            .map(|_| ())
            .map_err(|e| e.kind());
        let started = Instant::now();
        let timed_out = TcpStream::connect("198.18.0.2:7201")
            .map(|_| ())
            .map_err(|e| e.kind());
        let waited = started.elapsed();
        let mut conn = TcpStream::connect("198.18.0.2:7202").unwrap();
        let mut buf = [0u8; 1];
        let reset = conn.read(&mut buf).map_err(|e| e.kind());
        (refused, timed_out, waited, reset)
    });
    resetter.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let run = agent.stop();

    assert_eq!(results.0, Err(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(
        results.1,
        Err(std::io::ErrorKind::TimedOut),
        "after {:?}",
        results.2
    );
    assert_eq!(results.3, Err(std::io::ErrorKind::ConnectionReset));
    assert_eq!(outcome_of(&run, 7200), vec!["refused"], "{}", run.stderr);
    assert_eq!(outcome_of(&run, 7201), vec!["timed_out"]);
    let reset = outcome_of(&run, 7202);
    assert_eq!(reset.last().map(String::as_str), Some("reset"), "{reset:?}");
    // The server's side of that connection ended in a reset it sent.
    let server_side: Vec<String> = flows(&run, |r| r.proto == 6 && r.src_port == 7202)
        .iter()
        .filter_map(|r| r.conn_outcome.map(|o| o.to_string()))
        .collect();
    assert_eq!(
        server_side.last().map(String::as_str),
        Some("reset"),
        "{server_side:?}"
    );
}

/// The same over TCP (RFC 1035 4.2.2: a two-byte length first); returns the
/// rcode, the latency from query to response, and the client's port.
fn ask_tcp(lab: &Lab, id: u16, name: &str) -> (u8, Duration, u16) {
    let name = name.to_string();
    Lab::in_netns(&lab.hosts[0], move || {
        let mut conn = TcpStream::connect("198.18.0.2:53").unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let query = flowlens_agent::dns::a_query(id, &name);
        let mut message = (query.len() as u16).to_be_bytes().to_vec();
        message.extend_from_slice(&query);
        let started = Instant::now();
        conn.write_all(&message).unwrap();
        let mut head = [0u8; 6];
        conn.read_exact(&mut head).unwrap();
        let latency = started.elapsed();
        assert_eq!(u16::from_be_bytes([head[2], head[3]]), id);
        (head[5] & 0xf, latency, conn.local_addr().unwrap().port())
    })
}

#[test]
fn dns_against_dnsmasq() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let server = &lab.hosts[1];
    let dnsmasq = Dnsmasq::start(server);
    let agent = start_agent(
        &lab,
        &[
            "--features",
            "DNSTracking",
            "--dns-ports",
            "53,5353",
            "--dns-timeout",
            "1s",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let long_name = format!("{}.known.test", "a".repeat(50));
    let known = dns::ask(
        &lab,
        "198.18.0.2:53",
        0x1111,
        "known.test",
        5401,
        Duration::from_secs(2),
    )
    .expect("answer");
    let long = dns::ask(
        &lab,
        "198.18.0.2:53",
        0x1112,
        &long_name,
        5402,
        Duration::from_secs(2),
    )
    .expect("answer");
    let missing = dns::ask(
        &lab,
        "198.18.0.2:53",
        0x2222,
        "missing.test",
        5403,
        Duration::from_secs(2),
    )
    .expect("answer");
    let refused = dns::ask(
        &lab,
        "198.18.0.2:53",
        0x3333,
        "elsewhere.example",
        5404,
        Duration::from_secs(2),
    )
    .expect("answer");
    // Nobody answers DNS on 5353 there.
    let silent = dns::ask(
        &lab,
        "198.18.0.2:5353",
        0x4444,
        "silent.test",
        5405,
        Duration::from_millis(200),
    );
    let over_tcp = ask_tcp(&lab, 0x5555, "known.test");
    std::thread::sleep(Duration::from_millis(1800));
    let run = agent.stop();
    drop(dnsmasq);

    assert_eq!(
        (known.0, long.0, missing.0, refused.0, over_tcp.0),
        (0, 0, 3, 5, 0)
    );
    assert!(silent.is_none());
    let dns = |port: u16| -> Vec<&FlowRecord> {
        flows(&run, move |r| {
            r.dns_id.is_some() && (r.src_port == port || r.dst_port == port)
        })
    };
    let check = |port: u16, id: u16, name: &str, rcode: &str, client_latency: Duration| {
        let records = dns(port);
        let response = records
            .iter()
            .find(|r| r.src_port == 53)
            .unwrap_or_else(|| panic!("no response flow for {name}: {records:?}"));
        let query = records
            .iter()
            .find(|r| r.dst_port == 53)
            .unwrap_or_else(|| panic!("no query flow for {name}: {records:?}"));
        for r in [response, query] {
            assert_eq!(r.dns_id, Some(id));
            assert_eq!(r.dns_name.as_deref(), Some(name));
            assert_eq!(r.dns_query_type.as_deref(), Some("A"));
            assert_eq!(r.dns_flags_response_code.as_deref(), Some(rcode), "{r:?}");
            let latency = r.dns_latency_ms.expect("latency");
            assert!(
                latency > 0.0 && latency <= client_latency.as_secs_f64() * 1000.0,
                "{latency} ms vs client {client_latency:?}"
            );
        }
    };
    check(5401, 0x1111, "known.test", "NoError", known.1);
    check(5402, 0x1112, &long_name, "NoError", long.1);
    check(5403, 0x2222, "missing.test", "NXDomain", missing.1);
    check(over_tcp.2, 0x5555, "known.test", "NoError", over_tcp.1);
    check(5404, 0x3333, "elsewhere.example", "Refused", refused.1);
    let unanswered = dns(5405);
    assert!(
        unanswered.iter().any(|r| r.dst_port == 5353
            && r.dns_unanswered == Some(true)
            && r.dns_id == Some(0x4444)),
        "{unanswered:?}"
    );
    assert_eq!(run.stat("dns_unanswered"), 1);
}

/// DNS latency pinned from both sides by a server whose delay is known:
/// at least the delay, at most what the client measured, and within 5 ms
/// of the client (the client's clock also holds its own system calls and
/// wake-ups; ours is the wire's). DnsUnanswered marks exactly the queries
/// the server left unanswered.
#[test]
fn dns_latency_is_the_servers_delay_and_unanswered_exactly_the_silent_queries() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    const DELAY: Duration = Duration::from_millis(40);
    let agent = start_agent(
        &lab,
        &[
            "--features",
            "DNSTracking",
            "--dns-ports",
            "5353",
            "--dns-timeout",
            "1s",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let ids: Vec<u16> = (0x6000..0x6006).collect();
    let server = dns::delaying_server(&lab, 5353, DELAY, ids.len());
    let mut answered = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let port = 5501 + i as u16;
        let wait = Duration::from_millis(if id % 2 == 0 { 2000 } else { 200 });
        let answer = dns::ask(&lab, "198.18.0.2:5353", *id, "delayed.test", port, wait);
        assert_eq!(answer.is_some(), id % 2 == 0, "query {id:#x}: {answer:?}");
        if let Some((rcode, client)) = answer {
            assert_eq!(rcode, 3);
            answered.push((port, *id, client));
        }
    }
    server.join().unwrap();
    // Past the 1 s DNS timeout: the silent queries are reported.
    std::thread::sleep(Duration::from_millis(1800));
    let run = agent.stop();

    assert_eq!(answered.len(), 3);
    for (port, id, client) in &answered {
        let response = flows(&run, |r| r.dst_port == *port && r.src_port == 5353);
        assert!(!response.is_empty(), "no response flow for {id:#x}");
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for r in &response {
            assert_eq!(r.dns_id, Some(*id));
            assert_eq!(r.dns_flags_response_code.as_deref(), Some("NXDomain"));
            assert_ne!(r.dns_unanswered, Some(true), "{r:?}");
            let ours = r.dns_latency_ms.expect("a latency");
            assert!(
                ms(DELAY) <= ours && ours <= ms(*client),
                "{ours} ms vs the server's delay {DELAY:?} and the client's {client:?}"
            );
            assert!(
                ms(*client) - ours < 5.0,
                "{ours} ms vs the client's {client:?}"
            );
        }
    }
    let silent: Vec<u16> = ids.iter().copied().filter(|id| id % 2 == 1).collect();
    let marked: Vec<u16> = {
        let mut m: Vec<u16> = run
            .records
            .iter()
            .filter(|r| r.dns_unanswered == Some(true))
            .filter_map(|r| r.dns_id)
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    assert_eq!(
        marked, silent,
        "DnsUnanswered marks the silent queries, only"
    );
    assert_eq!(run.stat("dns_unanswered"), silent.len() as u64);
}

#[test]
fn features_off_attach_nothing_and_add_no_field() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let agent = start_agent(&lab, &[]);
    // Kernel tests run one at a time: the flowlens programs loaded now are
    // this agent's.
    let programs = sh("bpftool prog show -j");
    let v: serde_json::Value = serde_json::from_str(&programs).unwrap();
    let ours: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|name| name.starts_with("flowlens_"))
        .collect();
    Lab::in_netns(&lab.hosts[0], || {
        let _ =
            TcpStream::connect_timeout(&"198.18.0.2:7300".parse().unwrap(), Duration::from_secs(1));
    });
    let run = agent.stop();
    assert!(!ours.is_empty(), "bpftool shows the agent's programs");
    assert!(
        ours.iter().all(|name| name.starts_with("flowlens_tc_")),
        "{ours:?}"
    );
    assert_eq!(run.stats["feature_hooks_attached"], "");
    // Records arrived (the refused connection's SYN and RST), so the
    // fields below are really absent, not merely unseen.
    assert!(
        run.raw.iter().any(|r| r["DstPort"] == 7300),
        "no record of the connection to 7300: {:?}",
        run.raw
    );
    for raw in &run.raw {
        for field in [
            "TimeFlowRttNs",
            "TcpRetransmits",
            "ConnOutcome",
            "PktDropPackets",
            "DnsId",
        ] {
            assert!(
                raw.get(field).is_none(),
                "{field} present with its feature off: {raw}"
            );
        }
    }
}

#[test]
fn every_feature_attaches_its_hooks() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let agent = start_agent(&lab, &["--features", ALL_FEATURES]);
    let run = agent.stop();
    for program in [
        "flowlens_tcp_probe",
        "flowlens_sock_state",
        "flowlens_tcp_retransmit",
        "flowlens_kfree_skb",
    ] {
        assert!(
            run.stats["feature_hooks_attached"].contains(program),
            "{}",
            run.stderr
        );
    }
    assert_eq!(run.stat("feature_hook_failures"), 0);
}

#[test]
fn policy_verdict_names_the_rule_that_logged_it() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    nft(
        &lab.hosts[1].netns,
        "table inet flowlens_test {\n chain input {\n  type filter hook input priority 0;\n  \
         udp dport 7110 log group 2 prefix \"deny-7110\" counter drop comment \"deny-7110\"\n }\n}\n",
    );
    let agent = start_agent(
        &lab,
        &["--features", "NetworkEvents", "--nflog-groups", "2"],
    );
    // Give the namespace's NFLOG listener a moment to bind its group.
    std::thread::sleep(Duration::from_millis(500));
    Lab::in_netns(&lab.hosts[0], || {
        let sock = UdpSocket::bind("198.18.0.1:7111").unwrap();
        for _ in 0..5 {
            sock.send_to(&[0u8; 64], "198.18.0.2:7110").unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let counted = nft_counter(&lab.hosts[1].netns, "deny-7110");
    let run = agent.stop();
    let flow = flows(&run, |r| r.src_port == 7111 && r.dst_port == 7110);
    let drops: u64 = flow.iter().filter_map(|r| r.pkt_drop_packets).sum();
    assert_eq!((counted, drops), (5, 5), "{flow:?}");
    let events: Vec<_> = flow
        .iter()
        .filter_map(|r| r.network_events.as_ref())
        .flatten()
        .collect();
    assert!(
        !events.is_empty(),
        "no NetworkEvents: {flow:?}\n{}",
        run.stderr
    );
    for e in events {
        assert_eq!(
            (
                e.action.as_str(),
                e.name.as_str(),
                e.direction.as_str(),
                e.group
            ),
            ("drop", "deny-7110", "ingress", 2)
        );
    }
}

#[test]
fn runs_with_bpf_perfmon_and_net_admin_only() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let ifs = lab.host_ifs().join(",");
    let agent = Agent::start_without_capabilities(
        "cap_sys_admin",
        &[
            "--interfaces",
            &ifs,
            "--features",
            "FlowRTT,DNSTracking,PacketDrop,TCPRetransmits,ConnectionTracking",
        ],
        &lab.host_ifs(),
    );
    Lab::in_netns(&lab.hosts[0], || {
        let _ =
            TcpStream::connect_timeout(&"198.18.0.2:7400".parse().unwrap(), Duration::from_secs(1));
    });
    let run = agent.stop();
    assert_eq!(run.stat("feature_hook_failures"), 0, "{}", run.stderr);
    let refused = flows(&run, |r| r.dst_port == 7400 && r.conn_outcome.is_some());
    assert_eq!(refused[0].conn_outcome.map(|v| v.as_str()), Some("refused"));
}

#[test]
fn ipv6_connections_get_outcomes_and_rtt() {
    let _serial = lab::serial();
    let lab = Lab::new(2, true);
    let agent = start_agent(&lab, &["--features", "ConnectionTracking,FlowRTT"]);
    let server = lab.hosts[1].clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let accepting = std::thread::spawn(move || {
        Lab::in_netns(&server, move || {
            let listener = TcpListener::bind("[fd00:198:18::2]:7600").unwrap();
            ready_tx.send(()).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).unwrap();
            conn.write_all(&buf).unwrap();
        })
    });
    ready_rx.recv().unwrap();
    Lab::in_netns(&lab.hosts[0], || {
        let refused = TcpStream::connect("[fd00:198:18::2]:7601");
        assert!(refused.is_err());
        let mut conn = TcpStream::connect("[fd00:198:18::2]:7600").unwrap();
        conn.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
    });
    accepting.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let run = agent.stop();
    let outcome = |port: u16| -> Vec<String> {
        flows(&run, |r| {
            r.dst_port == port && r.src_addr == "fd00:198:18::1"
        })
        .iter()
        .filter_map(|r| r.conn_outcome.map(|o| o.to_string()))
        .collect()
    };
    assert_eq!(outcome(7601), vec!["refused"], "{}", run.stderr);
    // Opened and closed by FIN within one record: the latest outcome shows.
    assert_eq!(outcome(7600).last().map(String::as_str), Some("completed"));
    // The client's RTT is on the flow its socket receives.
    assert!(
        flows(&run, |r| r.src_port == 7600
            && r.dst_addr == "fd00:198:18::1")
        .iter()
        .any(|r| r.time_flow_handshake_rtt_ns.is_some())
    );
}

/// `sampled` of `total` events kept 1 in `n` is binomial, B(total, 1/n):
/// within five standard deviations of total/n (a false alarm once in about
/// 1.7 million checks), and at least one.
fn assert_sampled(what: &str, sampled: u64, total: u64, n: u64) {
    let p = 1.0 / n as f64;
    let mean = total as f64 * p;
    let sigma = (total as f64 * p * (1.0 - p)).sqrt();
    assert!(
        sampled > 0 && (sampled as f64 - mean).abs() <= 5.0 * sigma,
        "{what}: {sampled} sampled of {total} (1 in {n}: {mean:.1} ± {:.1})",
        5.0 * sigma
    );
}

/// With `--sampling 10` the counters (packets, bytes, drops, retransmits)
/// are 1 in 10 of the truth, binomially, and say `Sampling: 10`; DNS is
/// tracked before sampling, so every answer is there with its latency.
#[test]
fn sampling_keeps_one_in_ten_of_every_counter_and_every_dns_answer() {
    const N: u64 = 10;
    const DATAGRAMS: usize = 3000;
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (client, server) = (&lab.hosts[0], &lab.hosts[1]);
    nft_input(
        &server.netns,
        &[
            "udp dport 7120 counter drop comment \"deny-7120\"",
            &lossy_rule(5320),
        ],
    );
    let agent = start_agent(
        &lab,
        &[
            "--sampling",
            "10",
            "--features",
            "PacketDrop,TCPRetransmits,DNSTracking",
            "--dns-ports",
            "5353",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    Lab::in_netns(client, || {
        let sock = UdpSocket::bind("198.18.0.1:5020").unwrap();
        for i in 0..2 * DATAGRAMS {
            let port = if i % 2 == 0 { 4020 } else { 7120 };
            sock.send_to(&[0x5a; 100], ("198.18.0.2", port)).unwrap();
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    });
    // One segment per packet the client's TCP sends (no TSO/GSO bundles),
    // so each retransmission the sampling keeps or leaves is one segment
    // of the kernel's RetransSegs, and B(RetransSegs, 1/10) holds.
    sh(&format!(
        "ip -n {} link set dev eth0 gso_max_segs 1",
        client.netns
    ));
    let retrans_before = tcp::snmp_tcp(&client.netns, "RetransSegs");
    tcp::orderly_transfer(&lab, 5320, 4 << 20);
    tcp::wait_until_closed(&client.netns, &server.ipv4, 5320);
    let retransmitted = tcp::snmp_tcp(&client.netns, "RetransSegs") - retrans_before;
    let denied = nft_counter(&server.netns, "deny-7120");
    let ids: Vec<u16> = (0..20).map(|i| 0x7000 + 2 * i).collect();
    let dns_server = dns::delaying_server(&lab, 5353, Duration::from_millis(5), ids.len());
    for (i, id) in ids.iter().enumerate() {
        let answer = dns::ask(
            &lab,
            "198.18.0.2:5353",
            *id,
            "sampled.test",
            5700 + i as u16,
            Duration::from_secs(2),
        );
        assert_eq!(answer.map(|a| a.0), Some(3), "query {id:#x}");
    }
    dns_server.join().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let run = agent.stop();
    assert!(
        run.records.iter().all(|r| r.sampling == 10),
        "every record says Sampling: 10"
    );

    // Packets and bytes: the lab sent DATAGRAMS of 100 bytes to port 4020.
    let accepted = flows(&run, |r| r.src_port == 5020 && r.dst_port == 4020);
    let (bytes, packets) = lab::totals(accepted.iter().copied());
    assert_sampled("packets", packets, DATAGRAMS as u64, N);
    assert_eq!(
        bytes,
        packets * (100 + 8 + 20 + 14),
        "bytes are the sampled packets' own"
    );
    // Drops: the rule dropped what the lab sent to 7120.
    assert_eq!(denied, DATAGRAMS as u64, "the rule's counter");
    let dropped: u64 = flows(&run, |r| r.dst_port == 7120)
        .iter()
        .filter_map(|r| r.pkt_drop_packets)
        .sum();
    assert_sampled("dropped packets", dropped, denied, N);
    // Retransmissions: the kernel's own count for the transfer.
    assert!(
        retransmitted > 100,
        "the lossy rule made retransmissions: {retransmitted}"
    );
    let retransmits: u64 = flows(&run, |r| r.proto == 6 && r.dst_port == 5320)
        .iter()
        .filter_map(|r| r.tcp_retransmits)
        .sum();
    assert_sampled("retransmitted segments", retransmits, retransmitted, N);
    eprintln!(
        "FIG packets {packets}/{DATAGRAMS} drops {dropped}/{denied} retrans {retransmits}/{retransmitted}"
    );
    // DNS: not sampled — every answer, with its latency.
    let mut answered: Vec<u16> = run
        .records
        .iter()
        .filter(|r| r.src_port == 5353 && r.dns_flags_response_code.as_deref() == Some("NXDomain"))
        .filter(|r| r.dns_latency_ms.is_some_and(|ms| ms >= 5.0))
        .filter_map(|r| r.dns_id)
        .collect();
    answered.sort_unstable();
    answered.dedup();
    assert_eq!(answered, ids, "every DNS answer, sampled or not");
}
