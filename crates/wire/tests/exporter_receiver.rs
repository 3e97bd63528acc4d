//! The exporter and the receiver over real gRPC on loopback: batches arrive
//! whole, a collector that is away or busy costs nothing but time, a full
//! buffer is counted, and bad input is counted without harm.

use flowlens_model::FlowRecord;
use flowlens_wire::connections::BoundedListener;
use flowlens_wire::exporter::{Exporter, ExporterConfig, ExporterStats};
use flowlens_wire::pbflow;
use flowlens_wire::receiver::{Batch, Receiver, ReceiverLimits, ReceiverStats, serve};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

fn flows(n: usize, first_port: u16) -> Vec<FlowRecord> {
    (0..n)
        .map(|i| FlowRecord {
            src_addr: "198.18.0.1".into(),
            dst_addr: "198.18.0.2".into(),
            src_port: first_port.wrapping_add(i as u16),
            dst_port: 53,
            proto: 17,
            packets: 1,
            bytes: 100,
            src_mac: "0a:00:00:00:00:01".into(),
            dst_mac: "0a:00:00:00:00:02".into(),
            interfaces: vec!["veth0".into()],
            if_directions: vec![1],
            ..Default::default()
        })
        .collect()
}

/// A collector on `addr`: the records it processed, its counters, and a
/// switch that stops it.
struct TestCollector {
    got: Arc<Mutex<Vec<FlowRecord>>>,
    stats: Box<dyn Fn() -> ReceiverStats>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    /// Lets batches through to the pipeline (closed: the pipeline is stuck).
    gate: Arc<tokio::sync::Semaphore>,
}

async fn collector(addr: SocketAddr, queue: usize, gate_open: bool) -> TestCollector {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (tx, mut rx) = mpsc::channel::<Batch>(queue);
    let limits = ReceiverLimits::default();
    let listener = BoundedListener::new(listener, limits.connections());
    let receiver = Receiver::new(tx, limits);
    let stats = receiver.stats_reader();
    let got = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(if gate_open {
        tokio::sync::Semaphore::MAX_PERMITS
    } else {
        0
    }));
    let (sink, gate_in) = (got.clone(), gate.clone());
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            let _permit = gate_in.acquire().await.unwrap();
            sink.lock().unwrap().extend(batch.records);
            batch.answer.ok();
        }
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(listener, None, receiver, None, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestCollector {
        got,
        stats: Box::new(stats),
        stop: Some(stop),
        server,
        gate,
    }
}

