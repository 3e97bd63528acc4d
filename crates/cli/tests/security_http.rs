//! The HTTP side with API tokens and HTTPS: a collector serving over TLS,
//! tokens from a file of their SHA-256, each scope ANDed into every answer
//! (flows, conversations, top, series, topology, export, `--follow`'s
//! polling) so a token scoped to one namespace never sees another's
//! records or names; 401 without a token, 403 outside a token's rights,
//! the file re-read when it changes, the audit log naming the token, the
//! CLI with --token-file and --server-ca, the console in Chromium asking
//! for a token once per tab, and a real Prometheus scraping /metrics over
//! HTTPS with a bearer token (and refused without).

mod lab;

use flowlens_kube_standin::objects::PodObject;
use flowlens_kube_standin::{ApiServer, Options};
use flowlens_model::FlowRecord;
use flowlens_tls::test_pki::{Leaf, TestCa};
use lab::prometheus::Prometheus;
use lab::{Agent, flowlens, free_local_addr, sh};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The stand-in cluster's pods: (namespace, address), one each.
const PODS: &[(&str, &str)] = &[
    ("shop", "198.18.2.1"),
    ("payments", "198.18.2.2"),
    ("bank", "198.18.2.3"),
    ("secret", "198.18.2.4"),
];

fn address_of(namespace: &str) -> &'static str {
    PODS.iter().find(|(n, _)| *n == namespace).unwrap().1
}

/// `n` flows from the pod of namespace `src` to that of `dst`, ports from
/// `first_port`, ending now.
fn flows(n: usize, src: &str, dst: &str, first_port: u16) -> Vec<FlowRecord> {
    let now = lab::now_ms();
    (0..n)
        .map(|i| FlowRecord {
            src_addr: address_of(src).into(),
            dst_addr: address_of(dst).into(),
            src_port: first_port + i as u16,
            dst_port: 443,
            proto: 6,
            etype: 0x800,
            bytes: 1000,
            packets: 2,
            time_flow_start_ms: now - 100 + i as i64,
            time_flow_end_ms: now + i as i64,
            interfaces: vec!["eth0".into()],
            if_directions: vec![1],
            ..Default::default()
        })
        .collect()
}

fn hex_sha256(token: &str) -> String {
    let out = sh(&format!("printf %s '{token}' | sha256sum"));
    out.split_whitespace().next().unwrap().to_string()
}

