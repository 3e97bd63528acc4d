//! Agents → Kafka → collectors (`flowlens agent --kafka`, `flowlens
//! collector --kafka --kafka-group`) against a real Kafka-protocol broker
//! (tansu, lab/kafka.rs): a collector killed again and again under traffic
//! stores every packet exactly once; a broker restart loses nothing the
//! agent was told was written; two collectors of one group share the
//! partitions, one stops under traffic, the other takes them over, and
//! their two stores together hold every packet exactly once. Needs root.

mod lab;

use lab::exports::wait_until;
use lab::kafka::Broker;
use lab::{Agent, Lab, free_local_addr, status_json, stored_packets, stored_udp_packets};
use std::path::Path;
use std::time::Duration;

const TOPIC: &str = "flows";

fn kafka_stat(listen: &str, name: &str) -> u64 {
    status_json(listen)["kafka"][name].as_u64().unwrap_or(0)
}

/// A collector of group `group` consuming the broker's topic into
/// `data_dir`. Alone in its group, a short session lets a restarted one
/// take the partitions over soon; tansu 0.6 keeps rebalancing a group of
/// two whose sessions are this short, so they get 6 s.
fn collector(broker: &Broker, listen: &str, group: &str, data_dir: &Path) -> Agent {
    collector_with_session(broker, listen, group, data_dir, "2s")
}

fn collector_with_session(
    broker: &Broker,
    listen: &str,
    group: &str,
    data_dir: &Path,
    session: &str,
) -> Agent {
    let bus = format!("{}/{TOPIC}", broker.address);
    let data_dir = data_dir.display().to_string();
    Agent::start_kafka_collector(
        listen,
        &[
            "--kafka",
            &bus,
            "--kafka-group",
            group,
            "--kafka-session-timeout",
            session,
            "--log-types",
            "Flows",
            "--data-dir",
            &data_dir,
        ],
    )
}

/// The lab's agent producing to the broker, its /status on `listen`.
fn producing_agent(lab: &Lab, broker: &Broker, listen: &str) -> Agent {
    let bus = format!("{}/{TOPIC}", broker.address);
    lab.start_agent(&[
        "--kafka",
        &bus,
        "--listen",
        listen,
        "--cache-active-timeout",
        "100ms",
    ])
}

/// Stops the agent once everything it produced was acknowledged, and
/// checks that nothing was given up.
fn stop_agent(agent: Agent, listen: &str) {
    wait_until("the agent's records are acknowledged", || {
        kafka_stat(listen, "buffered_records") == 0
    });
    let kafka = status_json(listen)["kafka"].clone();
    agent.stop();
    assert!(kafka["records_sent"].as_u64().unwrap() > 0, "{kafka}");
    assert_eq!(
        kafka["records_received"], kafka["records_sent"],
        "every record produced was acknowledged: {kafka}"
    );
}

