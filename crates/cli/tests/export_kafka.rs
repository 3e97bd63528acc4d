//! Kafka export checked against a real Kafka-protocol broker: tansu (from
//! crates.io; scripts/test installs it and names it in FLOWLENS_TANSU),
//! storing in SQLite, read back by an independent consumer (kafka-python,
//! from PyPI: peers/kafka_read.py). The JSON messages are the store's
//! flows in netobserv's names, and its conversations' records; the
//! protobuf ones decode as pbflow to the same flows; both directions of a
//! connection share a partition.

mod lab;

use flowlens_model::FlowRecord;
use lab::exports::{Key, flows, netobserv_key, stored_keys, wait_until};
use lab::free_local_addr;
use lab::kafka::Broker;
use prost::Message;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The lab's flows and each one's answer (the other direction).
fn flows_both_ways() -> Vec<FlowRecord> {
    let there = flows();
    let back: Vec<FlowRecord> = there
        .iter()
        .map(|f| FlowRecord {
            src_addr: f.dst_addr,
            dst_addr: f.src_addr,
            src_port: f.dst_port,
            dst_port: f.src_port,
            bytes: f.bytes + 5,
            packets: f.packets + 1,
            ..f.clone()
        })
        .collect();
    there.into_iter().chain(back).collect()
}

#[test]
fn a_kafka_consumer_reads_what_the_store_holds() {
    let _serial = lab::serial();
    let dir = std::env::temp_dir().join(format!("flowlens-kafka-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let broker = Broker::start(&dir.join("broker"));
    broker.create_topic("flows-json", 4);
    broker.create_topic("flows-pb", 4);
    let (grpc, listen) = (free_local_addr(), free_local_addr());
    let config = dir.join("flowcollector.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  exporters:\n    \
             - type: Kafka\n      name: bus\n      records: Both\n      kafka:\n        \
             address: {}\n        topic: flows-json\n",
            broker.address
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
            &format!("pb=kafka://{}/flows-pb?format=protobuf", broker.address),
        ],
    );
    lab::send_flows(&grpc, &flows_both_ways());
    wait_until("100 records stored", || stored_keys(&listen).len() == 100);
    wait_until("both exporters sent their records", || {
        let s = lab::status_json(&listen);
        // 100 flows and their 50 connections' first records.
        s["export_bus"]["records_sent"].as_u64() >= Some(150)
            && s["export_pb"]["records_sent"] == 100
    });
    let stored = stored_keys(&listen);
    let status = lab::status_json(&listen);
    collector.stop();

    let messages = broker.read(&["flows-json", "flows-pb"]);
    let (json, pb): (Vec<&Value>, Vec<&Value>) =
        messages.iter().partition(|m| m["topic"] == "flows-json");
    let records: Vec<(serde_json::Map<String, Value>, &Value)> = json
        .iter()
        .map(|m| {
            let text = String::from_utf8(unhex(m["hex"].as_str().unwrap())).unwrap();
            (serde_json::from_str(&text).unwrap(), *m)
        })
        .collect();
    let json_flows: BTreeSet<Key> = records
        .iter()
        .filter(|(r, _)| !r.contains_key("_RecordType"))
        .map(|(r, _)| netobserv_key(r))
        .collect();
    assert_eq!(json_flows.len(), 100);
    assert_eq!(
        json_flows, stored,
        "the JSON messages are the store's flows"
    );
    let first_records = records
        .iter()
        .filter(|(r, _)| r.get("_RecordType").and_then(Value::as_str) == Some("newConnection"))
        .count();
    assert_eq!(first_records, 50, "one newConnection per connection");
    // Both directions (and the conversation's records) in one partition.
    let mut partitions: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (_, m) in &records {
        partitions
            .entry(m["key"].as_str().unwrap().to_string())
            .or_default()
            .insert(m["partition"].as_u64().unwrap());
    }
    assert_eq!(partitions.len(), 50, "one key per connection");
    assert!(partitions.values().all(|p| p.len() == 1), "{partitions:?}");
    let used: BTreeSet<u64> = partitions.values().flatten().copied().collect();
    assert!(
        used.len() > 1,
        "connections spread over partitions: {used:?}"
    );
    let pb_flows: BTreeSet<Key> = pb
        .iter()
        .map(|m| {
            let r = flowlens_wire::pbflow::Record::decode(&unhex(m["hex"].as_str().unwrap())[..])
                .unwrap();
            let f = flowlens_wire::convert::from_pb(r).unwrap();
            (
                f.src_addr.to_string(),
                f.dst_addr.to_string(),
                f.src_port as u64,
                f.dst_port as u64,
                f.proto as u64,
                f.bytes,
                f.packets,
            )
        })
        .collect();
    assert_eq!(
        pb_flows, stored,
        "the pbflow messages decode to the store's flows"
    );
    let bus = &status["export_bus"];
    assert_eq!(bus["records_dropped_buffer_full"], 0, "{bus}");
    assert_eq!(bus["send_errors"], 0, "{bus}");
    let _ = std::fs::remove_dir_all(&dir);
}
