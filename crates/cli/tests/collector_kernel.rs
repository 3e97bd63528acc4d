//! Agents feeding a collector over gRPC: what the kernel saw reaches the
//! collector exactly, even when the collector is killed for 5 seconds in the
//! middle of steady traffic, and reaches its store exactly once when it is
//! killed again and again. Needs root.

mod lab;

use lab::{Agent, Lab, free_local_addr, status_json, stored_udp_packets};
use std::time::Duration;

/// (transmitted, received) of `ping -q` output.
fn ping_counts(output: &str) -> (u64, u64) {
    let line = output
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {output}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn icmp_packets(records: &[flowlens_model::FlowRecord], src: &str, icmp_type: u8) -> u64 {
    records
        .iter()
        .filter(|r| r.src_addr == src && r.proto == 1 && r.icmp_type == Some(icmp_type))
        .map(|r| r.packets)
        .sum()
}

/// An agent on the lab's interfaces sending to the collector at `grpc`,
/// its /status on `listen`.
fn agent_sending_to(lab: &Lab, grpc: &str, listen: &str, extra: &[&str]) -> Agent {
    let mut args = vec!["--collector", grpc, "--listen", listen];
    args.extend_from_slice(extra);
    lab.start_agent(&args)
}

#[test]
fn a_collector_killed_for_5_seconds_loses_nothing() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let grpc = free_local_addr();
    let collector_http = free_local_addr();
    let agent_http = free_local_addr();
    // No store: calls are answered once processed and printed (the store's
    // write-ahead log is proven by the next test).
    let collector_args = [
        "--listen",
        collector_http.as_str(),
        "--log-types",
        "Flows",
        "--no-store",
    ];
    let first = Agent::start_collector(&grpc, &collector_args);
    let agent = agent_sending_to(
        &lab,
        &grpc,
        &agent_http,
        &["--cache-active-timeout", "200ms"],
    );
    // Steady traffic: 100 echo requests a second for 10 seconds.
    let netns = a.netns.clone();
    let target = b.ipv4.clone();
    let ping = std::thread::spawn(move || {
        lab::sh(&format!(
            "ip netns exec {netns} ping -q -i 0.01 -c 1000 -W 1 {target}"
        ))
    });
    std::thread::sleep(Duration::from_millis(2500));
    let killed = first.kill();
    std::thread::sleep(Duration::from_secs(5));
    let away = status_json(&agent_http)["exporter"].clone();
    let second = Agent::start_collector(&grpc, &collector_args);
    let (sent, answered) = ping_counts(&ping.join().unwrap());
    std::thread::sleep(Duration::from_millis(800));
    let run = agent.stop();
    let collector_status = status_json(&collector_http);
    let restarted = second.stop();

    assert!(
        away["connected"] == 0 && away["buffered_records"].as_u64().unwrap() > 0,
        "the agent kept records while the collector was away: {away}"
    );
    assert!(
        away["connect_failures"].as_u64().unwrap() + away["send_errors"].as_u64().unwrap() > 0,
        "{away}"
    );
    let dropped = run.stat("records_dropped_buffer_full")
        + run.stat("records_dropped_rejected")
        + run.stat("records_dropped_shutdown");
    assert_eq!(dropped, 0, "{}", run.stderr);
    let mut records = killed.records.clone();
    records.extend(restarted.records.iter().cloned());
    assert!(
        !killed.records.is_empty() && !restarted.records.is_empty(),
        "both collectors got records ({} and {})",
        killed.records.len(),
        restarted.records.len()
    );
    assert_eq!(
        icmp_packets(&records, &a.ipv4, 8),
        sent,
        "echo requests reaching the collectors = what ping sent"
    );
    assert_eq!(
        icmp_packets(&records, &b.ipv4, 0),
        answered,
        "echo replies reaching the collectors = what ping got back"
    );
    assert_eq!(
        run.stat("records_sent"),
        records.len() as u64,
        "every record the agent sent was written once"
    );
    assert_eq!(
        collector_status["receiver"]["records_received"].as_u64(),
        Some(restarted.records.len() as u64)
    );
    assert_eq!(run.stat("records_received"), run.stat("records_sent"));
}

#[test]
fn kill_9_of_the_collector_at_any_moment_stores_every_packet_once() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let grpc = free_local_addr();
    let collector_http = free_local_addr();
    let agent_http = free_local_addr();
    let data_dir = lab.data_dir.display().to_string();
    let collector_args = [
        "--listen",
        collector_http.as_str(),
        "--log-types",
        "Flows",
        "--data-dir",
        data_dir.as_str(),
    ];
    let mut collector = Agent::start_collector(&grpc, &collector_args);
    let agent = agent_sending_to(
        &lab,
        &grpc,
        &agent_http,
        &[
            "--cache-active-timeout",
            "100ms",
            "--collector-batch-size",
            "5",
        ],
    );
    // 10,000 UDP packets of one flow over 10 seconds.
    const PACKETS: u64 = 10_000;
    const PORT: u16 = 9999;
    let (_, sender) = lab::paced_udp_flow(a, 40999, b.ipv4.parse().unwrap(), PORT, PACKETS);
    // Killed at different moments of its 5-second store flushes, a new
    // one started on the same data directory each time.
    let mut replayed = 0;
    let mut duplicates = 0;
    for wait_ms in [1300, 2100, 2900, 1700] {
        std::thread::sleep(Duration::from_millis(wait_ms));
        collector.kill();
        collector = Agent::start_collector(&grpc, &collector_args);
        let status = status_json(&collector_http);
        replayed += status["ingest"]["replayed_records"].as_u64().unwrap();
        duplicates += status["ingest"]["duplicate_batches"].as_u64().unwrap_or(0);
    }
    sender.join().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let run = agent.stop();
    let last = status_json(&collector_http);
    duplicates += last["ingest"]["duplicate_batches"].as_u64().unwrap();
    collector.stop();
    let dropped = run.stat("records_dropped_buffer_full")
        + run.stat("records_dropped_rejected")
        + run.stat("records_dropped_shutdown");
    assert_eq!(dropped, 0, "{}", run.stderr);
    let (stored, records) = stored_udp_packets(&lab.data_dir, &a.ipv4, PORT);
    eprintln!(
        "kill -9 ×4: stored {stored} of {PACKETS} packets in {records} records; {replayed} records replayed from the log, {duplicates} batches sent again and not stored twice"
    );
    assert!(
        records > 20,
        "the flow was evicted often: {records} records"
    );
    assert_eq!(stored, PACKETS, "every packet sent is stored exactly once");
    assert!(
        replayed > 0,
        "some kill left acknowledged records only in the log"
    );
}
