//! Bad configuration and bad flags are refused with messages that name what
//! is wrong, before anything touches the kernel.

mod lab;

use lab::flowlens;

fn run_agent(args: &[&str]) -> (i32, String) {
    let out = flowlens()
        .arg("agent")
        .args(args)
        .output()
        .expect("running flowlens");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_file(body: &str) -> std::path::PathBuf {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("flowlens-cfg-{}-{n}.yaml", std::process::id()));
    std::fs::write(&path, body).unwrap();
    path
}

const HEAD: &str =
    "apiVersion: v1\nkind: FlowCollector\nspec:\n  agent:\n    type: ebpf\n    ebpf:\n";

fn refused_config(ebpf_body: &str, must_contain: &[&str]) {
    let path = config_file(&format!("{HEAD}{ebpf_body}"));
    let (code, stderr) = run_agent(&["--config", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code, 1, "{stderr}");
    for needle in must_contain {
        assert!(stderr.contains(needle), "`{needle}` missing from: {stderr}");
    }
}

#[test]
fn unknown_feature_names_key_value_and_choices() {
    refused_config(
        "      features:\n        - FlowRTT\n        - DNSTrack\n",
        &[
            "spec.agent.ebpf.features[1]",
            "`DNSTrack`",
            "`DNSTracking`",
            "`PacketDrop`",
            "line 9",
        ],
    );
}

#[test]
fn bad_duration_names_key_and_value() {
    refused_config(
        "      cacheActiveTimeout: soon\n",
        &["spec.agent.ebpf.cacheActiveTimeout", "`soon`", "5s"],
    );
}

#[test]
fn unknown_key_lists_valid_keys() {
    refused_config(
        "      cacheMaxFlow: 10\n",
        &[
            "spec.agent.ebpf.cacheMaxFlow",
            "`cacheMaxFlows`",
            "`sampling`",
        ],
    );
}

#[test]
fn wrong_type_names_key_value_and_type() {
    refused_config(
        "      sampling: lots\n",
        &["spec.agent.ebpf.sampling", "\"lots\"", "u32"],
    );
    refused_config(
        "      interfaces: eth0\n",
        &["spec.agent.ebpf.interfaces", "sequence"],
    );
}

#[test]
fn bad_interface_regex_is_refused() {
    refused_config(
        "      excludeInterfaces: [\"/veth[/\"]\n",
        &["excludeInterfaces", "/veth[/", "regular expression"],
    );
}

#[test]
fn missing_file_is_named() {
    let (code, stderr) = run_agent(&["--config", "/nonexistent/flowlens.yaml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent/flowlens.yaml") && stderr.contains("No such file"),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_refused_with_the_choices() {
    let (code, stderr) = run_agent(&["--cache-active-timeout", "5x"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--cache-active-timeout")
            && stderr.contains("`5x`")
            && stderr.contains("unknown unit"),
        "{stderr}"
    );
    let (code, stderr) = run_agent(&["--features", "FlowRTT,Bogus"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`Bogus`") && stderr.contains("DNSTracking"),
        "{stderr}"
    );
    let (code, stderr) = run_agent(&["--output", "xml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("json") && stderr.contains("table"),
        "{stderr}"
    );
    let (code, stderr) = run_agent(&["--cache-max-flows", "many"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--cache-max-flows") && stderr.contains("many"),
        "{stderr}"
    );
    let (code, stderr) = run_agent(&["--cache-max-flows", "0"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cacheMaxFlows") && stderr.contains("`0`"),
        "{stderr}"
    );
}

#[test]
fn status_without_a_server_says_so() {
    let out = flowlens()
        .args(["status", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("127.0.0.1:9") && stderr.contains("flowlens up"),
        "{stderr}"
    );
    let out = flowlens()
        .args(["status", "--server", "ftp://x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected http://HOST:PORT"));
}

fn run(args: &[&str]) -> (i32, String) {
    let out = flowlens().args(args).output().expect("running flowlens");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn query_commands_say_what_is_wrong() {
    let (code, err) = run(&["flows", "--server", "http://127.0.0.1:1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is `flowlens up` or a collector running?"),
        "{err}"
    );
    let (code, err) = run(&["flows", "--server", "ftp://x:1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("expected http://HOST:PORT or https://HOST:PORT"),
        "{err}"
    );
    let (code, err) = run(&["flows", "--token-file", "/nonexistent/token"]);
    assert_eq!(code, 1);
    assert!(err.contains("--token-file /nonexistent/token"), "{err}");
    let (code, err) = run(&["top", "--output", "yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'yaml'"), "{err}");
    let (code, err) = run(&["up", "--max-disk", "10 parsecs", "--no-store"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = run(&["up", "--max-disk", "10parsecs"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown unit `parsecs`"), "{err}");
    let (code, err) = run(&["agent", "--filter", "dns.rcod = 3"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("did you mean `dns.rcode`?") && err.contains("  ^"),
        "{err}"
    );
    let (code, err) = run(&["collector", "--grpc-listen", "nowhere"]);
    assert_eq!(code, 2);
    assert!(err.contains("--grpc-listen"), "{err}");
}

#[test]
fn listeners_off_loopback_need_tls_or_insecure_and_bad_certificates_are_named() {
    let (code, err) = run(&["collector", "--grpc-listen", "0.0.0.0:0", "--no-store"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("gRPC on 0.0.0.0:0 without TLS")
            && err.contains("--grpc-tls-cert")
            && err.contains("--insecure"),
        "{err}"
    );
    let (code, err) = run(&[
        "collector",
        "--grpc-listen",
        "127.0.0.1:0",
        "--listen",
        "0.0.0.0:0",
        "--no-store",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("HTTP on 0.0.0.0:") && err.contains("--http-tls-cert"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("flowlens-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not-a-cert.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let shown = not_pem.display().to_string();
    let (code, err) = run(&[
        "collector",
        "--grpc-listen",
        "127.0.0.1:0",
        "--grpc-tls-cert",
        &shown,
        "--grpc-tls-key",
        &shown,
        "--no-store",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&shown) && err.contains("no certificate"),
        "{err}"
    );
    let (code, err) = run(&[
        "collector",
        "--grpc-listen",
        "127.0.0.1:0",
        "--grpc-client-ca",
        &shown,
        "--no-store",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--grpc-client-ca needs TLS"), "{err}");
    let (code, err) = run(&[
        "agent",
        "--collector",
        "127.0.0.1:1",
        "--collector-ca",
        "/nonexistent/ca.crt",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/ca.crt"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exporters_that_cannot_run_are_refused_at_start_never_ignored() {
    let collector = |extra: &[&str]| {
        let mut args = vec!["collector", "--grpc-listen", "127.0.0.1:0", "--no-store"];
        args.extend_from_slice(extra);
        run(&args)
    };
    for (flags, expected) in [
        (
            vec![
                "--export",
                "kafka://b:9092/flows?format=protobuf&records=both",
            ],
            "pbflow has no conversation message",
        ),
        (
            vec![
                "--export",
                "ipfix+tcp://x:1",
                "--export-records",
                "ipfix-1=both",
            ],
            "IPFIX exports flows only",
        ),
        (
            vec!["--export", "ipfix+udp://nowhere"],
            "expected HOST:PORT",
        ),
        (vec!["--export", "gopher://x:1"], "unknown scheme `gopher`"),
        (
            vec![
                "--export",
                "ipfix+udp://x:1",
                "--export-filter",
                "other=proto = 6",
            ],
            "no exporter is named `other`",
        ),
        (
            vec![
                "--export",
                "ipfix+udp://x:1",
                "--export-filter",
                "ipfix-1=prto = 6",
            ],
            "--export-filter ipfix-1",
        ),
    ] {
        let (code, err) = collector(&flags);
        assert_eq!(code, 1, "{flags:?}: {err}");
        assert!(err.contains(expected), "{flags:?}: {err}");
    }
    let file = |exporters: &str| {
        config_file(&format!(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  exporters:\n{exporters}"
        ))
    };
    for (exporters, expected) in [
        (
            "    - type: Kafka\n      kafka:\n        address: b:9092\n        topic: 'fl ows'\n",
            "spec.exporters[0].kafka.topic",
        ),
        (
            "    - type: OpenTelemetry\n      openTelemetry:\n        targetHost: o\n        targetPort: 4317\n        fieldsMapping: []\n",
            "fieldsMapping: custom attribute names are not implemented",
        ),
        (
            "    - type: OpenTelemetry\n      openTelemetry:\n        targetHost: o\n        targetPort: 4317\n        logs:\n          enable: false\n        metrics:\n          enable: false\n",
            "neither logs nor metrics",
        ),
        (
            "    - type: IPFIX\n      ipfix:\n        targetHost: x\n        targetPrt: 1\n",
            "targetPrt",
        ),
        ("    - type: IPFIX\n", "needs its ipfix section"),
        (
            "    - type: OpenTelemetry\n      openTelemetry:\n        targetHost: o\n        targetPort: 4317\n        tls:\n          enable: true\n          insecureSkipVerify: true\n",
            "spec.exporters[0].openTelemetry.tls.insecureSkipVerify: not offered",
        ),
        (
            "    - type: OpenTelemetry\n      openTelemetry:\n        targetHost: o\n        targetPort: 4317\n        tls:\n          enable: true\n          caCert:\n            certFile: /nonexistent/ca.pem\n",
            "/nonexistent/ca.pem",
        ),
    ] {
        let path = file(exporters);
        let (code, err) = collector(&["--config", path.to_str().unwrap()]);
        std::fs::remove_file(&path).ok();
        assert_eq!(code, 1, "{exporters}: {err}");
        assert!(err.contains(expected), "{exporters}: {err}");
    }
}

#[test]
fn kafka_between_agents_and_collectors_is_checked_at_start() {
    for (args, expected) in [
        (
            vec!["collector", "--no-store", "--listen", "127.0.0.1:0"],
            "nothing to receive flows from",
        ),
        (
            vec!["collector", "--kafka", "b:9092", "--no-store"],
            "--kafka `b:9092`",
        ),
        (
            vec!["collector", "--kafka", "b/flows", "--no-store"],
            "expected BROKER:PORT",
        ),
        (
            vec!["agent", "--kafka", "b:9092/fl ows"],
            "is not a Kafka topic",
        ),
        (
            vec!["agent", "--kafka", "b:9092/f", "--collector", "c:1"],
            "cannot be used with",
        ),
    ] {
        let (code, err) = run(&args);
        assert_ne!(code, 0, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let deployment = |kafka: &str| {
        config_file(&format!(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  deploymentModel: Kafka\n{kafka}"
        ))
    };
    for (kafka, command, expected) in [
        ("", "collector", "spec.kafka"),
        (
            "  kafka:\n    address: b:9092\n    topic: flows\n    format: json\n",
            "collector",
            "spec.kafka.format",
        ),
        (
            "  kafka:\n    address: b:9092\n    topic: flows\n",
            "up",
            "`up` runs agent and collector in one process",
        ),
    ] {
        let path = deployment(kafka);
        let mut args = vec![command, "--config", path.to_str().unwrap()];
        if command == "collector" {
            args.push("--no-store");
        }
        let (code, err) = run(&args);
        std::fs::remove_file(&path).ok();
        assert_ne!(code, 0, "{kafka}: {err}");
        assert!(err.contains(expected), "{command} {kafka}: {err}");
    }
}
