//! The query API of `flowlens collector` over HTTP, fed by gRPC: pages and
//! cursors, filters, top-K, series, topology, export, validation and
//! completion, and a clear 400 for every kind of bad request. No root
//! needed.

mod lab;

use flowlens_model::FlowRecord;
use flowlens_wire::convert::to_pb;
use flowlens_wire::pbflow;
use lab::{Agent, free_local_addr, sh};
use serde_json::Value;

/// `n` flows ending in the last minute, 10 ms apart (closer when there
/// are more than 6,000).
fn flows(n: usize) -> Vec<FlowRecord> {
    let now = lab::now_ms();
    let offset = |i: usize| (i as i64 * 60_000) / n.max(6_000) as i64;
    (0..n)
        .map(|i| FlowRecord {
            src_addr: format!("198.18.0.{}", 1 + i % 5).into(),
            dst_addr: "198.18.1.1".into(),
            src_port: (30000 + i % 30000) as u16,
            dst_port: if i % 4 == 0 { 53 } else { 443 },
            proto: if i % 4 == 0 { 17 } else { 6 },
            etype: 0x800,
            bytes: 100 + i as u64,
            packets: 1,
            time_flow_start_ms: now - 60_000 + offset(i),
            time_flow_end_ms: now - 60_000 + offset(i) + 5,
            interfaces: vec!["eth0".into()],
            if_directions: vec![1],
            dns_id: (i % 4 == 0).then_some(i as u16),
            dns_flags: (i % 4 == 0).then_some(if i % 8 == 0 { 0x8183 } else { 0x8180 }),
            dns_latency_ms: (i % 4 == 0).then_some(1.5),
            ..Default::default()
        })
        .collect()
}

