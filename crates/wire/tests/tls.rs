//! gRPC over TLS between the exporter and the receiver on loopback, with
//! certificates made for each case: mutual TLS names the agent and refuses
//! records claiming another node; a wrong CA, an expired certificate, no
//! client certificate and plaintext on either side are refused with their
//! reason counted and nothing received; the collector's certificate
//! rotated while an agent sends loses nothing.

use flowlens_model::FlowRecord;
use flowlens_tls::test_pki::{Issued, Leaf, TestCa};
use flowlens_tls::{ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles, TlsStats};
use flowlens_wire::connections::BoundedListener;
use flowlens_wire::exporter::{Exporter, ExporterConfig, ExporterStats};
use flowlens_wire::receiver::{Batch, BatchId, Receiver, ReceiverLimits, ReceiverStats, serve};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

fn flows(n: usize, agent: &str) -> Vec<FlowRecord> {
    (0..n)
        .map(|i| FlowRecord {
            src_addr: "198.18.0.1".into(),
            dst_addr: "198.18.0.2".into(),
            src_port: 10_000 + i as u16,
            dst_port: 53,
            proto: 17,
            packets: 1,
            bytes: 100,
            agent_ip: agent.into(),
            // A sender cannot name itself: the collector overwrites this.
            agent_name: Some("forged".into()),
            ..Default::default()
        })
        .collect()
}

struct Pki {
    dir: PathBuf,
    ca: TestCa,
    ca_file: PathBuf,
    server: Issued,
}

fn pki(dir: &Path) -> Pki {
    let ca = TestCa::new("flowlens test CA");
    let ca_file = ca.write(&dir.join("ca.crt"));
    let server = ca.issue(&Leaf::named("localhost", &["127.0.0.1"]), dir, "collector");
    Pki {
        dir: dir.to_path_buf(),
        ca,
        ca_file,
        server,
    }
}

/// Each record received, with its batch's id.
type Received = Vec<(FlowRecord, Option<BatchId>)>;

struct TestCollector {
    addr: SocketAddr,
    got: Arc<Mutex<Received>>,
    stats: Box<dyn Fn() -> ReceiverStats>,
    tls: Option<Arc<ServerTls>>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestCollector {
    fn received(&self) -> Received {
        self.got.lock().unwrap().clone()
    }

    fn tls_stats(&self) -> TlsStats {
        self.tls.as_ref().unwrap().stats()
    }
}

impl Drop for TestCollector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn collector(tls: Option<ServerTlsFiles>) -> TestCollector {
    collector_with(tls, None).await
}

async fn collector_with(
    tls: Option<ServerTlsFiles>,
    node_addresses: Option<flowlens_wire::receiver::NodeAddresses>,
) -> TestCollector {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::channel::<Batch>(16);
    let limits = ReceiverLimits::default();
    let listener = BoundedListener::new(listener, limits.connections());
    let mut receiver = Receiver::new(tx, limits);
    if let Some(lookup) = node_addresses {
        receiver = receiver.with_node_addresses(lookup);
    }
    let stats = receiver.stats_reader();
    let tls =
        tls.map(|files| Arc::new(ServerTls::new(files, &[b"h2"], Duration::from_secs(5)).unwrap()));
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            let id = batch.id.clone();
            sink.lock()
                .unwrap()
                .extend(batch.records.into_iter().map(|r| (r, id.clone())));
            batch.answer.ok();
        }
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tls.clone();
    tokio::spawn(async move {
        let _ = serve(listener, serving, receiver, None, async {
            let _ = stopped.await;
        })
        .await;
    });
    TestCollector {
        addr,
        got,
        stats: Box::new(stats),
        tls,
        stop: Some(stop),
    }
}

fn client_tls(files: ClientTlsFiles) -> Arc<ClientTls> {
    Arc::new(ClientTls::new(files, &[b"h2"]).unwrap())
}

/// An agent that trusts the test CA and has no certificate of its own.
fn trusting(p: &Pki) -> Arc<ClientTls> {
    client_tls(ClientTlsFiles {
        ca: Some(p.ca_file.clone()),
        ..ClientTlsFiles::default()
    })
}

