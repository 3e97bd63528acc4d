//! What the export tests share: the flows they send a collector, the
//! store's view of them as keys, and waiting for a condition.

use super::sh;
use flowlens_model::FlowRecord;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// 30 IPv4 and 20 IPv6 flows, each with its own ports, bytes and packets.
pub fn flows() -> Vec<FlowRecord> {
    let now = now_ms();
    (0..50u64)
        .map(|i| {
            let (src, dst) = if i < 30 {
                (format!("198.18.3.{}", 1 + i), "198.18.4.1".to_string())
            } else {
                (
                    format!("fd00:198:18::{:x}", 0x100 + i),
                    "fd00:198:18::1".to_string(),
                )
            };
            FlowRecord {
                src_addr: src.as_str().into(),
                dst_addr: dst.as_str().into(),
                src_port: 40_000 + i as u16,
                dst_port: if i % 2 == 0 { 443 } else { 53 },
                proto: if i % 2 == 0 { 6 } else { 17 },
                etype: if i < 30 { 0x800 } else { 0x86dd },
                bytes: 1_000 + 37 * i,
                packets: 1 + i,
                time_flow_start_ms: now - 2_000 + i as i64,
                time_flow_end_ms: now - 1_000 + i as i64,
                interfaces: vec!["eth0".into()],
                if_directions: vec![1],
                agent_ip: "198.18.0.254".into(),
                sampling: 1,
                ..Default::default()
            }
        })
        .collect()
}

/// (src, dst, sport, dport, proto, bytes, packets) of a flow.
pub type Key = (String, String, u64, u64, u64, u64, u64);

pub fn stored_keys(listen: &str) -> BTreeSet<Key> {
    let out = sh(&format!(
        "curl -s 'http://{listen}/api/flows?since=1h&limit=1000'"
    ));
    let page: Value = serde_json::from_str(&out).unwrap();
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| netobserv_key(r.as_object().unwrap()))
        .collect()
}

/// A record's key read by netobserv's JSON names.
pub fn netobserv_key(record: &serde_json::Map<String, Value>) -> Key {
    key_by(
        record,
        [
            "SrcAddr", "DstAddr", "SrcPort", "DstPort", "Proto", "Bytes", "Packets",
        ],
    )
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A record's key read under `names`: source and destination address,
/// source and destination port, protocol, bytes, packets.
pub fn key_by(record: &serde_json::Map<String, Value>, names: [&str; 7]) -> Key {
    let text = |k: &str| {
        record[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} in {record:?}"))
            .to_string()
    };
    let n = |k: &str| {
        record[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {record:?}"))
    };
    (
        text(names[0]),
        text(names[1]),
        n(names[2]),
        n(names[3]),
        n(names[4]),
        n(names[5]),
        n(names[6]),
    )
}

/// A collector on `grpc` storing in `dir`/data, its API on `listen`, its
/// settings from the FlowCollector file `config`, printing flows, with
/// `extra` flags (its exporters).
pub fn start_collector(
    grpc: &str,
    listen: &str,
    dir: &std::path::Path,
    config: &std::path::Path,
    extra: &[&str],
) -> super::Agent {
    let data = dir.join("data");
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--listen",
        listen,
        "--data-dir",
        data.to_str().unwrap(),
        "--log-types",
        "Flows",
    ];
    args.extend_from_slice(extra);
    super::Agent::start_collector(grpc, &args)
}
