//! Store benchmark: ingest and query figures, each next to a baseline
//! measured in the same run.
//!
//!   store_bench [RECORDS] [DIR]
//!
//! RECORDS flows (default 10,000,000) ending within the last closed hour
//! (the hour before the current one), 2,000
//! conversations' worth of endpoints in 50 namespaces, DNS on a tenth of
//! them (a fifth of those NXDOMAIN), drops on one in a hundred.
//! 1. Ingest on one core: Store::append_flows (flow records to Arrow
//!    batches, zstd Parquet files) vs writing the same records as JSON
//!    lines (baseline);
//!    bytes on disk per record for both.
//! 2. Rolling the hour up (1m, 5m, 1h), timed.
//! 3. Queries, median of 5 runs: a filtered flow-table page (limit 100), a
//!    top-10 by bytes over the full hour, a time series over 7 days (1h
//!    steps), with rollups and from the flow files alone; next to the time
//!    to read every stored record's end time (baseline: the cheapest full
//!    pass).

use flowlens_model::FlowRecord;
use flowlens_query::Filter;
use flowlens_store::{Metric, Order, RecordQuery, Store, StoreOptions, Table};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::time::Instant;

// The same allocator as the flowlens binary, which runs the store.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn record(i: usize, hour_end: i64, n: usize) -> Map<String, Value> {
    let c = i % 2000;
    let dns = i.is_multiple_of(10);
    let mut r = json!({
        "SrcAddr": format!("198.18.{}.{}", c / 250, c % 250 + 1),
        "DstAddr": format!("198.19.{}.{}", (c * 7) % 200, (c * 13) % 250 + 1),
        "SrcPort": 10000 + (i % 50000), "DstPort": if dns { 53 } else { [443, 8080, 5432][c % 3] },
        "Proto": if dns { 17 } else { 6 }, "Etype": 2048,
        "SrcMac": "0a:58:0a:00:00:01", "DstMac": "0a:58:0a:00:00:02", "Dscp": 0,
        "Bytes": 1500 + (i * 7919) % 90000, "Packets": 3 + i % 60, "Flags": 0x10,
        "TimeFlowStartMs": hour_end - 3_600_000 + (i as i64 * 3_600_000 / n as i64) - 400,
        "TimeFlowEndMs": hour_end - 3_600_000 + (i as i64 * 3_600_000 / n as i64),
        "Interfaces": [format!("veth{}", c % 64)], "IfDirections": [1],
        "AgentIP": "198.18.255.1", "Sampling": 1,
        "SrcK8S_Namespace": format!("ns-{}", c % 50), "DstK8S_Namespace": format!("ns-{}", (c * 3) % 50),
        "SrcK8S_HostName": "node-1", "DstK8S_HostName": "node-1", "FlowDirection": 2,
    });
    let m = r.as_object_mut().unwrap();
    if dns {
        m.insert("DnsId".into(), json!(i % 65536));
        m.insert(
            "DnsFlags".into(),
            json!(if i.is_multiple_of(50) { 0x8183 } else { 0x8180 }),
        );
        m.insert(
            "DnsFlagsResponseCode".into(),
            json!(if i.is_multiple_of(50) {
                "NXDomain"
            } else {
                "NoError"
            }),
        );
        m.insert("DnsLatencyMs".into(), json!(0.3 + (i % 7) as f64 / 10.0));
    } else {
        m.insert("TimeFlowRttNs".into(), json!(50_000 + (i % 1000) * 100));
    }
    if i % 100 == 7 {
        m.insert("PktDropPackets".into(), json!(1));
        m.insert("PktDropBytes".into(), json!(60));
        m.insert(
            "PktDropLatestDropCause".into(),
            json!("SKB_DROP_REASON_NETFILTER_DROP"),
        );
        m.insert("PktDropCategory".into(), json!("policy_denied"));
    }
    r.as_object().unwrap().clone()
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn timed<T>(f: impl Fn() -> T) -> (f64, T) {
    let mut runs = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let start = Instant::now();
        last = Some(f());
        runs.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    (median(runs), last.unwrap())
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        total += if p.is_dir() {
            dir_bytes(&p)
        } else {
            entry.metadata().map(|m| m.len()).unwrap_or(0)
        };
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .map(|a| a.parse().expect("RECORDS"))
        .unwrap_or(10_000_000);
    let root = args
        .get(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("flowlens-store-bench"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // The records fill the last closed hour, so it can be rolled up.
    let hour_end = now / 3_600_000 * 3_600_000;
    const CHUNK: usize = 10_000;

    // Only the writers are timed, not making up the records.
    let chunks = || {
        (0..n).step_by(CHUNK).map(move |i| {
            (i..(i + CHUNK).min(n))
                .map(|j| record(j, hour_end, n))
                .collect::<Vec<_>>()
        })
    };
    // Baseline: JSON lines.
    let mut spent = std::time::Duration::ZERO;
    let mut json_bytes = 0u64;
    {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(root.join("baseline.jsonl")).unwrap());
        for chunk in chunks() {
            let start = Instant::now();
            for r in chunk {
                let line = Value::Object(r).to_string();
                json_bytes += line.len() as u64 + 1;
                out.write_all(line.as_bytes()).unwrap();
                out.write_all(b"\n").unwrap();
            }
            spent += start.elapsed();
        }
        let start = Instant::now();
        out.flush().unwrap();
        spent += start.elapsed();
    }
    let json_rate = n as f64 / spent.as_secs_f64();
    std::fs::remove_file(root.join("baseline.jsonl")).ok();

    let dir = root.join("store");
    let store = Store::open(StoreOptions::new(&dir)).unwrap();
    let mut spent = std::time::Duration::ZERO;
    for chunk in chunks() {
        // The pipeline hands the store typed flow records.
        let flows: Vec<FlowRecord> = chunk
            .into_iter()
            .map(|r| serde_json::from_value(Value::Object(r)).expect("a flow record"))
            .collect();
        let start = Instant::now();
        store.append_flows(&flows);
        spent += start.elapsed();
    }
    let start = Instant::now();
    store.close();
    spent += start.elapsed();
    let store_rate = n as f64 / spent.as_secs_f64();
    let disk = dir_bytes(&dir);
    println!("## Store ingest (one core, {n} flow records)\n");
    println!("| writer | records/s | bytes per record |");
    println!("|---|---|---|");
    println!(
        "| JSON lines (baseline) | {json_rate:.0} | {:.1} |",
        json_bytes as f64 / n as f64
    );
    println!(
        "| flowlens store (Parquet, zstd) | {store_rate:.0} | {:.1} |",
        disk as f64 / n as f64
    );
    println!(
        "\nratios to the baseline: rate {:.2}, size {:.3}\n",
        store_rate / json_rate,
        disk as f64 / json_bytes as f64
    );

    if std::env::var_os("STORE_BENCH_INGEST_ONLY").is_some() {
        return;
    }
    let options = StoreOptions {
        rollup_grace: std::time::Duration::ZERO,
        ..StoreOptions::new(&dir)
    };
    let store = Store::open(options.clone()).unwrap();
    let start = Instant::now();
    while store.roll_up() {}
    let rollup_ms = start.elapsed().as_secs_f64() * 1000.0;
    let raw = Store::open(StoreOptions {
        rollups: false,
        ..options
    })
    .unwrap();
    let c = store.counters();
    println!(
        "## Rollups of the hour ({n} flow records)
"
    );
    println!(
        "rolled up in {rollup_ms:.0} ms ({:.0} records/s), {} files, {} bytes ({:.4} bytes per flow record)\n",
        n as f64 / (rollup_ms / 1000.0),
        c.rollup_files,
        c.rollup_bytes,
        c.rollup_bytes as f64 / n as f64
    );

    let hour = (hour_end - 3_600_000, hour_end);
    let week = (hour_end - 7 * 86_400_000, hour_end);
    let (scan_ms, _) =
        timed(|| raw.series(Table::Flows, None, hour.0, hour.1, 3_600_000, Metric::Flows));
    let nx = Filter::parse("dns.rcode = NXDomain and src.namespace = ns-0").unwrap();
    let (page_ms, page) = timed(|| {
        store.records(&RecordQuery {
            table: Table::Flows,
            filter: Some(&nx),
            since_ms: hour.0,
            until_ms: hour.1,
            limit: 100,
            order: Order::Desc,
            after: None,
        })
    });
    let by = flowlens_query::fields::lookup("dst.namespace").unwrap();
    let top = |s: &Store| s.top(Table::Flows, None, hour.0, hour.1, by, Metric::Bytes, 10);
    let (top_ms, top_rolled) = timed(|| top(&store));
    let (top_raw_ms, top_raw) = timed(|| top(&raw));
    assert_eq!(
        format!("{top_rolled:?}"),
        format!("{top_raw:?}"),
        "rollups disagree"
    );
    let series = |s: &Store| s.series(Table::Flows, None, week.0, week.1, 3_600_000, Metric::Bytes);
    let (series_ms, series_rolled) = timed(|| series(&store));
    let (series_raw_ms, series_raw) = timed(|| series(&raw));
    assert_eq!(
        format!("{series_rolled:?}"),
        format!("{series_raw:?}"),
        "rollups disagree"
    );
    println!("## Store queries ({n} stored flows, median of 5)\n");
    println!("| query | ms | ratio to a full pass |");
    println!("|---|---|---|");
    println!("| full pass over every record (baseline: count per hour) | {scan_ms:.1} | 1 |");
    println!(
        "| flow table, filter `dns.rcode = NXDomain and src.namespace = ns-0`, limit 100 ({} rows) | {page_ms:.1} | {:.3} |",
        page.records.len(),
        page_ms / scan_ms
    );
    for (what, ms) in [
        ("from rollups", top_ms),
        ("from flow files alone", top_raw_ms),
    ] {
        println!(
            "| top-10 dst.namespace by bytes, full hour ({} groups), {what} | {ms:.1} | {:.3} |",
            top_rolled.len(),
            ms / scan_ms
        );
    }
    for (what, ms) in [
        ("from rollups", series_ms),
        ("from flow files alone", series_raw_ms),
    ] {
        println!(
            "| bytes per hour over 7 days ({} points), {what} | {ms:.1} | {:.3} |",
            series_rolled.len(),
            ms / scan_ms
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
