//! IPFIX export checked against real peers: a collector fed over gRPC
//! stores flows and exports them to Debian's nfcapd over UDP (IPv4 and
//! IPv6 flows) and over TCP to a socket whose traffic Debian's tshark
//! captures and decodes. What nfdump reads from nfcapd's file and what
//! tshark decodes are the store's addresses, ports, bytes and packets,
//! record for record (IPv6 included); an exporter whose peer is down holds
//! its records, retrying, and costs the others nothing. Needs root (tshark captures on lo) and nfdump and
//! tshark (scripts/test installs them).

mod lab;

use lab::exports::{Key, flows, stored_keys, wait_until};
use lab::free_local_addr;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nfdump's CSV of every flow in `dir`, as keys.
fn nfdump_keys(dir: &std::path::Path) -> BTreeSet<Key> {
    let out = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(["-q", "-o", "fmt:%sa,%da,%sp,%dp,%pr,%byt,%pkt"])
        .output()
        .expect("nfdump (apt-get install nfdump; scripts/test does)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nfdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<String> = l.split(',').map(|f| f.trim().to_string()).collect();
            let proto = match f[4].as_str() {
                "TCP" => 6,
                "UDP" => 17,
                other => other.parse().unwrap(),
            };
            let n = |s: &str| {
                s.parse::<u64>()
                    .unwrap_or_else(|_| panic!("number `{s}` in {l}"))
            };
            (
                f[0].clone(),
                f[1].clone(),
                n(&f[2]),
                n(&f[3]),
                proto,
                n(&f[5]),
                n(&f[6]),
            )
        })
        .collect()
}

/// The flows of tshark's decoding (`-V`) of a capture of IPFIX over TCP.
fn tshark_keys(pcap: &std::path::Path, port: u16) -> BTreeSet<Key> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-d", &format!("tcp.port=={port},cflow"), "-V"])
        .output()
        .expect("tshark (apt-get install tshark; scripts/test does)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut keys = BTreeSet::new();
    let mut fields: std::collections::HashMap<&str, String> = Default::default();
    let mut flush = |fields: &mut std::collections::HashMap<&str, String>| {
        if fields.is_empty() {
            return;
        }
        let n = |k: &str| -> u64 {
            let v = &fields[k];
            // "TCP (6)" -> 6
            let v = v
                .rsplit_once('(')
                .map_or(v.as_str(), |(_, n)| n.trim_end_matches(')'));
            v.parse().unwrap_or_else(|_| panic!("{k} = {v}"))
        };
        keys.insert((
            fields["SrcAddr"].clone(),
            fields["DstAddr"].clone(),
            n("SrcPort"),
            n("DstPort"),
            n("Protocol"),
            n("Octets"),
            n("Packets"),
        ));
        fields.clear();
    };
    // A record's fields follow its "Flow N" line, up to the next flow or
    // frame (whose IP header has a Protocol line of its own).
    let mut in_flow = false;
    for raw in text.lines() {
        if raw.starts_with("Frame ") {
            flush(&mut fields);
            in_flow = false;
            continue;
        }
        let line = raw.trim();
        if line.starts_with("Flow ") {
            flush(&mut fields);
            in_flow = true;
            continue;
        }
        if !in_flow {
            continue;
        }
        for key in [
            "SrcAddr", "DstAddr", "SrcPort", "DstPort", "Protocol", "Octets", "Packets",
        ] {
            if let Some(v) = line.strip_prefix(&format!("{key}: ")) {
                fields.insert(key, v.to_string());
            }
        }
    }
    flush(&mut fields);
    keys
}