fn write_tokens(path: &Path, entries: &[(&str, &str, Option<&str>, &str)]) {
    let mut text = String::from("tokens:\n");
    for (name, token, scope, rights) in entries {
        text.push_str(&format!(
            "  - name: {name}\n    sha256: {}\n    rights: [{rights}]\n",
            hex_sha256(token)
        ));
        if let Some(scope) = scope {
            text.push_str(&format!("    scope: '{scope}'\n"));
        }
    }
    // Replaced whole, as a secret volume does.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

struct Https {
    listen: String,
    ca: PathBuf,
    /// Where curl writes the last answer's headers (in the test's folder).
    headers: PathBuf,
}

impl Https {
    /// (status, body, headers) of a GET with `token` (and `extra` curl
    /// arguments).
    fn get(&self, path: &str, token: Option<&str>, extra: &str) -> (u16, String, String) {
        let auth = token
            .map(|t| format!("-H 'Authorization: Bearer {t}'"))
            .unwrap_or_default();
        let headers = &self.headers;
        let out = sh(&format!(
            "curl -s --cacert {} {auth} {extra} -D {} -o /dev/stdout -w '\\n%{{http_code}}' 'https://{}{path}'",
            self.ca.display(),
            headers.display(),
            self.listen
        ));
        let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
        let head = std::fs::read_to_string(headers).unwrap_or_default();
        (code.parse().unwrap_or(0), body.to_string(), head)
    }

    fn json(&self, path: &str, token: &str) -> Value {
        let (code, body, _) = self.get(path, Some(token), "");
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn namespaces(record: &Value) -> (String, String) {
    let text = |k: &str| record[k].as_str().unwrap_or("").to_string();
    (text("SrcK8S_Namespace"), text("DstK8S_Namespace"))
}

#[test]
fn tokens_scope_every_answer_over_https_and_prometheus_scrapes_with_one() {
    let dir = std::env::temp_dir().join(format!("flowlens-security-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new("flowlens security test CA");
    let ca_file = ca.write(&dir.join("ca.crt"));
    let cert = ca.issue(&Leaf::named("localhost", &["127.0.0.1"]), &dir, "server");
    let tokens = dir.join("tokens.yaml");
    let shop_scope = r#"src.namespace = "shop" or dst.namespace = "shop""#;
    write_tokens(
        &tokens,
        &[
            ("shop-team", "shop-secret", Some(shop_scope), "read, export"),
            ("prometheus", "prom-secret", None, "metrics"),
            ("ops", "ops-secret", None, "admin"),
        ],
    );
    let cluster = ApiServer::start(Options::default()).unwrap();
    for (namespace, address) in PODS {
        let pod = PodObject::new(namespace, &format!("{namespace}-pod"))
            .on("node-1", "198.18.0.254")
            .ips(&[address]);
        cluster.apply(pod.object()).unwrap();
    }
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let grpc = free_local_addr();
    let listen = free_local_addr();
    let data = dir.join("data");
    let p = |p: &Path| p.display().to_string();
    let collector = Agent::start_collector(
        &grpc,
        &[
            "--listen",
            &listen,
            "--data-dir",
            &p(&data),
            "--log-types",
            "Flows",
            "--http-tls-cert",
            &p(&cert.cert),
            "--http-tls-key",
            &p(&cert.key),
            "--api-tokens",
            &p(&tokens),
            "--kubeconfig",
            &kubeconfig,
            "--cross-node-window",
            "0s",
        ],
    );
    let https = Https {
        listen: listen.clone(),
        ca: ca_file.clone(),
        headers: dir.join("headers"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while https.json("/status", "ops-secret")["kubernetes"]["pods"] != 4 {
        assert!(
            Instant::now() < deadline,
            "the collector never listed the pods"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut all = flows(40, "shop", "payments", 20_000);
    all.extend(flows(30, "bank", "shop", 21_000));
    // Neither end in shop: the shop token must never see these, nor the
    // name "secret" anywhere.
    all.extend(flows(50, "payments", "secret", 22_000));
    lab::send_flows(&grpc, &all);
    let deadline = Instant::now() + Duration::from_secs(20);
    while https.json("/api/flows?since=1h&limit=1000", "ops-secret")["records"]
        .as_array()
        .unwrap()
        .len()
        < 120
    {
        assert!(Instant::now() < deadline, "the records were never stored");
        std::thread::sleep(Duration::from_millis(200));
    }

    // No token, a wrong one: 401 with the scheme to use; the console's
    // page itself loads (it asks for the token).
    for path in ["/api/flows?since=1h", "/metrics", "/status", "/api/export"] {
        let (code, body, head) = https.get(path, None, "");
        assert_eq!(code, 401, "{path}: {body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
        let (code, _, _) = https.get(path, Some("not-a-token"), "");
        assert_eq!(code, 401, "{path}");
    }
    assert_eq!(https.get("/", None, "").0, 200);
    // Rights: 403 outside them.
    for (path, token) in [
        ("/metrics", "shop-secret"),
        ("/status", "shop-secret"),
        ("/api/flows?since=1h", "prom-secret"),
        ("/api/export?since=1h", "prom-secret"),
    ] {
        let (code, body, _) = https.get(path, Some(token), "");
        assert_eq!(code, 403, "{path} with {token}: {body}");
        assert!(body.contains("right"), "{body}");
    }

    // The scope, ANDed into every answer.
    let shop = |path: &str| https.json(path, "shop-secret");
    let records = shop("/api/flows?since=1h&limit=1000");
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 70, "40 shop→payments + 30 bank→shop");
    for r in records {
        let (src, dst) = namespaces(r);
        assert!(src == "shop" || dst == "shop", "{r}");
    }
    let narrowed = shop("/api/flows?since=1h&limit=1000&filter=dst.namespace%20%3D%20%22secret%22");
    assert_eq!(narrowed["records"].as_array().unwrap().len(), 0);
    let narrowed = shop("/api/flows?since=1h&limit=1000&filter=src.namespace%20%3D%20%22bank%22");
    assert_eq!(narrowed["records"].as_array().unwrap().len(), 30);
    let mut answers = Vec::new();
    for path in [
        "/api/top?since=1h&by=dst.namespace&metric=flows&k=100",
        "/api/top?since=1h&by=src.namespace&metric=bytes&k=100",
        "/api/top?since=1h&by=dst.name&metric=flows&k=100",
        "/api/topology?since=1h&scope=namespace",
        "/api/topology?since=1h&scope=pod",
        "/api/conversations?since=1h&limit=1000",
    ] {
        answers.push(shop(path).to_string());
    }
    let top = shop("/api/top?since=1h&by=dst.namespace&metric=flows&k=100");
    let flows_by: f64 = top["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_f64().unwrap())
        .sum();
    assert_eq!(flows_by, 70.0, "{top}");
    let series = shop("/api/series?since=1h&step=1m&metric=bytes");
    let bytes: f64 = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(bytes, 70_000.0, "{series}");
    for format in ["jsonl", "csv"] {
        let (code, body, _) = https.get(
            &format!("/api/export?since=1h&format={format}"),
            Some("shop-secret"),
            "",
        );
        assert_eq!(code, 200, "{body}");
        let lines = body.lines().filter(|l| !l.is_empty()).count();
        assert_eq!(lines, if format == "csv" { 71 } else { 70 }, "{format}");
        answers.push(body);
    }
    for answer in &answers {
        assert!(
            !answer.contains("secret"),
            "another namespace leaked: {answer}"
        );
    }
    // Without a scope, the same questions see it.
    let everything = https.json(
        "/api/top?since=1h&by=dst.namespace&metric=flows&k=100",
        "ops-secret",
    );
    assert!(everything.to_string().contains("secret"));

    // The CLI: flows with a token over HTTPS, within the scope; status
    // with the admin token.
    let token_file = dir.join("shop.token");
    std::fs::write(&token_file, "shop-secret\n").unwrap();
    let ops_file = dir.join("ops.token");
    std::fs::write(&ops_file, "ops-secret\n").unwrap();
    let server = format!("https://{listen}");
    let out = String::from_utf8(lab::stdout_of(flowlens().args([
        "flows",
        "--server",
        &server,
        "--server-ca",
        &p(&ca_file),
        "--token-file",
        &p(&token_file),
        "--since",
        "1h",
        "--limit",
        "1000",
        "-o",
        "json",
    ])))
    .unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 70);
    assert!(lines.iter().all(|r| {
        let (src, dst) = namespaces(r);
        src == "shop" || dst == "shop"
    }));
    let status = lab::stdout_of(flowlens().args([
        "status",
        "--json",
        "--server",
        &server,
        "--server-ca",
        &p(&ca_file),
        "--token-file",
        &p(&ops_file),
    ]));
    let status: Value = serde_json::from_slice(&status).unwrap();
    assert!(
        status["auth"]["requests_unauthenticated"].as_u64().unwrap() >= 8,
        "{}",
        status["auth"]
    );
    assert!(status["auth"]["requests_forbidden"].as_u64().unwrap() >= 4);
    assert_eq!(
        status["http_tls"]["handshake_failures"],
        serde_json::json!({})
    );
    // Without the CA, the CLI refuses the server, and says why.
    let refused = flowlens()
        .args(["status", "--server", &server, "--token-file", &p(&ops_file)])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("unknown_ca") || err.contains("trusted CA"),
        "{err}"
    );

    // Tokens lift the loopback Host check (a rebinding page has no token).
    let (code, _, _) = https.get(
        "/api/fields",
        Some("shop-secret"),
        "-H 'Host: evil.example'",
    );
    assert_eq!(code, 200);

    // The console in headless Chromium: asks for the token once per tab,
    // shows the scope only (console/e2e/token.mjs).
    let chromium =
        std::env::var("FLOWLENS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the console check needs Chromium at {chromium} (scripts/test installs it)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new("node")
        .arg(root.join("console/e2e/token.mjs"))
        .args([&format!("https://{listen}/"), "shop-secret", "secret"])
        .env("FLOWLENS_CHROMIUM", &chromium)
        .output()
        .expect("node (the console is built with it)");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "console token checks failed:\n{report}"
    );

    // A real Prometheus scrapes /metrics over HTTPS with its token; a job
    // without one is refused.
    let bearer = dir.join("prom.token");
    std::fs::write(&bearer, "prom-secret").unwrap();
    let tls = format!(
        "    scheme: https\n    tls_config:\n      ca_file: {}\n",
        p(&ca_file)
    );
    let prometheus = Prometheus::with_jobs(&format!(
        "  - job_name: flowlens\n{tls}    authorization:\n      type: Bearer\n      credentials_file: {}\n    static_configs:\n      - targets: ['{listen}']\n\
         \x20 - job_name: anonymous\n{tls}    static_configs:\n      - targets: ['{listen}']\n",
        p(&bearer)
    ));
    assert_eq!(
        prometheus.wait_for("flowlens_receiver_records_received_total", 120.0),
        Some(120.0)
    );
    assert_eq!(
        prometheus.wait_for(r#"up{job="anonymous"}"#, 0.0),
        Some(0.0)
    );
    assert_eq!(prometheus.wait_for(r#"up{job="flowlens"}"#, 1.0), Some(1.0));
    drop(prometheus);

    // The file re-read: a token revoked is refused, a new one works, within
    // a few seconds, without a restart.
    write_tokens(
        &tokens,
        &[
            ("shop-team-2", "new-secret", Some(shop_scope), "read"),
            ("ops", "ops-secret", None, "admin"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let old = https.get("/api/flows?since=1h", Some("shop-secret"), "").0;
        let new = https.get("/api/flows?since=1h", Some("new-secret"), "").0;
        if (old, new) == (401, 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the token file was not re-read: {old} {new}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A file that no longer parses keeps the tokens in force.
    std::fs::write(&tokens, "tokens: [{name: broken}]\n").unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        https.get("/api/flows?since=1h", Some("new-secret"), "").0,
        200
    );

    let run = collector.stop();
    let audit: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(" audit token="))
        .collect();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("token=\"shop-team\"") || l.contains("token=shop-team")),
        "{audit:?}"
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("API tokens") && l.contains("previous")),
        "{}",
        run.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}
