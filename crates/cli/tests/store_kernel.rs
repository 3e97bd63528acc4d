//! `flowlens up` keeps flows in its store: the query API and the CLI answer
//! from it, and after `kill -9` and a restart every record flushed before
//! the kill is there once, while a corrupt file is skipped and counted.
//! Needs root.

mod lab;

use lab::{Lab, free_local_addr, sh, wait_for_port};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn api(listen: &str, path: &str) -> Value {
    let body = sh(&format!("curl -sf 'http://{listen}{path}'"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn ids(page: &Value) -> Vec<u64> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["_Id"].as_u64().unwrap())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn flowlens_cli(args: &[&str]) -> (bool, String, String) {
    let out = lab::flowlens().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flushed_records_survive_kill_9_and_queries_answer_from_the_store() {
    let _serial = lab::serial();
    let (lab, client, server, _dns) = lab::dns_lab(7703);
    let listen = free_local_addr();
    let features = ["--features", "DNSTracking,PacketDrop,ConnectionTracking"];
    let up = lab.start_up(&listen, &features);
    wait_for_port(&listen);
    let rcode = Lab::in_netns(&client, || {
        let rcode = lab::ask_missing_name("198.18.0.1:5611", "198.18.0.2:53", 0x5151);
        let _ = std::net::TcpStream::connect_timeout(
            &"198.18.0.2:7703".parse().unwrap(),
            Duration::from_millis(1500),
        );
        rcode
    });
    assert_eq!(rcode, 3);
    sh(&format!(
        "ip netns exec {} ping -q -c 5 -i 0.05 {}",
        client.netns, server.ipv4
    ));

    // Everything evicted and written: nothing left in memory for flows.
    let lab_filter = "filter=addr%20in%20198.18.0.0%2F24&since=1h&limit=10000";
    let mut before = Vec::new();
    wait_until("the flows to reach the disk", || {
        let status = api(&listen, "/status");
        before = ids(&api(&listen, &format!("/api/flows?{lab_filter}")));
        status["store"]["buffered_flows"] == 0 && before.len() >= 4
    });
    // The same records a second later: the set is stable.
    std::thread::sleep(Duration::from_millis(1200));
    let settled = ids(&api(&listen, &format!("/api/flows?{lab_filter}")));
    assert_eq!(settled, before);

    // The six network-event queries and the CLI, on real records.
    let nx = api(
        &listen,
        "/api/flows?filter=dns.response_code%20%3D%3D%203&since=1h",
    );
    let nx = nx["records"].as_array().unwrap();
    assert!(
        !nx.is_empty() && nx.iter().all(|r| r["DnsFlagsResponseCode"] == "NXDomain"),
        "{nx:?}"
    );
    let dropped = api(
        &listen,
        "/api/flows?filter=flow.status%20%3D%3D%20%22dropped%22&since=1h",
    );
    let dropped = dropped["records"].as_array().unwrap();
    assert!(
        dropped.iter().any(|r| r["DstPort"] == 7703
            && r["PktDropLatestDropCause"] == "SKB_DROP_REASON_NETFILTER_DROP"),
        "{dropped:?}"
    );
    let policy = api(
        &listen,
        "/api/flows?filter=flow.drop_reason%20%3D%3D%20%22policy_denied%22&since=1h",
    );
    let policy = policy["records"].as_array().unwrap();
    // Not empty: the nft-dropped port is among them, and nothing else is.
    assert!(policy.iter().any(|r| r["DstPort"] == 7703), "{policy:?}");
    assert!(
        policy
            .iter()
            .all(|r| r["PktDropCategory"] == "policy_denied"),
        "{policy:?}"
    );
    let server_url = format!("http://{listen}");
    let (ok, out, err) = flowlens_cli(&[
        "flows",
        "--server",
        &server_url,
        "--filter",
        "dns.rcode = NXDomain",
        "--since",
        "1h",
        "-o",
        "json",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.lines().count() >= 1 && out.lines().all(|l| l.contains("NXDomain")),
        "{out}"
    );
    let (ok, out, err) = flowlens_cli(&[
        "top",
        "--server",
        &server_url,
        "--by",
        "dst.port",
        "--metric",
        "packets",
        "--since",
        "1h",
        "-o",
        "json",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("\"key\":\"53\""), "{out}");
    let (ok, _, err) =
        flowlens_cli(&["flows", "--server", &server_url, "--filter", "dns.rcod = 3"]);
    assert!(!ok && err.contains("did you mean `dns.rcode`?"), "{err}");
    let (ok, _, err) = flowlens_cli(&["flows", "--server", &server_url, "--since", "yesterday"]);
    assert!(!ok && err.contains("not a time"), "{err}");

    // kill -9, then a corrupt file next to the good ones, then a restart.
    let _ = up.kill();
    let junk = lab.data_dir.join("flows").join("1970-01-01").join("00");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("1_2_3.parquet"), b"PAR1 truncated").unwrap();
    let up = lab.start_up(&listen, &features);
    wait_for_port(&listen);
    let after = ids(&api(&listen, &format!("/api/flows?{lab_filter}")));
    let unique: BTreeSet<u64> = after.iter().copied().collect();
    assert_eq!(unique.len(), after.len(), "no record twice");
    assert_eq!(
        after, before,
        "every flushed record is back, and only those"
    );
    let status = api(&listen, "/status");
    assert_eq!(status["store"]["corrupt_files"], 1, "{status}");
    let run = up.stop();
    assert!(
        run.stderr.contains("skipping unreadable store file"),
        "{}",
        run.stderr
    );
}