#[test]
fn nfcapd_and_tshark_read_what_the_store_holds() {
    let _serial = lab::serial();
    lab::require_root();
    let dir = std::env::temp_dir().join(format!("flowlens-ipfix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let nf_dir = dir.join("nfcapd");
    std::fs::create_dir_all(&nf_dir).unwrap();
    let udp_port = free_udp_port();
    let mut nfcapd = Command::new("nfcapd")
        .arg("-w")
        .arg(&nf_dir)
        .args(["-b", "127.0.0.1", "-p", &udp_port.to_string(), "-t", "3600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nfcapd (apt-get install nfdump; scripts/test does)");
    // IPFIX over TCP: a socket that takes the stream, tshark capturing it.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = tcp.accept() {
            let _ = std::io::copy(&mut stream, &mut std::io::sink());
        }
    });
    let pcap = dir.join("ipfix-tcp.pcap");
    let mut tshark = Command::new("tshark")
        .args(["-i", "lo", "-f", &format!("tcp port {tcp_port}"), "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark (apt-get install tshark; scripts/test does)");
    // Capturing once it says so.
    {
        use std::io::BufRead;
        let stderr = tshark.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let started = lines
            .by_ref()
            .any(|l| l.is_ok_and(|l| l.contains("Capturing on")));
        assert!(started, "tshark did not start capturing");
        std::thread::spawn(move || lines.for_each(drop));
    }
    std::thread::sleep(Duration::from_millis(300));

    let grpc = free_local_addr();
    let listen = free_local_addr();
    // An address nothing listens on (connections refused).
    let dead = free_local_addr();
    // The UDP exporter from the FlowCollector file (netobserv's
    // spec.exporters), the TCP one from flags, with a filter.
    let config = dir.join("flowcollector.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  exporters:\n    \
             - type: IPFIX\n      name: nf\n      ipfix:\n        targetHost: 127.0.0.1\n        \
             targetPort: {udp_port}\n        transport: UDP\n"
        ),
    )
    .unwrap();
    let collector = lab::exports::start_collector(
        &grpc,
        &listen,
        &dir,
        &config,
        &[
            "--export",
            &format!("tcp=ipfix+tcp://127.0.0.1:{tcp_port}"),
            "--export-filter",
            "tcp=proto = 6",
            // A peer that is down: it must cost the others nothing.
            "--export",
            &format!("dead=ipfix+tcp://{dead}"),
        ],
    );
    let records = flows();
    lab::send_flows(&grpc, &records);
    wait_until("50 records stored", || stored_keys(&listen).len() == 50);
    wait_until("the exporters sent 50 records each", || {
        let s = lab::status_json(&listen);
        s["export_nf"]["records_sent"] == 50 && s["export_tcp"]["records_sent"] == 25
    });
    let status = lab::status_json(&listen);
    let stored = stored_keys(&listen);
    let run = collector.stop();
    let _ = run;
    // nfcapd writes its file out when it stops.
    unsafe { libc::kill(nfcapd.id() as i32, libc::SIGTERM) };
    let _ = nfcapd.wait();
    let read = nfdump_keys(&nf_dir);
    assert_eq!(read.len(), 50, "nfdump read {read:?}");
    assert_eq!(read, stored, "nfdump shows what the store holds");
    assert!(read.iter().any(|k| k.0.contains(':')), "IPv6 flows too");
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(tshark.id() as i32, libc::SIGINT) };
    let _ = tshark.wait();
    let decoded = tshark_keys(&pcap, tcp_port);
    let tcp_flows: BTreeSet<Key> = stored.iter().filter(|k| k.4 == 6).cloned().collect();
    assert_eq!(decoded.len(), 25, "tshark decoded {decoded:?}");
    assert_eq!(
        decoded, tcp_flows,
        "tshark decodes what the store holds, filtered"
    );
    let tcp = &status["export_tcp"];
    assert_eq!(tcp["records_filtered_out"], 25, "{tcp}");
    assert_eq!(tcp["records_received"], 25, "{tcp}");
    assert_eq!(status["export_nf"]["records_dropped_buffer_full"], 0);
    // The dead peer's records wait in its buffer, retried, counted.
    let dead = &status["export_dead"];
    assert_eq!(dead["records_received"], 50, "{dead}");
    assert_eq!(dead["records_sent"], 0, "{dead}");
    assert_eq!(dead["buffered_records"], 50, "{dead}");
    assert!(dead["send_errors"].as_u64().unwrap() >= 1, "{dead}");
    let _ = std::fs::remove_dir_all(&dir);
}