impl TestCollector {
    fn received(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    async fn stop(mut self) -> Vec<FlowRecord> {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.server.await;
        self.got.lock().unwrap().clone()
    }
}

async fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn config(addr: SocketAddr) -> ExporterConfig {
    ExporterConfig {
        batch_size: 300,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ExporterConfig::new(&addr.to_string())
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn ports(records: &[FlowRecord]) -> Vec<u16> {
    let mut p: Vec<u16> = records.iter().map(|r| r.src_port).collect();
    p.sort_unstable();
    p
}

#[tokio::test]
async fn records_arrive_whole_and_in_batches() {
    let addr = free_addr().await;
    let c = collector(addr, 16, true).await;
    let exporter = Exporter::start(config(addr)).unwrap();
    let sent = flows(1000, 10_000);
    exporter.enqueue(&sent);
    wait_for("1000 records", || c.received() == 1000).await;
    let stats = exporter.finish().await;
    let got = c.stop().await;
    assert!(got == sent, "not the same records in the same order");
    assert_eq!(stats.records_sent, 1000);
    assert_eq!(stats.batches_sent, 4, "batches of at most 300");
}

#[tokio::test]
async fn a_collector_away_costs_time_not_records() {
    let addr = free_addr().await;
    let exporter = Exporter::start(config(addr)).unwrap();
    exporter.enqueue(&flows(500, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = collector(addr, 16, true).await;
    exporter.enqueue(&flows(500, 500));
    wait_for("1000 records", || c.received() == 1000).await;
    // Away again (stopped), then back on the same address.
    let first = c.stop().await;
    exporter.enqueue(&flows(700, 1000));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = collector(addr, 16, true).await;
    wait_for("700 more", || c.received() == 700).await;
    let stats = exporter.finish().await;
    let mut all = first;
    all.extend(c.stop().await);
    assert_eq!(ports(&all), (0..1700).collect::<Vec<u16>>(), "exactly once");
    assert_eq!(stats.records_received, 1700);
    assert_eq!(stats.records_sent, 1700);
    assert!(stats.connect_failures + stats.send_errors > 0, "{stats:?}");
    assert!(stats.connects >= 2, "{stats:?}");
    assert_eq!(total_dropped(&stats), 0);
}

fn total_dropped(s: &ExporterStats) -> u64 {
    s.records_dropped_buffer_full + s.records_dropped_rejected + s.records_dropped_shutdown
}

#[tokio::test]
async fn a_full_buffer_drops_the_newest_and_counts_them() {
    let addr = free_addr().await;
    let exporter = Exporter::start(ExporterConfig {
        buffer_records: 100,
        ..config(addr)
    })
    .unwrap();
    exporter.enqueue(&flows(250, 0));
    let c = collector(addr, 16, true).await;
    wait_for("the buffered 100", || c.received() == 100).await;
    let stats = exporter.finish().await;
    let got = c.stop().await;
    assert_eq!(ports(&got), (0..100).collect::<Vec<u16>>());
    assert_eq!(stats.records_dropped_buffer_full, 150);
    assert_eq!(
        stats.records_received,
        stats.records_sent + total_dropped(&stats)
    );
}

#[tokio::test]
async fn a_busy_collector_is_retried_without_loss() {
    let addr = free_addr().await;
    // Queue of one batch and a stuck pipeline: the second call is refused.
    let c = collector(addr, 1, false).await;
    let exporter = Exporter::start(ExporterConfig {
        batch_size: 100,
        ..config(addr)
    })
    .unwrap();
    let raw = pbflow::collector_client::CollectorClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    // One call held by the stuck pipeline, one waiting in the queue.
    let call = |port: u16| {
        let mut client = raw.clone();
        tokio::spawn(async move {
            client
                .send(pbflow::Records {
                    entries: vec![flowlens_wire::convert::to_pb(&flows(1, port)[0])],
                    batch: None,
                    ..Default::default()
                })
                .await
        })
    };
    let held = call(60_000);
    wait_for("the first call taken", || (c.stats)().records_received == 1).await;
    let queued = call(60_001);
    wait_for("the second call queued", || (c.stats)().queued_batches == 1).await;
    exporter.enqueue(&flows(300, 0));
    wait_for("busy answers", || (c.stats)().requests_busy >= 2).await;
    c.gate.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    wait_for("all records", || c.received() == 302).await;
    held.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    let stats = exporter.finish().await;
    assert!(stats.send_busy >= 2, "{stats:?}");
    assert_eq!(stats.records_sent, 300);
    let got = c.stop().await;
    assert_eq!(got.len(), 302);
}

/// A message whose field 1 is not a list of records.
#[derive(Clone, PartialEq, prost::Message)]
struct NotRecords {
    #[prost(bytes = "vec", tag = "1")]
    garbage: Vec<u8>,
}

#[tokio::test]
async fn malformed_calls_and_records_are_counted_not_fatal() {
    let addr = free_addr().await;
    let c = collector(addr, 16, true).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    for _ in 0..3 {
        grpc.ready().await.unwrap();
        let answer: Result<tonic::Response<pbflow::CollectorReply>, _> = grpc
            .unary(
                tonic::Request::new(NotRecords {
                    garbage: vec![0xff, 0xff, 0xff, 0x0f, 0x08],
                }),
                "/pbflow.Collector/Send".parse().unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        assert!(answer.is_err(), "undecodable payload accepted");
    }
    // Records that decode but make no sense are skipped one by one.
    let mut good = flowlens_wire::convert::to_pb(&flows(1, 7)[0]);
    let mut no_network = good.clone();
    no_network.network = None;
    let mut bad_ip = good.clone();
    if let Some(n) = bad_ip.network.as_mut() {
        n.src_addr = Some(pbflow::Ip {
            ip_family: Some(pbflow::ip::IpFamily::Ipv6(vec![1; 5])),
        });
    }
    good.bytes = 4242;
    let mut client = pbflow::collector_client::CollectorClient::new(channel);
    client
        .send(pbflow::Records {
            entries: vec![no_network, good, bad_ip],
            batch: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let stats = (c.stats)();
    assert_eq!(
        stats.requests_refused.get("Internal"),
        Some(&3),
        "{stats:?}"
    );
    assert_eq!(stats.records_invalid.get("missing_field"), Some(&1));
    assert_eq!(stats.records_invalid.get("bad_address"), Some(&1));
    assert_eq!(stats.records_received, 1);
    let got = c.stop().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, 4242);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_agent_neither_stalls_nor_starves_a_good_one() {
    let addr = free_addr().await;
    let c = collector(addr, 4, true).await;
    let one_call = pbflow::Records {
        entries: flows(2000, 0)
            .iter()
            .map(flowlens_wire::convert::to_pb)
            .collect(),
        batch: None,
        ..Default::default()
    };
    // 8 connections, each sending as fast as answers come, ignoring
    // "busy" (a misbehaving agent does not back off).
    let mut flooders = Vec::new();
    for _ in 0..8 {
        let message = one_call.clone();
        flooders.push(tokio::spawn(async move {
            let mut client =
                pbflow::collector_client::CollectorClient::connect(format!("http://{addr}"))
                    .await
                    .unwrap();
            let (mut ok, mut busy) = (0u64, 0u64);
            for _ in 0..20 {
                match client.send(message.clone()).await {
                    Ok(_) => ok += 1,
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => busy += 1,
                    Err(s) => panic!("unexpected answer {s}"),
                }
            }
            (ok, busy)
        }));
    }
    let exporter = Exporter::start(config(addr)).unwrap();
    exporter.enqueue(&flows(1000, 10_000));
    let (mut ok, mut busy) = (0, 0);
    for f in flooders {
        let (o, b) = f.await.unwrap();
        ok += o;
        busy += b;
    }
    wait_for("the good agent's records", || {
        c.received() as u64 == ok * 2000 + 1000
    })
    .await;
    let stats = exporter.finish().await;
    assert_eq!(stats.records_sent, 1000);
    assert_eq!(total_dropped(&stats), 0);
    let receiver = (c.stats)();
    assert_eq!(receiver.requests_busy, busy + stats.send_busy);
    assert_eq!(receiver.records_received, ok * 2000 + 1000);
    assert_eq!(ok + busy, 8 * 20);
}
