//! deploy/kubernetes: every manifest passes the real Kubernetes schemas
//! (kubernetes-validate, strict), the FlowCollector CRD accepts the seed's
//! example and refuses what the API server would, and the manifests keep
//! their promises: no privileged agent, only the documented capabilities,
//! only read access to what enrichment reads.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy() -> PathBuf {
    root().join("deploy/kubernetes")
}

/// Every document of a manifest file, as JSON.
fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

fn object<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn all_objects() -> Vec<Value> {
    manifests().iter().flat_map(|f| documents(f)).collect()
}

/// Runs scripts/validate-against-crd.py with the Python that has
/// kubernetes-validate's jsonschema (scripts/test installs it).
fn against_crd(objects: &[PathBuf]) -> (bool, String) {
    let validator = std::env::var("FLOWLENS_KUBERNETES_VALIDATE").expect(
        "FLOWLENS_KUBERNETES_VALIDATE (scripts/test sets it; it installs kubernetes-validate)",
    );
    let python = Path::new(&validator).with_file_name("python");
    let out = Command::new(python)
        .arg(root().join("scripts/validate-against-crd.py"))
        .arg(deploy().join("flowcollector-crd.yaml"))
        .args(objects)
        .output()
        .expect("running scripts/validate-against-crd.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("flowlens-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    flowlens_kube_standin::validate_files(&manifests()).expect("kubernetes-validate --strict");
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_optional_ones() {
    let kustomization = &documents(&deploy().join("kustomization.yaml"))[0];
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = manifests()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // Applied after the CRD is served, and only with the Prometheus
    // Operator: documented in the kustomization.
    let optional: BTreeSet<String> = ["flowcollector.yaml", "servicemonitor.yaml"]
        .map(String::from)
        .into();
    assert!(
        listed.is_subset(&present),
        "{listed:?} not all in {present:?}"
    );
    let expected: BTreeSet<String> = present.difference(&optional).cloned().collect();
    assert_eq!(listed, expected);
}

#[test]
fn the_crd_takes_the_seeds_example_and_refuses_what_the_api_would() {
    // The seed's example (README, docs): `apiVersion: v1` names the API's
    // core group, where no CustomResourceDefinition can serve a kind; in
    // a cluster it is flows.netobserv.io/v1beta2, and the rest is as
    // written.
    let seed = "apiVersion: flows.netobserv.io/v1beta2
kind: FlowCollector
metadata:
  name: your-flowcollector
  namespace: your-namespace
spec:
  agent:
    type: ebpf
    ebpf:
      privileged: true
      features:
        - FlowRTT
      sampling: 1
      cacheActiveTimeout: 5s
      cacheMaxFlows: 100000
      interfaces: []
      excludeInterfaces: [lo]
";
    let seed = temp_file("seed.yaml", seed);
    let examples = [
        seed.clone(),
        deploy().join("flowcollector.yaml"),
        root().join("fuzz/corpus/flowcollector_yaml/full.yaml"),
    ];
    let (ok, report) = against_crd(&examples);
    assert!(ok, "{report}");
    // flowlens reads them too.
    for file in &examples {
        flowlens_config::load_config_file(file).unwrap_or_else(|e| panic!("{e}"));
    }
    let bad = temp_file(
        "bad.yaml",
        "apiVersion: flows.netobserv.io/v1beta2
kind: FlowCollector
metadata: {name: cluster}
spec:
  agent:
    ebpf:
      samplng: 5
      features: [FlowRTT, Bogus]
      cacheActiveTimeout: 5 seconds
      sampling: -1
",
    );
    let (ok, report) = against_crd(std::slice::from_ref(&bad));
    assert!(!ok);
    for what in ["samplng", "Bogus", "5 seconds", "sampling"] {
        assert!(report.contains(what), "{what} not reported: {report}");
    }
    std::fs::remove_file(seed).ok();
    std::fs::remove_file(bad).ok();
}

#[test]
fn the_agent_is_not_privileged_and_holds_only_the_documented_capabilities() {
    let all = all_objects();
    let agent = object(&all, "DaemonSet", "flowlens-agent");
    let pod = &agent["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert!(
        pod["hostPID"].is_null(),
        "the agent needs no host PID namespace"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_ne!(security["privileged"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let added: BTreeSet<&str> = security["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    // docs/features.md's table of capabilities, without the CAP_ prefix.
    let features = std::fs::read_to_string(root().join("docs/features.md")).unwrap();
    let documented: BTreeSet<&str> = features
        .lines()
        .filter_map(|l| l.strip_prefix("| `CAP_"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert_eq!(
        added, documented,
        "the DaemonSet adds what docs/features.md lists"
    );
    let mounts: BTreeSet<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains("/sys/fs/bpf") && mounts.contains("/sys/kernel/btf"));
    assert!(container["readinessProbe"]["httpGet"]["port"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert!(container["resources"]["requests"]["cpu"].is_string());
    // The readiness probe's port is the agent's HTTP listener.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.iter()
            .any(|a| a.starts_with("--listen=") && a.ends_with(":9291"))
    );
}

#[test]
fn the_collector_may_only_read_what_enrichment_reads() {
    let all = all_objects();
    let role = object(&all, "ClusterRole", "flowlens-collector");
    for rule in role["rules"].as_array().unwrap() {
        let verbs: BTreeSet<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let resources: Vec<&str> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        if resources == ["flowcollectors/status"] {
            // It reports what it applied: the status only.
            assert_eq!(verbs, ["get", "patch", "update"].into());
        } else {
            assert_eq!(verbs, ["get", "list", "watch"].into(), "{rule}");
        }
    }
    let collector = object(&all, "StatefulSet", "flowlens-collector");
    assert_eq!(
        collector["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    let service = object(&all, "Service", "flowlens-collector");
    let ports: BTreeSet<&str> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["grpc", "http"].into());
}

#[test]
fn the_deployment_speaks_tls_with_the_secrets_make_tls_makes() {
    let all = all_objects();
    let args_of = |kind: &str, name: &str| -> Vec<String> {
        object(&all, kind, name)["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    let collector = args_of("StatefulSet", "flowlens-collector");
    for flag in [
        "--grpc-tls-cert=",
        "--grpc-tls-key=",
        "--http-tls-cert=",
        "--http-tls-key=",
        "--api-tokens=",
    ] {
        assert!(
            collector.iter().any(|a| a.starts_with(flag)),
            "{flag} in {collector:?}"
        );
    }
    let agent = args_of("DaemonSet", "flowlens-agent");
    assert!(agent.iter().any(|a| a.starts_with("--collector-ca=")));
    assert!(
        agent.contains(&"--listen=127.0.0.1:9291".to_string()),
        "{agent:?}"
    );
    for text in manifests()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
    {
        assert!(!text.contains("--insecure"), "deploy/ runs with TLS only");
    }

    // The script's files work as the manifests use them.
    let dir = std::env::temp_dir().join(format!("flowlens-make-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(deploy().join("make-tls.sh"))
        .arg(&dir)
        .output()
        .expect("deploy/kubernetes/make-tls.sh (needs openssl)");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secrets: BTreeSet<String> = all
        .iter()
        .flat_map(|o| {
            o["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|v| v["secret"]["secretName"].as_str().map(str::to_string))
        .collect();
    assert!(!secrets.is_empty());
    for secret in &secrets {
        assert!(
            printed.contains(secret.as_str()),
            "make-tls.sh makes {secret}"
        );
    }
    let mode = |f: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode("tls.key"), 0o600);
    assert_eq!(mode("ca.key"), 0o600);

    // An agent verifying the collector by its Service name, with the CA.
    let server = flowlens_tls::ServerTls::new(
        flowlens_tls::ServerTlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: None,
        },
        &[b"h2"],
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let client = flowlens_tls::ClientTls::new(
        flowlens_tls::ClientTlsFiles {
            ca: Some(dir.join("ca.crt")),
            ..Default::default()
        },
        &[b"h2"],
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            server.accept(tcp).await.map(|_| ())
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .connect(tcp, "flowlens-collector.flowlens.svc")
            .await
            .expect("the collector's certificate verifies for its Service name");
        accepting.await.unwrap().unwrap();
    });

    // The tokens file holds the two tokens' hashes, with their rights.
    let tokens_text = std::fs::read_to_string(dir.join("tokens.yaml")).unwrap();
    let tokens = flowlens_server::tokens::Tokens::parse(&tokens_text, "tokens.yaml").unwrap();
    let token = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    let admin = tokens
        .caller(&token("admin.token"))
        .expect("the admin token");
    assert!(admin.may(flowlens_server::tokens::Right::Admin));
    let prometheus = tokens
        .caller(&token("prometheus.token"))
        .expect("the Prometheus token");
    assert!(prometheus.may(flowlens_server::tokens::Right::Metrics));
    assert!(!prometheus.may(flowlens_server::tokens::Right::Read));
    assert!(
        !tokens_text.contains(&token("admin.token")),
        "no token in clear"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