/// (status code, body) of a GET.
fn get(listen: &str, path: &str) -> (u16, String) {
    let out = sh(&format!(
        "curl -s -o /dev/stdout -w '\\n%{{http_code}}' 'http://{listen}{path}'"
    ));
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn json(listen: &str, path: &str) -> Value {
    let (code, body) = get(listen, path);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A collector with a data directory of its own (`name`, removed when
/// stopped), its gRPC and HTTP addresses, and `extra` flags.
struct StoreCollector {
    collector: Agent,
    grpc: String,
    listen: String,
    dir: std::path::PathBuf,
}

impl StoreCollector {
    fn start(name: &str, extra: &[&str]) -> StoreCollector {
        let grpc = free_local_addr();
        let listen = free_local_addr();
        let dir = std::env::temp_dir().join(format!("flowlens-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut args = vec![
            "--listen",
            listen.as_str(),
            "--data-dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let collector = Agent::start_collector(&grpc, &args);
        StoreCollector {
            collector,
            grpc,
            listen,
            dir,
        }
    }

    fn stop(self) -> lab::AgentRun {
        let run = self.collector.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        run
    }
}

#[test]
fn the_api_answers_and_refuses_clearly() {
    let server = StoreCollector::start("api", &["--log-types", "Flows"]);
    let listen = server.listen.clone();
    send_records(&server.grpc, 200);

    // Paging: 200 records in pages of 60, newest first, each once.
    let mut seen = Vec::new();
    let mut path = "/api/flows?limit=60&since=1h".to_string();
    loop {
        let page = json(&listen, &path);
        let records = page["records"].as_array().unwrap();
        seen.extend(records.iter().map(|r| r["SrcPort"].as_u64().unwrap()));
        match page["cursor"].as_str() {
            Some(c) => path = format!("/api/flows?limit=60&since=1h&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, (30000..30200).rev().collect::<Vec<u64>>());

    let nx = json(
        &listen,
        "/api/flows?since=1h&limit=1000&filter=dns.rcode%20%3D%20NXDomain",
    );
    assert_eq!(nx["records"].as_array().unwrap().len(), 25);
    let top = json(&listen, "/api/top?since=1h&by=src.addr&metric=flows&k=2");
    assert_eq!(top["entries"].as_array().unwrap().len(), 2);
    assert_eq!(top["entries"][0]["value"], 40.0);
    let dns = json(
        &listen,
        "/api/top?since=1h&by=dns.rcode&metric=dns_latency_p90",
    );
    assert_eq!(dns["entries"][0]["value"], 1.5);
    let series = json(&listen, "/api/series?since=1h&step=1m&metric=packets");
    let total: f64 = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 200.0);
    let topo = json(&listen, "/api/topology?since=1h&scope=namespace");
    assert_eq!(topo["edges"][0]["records"], 200);
    let (code, csv) = get(&listen, "/api/export?since=1h&format=csv&limit=3");
    assert_eq!(code, 200);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("_Id,SrcAddr,DstAddr,SrcPort"), "{csv}");
    let as_json = json(&listen, "/api/export?since=1h&format=json&limit=3");
    assert_eq!(as_json.as_array().unwrap().len(), 3);
    let valid = json(&listen, "/api/filter/validate?filter=dns.rcod%20%3D%203");
    assert_eq!(valid["valid"], false);
    assert_eq!(valid["error"]["suggestion"], "dns.rcode");
    let done = json(&listen, "/api/filter/complete?filter=dns.rcode%20%3D%20NX");
    assert_eq!(done["items"][0]["text"], "NXDomain");
    assert!(json(&listen, "/api/fields").as_array().unwrap().len() > 40);

    // The console: its page at / and at any view's URL, its hashed files,
    // and no page in place of an API route that does not exist.
    for path in ["/", "/?view=flows&quick=dns_errors"] {
        let (code, page) = get(&listen, path);
        assert_eq!(code, 200);
        assert!(page.contains("<div id=\"app\">"), "{path}: {page}");
    }
    let (_, page) = get(&listen, "/");
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let (code, body) = get(&listen, script);
    assert_eq!(code, 200);
    assert!(body.len() > 10_000, "{script} is {} bytes", body.len());
    assert_eq!(get(&listen, "/assets/gone-1234.js").0, 404);
    let (code, body) = get(&listen, "/api/nothing");
    assert_eq!(code, 404);
    assert!(body.contains("no API route /api/nothing"), "{body}");

    for (path, says) in [
        ("/api/flows?bogus=1", "unknown parameter `bogus`"),
        (
            "/api/flows?filter=dns.rcod%3D3",
            "did you mean `dns.rcode`?",
        ),
        (
            "/api/flows?since=yesterday",
            "since: `yesterday` is not a time",
        ),
        ("/api/flows?since=1h&until=2h", "the time range is empty"),
        ("/api/flows?limit=0", "limit: expected a number"),
        ("/api/flows?cursor=abc", "cursor: `abc`"),
        ("/api/top?by=dst.nmespace", "did you mean `dst.namespace`?"),
        ("/api/top?metric=speed", "metric: `speed`"),
        ("/api/series?step=1ms", "step: `1ms`"),
        ("/api/topology?scope=galaxy", "scope: `galaxy`"),
        ("/api/export?format=xml", "format: `xml`"),
    ] {
        let (code, body) = get(&listen, path);
        assert_eq!(code, 400, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    let (_, body) = get(&listen, "/api/flows?filter=dns.rcod%3D3");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["detail"]["position"], 0);
    let _ = server.stop();
}

/// Every hostile request of docs/reliability.md: a 4xx within a second,
/// and the process still answers /status after each.
#[test]
fn hostile_requests_are_refused_and_the_process_stays_up() {
    let server = StoreCollector::start("hostile", &[]);
    let listen = server.listen.clone();
    let nested = "(".repeat(3000);
    let long_name = "x".repeat(30_000);
    let deep_not = "not%20".repeat(200);
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("/api/filter/validate?filter={nested}"),
            200,
            "limit of 128 levels",
        ),
        (
            format!("/api/flows?filter={nested}"),
            400,
            "limit of 128 levels",
        ),
        (
            format!("/api/flows?filter={deep_not}proto%3Dudp"),
            400,
            "limit of 128 levels",
        ),
        (
            format!("/api/filter/complete?filter={}", "a".repeat(20_000)),
            400,
            "16384 bytes",
        ),
        (
            format!("/api/flows?filter={long_name}%3D1"),
            400,
            "16384 bytes",
        ),
        (
            format!("/api/flows?filter={}%3D1", &long_name[..16_000]),
            400,
            "unknown field",
        ),
        (format!("/api/top?by={long_name}"), 400, "unknown field"),
        (
            "/api/flows?since=2025-11-29T07:06:40.%C3%A9%C3%A9Z".into(),
            400,
            "not a time",
        ),
        (
            "/api/flows?since=-9223372036854775808&until=9223372036854775807".into(),
            400,
            "outside",
        ),
        (
            "/api/series?since=0&until=253402300799999&step=1s".into(),
            400,
            "more than 10000 points",
        ),
        ("/api/series?step=99999999999999999999d".into(), 400, "step"),
        ("/api/flows?limit=-1".into(), 400, "limit"),
        ("/api/flows?limit=99999999999999999999".into(), 400, "limit"),
        ("/api/flows?cursor=%F0%9F%98%80.%00".into(), 400, "cursor"),
        (
            "/api/flows?cursor=99999999999999999999.1".into(),
            400,
            "cursor",
        ),
        ("/api/filter/complete?cursor=-5".into(), 400, "cursor"),
    ];
    let mut table = Vec::new();
    for (path, want, needle) in &cases {
        let started = std::time::Instant::now();
        let (code, body) = get(&listen, path);
        let took = started.elapsed();
        let shown: String = path.chars().take(60).collect();
        assert_eq!(code, *want, "{shown}: {body}");
        assert!(body.contains(needle), "{shown}: {body}");
        assert!(
            took < std::time::Duration::from_secs(1),
            "{shown} took {took:?}"
        );
        let (status, _) = get(&listen, "/status");
        assert_eq!(status, 200, "the process answers after {shown}");
        table.push(format!("{shown} → {code} in {took:?}"));
    }
    eprintln!("{}", table.join("\n"));
    let _ = server.stop();
}

/// A query past its deadline is stopped and answered 504; the budget is
/// the user's to set.
#[test]
fn a_query_past_its_deadline_is_a_504() {
    let server = StoreCollector::start("deadline", &["--query-timeout", "0s"]);
    let listen = server.listen.clone();
    let (code, body) = get(&listen, "/api/flows");
    assert_eq!(code, 504, "{body}");
    assert!(body.contains("--query-timeout"), "{body}");
    let (code, _) = get(&listen, "/metrics");
    assert_eq!(code, 200);
    let _ = server.stop();
}

/// A `/proc/<pid>/status` figure in KiB (VmRSS, VmHWM).
fn memory_kib(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/status"))
}

/// Sends `n` records in calls of 20,000 (the most a call may carry).
fn send_records(grpc: &str, n: usize) {
    lab::send_flows(grpc, &flows(n));
}

/// An export of more rows than fit comfortably in memory streams them:
/// every row once, and the collector's peak memory while it answers grows
/// by a small fraction of what the rows would take as one string.
#[test]
fn a_large_export_streams_in_constant_memory_and_a_client_leaving_frees_its_slot() {
    const ROWS: usize = 200_000;
    let server = StoreCollector::start(
        "export",
        &["--query-timeout", "5m", "--max-concurrent-queries", "1"],
    );
    let started = std::time::Instant::now();
    send_records(&server.grpc, ROWS);
    eprintln!("sent {ROWS} records in {:?}", started.elapsed());
    let pid = server.collector.pid();
    // The store's last flush of the ingest done (its encode would count).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while lab::status_json(&server.listen)["store"]["buffered_records"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the store never flushed"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // An export of a tenth of the rows, then of all: the peak memory each
    // adds (from a reset) is one store file decoded (at most 64 Ki rows)
    // and a page, whatever the rows; kept in memory, ten times the rows
    // would take ten times it (the whole export's text alone is 78 MB).
    let export = |rows: usize| {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        let before = memory_kib(pid, "VmHWM");
        let out =
            std::env::temp_dir().join(format!("flowlens-export-{}.jsonl", std::process::id()));
        let started = std::time::Instant::now();
        let code = sh(&format!(
            "curl -s -o {} -w '%{{http_code}}' 'http://{}/api/export?since=1h&format=jsonl&limit={rows}'",
            out.display(),
            server.listen
        ));
        let took = started.elapsed();
        let growth = memory_kib(pid, "VmHWM").saturating_sub(before);
        assert_eq!(code.trim(), "200");
        let text = std::fs::read_to_string(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        let mut ids = std::collections::HashSet::new();
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            assert!(ids.insert(record["_Id"].as_u64().unwrap()), "a row twice");
        }
        assert_eq!(ids.len(), rows, "every row once");
        let size_kib = text.len() as u64 / 1024;
        eprintln!(
            "exported {rows} rows ({size_kib} KiB) in {took:?}; peak memory grew {growth} KiB from {before} KiB"
        );
        (growth, size_kib, took)
    };
    let (small, _, _) = export(ROWS / 10);
    let (all, size_kib, whole_export) = export(ROWS);
    assert!(
        all < small + (64 << 10),
        "the peak grew {all} KiB for a {size_kib} KiB export, {small} KiB for a tenth of it"
    );

    // A client that goes away frees the only query slot at once: its scan
    // or export stops instead of running to the end for nobody. (The whole
    // export's time is the one just measured, for the same query.)
    let full_export = format!("/api/export?since=1h&format=jsonl&limit={ROWS}");
    let large_scan = "/api/flows?since=1h&limit=100000&filter=bytes%3E0";
    let started = std::time::Instant::now();
    let (code, _) = get(&server.listen, large_scan);
    assert_eq!(code, 200);
    let whole_scan = started.elapsed();
    for (path, whole) in [
        (large_scan, whole_scan),
        (full_export.as_str(), whole_export),
    ] {
        let _ = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "0.3"])
            .arg(format!("http://{}{path}", server.listen))
            .status();
        let started = std::time::Instant::now();
        let (code, _) = get(&server.listen, "/api/flows?since=1h&limit=1");
        let next = started.elapsed();
        eprintln!(
            "{path}: whole {whole:?}; the next query after its client left at 0.3 s: {next:?}"
        );
        assert_eq!(code, 200);
        assert!(
            whole > std::time::Duration::from_secs(1),
            "{path} took {whole:?}"
        );
        assert!(
            next < whole / 2,
            "{path}: the slot was held {next:?} (whole: {whole:?})"
        );
    }
    let _ = server.stop();
}

/// Sends one gRPC `Collector/Send` request whose message is `payload`
/// with curl over HTTP/2: the grpc-status the collector answers, if the
/// answer came before the collector reset the stream (it does not read a
/// message past the size limit to its end).
fn raw_send(grpc: &str, payload: &[u8]) -> Option<String> {
    let file = std::env::temp_dir().join(format!("flowlens-raw-{}", std::process::id()));
    let mut body = vec![0u8];
    body.extend((payload.len() as u32).to_be_bytes());
    body.extend(payload);
    std::fs::write(&file, body).unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{grpc}/pbflow.Collector/Send"))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("grpc-status: "))
        .map(|s| s.trim().to_string())
}

/// A message of millions of empty records is refused before it is decoded
/// and a message past the size limit before it is read: the collector's
/// peak memory hardly moves, and it goes on storing what agents send.
#[test]
fn oversized_and_overfull_messages_are_refused_within_the_memory_bound() {
    let server = StoreCollector::start("oversized", &[]);
    let pid = server.collector.pid();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = memory_kib(pid, "VmHWM");
    // 8 MiB (the largest message) of empty records: 4 Mi records.
    let empty_records = [0x0a, 0x00].repeat(4 << 20);
    assert_eq!(
        raw_send(&server.grpc, &empty_records).as_deref(),
        Some("11"),
        "OUT_OF_RANGE: too many records"
    );
    // 60 MiB: refused by its frame header (counted below).
    let big = vec![0x0a; 60 << 20];
    let answer = raw_send(&server.grpc, &big);
    assert!(matches!(answer.as_deref(), None | Some("11")), "{answer:?}");
    let growth = memory_kib(pid, "VmHWM").saturating_sub(before);
    eprintln!("peak memory grew {growth} KiB for the refused messages");
    assert!(growth < 48 << 10, "peak memory grew {growth} KiB");
    send_records(&server.grpc, 10);
    let page = json(&server.listen, "/api/flows?since=1h");
    assert_eq!(page["records"].as_array().unwrap().len(), 10);
    let status = lab::status_json(&server.listen);
    assert_eq!(status["receiver"]["requests_refused"]["OutOfRange"], 2);
    let _ = server.stop();
}

/// Whether the server closed `conn` within `within` (a read ends).
fn closed_within(conn: &mut std::net::TcpStream, within: std::time::Duration) -> bool {
    use std::io::Read;
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A client trickling its headers (slowloris) is cut off after the header
/// timeout, connections past the limit are closed at once, and /metrics
/// and /status answer within a second while every query slot is held by
/// an export whose client reads slowly.
#[test]
fn slow_and_excess_http_clients_are_cut_off_and_metrics_stay_fast() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let server = StoreCollector::start(
        "slowloris",
        &[
            "--http-header-timeout",
            "1s",
            "--max-http-connections",
            "4",
            "--max-concurrent-queries",
            "1",
        ],
    );
    let listen = server.listen.clone();
    // Slowloris: a header line every 300 ms, never the end of them.
    let mut slow = std::net::TcpStream::connect(&listen).unwrap();
    slow.write_all(b"GET /status HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let trickle = {
        let mut slow = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for i in 0..20 {
                std::thread::sleep(Duration::from_millis(300));
                if slow.write_all(format!("X-{i}: y\r\n").as_bytes()).is_err() {
                    break;
                }
            }
        })
    };
    assert!(closed_within(&mut slow, Duration::from_secs(5)));
    let cut = started.elapsed();
    assert!(cut < Duration::from_secs(3), "cut off after {cut:?}");
    trickle.join().unwrap();

    // Four idle connections take every place; a fifth is closed at once.
    let idle: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(&listen).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = std::net::TcpStream::connect(&listen).unwrap();
    assert!(closed_within(&mut fifth, Duration::from_millis(500)));
    drop(idle);
    std::thread::sleep(Duration::from_millis(1500));

    // The only query slot, held by an export read at 2 KB/s.
    send_records(&server.grpc, 40_000);
    let mut export = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--limit-rate", "2k"])
        .arg(format!(
            "http://{listen}/api/export?since=1h&limit=40000&format=jsonl"
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // A query waits for the slot meanwhile (and is refused after 10 s).
    let waiting = {
        let listen = listen.clone();
        std::thread::spawn(move || get(&listen, "/api/flows?since=1h&limit=1").0)
    };
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        for path in ["/metrics", "/status"] {
            let started = Instant::now();
            let (code, _) = get(&listen, path);
            slowest = slowest.max(started.elapsed());
            assert_eq!(code, 200, "{path}");
        }
    }
    eprintln!("slowest /metrics or /status with the query slot held: {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    assert_eq!(waiting.join().unwrap(), 503, "the slot was held all along");
    let status = lab::status_json(&listen);
    let http = &status["http"];
    assert!(http["connections_refused"].as_u64().unwrap() >= 1, "{http}");
    assert!(
        http["connections_accepted"].as_u64().unwrap() >= 5,
        "{http}"
    );
    let _ = export.kill();
    let _ = export.wait();
    let _ = server.stop();
}

/// A batch sent again with its id (its answer was lost) is answered and
/// counted, and its records are stored once.
#[test]
fn a_batch_sent_again_is_stored_once_and_counted() {
    let server = StoreCollector::start("resent", &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client =
            pbflow::collector_client::CollectorClient::connect(format!("http://{}", server.grpc))
                .await
                .unwrap();
        let batch = pbflow::Records {
            entries: flows(7).iter().map(to_pb).collect(),
            batch: Some(pbflow::BatchId {
                agent: "node-1/42".into(),
                sequence: 1,
            }),
            ..Default::default()
        };
        for _ in 0..3 {
            client.send(batch.clone()).await.unwrap();
        }
    });
    let page = json(&server.listen, "/api/flows?since=1h");
    assert_eq!(page["records"].as_array().unwrap().len(), 7);
    let status = lab::status_json(&server.listen);
    assert_eq!(
        status["ingest"]["duplicate_batches"], 2,
        "{}",
        status["ingest"]
    );
    let _ = server.stop();
}

/// Status and headers of a GET with `Host: host`.
fn get_as(listen: &str, host: &str, path: &str) -> (u16, String) {
    let out = sh(&format!(
        "curl -s -D - -o /dev/null -w '%{{http_code}}' -H 'Host: {host}' 'http://{listen}{path}'"
    ));
    let (headers, code) = out.trim_end().rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), headers.to_ascii_lowercase())
}

