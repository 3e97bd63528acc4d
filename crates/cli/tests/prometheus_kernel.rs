//! A real Prometheus (Debian's package) scrapes `flowlens up`; PromQL over
//! the scraped series returns the bytes, drops, DNS and RTT the test made,
//! checked against truths that are not flowlens's: the kernel's interface
//! counters, an nftables counter, the delay of a DNS server and the
//! latencies its client measured, the floor of a delayed link and `ss -ti`.
//! Needs root.

mod lab;

use lab::delay::DelayedLink;
use lab::prometheus::Prometheus;
use lab::{Host, Lab, dns, free_local_addr, nft_counter, sh, tcp};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The DNS server's delay: every latency falls in the (0.025, 0.05] bucket.
const DNS_DELAY: Duration = Duration::from_millis(40);
/// Each way of the echo host's link: every RTT is at least 12 ms, in the
/// (0.01, 0.025] bucket.
const ONE_WAY: Duration = Duration::from_millis(6);

/// `rounds` echoes of 100 bytes from `client` to port 6200 of `echo`, each
/// request sent as the previous answer arrives (its ACK rides on it, so no
/// delayed ACK stretches an RTT sample), the last answer acknowledged at
/// once (TCP_QUICKACK). Returns both sockets' smoothed RTT as `ss -ti`
/// shows them while the connection is still open, in seconds.
fn echo_round_trips(client: &Host, echo: &Host, rounds: usize) -> (f64, f64) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (echo_host, addr) = (echo.clone(), format!("{}:6200", echo.ipv4));
    let server_addr = addr.clone();
    let server = std::thread::spawn(move || {
        Lab::in_netns(&echo_host, move || {
            let listener = TcpListener::bind(&server_addr).unwrap();
            ready_tx.send(()).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 100];
            for _ in 0..rounds {
                conn.read_exact(&mut buf).unwrap();
                conn.write_all(&buf).unwrap();
            }
            done_rx.recv().ok();
        })
    });
    ready_rx.recv().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
    let client_thread = std::thread::spawn({
        let client = client.clone();
        move || {
            Lab::in_netns(&client, move || {
                let mut conn = TcpStream::connect(&addr).unwrap();
                let mut buf = [7u8; 100];
                for _ in 0..rounds {
                    conn.write_all(&buf).unwrap();
                    conn.read_exact(&mut buf).unwrap();
                }
                lab::set_socket_option(
                    conn.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    &1 as &libc::c_int,
                )
                .expect("TCP_QUICKACK");
                port_tx.send(conn.local_addr().unwrap().port()).unwrap();
                close_rx.recv().ok();
            })
        }
    });
    let port = port_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let srtt = |host: &Host, filter: String| tcp::ss_rtt_ns(&host.netns, &filter) / 1e9;
    let rtts = (
        srtt(client, format!("dst {}:6200 src :{port}", echo.ipv4)),
        srtt(echo, format!("src {}:6200 dst :{port}", echo.ipv4)),
    );
    close_tx.send(()).ok();
    done_tx.send(()).ok();
    client_thread.join().unwrap();
    server.join().unwrap();
    rtts
}

