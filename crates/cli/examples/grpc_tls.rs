//! What TLS costs on the agents' link: the same records sent by the
//! exporter to the receiver over loopback gRPC, plaintext, TLS and mutual
//! TLS, in one run (rounds alternate, the median is kept), as records per
//! second of wall time and per CPU second of the process (both ends).
//!
//!   cargo run --release -p flowlens --example grpc_tls [RECORDS] [ROUNDS]

use flowlens_model::FlowRecord;
use flowlens_tls::test_pki::{Leaf, TestCa};
use flowlens_tls::{ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles};
use flowlens_wire::connections::BoundedListener;
use flowlens_wire::exporter::{Exporter, ExporterConfig};
use flowlens_wire::receiver::{Batch, Receiver, ReceiverLimits, serve};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Plaintext,
    Tls,
    Mutual,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Link::Plaintext => "plaintext",
            Link::Tls => "TLS",
            Link::Mutual => "mutual TLS",
        }
    }
}

fn records(n: usize) -> Vec<FlowRecord> {
    (0..n)
        .map(|i| FlowRecord {
            src_addr: std::net::IpAddr::from(std::net::Ipv4Addr::from(
                0xC612_0000 + (i % 50_000) as u32,
            ))
            .into(),
            dst_addr: "198.18.1.1".into(),
            src_port: (1024 + i % 60_000) as u16,
            dst_port: 443,
            proto: 6,
            etype: 0x800,
            bytes: 1500 * (1 + i as u64 % 7),
            packets: 1 + i as u64 % 7,
            flags: 0x18,
            time_flow_start_ms: 1_764_400_000_000 + i as i64,
            time_flow_end_ms: 1_764_400_000_500 + i as i64,
            interfaces: vec!["eth0".into()],
            if_directions: vec![1],
            agent_ip: "198.18.0.1".into(),
            sampling: 1,
            ..Default::default()
        })
        .collect()
}

/// CPU seconds this process has used.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

struct Certificates {
    server: ServerTlsFiles,
    ca: std::path::PathBuf,
    node: (std::path::PathBuf, std::path::PathBuf),
}

/// Sends `records` over `link`; (wall seconds, CPU seconds).
async fn round(link: Link, certs: &Certificates, records: &[FlowRecord]) -> (f64, f64) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (queue, mut batches) = tokio::sync::mpsc::channel::<Batch>(64);
    let limits = ReceiverLimits::default();
    let listener = BoundedListener::new(listener, limits.connections());
    let receiver = Receiver::new(queue, limits);
    let received = Arc::new(AtomicU64::new(0));
    let counting = received.clone();
    tokio::spawn(async move {
        while let Some(batch) = batches.recv().await {
            counting.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
            batch.answer.ok();
        }
    });
    let server_tls = match link {
        Link::Plaintext => None,
        Link::Tls => Some(ServerTlsFiles {
            client_ca: None,
            ..certs.server.clone()
        }),
        Link::Mutual => Some(certs.server.clone()),
    }
    .map(|files| Arc::new(ServerTls::new(files, &[b"h2"], Duration::from_secs(10)).unwrap()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, server_tls, receiver, None, async {
        let _ = stopped.await;
    }));
    let client_tls = (link != Link::Plaintext).then(|| {
        let mut files = ClientTlsFiles {
            ca: Some(certs.ca.clone()),
            ..ClientTlsFiles::default()
        };
        if link == Link::Mutual {
            files.cert = Some(certs.node.0.clone());
            files.key = Some(certs.node.1.clone());
        }
        Arc::new(ClientTls::new(files, &[b"h2"]).unwrap())
    });
    let exporter = Exporter::start(ExporterConfig {
        tls: client_tls,
        ..ExporterConfig::new(&addr.to_string())
    })
    .unwrap();
    let (started, cpu_started) = (Instant::now(), cpu_seconds());
    for chunk in records.chunks(10_000) {
        while exporter.stats().buffered_records > 50_000 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        exporter.enqueue(chunk);
    }
    while received.load(Ordering::Relaxed) < records.len() as u64 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let spent = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu_started);
    let stats = exporter.finish().await;
    assert_eq!(stats.records_sent as usize, records.len());
    let _ = stop.send(());
    spent
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .map_or(1_000_000, |a| a.parse().expect("RECORDS"));
    let rounds: usize = args.get(1).map_or(3, |a| a.parse().expect("ROUNDS"));
    let dir = std::env::temp_dir().join(format!("flowlens-grpc-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new("flowlens benchmark CA");
    let server = ca.issue(&Leaf::named("localhost", &["127.0.0.1"]), &dir, "collector");
    let node = ca.issue(&Leaf::named("node-1", &["198.18.0.1"]), &dir, "node-1");
    let certs = Certificates {
        server: ServerTlsFiles {
            cert: server.cert,
            key: server.key,
            client_ca: Some(ca.write(&dir.join("ca.crt"))),
        },
        ca: dir.join("ca.crt"),
        node: (node.cert, node.key),
    };
    let records = records(n);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let links = [Link::Plaintext, Link::Tls, Link::Mutual];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); links.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); links.len()];
    for _ in 0..rounds {
        for (i, link) in links.iter().enumerate() {
            let (w, c) = runtime.block_on(round(*link, &certs, &records));
            wall[i].push(n as f64 / w);
            cpu[i].push(n as f64 / c);
        }
    }
    let base = (median(wall[0].clone()), median(cpu[0].clone()));
    println!(
        "{n} records per round, {rounds} rounds, exporter -> receiver over loopback gRPC (median)"
    );
    println!("| link | records/s | ratio | records per CPU second | ratio |");
    println!("|---|---|---|---|---|");
    for (i, link) in links.iter().enumerate() {
        let (w, c) = (median(wall[i].clone()), median(cpu[i].clone()));
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} |",
            link.name(),
            w,
            w / base.0,
            c,
            c / base.1
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
