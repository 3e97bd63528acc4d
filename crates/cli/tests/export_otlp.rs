//! OTLP export checked against a real OpenTelemetry collector: rotel (from
//! PyPI; scripts/test installs it and names it in FLOWLENS_ROTEL), once
//! receiving over gRPC and once over HTTP, each with a processor of the
//! test's (peers/otlp_dump.py) writing down every log record and metric
//! point it decoded. The log records are the store's flows, field for
//! field under netobserv's OpenTelemetry names (and the conversations'
//! records where asked); the last metrics push equals what /metrics says.

mod lab;

use lab::exports::{Key, flows, key_by, stored_keys, wait_until};
use lab::{free_local_addr, sh};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn rotel() -> PathBuf {
    std::env::var_os("FLOWLENS_ROTEL")
        .map(PathBuf::from)
        .expect("FLOWLENS_ROTEL: rotel-agent from PyPI's rotel (scripts/test installs it)")
}

/// rotel listening on a gRPC and an HTTP port, its processor writing to
/// `dump`.
struct Rotel {
    child: Child,
    grpc: String,
    http: String,
    dump: PathBuf,
}

impl Rotel {
    fn start(dir: &Path, name: &str) -> Rotel {
        let (grpc, http) = (free_local_addr(), free_local_addr());
        let dump = dir.join(format!("{name}.jsonl"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/otlp_dump.py");
        let child = Command::new(rotel())
            .args([
                "start",
                "--otlp-grpc-endpoint",
                &grpc,
                "--otlp-http-endpoint",
                &http,
            ])
            .args(["--exporter", "blackhole"])
            .arg("--otlp-with-logs-processor")
            .arg(&script)
            .arg("--otlp-with-metrics-processor")
            .arg(&script)
            .env("FLOWLENS_OTLP_DUMP", &dump)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rotel-agent");
        wait_until("rotel listens", || {
            std::net::TcpStream::connect(&grpc).is_ok()
                && std::net::TcpStream::connect(&http).is_ok()
        });
        Rotel {
            child,
            grpc,
            http,
            dump,
        }
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.dump)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line of the processor"))
            .collect()
    }

    fn logs(&self) -> Vec<serde_json::Map<String, Value>> {
        self.lines()
            .into_iter()
            .filter_map(|l| l.get("log").and_then(Value::as_object).cloned())
            .collect()
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An empty folder of the test's own.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowlens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A flow log record's key, read by netobserv's OpenTelemetry names.
fn log_key(a: &serde_json::Map<String, Value>) -> Key {
    key_by(
        a,
        [
            "source.address",
            "destination.address",
            "source.port",
            "destination.port",
            "protocol",
            "bytes",
            "packets",
        ],
    )
}

/// Each counter's total over its series in /metrics (`_total` removed).
fn prometheus_totals(listen: &str) -> BTreeMap<String, f64> {
    let text = sh(&format!("curl -s http://{listen}/metrics"));
    let mut totals = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("netobserv_")) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        if let Some(name) = name.strip_suffix("_total") {
            *totals.entry(name.to_string()).or_default() += value.parse::<f64>().unwrap();
        }
    }
    totals
}

/// Each sum's total over its points in the last push rotel decoded.
fn pushed_totals(rotel: &Rotel) -> BTreeMap<String, f64> {
    let lines = rotel.lines();
    let points: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "Sum").collect();
    // One push writes all its points together; the last push is the last
    // run of points after the last repeat of a (metric, labels).
    let mut last: BTreeMap<(String, String), f64> = BTreeMap::new();
    for p in points {
        let key = (
            p["metric"].as_str().unwrap().to_string(),
            p["labels"].to_string(),
        );
        last.insert(
            key,
            p["value"]
                .as_f64()
                .unwrap_or_else(|| panic!("a value in {p}")),
        );
    }
    let mut totals = BTreeMap::new();
    for ((name, _), v) in last {
        *totals.entry(name).or_default() += v;
    }
    totals
}