#[test]
fn promql_over_scraped_metrics_returns_what_the_kernel_saw() {
    let _serial = lab::serial();
    let (mut lab, client, server, _dns) = lab::dns_lab(7702);
    let echo = lab.add_host(3, false);
    lab.set_static_neighbours();
    let delay = DelayedLink::insert(&lab, &echo, ONE_WAY);
    let listen = free_local_addr();
    let metrics = "namespace_egress_bytes_total,namespace_ingress_bytes_total,namespace_drop_packets_total,namespace_rtt_seconds,namespace_dns_latency_seconds";
    let up = lab.start_up(
        &listen,
        &[
            "--log-types",
            "Flows",
            "--features",
            "FlowRTT,DNSTracking,PacketDrop",
            "--dns-ports",
            "5353",
            "--metrics",
            metrics,
        ],
    );
    let prometheus = Prometheus::start(&listen);
    let before = lab.counters(&client);
    let mut iperf = Lab::iperf3_server(&server, 5203);
    sh(&format!(
        "ip netns exec {} iperf3 -c {} -p 5203 -t 1 > /dev/null",
        client.netns, server.ipv4
    ));
    iperf.wait().unwrap();
    // Three answered DNS queries (even ids) to a server that waits 40 ms.
    let dns_server = dns::delaying_server(&lab, 5353, DNS_DELAY, 3);
    let client_latencies: Vec<f64> = (0..3u16)
        .map(|i| {
            let id = 0x4320 + 2 * i;
            let (rcode, latency) = dns::ask(
                &lab,
                "198.18.0.2:5353",
                id,
                "delayed.test",
                5602 + i,
                Duration::from_secs(2),
            )
            .expect("the delaying server answers even ids");
            assert_eq!(rcode, 3, "NXDomain");
            latency.as_secs_f64()
        })
        .collect();
    dns_server.join().unwrap();
    Lab::in_netns(&client, || {
        // Three SYNs into the nftables drop rule (the connect gives up).
        let socket = std::net::TcpStream::connect_timeout(
            &"198.18.0.2:7702".parse().unwrap(),
            Duration::from_millis(3500),
        );
        assert!(socket.is_err());
    });
    let after = lab.counters(&client);
    let nft_dropped = nft_counter(&server.netns, "deny-7702");
    assert!(nft_dropped >= 2, "SYNs hit the drop rule");
    let (client_srtt, echo_srtt) = echo_round_trips(&client, &echo, 100);

    let ns = |side: &str, host: &Host| format!("{side}K8S_Namespace=\"{}\"", host.netns);
    let egress = prometheus.wait_for(
        &format!(
            "sum(netobserv_namespace_egress_bytes_total{{{},{}}})",
            ns("Src", &client),
            ns("Dst", &server)
        ),
        (after.tx_bytes - before.tx_bytes) as f64,
    );
    let drops = prometheus.wait_for(
        &format!(
            "sum(netobserv_namespace_drop_packets_total{{{},PktDropLatestDropCause=~\".*NETFILTER_DROP\"}})",
            ns("Dst", &server)
        ),
        nft_dropped as f64,
    );
    let dns = |series: &str| {
        format!(
            "sum(netobserv_namespace_dns_latency_seconds_{series}{{DnsFlagsResponseCode=\"NXDomain\"}})"
        )
    };
    let nxdomain = prometheus.wait_for(&dns("count"), 3.0);
    // Traffic is over and `up` evicts every 500 ms: two scrapes later the
    // series hold all of it.
    std::thread::sleep(Duration::from_secs(3));
    let dns_sum = prometheus.query(&dns("sum")).unwrap();
    let dns_bucket = |le: &str| {
        let q = format!(
            "sum(netobserv_namespace_dns_latency_seconds_bucket{{DnsFlagsResponseCode=\"NXDomain\",le=\"{le}\"}})"
        );
        prometheus.query(&q).unwrap()
    };
    let (dns_below_delay, dns_within) = (dns_bucket("0.025"), dns_bucket("0.05"));
    // Only the echo's connection: both of its directions, nothing else
    // (FlowRTT sees every socket, iperf3's and the scrapes' too).
    let between = format!(
        "SrcK8S_Namespace=~\"{c}|{e}\",DstK8S_Namespace=~\"{c}|{e}\"",
        c = client.netns,
        e = echo.netns
    );
    let rtt = |series: &str, le: Option<&str>| {
        let le = le.map(|b| format!(",le=\"{b}\"")).unwrap_or_default();
        let q = format!("sum(netobserv_namespace_rtt_seconds_{series}{{{between}{le}}})");
        prometheus.query(&q).unwrap_or(0.0)
    };
    let (rtt_count, rtt_sum) = (rtt("count", None), rtt("sum", None));
    let (rtt_below_floor, rtt_within) = (rtt("bucket", Some("0.01")), rtt("bucket", Some("0.025")));
    let run = up.stop();
    assert_eq!(delay.send_errors(), 0, "the relay passed every frame");

    assert_eq!(
        egress,
        Some((after.tx_bytes - before.tx_bytes) as f64),
        "bytes out of the client = its interface's tx counter"
    );
    assert_eq!(drops, Some(nft_dropped as f64), "drops = the nft counter");
    // DNS: the three answers, each at least the server's delay and at most
    // what its client measured.
    assert_eq!(nxdomain, Some(3.0), "three NXDomain answers");
    assert_eq!(
        (dns_below_delay, dns_within),
        (0.0, 3.0),
        "DNS latency buckets"
    );
    let delay = DNS_DELAY.as_secs_f64();
    let client_sum: f64 = client_latencies.iter().sum();
    assert!(
        3.0 * delay <= dns_sum && dns_sum <= client_sum,
        "DNS latency sum {dns_sum} s: the server waited {delay} s thrice, the client measured {client_latencies:?}"
    );
    // RTT: every observation above the link's floor and below 25 ms, their
    // mean within 10 % of the sockets' own smoothed RTT.
    let floor = 2.0 * ONE_WAY.as_secs_f64();
    assert!(
        rtt_count >= 2.0,
        "both directions of the echo carry an RTT: {rtt_count}"
    );
    assert_eq!(
        (rtt_below_floor, rtt_within),
        (0.0, rtt_count),
        "RTT buckets"
    );
    let (mean, kernel) = (rtt_sum / rtt_count, (client_srtt + echo_srtt) / 2.0);
    assert!(
        mean >= floor && (mean - kernel).abs() <= kernel * 0.10,
        "mean RTT {mean} s vs the floor {floor} s and ss's {client_srtt} s / {echo_srtt} s"
    );
    assert!(!run.records.is_empty());
}