/// Waits until the collector at `listen` holds all `partitions` of the
/// topic and has read everything in them: no lag, and nothing more read
/// over one more period of librdkafka's statistics (the lag is as fresh as
/// their last report).
fn caught_up(listen: &str, partitions: u64) {
    let settled = || {
        let k = &status_json(listen)["kafka"];
        (k["assigned_partitions"] == partitions && k["lag_messages"] == 0)
            .then(|| k["messages_received"].clone())
    };
    wait_until("the collector reads the whole topic", || {
        let Some(read) = settled() else { return false };
        std::thread::sleep(Duration::from_millis(2500));
        settled() == Some(read)
    });
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flowlens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn kill_9_of_a_kafka_collector_at_any_moment_stores_every_packet_once() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let dir = scratch("kafka-kill");
    let broker = Broker::start(&dir.join("broker"));
    broker.create_topic(TOPIC, 4);
    let (listen, agent_http) = (free_local_addr(), free_local_addr());
    let mut collector = collector(&broker, &listen, "stores", &lab.data_dir);
    let agent = producing_agent(&lab, &broker, &agent_http);
    const PACKETS: u64 = 16_000;
    const PORT: u16 = 9999;
    let (_, sender) = lab::paced_udp_flow(a, 40999, b.ipv4.parse().unwrap(), PORT, PACKETS);
    let mut replayed = 0;
    let mut already_stored = 0;
    // Killed at different moments of its reading; the next one starts
    // once the killed one's session (2 s) is over: tansu 0.6 leaves a
    // group whose dead leader's session ends while a newcomer joins without
    // a leader, the newcomer holding only part of the partitions.
    for wait_ms in [1300, 2100, 1700, 900] {
        std::thread::sleep(Duration::from_millis(wait_ms));
        collector.kill();
        std::thread::sleep(Duration::from_millis(2500));
        collector = self::collector(&broker, &listen, "stores", &lab.data_dir);
        let status = status_json(&listen);
        replayed += status["ingest"]["replayed_records"].as_u64().unwrap();
    }
    sender.join().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    stop_agent(agent, &agent_http);
    caught_up(&listen, 4);
    already_stored += kafka_stat(&listen, "messages_already_stored");
    collector.stop();
    let (stored, records) = stored_udp_packets(&lab.data_dir, &a.ipv4, PORT);
    eprintln!(
        "kafka, kill -9 ×4: stored {stored} of {PACKETS} packets in {records} records; {replayed} records replayed from the log, {already_stored} messages read again and skipped"
    );
    assert!(
        records > 20,
        "the flow was evicted often: {records} records"
    );
    assert_eq!(stored, PACKETS, "every packet sent is stored exactly once");
    assert!(
        replayed > 0,
        "some kill left committed records only in the log"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broker_restart_loses_nothing_the_agent_was_told_was_written() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let dir = scratch("kafka-broker-restart");
    let mut broker = Broker::start(&dir.join("broker"));
    broker.create_topic(TOPIC, 4);
    let (listen, agent_http) = (free_local_addr(), free_local_addr());
    let collector = collector(&broker, &listen, "stores", &lab.data_dir);
    let agent = producing_agent(&lab, &broker, &agent_http);
    const PACKETS: u64 = 8_000;
    const PORT: u16 = 9998;
    let (_, sender) = lab::paced_udp_flow(a, 40998, b.ipv4.parse().unwrap(), PORT, PACKETS);
    std::thread::sleep(Duration::from_millis(2500));
    let before = kafka_stat(&agent_http, "records_sent");
    broker = broker.restart();
    std::thread::sleep(Duration::from_millis(2500));
    broker = broker.restart();
    sender.join().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    stop_agent(agent, &agent_http);
    caught_up(&listen, 4);
    collector.stop();
    drop(broker);
    let (stored, records) = stored_udp_packets(&lab.data_dir, &a.ipv4, PORT);
    eprintln!(
        "kafka, broker restarted ×2: {before} records acknowledged before the first; stored {stored} of {PACKETS} packets in {records} records"
    );
    assert!(before > 0, "records were acknowledged before the restart");
    assert_eq!(stored, PACKETS, "every packet sent is stored exactly once");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Per flow (source port), the packets the stores hold together.
fn stored_by_port(dirs: &[&Path], src: &str, ports: &[u16]) -> Vec<u64> {
    ports
        .iter()
        .map(|p| {
            dirs.iter()
                .map(|d| {
                    stored_packets(
                        d,
                        &format!("proto = udp and src.addr = {src} and src.port = {p}"),
                    )
                    .0
                })
                .sum()
        })
        .collect()
}

#[test]
fn two_collectors_of_one_group_share_the_partitions_and_one_takes_over() {
    let _serial = lab::serial();
    let lab = Lab::new(2, false);
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let dir = scratch("kafka-group");
    let broker = Broker::start(&dir.join("broker"));
    broker.create_topic(TOPIC, 8);
    let (first_dir, second_dir) = (dir.join("first"), dir.join("second"));
    let (first_http, second_http, agent_http) =
        (free_local_addr(), free_local_addr(), free_local_addr());
    let first = collector_with_session(&broker, &first_http, "pair", &first_dir, "6s");
    let second = collector_with_session(&broker, &second_http, "pair", &second_dir, "6s");
    wait_until("the two collectors share the 8 partitions", || {
        let (x, y) = (
            kafka_stat(&first_http, "assigned_partitions"),
            kafka_stat(&second_http, "assigned_partitions"),
        );
        x > 0 && y > 0 && x + y == 8
    });
    let agent = producing_agent(&lab, &broker, &agent_http);
    // 16 flows of 6,000 packets over 6 seconds: keyed by connection, they
    // spread over the partitions.
    const PACKETS: u64 = 6_000;
    const PORT: u16 = 9997;
    let ports: Vec<u16> = (41000..41016).collect();
    let senders: Vec<_> = ports
        .iter()
        .map(|p| lab::paced_udp_flow(a, *p, b.ipv4.parse().unwrap(), PORT, PACKETS).1)
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    let (taken_first, taken_second) = (
        kafka_stat(&first_http, "records_received"),
        kafka_stat(&second_http, "records_received"),
    );
    // Stopped, not killed: tansu 0.6 does not hand a killed member's
    // partitions to the others once its session ends (the survivor that
    // rejoins gets its old assignment back); with Kafka's own brokers a
    // kill -9 hands them over after --kafka-session-timeout.
    first.stop();
    wait_until(
        "the second collector takes the first's partitions over",
        || kafka_stat(&second_http, "assigned_partitions") == 8,
    );
    for s in senders {
        s.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(800));
    stop_agent(agent, &agent_http);
    caught_up(&second_http, 8);
    second.stop();
    let stored = stored_by_port(&[&first_dir, &second_dir], &a.ipv4, &ports);
    eprintln!(
        "kafka group: before the stop the first had taken {taken_first} records, the second {taken_second}; packets per flow in the two stores: {stored:?}"
    );
    assert!(
        taken_first > 0 && taken_second > 0,
        "both collectors consumed: {taken_first}, {taken_second}"
    );
    assert_eq!(
        stored,
        vec![PACKETS; ports.len()],
        "the two stores together hold every packet exactly once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