#[test]
fn an_opentelemetry_collector_receives_what_the_store_holds() {
    let _serial = lab::serial();
    let dir = fresh_dir("otlp");
    let over_grpc = Rotel::start(&dir, "grpc");
    let over_http = Rotel::start(&dir, "http");
    let (grpc, listen) = (free_local_addr(), free_local_addr());
    // gRPC from the FlowCollector file (netobserv's spec.exporters, logs
    // and metrics, flows and conversations); HTTP from flags, UDP flows
    // only, no metrics.
    let config = dir.join("flowcollector.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  exporters:\n    \
             - type: OpenTelemetry\n      name: otel\n      records: Both\n      openTelemetry:\n        \
             targetHost: 127.0.0.1\n        targetPort: {}\n        protocol: grpc\n        \
             logs:\n          enable: true\n        metrics:\n          enable: true\n          \
             pushTimeInterval: 1s\n",
            over_grpc.grpc.rsplit_once(':').unwrap().1
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
            &format!("udp=otlp+http://{}?metrics=false", over_http.http),
            "--export-filter",
            "udp=proto = 17",
        ],
    );
    lab::send_flows(&grpc, &flows());
    wait_until("50 records stored", || stored_keys(&listen).len() == 50);
    wait_until("the flows reached both collectors", || {
        let s = lab::status_json(&listen);
        // 50 flows and their 50 conversations' first records.
        s["export_otel"]["records_sent"].as_u64() >= Some(100)
            && s["export_udp"]["records_sent"] == 25
    });
    let stored = stored_keys(&listen);
    // Two pushes after the last flow was counted: the later one has it.
    let pushes = lab::status_json(&listen)["export_otel"]["metrics_pushes"]
        .as_u64()
        .unwrap();
    wait_until("two more metrics pushes", || {
        lab::status_json(&listen)["export_otel"]["metrics_pushes"].as_u64() >= Some(pushes + 2)
    });
    let exposed = prometheus_totals(&listen);
    let status = lab::status_json(&listen);
    collector.stop();

    let grpc_logs = over_grpc.logs();
    let flow_logs: BTreeSet<Key> = grpc_logs
        .iter()
        .filter(|a| !a.contains_key("_RecordType"))
        .map(log_key)
        .collect();
    assert_eq!(flow_logs.len(), 50, "{grpc_logs:?}");
    assert_eq!(flow_logs, stored, "rotel (gRPC) received the store's flows");
    let conversations: Vec<_> = grpc_logs
        .iter()
        .filter(|a| a.get("_RecordType").and_then(Value::as_str) == Some("newConnection"))
        .collect();
    assert_eq!(conversations.len(), 50, "one newConnection per connection");
    let udp: BTreeSet<Key> = over_http.logs().iter().map(log_key).collect();
    let stored_udp: BTreeSet<Key> = stored.iter().filter(|k| k.4 == 17).cloned().collect();
    assert_eq!(udp.len(), 25);
    assert_eq!(
        udp, stored_udp,
        "rotel (HTTP) received the store's UDP flows"
    );
    assert!(
        over_http.lines().iter().all(|l| l.get("metric").is_none()),
        "metrics=false pushes no metrics"
    );
    let pushed = pushed_totals(&over_grpc);
    assert!(
        !exposed.is_empty() && !pushed.is_empty(),
        "{exposed:?} {pushed:?}"
    );
    assert_eq!(pushed, exposed, "the last push is what /metrics says");
    let otel = &status["export_otel"];
    assert_eq!(otel["records_dropped_buffer_full"], 0, "{otel}");
    assert_eq!(otel["metrics_push_errors"], 0, "{otel}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// stunnel (Debian's, OpenSSL) terminating TLS in front of a rotel port:
/// a TLS peer flowlens's code had no part in.
struct Stunnel {
    child: Child,
}

impl Stunnel {
    /// Listens on `accept` with `server`'s certificate, forwarding to
    /// `connect`; with `client_ca`, a client certificate that CA signed is
    /// required.
    fn start(
        dir: &Path,
        accept: &str,
        connect: &str,
        server: &flowlens_tls::test_pki::Issued,
        client_ca: Option<&Path>,
    ) -> Stunnel {
        let name = accept.replace([':', '.'], "-");
        let mut config = format!(
            "foreground = yes\npid =\n[otlp]\naccept = {accept}\nconnect = {connect}\ncert = {}\nkey = {}\n",
            server.cert.display(),
            server.key.display()
        );
        if let Some(ca) = client_ca {
            config.push_str(&format!(
                "CAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
                ca.display()
            ));
        }
        let file = dir.join(format!("stunnel-{name}.conf"));
        std::fs::write(&file, config).unwrap();
        let child = Command::new("stunnel4")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel4 (scripts/test installs it)");
        wait_until("stunnel listens", || {
            std::net::TcpStream::connect(accept).is_ok()
        });
        Stunnel { child }
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OTLP over TLS to a real TLS server: gRPC with mutual TLS and HTTP with
/// the server's certificate checked both reach rotel through stunnel, and
/// what rotel received is the store's flows; a collector signed by another
/// CA, and a mutual-TLS server given no client certificate, get nothing
/// (each send failed and counted, the records kept buffered).
#[test]
fn otlp_over_tls_reaches_a_collector_that_checks_certificates() {
    use flowlens_tls::test_pki::{Leaf, TestCa};
    let _serial = lab::serial();
    let dir = fresh_dir("otlp-tls");
    let ca = TestCa::new("otel-ca");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let server = ca.issue(&Leaf::named("otel", &["127.0.0.1"]), &dir, "otel");
    let client = ca.issue(&Leaf::named("node-1", &["127.0.0.1"]), &dir, "node-1");
    let stranger_ca = TestCa::new("another-ca").write(&dir.join("another-ca.pem"));
    let over_grpc = Rotel::start(&dir, "grpc");
    let over_http = Rotel::start(&dir, "http");
    let (mutual, https) = (free_local_addr(), free_local_addr());
    let _grpc_tls = Stunnel::start(&dir, &mutual, &over_grpc.grpc, &server, Some(&ca_file));
    let _http_tls = Stunnel::start(&dir, &https, &over_http.http, &server, None);
    // The mutual one from the FlowCollector file, as netobserv writes it.
    let config = dir.join("flowcollector.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  exporters:\n    \
             - type: OpenTelemetry\n      name: mutual\n      openTelemetry:\n        \
             targetHost: 127.0.0.1\n        targetPort: {}\n        protocol: grpc\n        \
             metrics:\n          enable: false\n        tls:\n          enable: true\n          \
             caCert:\n            certFile: {}\n          userCert:\n            certFile: {}\n            \
             certKey: {}\n",
            mutual.rsplit_once(':').unwrap().1,
            ca_file.display(),
            client.cert.display(),
            client.key.display()
        ),
    )
    .unwrap();
    let (grpc, listen) = (free_local_addr(), free_local_addr());
    let ca_arg = ca_file.display().to_string();
    let collector = lab::exports::start_collector(
        &grpc,
        &listen,
        &dir,
        &config,
        &[
            "--export",
            &format!("https=otlp+http://{https}?metrics=false&ca={ca_arg}"),
            "--export",
            &format!(
                "stranger=otlp+http://{https}?metrics=false&ca={}",
                stranger_ca.display()
            ),
            "--export",
            &format!("nocert=otlp+grpc://{mutual}?metrics=false&ca={ca_arg}"),
        ],
    );
    lab::send_flows(&grpc, &flows());
    wait_until("50 records stored", || stored_keys(&listen).len() == 50);
    wait_until("the flows reached both TLS collectors", || {
        let s = lab::status_json(&listen);
        s["export_mutual"]["records_sent"] == 50 && s["export_https"]["records_sent"] == 50
    });
    wait_until("the refused ones failed", || {
        let s = lab::status_json(&listen);
        s["export_stranger"]["send_errors"].as_u64() > Some(0)
            && s["export_nocert"]["send_errors"].as_u64() > Some(0)
    });
    let stored = stored_keys(&listen);
    let status = lab::status_json(&listen);
    let run = collector.stop();
    for (name, rotel) in [("gRPC, mutual TLS", &over_grpc), ("HTTPS", &over_http)] {
        let received: BTreeSet<Key> = rotel.logs().iter().map(log_key).collect();
        assert_eq!(received.len(), 50, "{name}");
        assert_eq!(
            received, stored,
            "rotel ({name}) received the store's flows"
        );
    }
    for name in ["stranger", "nocert"] {
        let s = &status[format!("export_{name}")];
        assert_eq!(s["records_sent"], 0, "{name}: {s}");
        assert_eq!(s["records_received"], 50, "{name}: {s}");
        assert_eq!(s["buffered_records"], 50, "{name}: kept for a retry: {s}");
    }
    assert!(
        run.stderr.contains("unknown_ca"),
        "the stranger's reason is named: {}",
        run.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}
