//! A real Prometheus (Debian's package) scrapes `flowlens up`; PromQL over
//! the scraped series returns the bytes, drops, DNS and RTT the test made,
//! checked against the kernel's interface counters, an nftables counter,
//! dnsmasq's answer and the records `up` printed. Needs root.

mod lab;

use lab::prometheus::Prometheus;
use lab::{Lab, free_local_addr, nft_counter, sh};
use std::time::Duration;

#[test]
fn promql_over_scraped_metrics_returns_what_the_kernel_saw() {
    let _serial = lab::serial();
    let (lab, client, server, _dns) = lab::dns_lab(7702);
    let listen = free_local_addr();
    let metrics = "namespace_egress_bytes_total,namespace_ingress_bytes_total,namespace_drop_packets_total,namespace_rtt_seconds,namespace_dns_latency_seconds";
    let up = lab.start_up(
        &listen,
        &[
            "--log-types",
            "Flows",
            "--features",
            "FlowRTT,DNSTracking,PacketDrop",
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
    let rcode = Lab::in_netns(&client, || {
        let rcode = lab::ask_missing_name("198.18.0.1:5602", "198.18.0.2:53", 0x4321);
        // Three SYNs into the nftables drop rule (the connect gives up).
        let socket = std::net::TcpStream::connect_timeout(
            &"198.18.0.2:7702".parse().unwrap(),
            Duration::from_millis(3500),
        );
        assert!(socket.is_err());
        rcode
    });
    assert_eq!(rcode, 3, "dnsmasq answered NXDOMAIN");
    let after = lab.counters(&client);
    let nft_dropped = nft_counter(&server.netns, "deny-7702");
    assert!(nft_dropped >= 2, "SYNs hit the drop rule");

    let ns = |side: &str, host: &lab::Host| format!("{side}K8S_Namespace=\"{}\"", host.netns);
    let egress = prometheus.wait_for(
        &format!(
            "sum(netobserv_namespace_egress_bytes_total{{{}}})",
            ns("Src", &client)
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
    let nxdomain = prometheus.wait_for(
        "sum(netobserv_namespace_dns_latency_seconds_count{DnsFlagsResponseCode=\"NXDomain\"})",
        1.0,
    );
    // Traffic is over; what `up` printed by now is what Prometheus must
    // show once it scrapes again. (At exit `up` drains the kernel maps
    // once more, which Prometheus never sees.)
    std::thread::sleep(Duration::from_secs(2));
    let printed = up.records_so_far();
    // FlowRTT sees every socket of the host, Prometheus's scrapes over
    // loopback too: only the lab's namespaces are compared.
    let lab_ns = format!("{}|{}", client.netns, server.netns);
    let with_rtt: Vec<u64> = printed
        .iter()
        .filter(|r| {
            r.src_labels
                .namespace
                .as_deref()
                .is_some_and(|ns| ns == client.netns || ns == server.netns)
        })
        .filter_map(|r| r.time_flow_rtt_ns)
        .collect();
    let rtt_count = prometheus.wait_for(
        &format!("sum(netobserv_namespace_rtt_seconds_count{{SrcK8S_Namespace=~\"{lab_ns}\"}})"),
        with_rtt.len() as f64,
    );
    let rtt_sum = prometheus.query(&format!(
        "sum(netobserv_namespace_rtt_seconds_sum{{SrcK8S_Namespace=~\"{lab_ns}\"}})"
    ));
    let dns_sum = prometheus.query(
        "sum(netobserv_namespace_dns_latency_seconds_sum{DnsFlagsResponseCode=\"NXDomain\"})",
    );
    let run = up.stop();

    assert_eq!(
        egress,
        Some((after.tx_bytes - before.tx_bytes) as f64),
        "bytes out of the client = its interface's tx counter"
    );
    assert_eq!(drops, Some(nft_dropped as f64), "drops = the nft counter");
    assert_eq!(nxdomain, Some(1.0), "one NXDOMAIN answer");
    assert!(!with_rtt.is_empty(), "iperf3's flows carry an RTT");
    assert_eq!(rtt_count, Some(with_rtt.len() as f64), "one RTT per flow");
    let expected_sum = with_rtt.iter().sum::<u64>() as f64 / 1e9;
    let got_sum = rtt_sum.unwrap();
    assert!(
        (got_sum - expected_sum).abs() < 1e-9 + expected_sum * 1e-6,
        "RTT sum {got_sum} s, records say {expected_sum} s"
    );
    let dns_latency = run
        .records
        .iter()
        .find_map(|r| r.dns_latency_ms.filter(|_| r.dns_id == Some(0x4321)))
        .expect("the DNS flow with its latency");
    let got_dns = dns_sum.unwrap();
    assert!(
        (got_dns - dns_latency / 1000.0).abs() < 1e-9,
        "DNS latency {got_dns} s, record says {dns_latency} ms"
    );
}
