//! The console end to end: `flowlens demo` builds its lab and runs `up`,
//! and console/e2e/console.mjs drives the console in headless Chromium
//! (Debian's chromium, playwright-core from the console's lock file): the
//! DNS-errors quick filter, the drops view, topology, URLs that reproduce a
//! view, completion and inline errors, conversations, themes; screenshots go
//! to target/console-screenshots/. Needs root and chromium (scripts/test
//! installs it).

mod lab;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's namespaces (removed when it stops).
const DEMO_NETNS: &[&str] = &[
    "shop.frontend",
    "shop.backend",
    "data.database",
    "data.legacy",
    "infra.dns",
];

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
    let data_dir = std::env::temp_dir().join(format!("flowlens-demo-test-{}", std::process::id()));
    let mut demo = lab::flowlens()
        .args(["demo", "--listen", &listen, "--data-dir"])
        .arg(&data_dir)
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
    for ns in DEMO_NETNS {
        assert!(
            lab::sh("ip netns list").contains(ns),
            "demo lacks namespace {ns}"
        );
    }

    // Wait for what the checks look for: NXDOMAIN answers, policy drops,
    // and a thousand flows for the table benchmark.
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

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shots = root.join("target/console-screenshots");
    let out = Command::new("node")
        .arg(root.join("console/e2e/console.mjs"))
        .arg(&url)
        .arg(&shots)
        .env("FLOWLENS_CHROMIUM", &chromium)
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
    for ns in DEMO_NETNS {
        assert!(!left.contains(ns), "{ns} left behind");
    }
    assert!(
        !lab::sh("ip -br link").contains("fldemo"),
        "demo interfaces left behind"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
