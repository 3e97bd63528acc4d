//! Synthetic flow load for the pipeline's benchmarks.
//!
//!   synthetic_flows throughput [RECORDS] [CONVERSATIONS]
//!       One core, in process: encoded pbflow batches -> decode -> flow
//!       records -> enrichment -> metrics -> conversation tracking -> store
//!       append (and its Parquet writes, on the store's writer thread).
//!       Rates are records per CPU-second of the thread doing the work.
//!       Prints records/s of each step,
//!       the ratio of the whole to decoding alone (measured in the same
//!       run), memory per tracked conversation, and last the lines
//!       `decode_records_per_s N` and `pipeline_records_per_s N`.
//!
//!   synthetic_flows steps [RECORDS] [CONVERSATIONS]
//!       Where the pipeline's time goes: CPU nanoseconds per record of each
//!       step (decode to flow records, enrichment, metrics, conversation
//!       tracking, the store's Arrow batch, the append with its Parquet
//!       writes), timed batch by batch as the pipeline runs them; the
//!       ingest thread's share leaves the Parquet write to the store's
//!       writer thread.
//!
//!   synthetic_flows send ADDR [CONVERSATIONS]
//!       A synthetic agent: sends both directions of CONVERSATIONS
//!       conversations to a collector, in batches of 1000, and exits.
//!
//!   synthetic_flows produce BROKERS/TOPIC [CONVERSATIONS]
//!       The same records to a Kafka topic, as `flowlens agent --kafka`
//!       produces them; exits once the brokers acknowledged all of them.
//!
//! The flows look like a cluster's: 250 namespaces of 40 addresses in
//! 198.18.0.0/15, TCP and UDP, both directions, RTT and DNS on some.

use flowlens_model::FlowRecord;
use flowlens_pipeline::Processor;
use flowlens_pipeline::conversations::{ConversationTracker, LogTypes, TrackerConfig};
use flowlens_pipeline::enrich::{
    Cluster, ClusterEvent, Enricher, HostEnricher, HostInventory, NodeInfo, OwnerRef, PodInfo,
    SubnetLabels,
};
use flowlens_pipeline::metrics::{DEFAULT_INCLUDE_LIST, FlowMetrics};
use flowlens_wire::convert::{decode_records, to_pb};
use flowlens_wire::pbflow;
use prost::Message;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

// The same allocator as the flowlens binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1000;
/// Flow times of the in-process run (its clock is the flows').
const BASE_MS: i64 = 1_764_400_000_000;

fn address(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)) + i % 10_000)
}

/// Flow `i` of a run with `conversations` conversations: even flows go
/// A->B, odd ones B->A.
fn flow(i: usize, conversations: usize, base_ms: i64) -> FlowRecord {
    let c = (i / 2) % conversations;
    // Distinct (client, port) pairs up to 9973 x 55,000 conversations.
    let (client, server) = (
        address((c % 9973) as u32),
        address((c % 97) as u32 * 13 + 1),
    );
    let client_port = 10_000 + (c / 9973) as u16;
    let server_port = [443u16, 53, 8080, 5432][c % 4];
    let proto = if server_port == 53 { 17 } else { 6 };
    let (src, dst, sport, dport, dir) = if i.is_multiple_of(2) {
        (client, server, client_port, server_port, 1)
    } else {
        (server, client, server_port, client_port, 0)
    };
    FlowRecord {
        src_addr: std::net::IpAddr::V4(src).into(),
        dst_addr: std::net::IpAddr::V4(dst).into(),
        src_port: sport,
        dst_port: dport,
        proto,
        etype: 0x800,
        src_mac: "0a:58:0a:00:00:01".into(),
        dst_mac: "0a:58:0a:00:00:02".into(),
        bytes: 1500 + (i % 9000) as u64,
        packets: 3 + (i % 10) as u64,
        flags: if proto == 6 { 0x10 } else { 0 },
        time_flow_start_ms: base_ms + (i % 1000) as i64,
        time_flow_end_ms: base_ms + 500 + (i % 1000) as i64,
        interfaces: vec![format!("veth{}", c % 64)],
        if_directions: vec![dir],
        agent_ip: "198.18.255.1".into(),
        sampling: 1,
        time_flow_rtt_ns: (proto == 6).then_some(50_000 + (i % 1000) as u64 * 100),
        dns_id: (proto == 17).then_some(c as u16),
        dns_flags: (proto == 17).then_some(if i.is_multiple_of(2) { 0x0100 } else { 0x8183 }),
        dns_latency_ms: (proto == 17).then_some(0.4),
        ..Default::default()
    }
}