#[test]
fn a_loopback_listener_answers_loopback_hosts_only_with_security_headers() {
    let server = StoreCollector::start("hostcheck", &[]);
    let port = server.listen.rsplit_once(':').unwrap().1.to_string();
    // A page of another origin, rebound to 127.0.0.1, names its own host.
    for host in [
        "evil.example",
        &format!("evil.example:{port}"),
        "198.18.0.1",
    ] {
        let (code, _) = get_as(&server.listen, host, "/api/flows?since=1h");
        assert_eq!(code, 403, "Host: {host}");
    }
    let (code, _) = get_as(&server.listen, "evil.example", "/");
    assert_eq!(code, 403, "the console too");
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let (code, headers) = get_as(&server.listen, &host, "/api/flows?since=1h");
        assert_eq!(code, 200, "Host: {host}");
        for header in [
            "x-content-type-options: nosniff",
            "cache-control: no-store",
            "referrer-policy: no-referrer",
            "x-frame-options: deny",
        ] {
            assert!(headers.contains(header), "{header} in {headers}");
        }
    }
    let (code, headers) = get_as(&server.listen, "localhost", "/");
    assert_eq!(code, 200);
    assert!(
        headers.contains("content-security-policy: default-src 'self'"),
        "{headers}"
    );
    let (code, _) = get(
        &server.listen,
        "/api/top?since=1h&by=dst.port&filter=proto%20%3D%206",
    );
    assert_eq!(code, 200);
    let run = server.stop();
    // One audit line per query answered (the refused ones never ran).
    let audits: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(" audit token="))
        .collect();
    assert_eq!(audits.len(), 3, "{}", run.stderr);
    let top = audits
        .iter()
        .find(|l| l.contains("endpoint=\"/api/top\""))
        .expect("the top query");
    for part in [
        "filter=\"proto = 6\"",
        "rows=\"0\"",
        "status=200",
        "token=\"-\"",
        "duration_ms=",
    ] {
        assert!(top.contains(part), "{part} in {top}");
    }
}
