//! The console end to end: `flowlens demo` builds its lab and runs `up`,
//! and console/e2e/console.mjs drives the console in headless Chromium
//! (Debian's chromium, playwright-core from the console's lock file): the
//! DNS-errors quick filter, the drops view, topology, URLs that reproduce a
//! view, completion and inline errors, conversations, themes; screenshots go
//! to target/console-screenshots/. The demo's traffic stops after 45 s, so
//! the figures stop moving: once the store holds exactly what every
//! workload's eth0 sent, the script compares the console's numbers with the
//! API's and with those counters. Needs root and chromium (scripts/test
//! installs it).

mod lab;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's workloads (their namespaces, removed when it stops) and
/// their addresses (crates/cli/src/demo/lab.rs).
const DEMO_WORKLOADS: &[(&str, &str)] = &[
    ("shop.frontend", "198.18.10.10"),
    ("shop.backend", "198.18.10.20"),
    ("data.database", "198.18.10.30"),
    ("data.legacy", "198.18.10.40"),
    ("infra.dns", "198.18.10.53"),
];

/// How long the demo's workloads send.
const TRAFFIC_FOR: Duration = Duration::from_secs(45);

/// Bytes the store holds by source address over [since, until), by
/// /api/top.
fn stored_bytes_by_source(
    listen: &str,
    since: i64,
    until: i64,
) -> std::collections::HashMap<String, u64> {
    let body = lab::sh(&format!(
        "curl -sf 'http://{listen}/api/top?by=src.addr&metric=bytes&k=100&since={since}&until={until}'"
    ));
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["value"].as_f64().unwrap() as u64,
            )
        })
        .collect()
}

fn api_count(listen: &str, filter: &str, limit: usize) -> usize {
    let out = lab::stdout_of(
        lab::flowlens()
            .args([
                "flows",
                "--server",
                &format!("http://{listen}"),
                "--since",
                "30m",
            ])
            .args([
                "--limit",
                &limit.to_string(),
                "--output",
                "json",
                "--filter",
                filter,
            ]),
    );
    String::from_utf8_lossy(&out).lines().count()
}

/// Stops the demo (SIGINT, then SIGKILL) when a failed check unwinds past
/// it, so that a failure leaves no demo running to disturb the next test.
struct StopDemoOnFailure {
    pid: i32,
    stopped: bool,
}

impl Drop for StopDemoOnFailure {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid, libc::SIGINT) };
        std::thread::sleep(Duration::from_secs(5));
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

#[test]
fn the_console_shows_the_demo_lab() {
    let _serial = lab::serial();
    lab::require_root();
    let chromium =
        std::env::var("FLOWLENS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the console tests need Chromium at {chromium} (apt-get install chromium; scripts/test does)"
    );
    let listen = lab::free_local_addr();
    // Every record of the demo falls in [since, until).
    let since = lab::now_ms() - 60_000;
    let data_dir = std::env::temp_dir().join(format!("flowlens-demo-test-{}", std::process::id()));
    let mut demo = lab::flowlens()
        .args(["demo", "--listen", &listen, "--data-dir"])
        .arg(&data_dir)
        .arg("--traffic-for")
        .arg(format!("{}s", TRAFFIC_FOR.as_secs()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = StopDemoOnFailure {
        pid: demo.id() as i32,
        stopped: false,
    };
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("demo ended before printing the console URL")
            .unwrap();
        if let Some(url) = line.strip_prefix("flowlens demo: console at ") {
            break url.to_string();
        }
    };
    assert_eq!(url, format!("http://{listen}/"));
    for (ns, _) in DEMO_WORKLOADS {
        assert!(
            lab::sh("ip netns list").contains(ns),
            "demo lacks namespace {ns}"
        );
    }

    let traffic_started = Instant::now();
    // What the checks look for: NXDOMAIN answers, policy drops, timeouts,
    // and a thousand flows for the table's figures.
    let deadline = Instant::now() + Duration::from_secs(120);
    while api_count(&listen, "dns.rcode = NXDomain", 10) == 0
        || api_count(&listen, "drop.cause = NETFILTER_DROP", 10) == 0
        || api_count(&listen, "conn.outcome = timed_out", 10) == 0
        || api_count(&listen, "bytes > 0", 1000) < 1000
    {
        assert!(
            Instant::now() < deadline,
            "the demo's traffic did not reach the store in 2 minutes"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    // The traffic stops; then the store holds, byte for byte, what each
    // workload's eth0 sent (the agent attached before the first packet).
    std::thread::sleep(TRAFFIC_FOR.saturating_sub(traffic_started.elapsed()));
    let until = lab::now_ms() + 10 * 60_000;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut previous = Vec::new();
    let workloads = loop {
        let sent: Vec<(&str, &str, lab::Counters)> = DEMO_WORKLOADS
            .iter()
            .map(|(netns, addr)| (*netns, *addr, lab::interface_counters(netns, "eth0")))
            .collect();
        let stored = stored_bytes_by_source(&listen, since, until);
        let all_stored = sent
            .iter()
            .all(|(_, addr, c)| stored.get(*addr).copied().unwrap_or(0) == c.tx_bytes);
        // Stored and still: nothing sent since the last look.
        if all_stored && sent == previous {
            break sent;
        }
        assert!(
            Instant::now() < deadline,
            "a minute after the traffic stopped the store does not hold what the workloads sent: {sent:?} vs {stored:?}"
        );
        previous = sent;
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(
        workloads.iter().filter(|(_, _, c)| c.tx_bytes > 0).count() >= 4,
        "every workload but the one that is down sent: {workloads:?}"
    );
    let truth = serde_json::json!({
        "since_ms": since,
        "until_ms": until,
        "workloads": workloads
            .iter()
            .map(|(netns, addr, c)| serde_json::json!({
                "netns": netns,
                "addr": addr,
                "tx_bytes": c.tx_bytes,
                "tx_packets": c.tx_packets,
            }))
            .collect::<Vec<_>>(),
    });

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shots = root.join("target/console-screenshots");
    let out = Command::new("node")
        .arg(root.join("console/e2e/console.mjs"))
        .arg(&url)
        .arg(&shots)
        .env("FLOWLENS_CHROMIUM", &chromium)
        .env("FLOWLENS_LAB_TRUTH", truth.to_string())
        .output()
        .expect("node (the console is built with it)");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "console checks failed:\n{report}");
    for shot in [
        "overview.png",
        "flows-dns-errors.png",
        "flows-drops.png",
        "topology.png",
        "conversations.png",
    ] {
        assert!(shots.join(shot).exists(), "no screenshot {shot}");
    }

    // Ctrl-C: everything stops and the lab is gone.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(demo.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "demo did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    guard.stopped = true;
    assert!(status.success(), "demo exited with {status}");
    let left = lab::sh("ip netns list");
    for (ns, _) in DEMO_WORKLOADS {
        assert!(!left.contains(ns), "{ns} left behind");
    }
    assert!(
        !lab::sh("ip -br link").contains("fldemo"),
        "demo interfaces left behind"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