/// The encoded `Records` messages of `records` flows.
fn encoded_batches(records: usize, conversations: usize) -> Vec<Vec<u8>> {
    (0..records)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| {
            pbflow::Records {
                entries: chunk
                    .iter()
                    .map(|&i| to_pb(&flow(i, conversations, BASE_MS)))
                    .collect(),
                batch: None,
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect()
}

fn inventory() -> HostInventory {
    // Half the addresses live in named network namespaces of this host.
    let owners = (0..5000u32)
        .map(|i| (address(i).into(), Some(format!("ns-{}", i / 40))))
        .collect();
    HostInventory {
        host_name: "node-1".into(),
        owners,
    }
}

fn processor(conversations: usize) -> Processor {
    let mut registry = prometheus_client::registry::Registry::default();
    let include: Vec<String> = DEFAULT_INCLUDE_LIST.iter().map(|s| s.to_string()).collect();
    let metrics = FlowMetrics::new(&mut registry, &include, 1_000_000, i64::MAX).unwrap();
    let tracker = ConversationTracker::new(tracker_config(conversations));
    let subnets = SubnetLabels::parse(&[("lab".into(), vec!["198.18.0.0/15".into()])]).unwrap();
    Processor::new(HostEnricher::new(inventory(), subnets), metrics, tracker)
}

fn tracker_config(conversations: usize) -> TrackerConfig {
    TrackerConfig {
        log_types: LogTypes::EndedConversations,
        max_connections_tracked: conversations * 2,
        ..TrackerConfig::default()
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A batch's bytes as flow records, decoded in place (as the write-ahead
/// log's replay does).
fn decode(batch: &[u8]) -> Vec<FlowRecord> {
    decode_records(batch).unwrap().records
}

/// CPU seconds of `clock` (a thread's or the process's).
fn cpu_s(clock: libc::clockid_t) -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn thread_cpu_s() -> f64 {
    cpu_s(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn process_cpu_s() -> f64 {
    cpu_s(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// Records per CPU-second of this thread since `cpu_start` (its CPU time,
/// not the wall clock: other load of a shared machine does not count).
fn rate(records: usize, cpu_start: f64) -> f64 {
    records as f64 / (thread_cpu_s() - cpu_start)
}

fn throughput(records: usize, conversations: usize) {
    let batches = encoded_batches(records, conversations);
    let bytes: usize = batches.iter().map(Vec::len).sum();

    // Baseline: protobuf decoding alone.
    let start = thread_cpu_s();
    let mut n = 0;
    for b in &batches {
        n += pbflow::Records::decode_by_prost(b.as_slice())
            .unwrap()
            .entries
            .len();
    }
    let decode_only = rate(n, start);

    let start = thread_cpu_s();
    let mut n = 0;
    for b in &batches {
        n += decode(b).len();
    }
    let decode_convert = rate(n, start);

    // Memory per conversation: the pipeline alone, from a fresh start.
    let p = processor(conversations);
    let rss_before = rss_kib();
    for b in &batches {
        let mut flows = decode(b);
        p.ingest(&mut flows, BASE_MS + 1000);
    }
    let rss_after = rss_kib();
    let tracked = p.tracker.lock().unwrap().tracked();
    drop(p);

    // Throughput of the ingest thread, the store set up as the collector
    // sets it up: appends build Arrow batches here, and its writer thread
    // encodes the Parquet files (every 65,536 records) — whose CPU time is
    // reported apart.
    let dir = std::env::temp_dir().join(format!("flowlens-bench-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = std::sync::Arc::new(
        flowlens_store::Store::open(flowlens_store::StoreOptions {
            rollups: false,
            ..flowlens_store::StoreOptions::new(&dir)
        })
        .expect("a store in the temporary directory"),
    );
    let writer = flowlens_store::Store::start_writer(&store).expect("the store's writer thread");
    let p = processor(conversations);
    // A cold start first: the conversation table and the metrics' series
    // grow (fresh pages), as in a collector's first minutes.
    let start = thread_cpu_s();
    let mut out = 0;
    let mut run = |p: &Processor| {
        for b in &batches {
            let mut flows = decode(b);
            out += p.ingest(&mut flows, BASE_MS + 1000).len();
            store.append_flows(&flows);
        }
    };
    run(&p);
    let cold = rate(records, start);
    // Then the steady state the figure is of: the same conversations go
    // on (a collector serving its nodes for a while).
    let (start, cpu_start) = (thread_cpu_s(), process_cpu_s());
    run(&p);
    let full = rate(records, start);
    let ingest_cpu = thread_cpu_s() - start;
    let stored = store.counters().records_received;
    // What the writer thread still has to encode is its share too.
    store.flush(flowlens_store::Table::Flows);
    let all_cpu = process_cpu_s() - cpu_start;
    drop(store);
    let _ = writer.join();
    let _ = std::fs::remove_dir_all(&dir);
    println!("records                      {records}");
    println!(
        "bytes per encoded record     {:.1}",
        bytes as f64 / records as f64
    );
    println!("decode only (baseline)       {decode_only:.0} records/s");
    println!("decode + to flow records     {decode_convert:.0} records/s");
    println!("full pipeline, cold start    {cold:.0} records/s");
    println!("full pipeline, steady state  {full:.0} records/s");
    println!(
        "CPU per record               {:.0} ns on the ingest thread, {:.0} ns in all (the store's Parquet writer included)",
        ingest_cpu * 1e9 / records as f64,
        all_cpu * 1e9 / records as f64
    );
    println!("full / decode-only ratio     {:.3}", full / decode_only);
    println!("records out                  {out}");
    println!("records stored               {stored}");
    println!("conversations tracked        {tracked}");
    println!(
        "memory per conversation      {:.0} bytes (RSS +{} KiB, incl. metric series)",
        (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / tracked.max(1) as f64,
        rss_after.saturating_sub(rss_before)
    );
    // For scripts: the baseline and the figure, alone on their lines.
    println!("decode_records_per_s {decode_only:.0}");
    println!("pipeline_records_per_s {full:.0}");
}

/// A local OTLP/HTTP receiver that answers every export with success and
/// keeps nothing: the peer's work stays out of the figure.
async fn otlp_sink() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ok = || async {
        (
            [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
    };
    let app = axum::Router::new()
        .route("/v1/logs", axum::routing::post(ok))
        .route("/v1/metrics", axum::routing::post(ok))
        .layer(axum::extract::DefaultBodyLimit::disable());
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// What an exporter costs the pipeline: the steady-state pipeline (decode,
/// enrichment, metrics, conversations) per CPU second of the whole
/// process, without an exporter and then with one, in one run; and the
/// bytes it puts on the wire per record. `target`: `ipfix` (IPFIX/UDP to
/// a socket nobody reads: the kernel drops what the peer would take),
/// `otlp` (OTLP/HTTP logs to a local receiver that keeps nothing), or any
/// --export URL (e.g. a Kafka broker's `kafka://HOST:PORT/TOPIC`).
fn exporters(records: usize, conversations: usize, target: &str) {
    let batches = encoded_batches(records, conversations);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sink_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = match target {
        "ipfix" => format!("ipfix+udp://{}", sink_socket.local_addr().unwrap()),
        "otlp" => format!(
            "otlp+http://{}?metrics=false",
            runtime.block_on(otlp_sink())
        ),
        url => url.to_string(),
    };
    let run = |exporters: Option<&flowlens_export::Exporters>| {
        let p = processor(conversations);
        // Warm: the conversations and series exist (the steady state).
        for b in &batches {
            let mut flows = decode(b);
            p.ingest(&mut flows, BASE_MS + 1000);
        }
        let (cpu, thread) = (process_cpu_s(), thread_cpu_s());
        for b in &batches {
            let mut flows = decode(b);
            p.ingest(&mut flows, BASE_MS + 1000);
            if let Some(e) = exporters {
                e.flows(&flows);
            }
        }
        (cpu, thread_cpu_s() - thread)
    };
    let (started, base_thread) = run(None);
    let base_cpu = process_cpu_s() - started;
    let (with_cpu, stats) = runtime.block_on(async {
        let targets = flowlens_export::ExportTarget::parse_all(
            Vec::new(),
            std::slice::from_ref(&url),
            &[],
            &[],
        )
        .unwrap();
        let config = flowlens_export::SinkConfig {
            buffer_records: records,
            ..Default::default()
        };
        let exporters = flowlens_export::Exporters::start(targets, &config, None).unwrap();
        let (_, read) = exporters.sections().remove(0);
        let (started, thread) = tokio::task::block_in_place(|| run(Some(&exporters)));
        while read().records_sent < records as u64 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let cpu = process_cpu_s() - started;
        exporters.finish().await;
        ((cpu, thread), read())
    });
    let (with_cpu, with_thread) = with_cpu;
    let base = records as f64 / base_cpu;
    let with = records as f64 / with_cpu;
    println!("records                         {records}");
    println!("pipeline, no exporter           {base:.0} records per CPU second (baseline)");
    println!("pipeline + exporter             {with:.0} records per CPU second ({url})");
    println!("ratio                           {:.3}", with / base);
    println!(
        "pipeline thread alone           {:.0} ns/record without, {:.0} ns/record with (the copy into the buffer)",
        base_thread * 1e9 / records as f64,
        with_thread * 1e9 / records as f64
    );
    println!(
        "the exporter's task             {:.0} ns/record (encoding and sending)",
        (with_cpu - with_thread - (base_cpu - base_thread)).max(0.0) * 1e9 / records as f64
    );
    println!(
        "bytes on the wire per record    {:.1} ({} bytes of payload, {} records)",
        stats.bytes_sent as f64 / stats.records_sent.max(1) as f64,
        stats.bytes_sent,
        stats.records_sent
    );
    drop(sink_socket);
}

/// The wall clock in milliseconds since 1970 (flows of now).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn send(addr: String, conversations: usize) {
    let mut client = pbflow::collector_client::CollectorClient::connect(format!("http://{addr}"))
        .await
        .expect("connecting to the collector");
    let records = conversations * 2;
    // Flows of now: the collector's conversations stay open (they end 10 s
    // after their last flow).
    let now_ms = now_ms();
    let start = Instant::now();
    let mut sent = 0;
    while sent < records {
        let n = BATCH.min(records - sent);
        let entries = (sent..sent + n)
            .map(|i| to_pb(&flow(i, conversations, now_ms)))
            .collect();
        match client
            .send(pbflow::Records {
                entries,
                batch: None,
                ..Default::default()
            })
            .await
        {
            Ok(_) => sent += n,
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            Err(s) => panic!("send failed: {s}"),
        }
    }
    println!(
        "sent {sent} records ({conversations} conversations) in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

/// A synthetic agent on the Kafka bus: produces both directions of
/// `conversations` conversations to `bus` with the agent's own producer
/// (pbflow, keyed by connection, acks=all), keeping its buffer from
/// overflowing, and exits once the brokers acknowledged every record.
fn produce(bus: &str, conversations: usize) {
    use flowlens_export::bus_producer::{BusProducer, BusProducerConfig};
    let bus = flowlens_export::kafka_bus::KafkaBus::parse(bus).expect("BROKERS/TOPIC");
    let config = BusProducerConfig {
        shutdown_grace: std::time::Duration::from_secs(120),
        ..BusProducerConfig::default()
    };
    let producer = BusProducer::start(&bus, config).expect("a Kafka producer");
    let records = conversations * 2;
    let now_ms = now_ms();
    let start = Instant::now();
    let mut enqueued = 0;
    while enqueued < records {
        // Half the buffer at most in flight: nothing dropped for space.
        if producer.stats().buffered_records as usize > 50_000 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            continue;
        }
        let n = BATCH.min(records - enqueued);
        let batch: Vec<FlowRecord> = (enqueued..enqueued + n)
            .map(|i| flow(i, conversations, now_ms))
            .collect();
        producer.enqueue(&batch);
        enqueued += n;
    }
    let stats = producer.finish();
    assert_eq!(
        stats.records_sent as usize, records,
        "every record acknowledged: {stats:?}"
    );
    println!(
        "produced {records} records ({conversations} conversations) in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

/// Nanoseconds per record of each of the pipeline's steps, alone.
fn steps(records: usize, conversations: usize) {
    let batches = encoded_batches(records, conversations);
    let per_record = |cpu_s: f64| cpu_s * 1e9 / records as f64;
    let start = thread_cpu_s();
    for b in &batches {
        std::hint::black_box(pbflow::Records::decode_by_prost(b.as_slice()).unwrap());
    }
    let prost_ns = per_record(thread_cpu_s() - start);
    let dir = std::env::temp_dir().join(format!("flowlens-bench-steps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = flowlens_store::Store::open(flowlens_store::StoreOptions {
        rollups: false,
        ..flowlens_store::StoreOptions::new(&dir)
    })
    .expect("a store in the temporary directory");
    let p = processor(conversations);
    let enricher = HostEnricher::new(
        inventory(),
        SubnetLabels::parse(&[("lab".into(), vec!["198.18.0.0/15".into()])]).unwrap(),
    );
    // Each step of each batch timed on its own, the batch going through
    // them in turn as in the pipeline (its records hot in the cache): the
    // steps add up to the pipeline. Two passes; the second (steady state)
    // is reported.
    let mut cpu = [0f64; 7];
    for pass in 0..2 {
        cpu = [0.0; 7];
        let mut clock = thread_cpu_s();
        let mut lap = |step: usize, cpu: &mut [f64; 7]| {
            let now = thread_cpu_s();
            cpu[step] += now - clock;
            clock = now;
        };
        for b in &batches {
            let mut flows = decode(b);
            lap(0, &mut cpu);
            flows.iter_mut().for_each(|f| enricher.enrich(f));
            lap(1, &mut cpu);
            p.metrics
                .lock()
                .unwrap()
                .observe_all(flows.iter(), BASE_MS + 1000);
            lap(2, &mut cpu);
            {
                let mut t = p.tracker.lock().unwrap();
                for flow in &flows {
                    t.on_flow(flow, BASE_MS + 1000);
                }
            }
            lap(3, &mut cpu);
            std::hint::black_box(flowlens_store::flows_to_batch(&flows, 0));
            lap(4, &mut cpu);
            store.append_flows(&flows);
            lap(5, &mut cpu);
            drop(flows);
            lap(6, &mut cpu);
        }
        let _ = pass;
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    let ns = cpu.map(per_record);
    println!("step                     ns/record");
    println!("{:<24} {prost_ns:>9.0}", "(prost decode alone)");
    let names = [
        "decode to flow records",
        "enrichment",
        "metrics",
        "conversations",
        "store: Arrow batch",
        "store: append + Parquet",
        "records dropped",
    ];
    for (step, ns) in names.iter().zip(ns) {
        println!("{step:<24} {ns:>9.0}");
    }
    // The append builds the batch again and writes the files; on the
    // writer thread in the collector, the Parquet share is off the ingest
    // thread: the ingest thread's part is the steps but that write.
    let ingest = ns[..5].iter().sum::<f64>() + ns[6];
    println!("{:<24} {ingest:>9.0}", "ingest thread");
    println!("{:<24} {:>9.0}", "sum", ingest + ns[5] - ns[4]);
}

/// Memory per conversation of the conversation tracker alone, in a process
/// of its own (an earlier pass's freed pages would hide its growth): the
/// flows are decoded first, so only the tracker grows while measured.
fn conversation_memory(records: usize, conversations: usize) {
    let batches = encoded_batches(records, conversations);
    let flows: Vec<Vec<FlowRecord>> = batches.iter().map(|b| decode(b)).collect();
    let mut tracker = ConversationTracker::new(tracker_config(conversations));
    let rss_before = rss_kib();
    // RSS also when half the conversations are in: the growth from half to
    // all is what one more conversation costs, without the fixed part
    // (partly used huge pages of the allocator's arenas, the first tables).
    let mut at_half = None;
    for (i, flow) in flows.iter().flatten().enumerate() {
        if i == conversations {
            at_half = Some((rss_kib(), tracker.tracked()));
        }
        tracker.on_flow(flow, BASE_MS + 1000);
    }
    let rss_after = rss_kib();
    let tracker_kib = rss_after.saturating_sub(rss_before);
    let tracker_tracked = tracker.tracked();
    drop((tracker, flows));

    println!(
        "memory per conversation      {:.0} bytes in the tracker alone (RSS +{tracker_kib} KiB, {tracker_tracked} conversations)",
        tracker_kib as f64 * 1024.0 / tracker_tracked.max(1) as f64,
    );
    if let Some((half_kib, half_tracked)) = at_half {
        println!(
            "marginal memory per conversation {:.0} bytes (RSS from {half_tracked} to {tracker_tracked} conversations)",
            rss_after.saturating_sub(half_kib) as f64 * 1024.0
                / tracker_tracked.saturating_sub(half_tracked).max(1) as f64,
        );
    }
}

/// A cluster whose pods hold the load's 10,000 addresses: pod `i` holds
/// address `i`, owned by one of 250 Deployments on one of 20 nodes.
fn cluster_of(pods: u32) -> Cluster {
    let mut cluster = Cluster::new(300_000);
    for n in 0..20 {
        cluster.apply(
            ClusterEvent::Node(NodeInfo {
                uid: format!("node-{n}"),
                name: format!("node-{n}"),
                addresses: vec![Ipv4Addr::new(198, 19, 0, n as u8 + 1).into()],
                zone: Some(format!("zone-{}", n % 3)),
                created_ms: 0,
            }),
            0,
        );
    }
    for d in 0..250 {
        cluster.apply(
            ClusterEvent::Controller {
                kind: "ReplicaSet".into(),
                namespace: format!("ns-{}", d / 10),
                name: format!("app-{d}-5d9f"),
                controller: Some(OwnerRef {
                    kind: "Deployment".into(),
                    name: format!("app-{d}"),
                }),
            },
            0,
        );
    }
    for i in 0..pods {
        let d = i % 250;
        cluster.apply(
            ClusterEvent::Pod(PodInfo {
                uid: format!("pod-uid-{i:08}"),
                namespace: format!("ns-{}", d / 10),
                name: format!("app-{d}-5d9f-{i:05x}"),
                node: Some(format!("node-{}", i % 20)),
                host_ip: Some(format!("198.19.0.{}", i % 20 + 1)),
                ips: vec![address(i).into()],
                host_network: false,
                controller: Some(OwnerRef {
                    kind: "ReplicaSet".into(),
                    name: format!("app-{d}-5d9f"),
                }),
                created_ms: 0,
            }),
            0,
        );
    }
    cluster
}

/// Kubernetes enrichment: the enrichment's CPU per record with a cluster of
/// 10,000 pods (every address a pod) against the plain host's alone,
/// alternating in one run; and the memory of 10,000 pods.
fn kube_enrichment(records: usize, conversations: usize) {
    let before = rss_kib();
    let cluster = cluster_of(10_000);
    let per_pod = (rss_kib() - before) as f64 * 1024.0 / 10_000.0;
    let cluster = Arc::new(RwLock::new(cluster));
    let flows: Vec<FlowRecord> = (0..records)
        .map(|i| flow(i, conversations, BASE_MS))
        .collect();
    let subnets = || SubnetLabels::parse(&[("lab".into(), vec!["198.18.0.0/15".into()])]).unwrap();
    let host = HostEnricher::new(inventory(), subnets());
    let cluster = cluster.read().unwrap();
    // CPU ns per record of `enrich` over every flow, a batch at a time.
    let pass = |enrich: &dyn Fn(&mut FlowRecord)| {
        let mut cpu = 0.0;
        for chunk in flows.chunks(BATCH) {
            let mut batch = chunk.to_vec();
            let start = thread_cpu_s();
            batch.iter_mut().for_each(enrich);
            cpu += thread_cpu_s() - start;
        }
        cpu * 1e9 / flows.len() as f64
    };
    let plain = |f: &mut FlowRecord| host.enrich(f);
    let with_cluster = |f: &mut FlowRecord| {
        host.enrich(f);
        cluster.label(f);
    };
    pass(&plain);
    pass(&with_cluster);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(pass(&plain));
        b.push(pass(&with_cluster));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (a, b) = (mean(&a), mean(&b));
    println!("enrichment ns/record, plain host (baseline)   {a:.1}");
    println!("enrichment ns/record, plain host + 10,000 pods {b:.1}");
    println!(
        "Kubernetes labels ns/record                    {:.1}",
        b - a
    );
    println!(
        "ratio                                          {:.2}",
        b / a
    );
    println!(
        "memory per pod                                 {per_pod:.0} bytes (RSS growth over 10,000 pods)"
    );
}

/// The collector's cross-node join: each flow reported by its source's
/// node and by its destination's (two records in), joined into one (out);
/// CPU ns per record in, against the Kubernetes labels of the same records
/// in the same run.
fn cross_node(records: usize, conversations: usize) {
    use flowlens_pipeline::cross_node::CrossNodeJoin;
    let cluster = cluster_of(10_000);
    let mut reports = Vec::with_capacity(records * 2);
    for i in 0..records {
        let mut f = flow(i, conversations, BASE_MS + (i / BATCH) as i64);
        cluster.label(&mut f);
        let node = |labels: &flowlens_model::SideLabels| {
            labels
                .host_ip
                .as_deref()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        };
        let (src_node, dst_node) = (node(&f.src_labels), node(&f.dst_labels));
        for agent in [src_node, dst_node].into_iter().flatten() {
            let mut report = f.clone();
            report.agent_ip = agent.into();
            reports.push(report);
        }
    }
    let labels = {
        let start = thread_cpu_s();
        for chunk in reports.chunks(BATCH) {
            let mut batch = chunk.to_vec();
            batch.iter_mut().for_each(|f| cluster.label(f));
        }
        (thread_cpu_s() - start) * 1e9 / reports.len() as f64
    };
    // Batches come 10 ms apart and wait 1 s: a window of 100 batches.
    let mut join = CrossNodeJoin::new(1_000);
    let mut out = 0usize;
    let start = thread_cpu_s();
    for (n, chunk) in reports.chunks(BATCH).enumerate() {
        let now = n as i64 * 10;
        let roles = CrossNodeJoin::roles(&cluster, chunk.to_vec());
        join.push(roles, 0, now);
        out += join
            .release(now)
            .iter()
            .map(|(f, _)| f.len())
            .sum::<usize>();
    }
    out += join.drain().iter().map(|(f, _)| f.len()).sum::<usize>();
    let joined = (thread_cpu_s() - start) * 1e9 / reports.len() as f64;
    let c = &join.counters;
    println!(
        "records in {}, out {out}: joined {}, unjoined {}",
        reports.len(),
        c.joined,
        c.unjoined
    );
    println!("Kubernetes labels ns/record in (baseline)      {labels:.1}");
    println!("cross-node join ns/record in                   {joined:.1}");
    println!(
        "ratio                                          {:.2}",
        joined / labels
    );
}

fn main() {
    // Tuned as the flowlens binary tunes it.
    flowlens::allocator::tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| {
        args.get(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(number(1, 2_000_000), number(2, 100_000)),
        Some("steps") => steps(number(1, 1_000_000), number(2, 100_000)),
        Some("conversation-memory") => {
            conversation_memory(number(1, 1_000_000), number(2, 100_000))
        }
        Some("kube-enrichment") => kube_enrichment(number(1, 1_000_000), number(2, 100_000)),
        Some("cross-node") => cross_node(number(1, 500_000), number(2, 100_000)),
        Some("exporters") => exporters(
            number(1, 1_000_000),
            number(2, 100_000),
            args.get(3).map(String::as_str).unwrap_or("ipfix"),
        ),
        Some("produce") => produce(
            args.get(1).expect("produce BROKERS/TOPIC [CONVERSATIONS]"),
            number(2, 100_000),
        ),
        Some("send") => {
            let addr = args.get(1).expect("send ADDR [CONVERSATIONS]").clone();
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(send(addr, number(2, 100_000)));
        }
        _ => {
            eprintln!(
                "usage: synthetic_flows throughput|steps|conversation-memory|kube-enrichment|cross-node|exporters [RECORDS] [CONVERSATIONS] [ipfix|otlp|EXPORT_URL] | send ADDR [CONVERSATIONS] | produce BROKERS/TOPIC [CONVERSATIONS]"
            );
            std::process::exit(2);
        }
    }
}