fn exporter(addr: SocketAddr, scheme: &str, tls: Option<Arc<ClientTls>>) -> Exporter {
    Exporter::start(ExporterConfig {
        batch_size: 50,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        tls,
        ..ExporterConfig::new(&format!("{scheme}{addr}"))
    })
    .unwrap()
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

fn mutual(p: &Pki) -> ServerTlsFiles {
    ServerTlsFiles {
        cert: p.server.cert.clone(),
        key: p.server.key.clone(),
        client_ca: Some(p.ca_file.clone()),
    }
}

fn node_files(p: &Pki, leaf: &Leaf, name: &str) -> ClientTlsFiles {
    let node = p.ca.issue(leaf, &p.dir, name);
    ClientTlsFiles {
        ca: Some(p.ca_file.clone()),
        cert: Some(node.cert),
        key: Some(node.key),
    }
}

/// A directory of the test's own, removed when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("flowlens-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

#[tokio::test]
async fn mutual_tls_names_the_agent_on_its_records_and_batches() {
    let dir = tempdir("names");
    let p = pki(&dir);
    let c = collector(Some(mutual(&p))).await;
    let tls = client_tls(node_files(
        &p,
        &Leaf::named("node-1", &["198.18.0.1"]),
        "node-1",
    ));
    let e = exporter(c.addr, "", Some(tls));
    e.enqueue(&flows(120, "198.18.0.1"));
    wait_for("120 records", || c.received().len() == 120).await;
    for (record, id) in c.received() {
        assert_eq!(record.agent_name.as_deref(), Some("node-1"));
        let id = id.expect("a batch id");
        assert!(id.agent.starts_with("node-1/"), "{}", id.agent);
    }
    let s = c.tls_stats();
    assert_eq!((s.handshakes, s.mutual), (1, 1));
    assert!(
        s.handshake_failures.is_empty(),
        "{:?}",
        s.handshake_failures
    );
    let _ = e.finish().await;
}

#[tokio::test]
async fn a_certificate_of_another_node_is_refused_counted_and_nothing_stored() {
    let dir = tempdir("other-node");
    let p = pki(&dir);
    let c = collector(Some(mutual(&p))).await;
    // node-1's certificate, records claiming node 2's address.
    let tls = client_tls(node_files(
        &p,
        &Leaf::named("node-1", &["198.18.0.1"]),
        "node-1",
    ));
    let e = exporter(c.addr, "", Some(tls));
    e.enqueue(&flows(30, "198.18.0.2"));
    wait_for("the refusal", || e.stats().records_dropped_rejected == 30).await;
    assert!(c.received().is_empty());
    let refused = (c.stats)().records_refused_identity;
    assert_eq!(refused.get("other_node"), Some(&30), "{refused:?}");
    let _ = e.finish().await;
}

#[tokio::test]
async fn a_certificate_without_addresses_is_held_to_its_nodes_addresses() {
    let dir = tempdir("name-only");
    let p = pki(&dir);
    // node-1's certificate names it (common name only), no address.
    let leaf = Leaf {
        common_name: Some("node-1".into()),
        ..Leaf::default()
    };
    let files = node_files(&p, &leaf, "node-1");
    // Without the cluster's nodes: the records are bound to the name.
    let c = collector(Some(mutual(&p))).await;
    let e = exporter(c.addr, "", Some(client_tls(files.clone())));
    e.enqueue(&flows(10, "198.18.0.9"));
    wait_for("10 records", || c.received().len() == 10).await;
    assert!(
        c.received()
            .iter()
            .all(|(r, _)| r.agent_name.as_deref() == Some("node-1"))
    );
    let _ = e.finish().await;
    // With them: only node-1's own addresses.
    let nodes: flowlens_wire::receiver::NodeAddresses =
        Arc::new(|name: &str| (name == "node-1").then(|| vec!["198.18.0.1".parse().unwrap()]));
    let c = collector_with(Some(mutual(&p)), Some(nodes)).await;
    let e = exporter(c.addr, "", Some(client_tls(files)));
    e.enqueue(&flows(10, "198.18.0.1"));
    wait_for("node-1's records", || c.received().len() == 10).await;
    e.enqueue(&flows(7, "198.18.0.2"));
    wait_for("the refusal", || e.stats().records_dropped_rejected == 7).await;
    assert_eq!(c.received().len(), 10);
    let refused = (c.stats)().records_refused_identity;
    assert_eq!(refused.get("other_node"), Some(&7), "{refused:?}");
    let _ = e.finish().await;
}

/// Starts an exporter that must fail, waits for the reason on the side
/// that sees it, and checks nothing arrived.
async fn refused(
    c: &TestCollector,
    e: Exporter,
    server_reason: Option<&str>,
    client_reason: Option<&str>,
) -> ExporterStats {
    e.enqueue(&flows(10, "198.18.0.1"));
    if let Some(reason) = server_reason {
        wait_for(&format!("server-side {reason}"), || {
            c.tls_stats().handshake_failures.contains_key(reason)
        })
        .await;
    }
    if let Some(reason) = client_reason {
        wait_for(&format!("client-side {reason}"), || {
            e.stats().connect_failures_tls.contains_key(reason)
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(c.received().is_empty(), "nothing is received");
    let stats = e.stats();
    assert_eq!(stats.records_sent, 0);
    assert_eq!(stats.buffered_records, 10, "the records wait in the agent");
    stats
}

#[tokio::test]
async fn an_agent_trusting_another_ca_refuses_the_collector() {
    let dir = tempdir("wrong-ca");
    let p = pki(&dir);
    let c = collector(Some(ServerTlsFiles {
        client_ca: None,
        ..mutual(&p)
    }))
    .await;
    let other = TestCa::new("another CA").write(&dir.join("other-ca.crt"));
    let tls = client_tls(ClientTlsFiles {
        ca: Some(other),
        ..ClientTlsFiles::default()
    });
    let e = exporter(c.addr, "", Some(tls));
    refused(&c, e, Some("peer_refused_certificate"), Some("unknown_ca")).await;
}

#[tokio::test]
async fn a_client_certificate_of_another_ca_is_refused() {
    let dir = tempdir("client-other-ca");
    let p = pki(&dir);
    let c = collector(Some(mutual(&p))).await;
    let rogue_ca = TestCa::new("rogue CA");
    let rogue = rogue_ca.issue(&Leaf::named("node-1", &["198.18.0.1"]), &dir, "rogue");
    let tls = client_tls(ClientTlsFiles {
        ca: Some(p.ca_file.clone()),
        cert: Some(rogue.cert),
        key: Some(rogue.key),
    });
    refused(
        &c,
        exporter(c.addr, "", Some(tls)),
        Some("unknown_ca"),
        None,
    )
    .await;
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let dir = tempdir("expired");
    let p = pki(&dir);
    let c = collector(Some(mutual(&p))).await;
    let leaf = Leaf::named("node-1", &["198.18.0.1"]).expired();
    let tls = client_tls(node_files(&p, &leaf, "old"));
    refused(
        &c,
        exporter(c.addr, "", Some(tls)),
        Some("expired_certificate"),
        None,
    )
    .await;
}

#[tokio::test]
async fn an_expired_collector_certificate_is_refused_by_the_agent() {
    let dir = tempdir("expired-server");
    let p = pki(&dir);
    let old = p.ca.issue(
        &Leaf::named("localhost", &["127.0.0.1"]).expired(),
        &dir,
        "old-collector",
    );
    let c = collector(Some(ServerTlsFiles {
        cert: old.cert,
        key: old.key,
        client_ca: None,
    }))
    .await;
    let tls = trusting(&p);
    refused(
        &c,
        exporter(c.addr, "", Some(tls)),
        Some("peer_refused_certificate"),
        Some("expired_certificate"),
    )
    .await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_by_mutual_tls() {
    let dir = tempdir("no-client-cert");
    let p = pki(&dir);
    let c = collector(Some(mutual(&p))).await;
    let tls = trusting(&p);
    refused(
        &c,
        exporter(c.addr, "", Some(tls)),
        Some("no_client_certificate"),
        None,
    )
    .await;
}

#[tokio::test]
async fn a_plaintext_agent_is_refused_by_a_tls_collector() {
    let dir = tempdir("plain-to-tls");
    let p = pki(&dir);
    let c = collector(Some(mutual(&p))).await;
    refused(&c, exporter(c.addr, "http://", None), Some("not_tls"), None).await;
}

#[tokio::test]
async fn a_tls_agent_refuses_a_plaintext_collector() {
    let dir = tempdir("tls-to-plain");
    let p = pki(&dir);
    let c = collector(None).await;
    let tls = trusting(&p);
    let e = exporter(c.addr, "", Some(tls));
    e.enqueue(&flows(10, "198.18.0.1"));
    wait_for("a TLS failure", || {
        !e.stats().connect_failures_tls.is_empty()
    })
    .await;
    let failures = e.stats().connect_failures_tls;
    assert!(
        failures.contains_key("not_tls") || failures.contains_key("connection_lost"),
        "{failures:?}"
    );
    assert!(c.received().is_empty());
    assert_eq!(e.stats().records_sent, 0);
}

#[tokio::test]
async fn the_collector_certificate_rotated_while_an_agent_sends_loses_nothing() {
    let dir = tempdir("rotation");
    let p = pki(&dir);
    let c = collector(Some(mutual(&p))).await;
    let tls = client_tls(node_files(
        &p,
        &Leaf::named("node-1", &["198.18.0.1"]),
        "node-1",
    ));
    let before = c.tls_stats().certificate_not_after;
    let e = exporter(c.addr, "", Some(tls.clone()));
    let mut sent = 0;
    for round in 0..40 {
        e.enqueue(&flows(25, "198.18.0.1"));
        sent += 25;
        if round == 10 {
            // A new certificate, valid for longer, in place of the old.
            let mut leaf = Leaf::named("localhost", &["127.0.0.1"]);
            leaf.valid_until_year = Some(2040);
            p.ca.issue(&leaf, &dir, "collector");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("every record", || c.received().len() == sent).await;
    // A new agent connection is served with the new certificate.
    let second = exporter(c.addr, "", Some(tls));
    second.enqueue(&flows(5, "198.18.0.1"));
    wait_for("the second agent's records", || {
        c.received().len() == sent + 5
    })
    .await;
    let s = c.tls_stats();
    assert!(s.reloads >= 1, "{s:?}");
    assert_ne!(
        s.certificate_not_after, before,
        "the new certificate is in use"
    );
    assert!(
        s.handshake_failures.is_empty(),
        "{:?}",
        s.handshake_failures
    );
    let stats = e.finish().await;
    assert_eq!(stats.records_sent as usize, sent);
    assert_eq!(stats.connects, 1, "the first agent's connection stayed up");
}
