//! The store on a real data directory: what was flushed survives a restart
//! once and only once, pages and cursors are exact, bad files are skipped,
//! retention counts what it removes, and aggregates add up.

use flowlens_query::Filter;
use flowlens_store::{Metric, Order, RecordQuery, Stat, Store, StoreOptions, Table};
use serde_json::{Map, Value, json};
use std::time::Duration;

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("flowlens-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const T0: i64 = 1_764_400_000_000;

fn flow(i: i64) -> Map<String, Value> {
    let ns = ["frontend", "backend", "db"][(i % 3) as usize];
    json!({
        "SrcAddr": "198.18.0.1", "DstAddr": format!("198.18.0.{}", 2 + i % 3),
        "SrcPort": 40000 + i, "DstPort": if i % 10 == 0 { 53 } else { 443 },
        "Proto": if i % 10 == 0 { 17 } else { 6 }, "Bytes": 100 * (i + 1), "Packets": i + 1,
        "TimeFlowStartMs": T0 + i * 1000 - 500, "TimeFlowEndMs": T0 + i * 1000,
        "SrcK8S_Namespace": "frontend", "DstK8S_Namespace": ns,
        "DnsFlagsResponseCode": if i % 10 == 0 { Some(if i % 20 == 0 { "NXDomain" } else { "NoError" }) } else { None },
        "TimeFlowRttNs": if i % 10 == 0 { None } else { Some(1_000_000 * (i % 7 + 1)) },
        "Interfaces": ["veth0"], "IfDirections": [1],
    })
    .as_object()
    .unwrap()
    .clone()
}

fn options(dir: &TempDir) -> StoreOptions {
    StoreOptions {
        flush_rows: 40,
        ..StoreOptions::new(&dir.0)
    }
}

fn query<'f>(filter: Option<&'f Filter>, limit: usize) -> RecordQuery<'f> {
    RecordQuery {
        table: Table::Flows,
        filter,
        since_ms: T0,
        until_ms: T0 + 1_000_000,
        limit,
        order: Order::Desc,
        after: None,
    }
}

fn ports(records: &[Map<String, Value>]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r["SrcPort"].as_i64().unwrap() - 40000)
        .collect()
}

#[test]
fn flushed_records_survive_a_restart_once_and_pages_are_exact() {
    let dir = TempDir::new("restart");
    let store = Store::open(options(&dir)).unwrap();
    store.append(Table::Flows, (0..100).map(flow).collect());
    // 80 written (two full buffers), 20 still in memory: queries see all.
    assert_eq!(store.counters().records_written, 80);
    let all = store.records(&query(None, 1000));
    assert_eq!(ports(&all.records), (0..100).rev().collect::<Vec<_>>());
    assert_eq!(all.cursor, None);
    drop(store); // a crash: the 20 in memory are lost, the 80 are not

    let store = Store::open(options(&dir)).unwrap();
    let after = store.records(&query(None, 1000));
    assert_eq!(ports(&after.records), (0..80).rev().collect::<Vec<_>>());
    store.append(Table::Flows, (100..130).map(flow).collect());
    store.close();
    let store = Store::open(options(&dir)).unwrap();
    let mut seen = Vec::new();
    let mut q = query(None, 25);
    loop {
        let page = store.records(&q);
        seen.extend(ports(&page.records));
        match page.cursor {
            Some(c) => q.after = flowlens_store::Cursor::parse(&c),
            None => break,
        }
    }
    let want: Vec<i64> = (0..80).chain(100..130).rev().collect();
    assert_eq!(seen, want, "every page once, in order, nothing twice");
    let mut asc = query(None, 7);
    asc.order = Order::Asc;
    assert_eq!(
        ports(&store.records(&asc).records),
        (0..7).collect::<Vec<_>>()
    );
}

/// Every record once and in order, paging either way through files whose
/// time spans overlap (records arrive out of order) and the buffer, with
/// and without reusing the last file between pages.
#[test]
fn pages_through_overlapping_files_are_exact_both_ways() {
    let dir = TempDir::new("overlap");
    let store = Store::open(options(&dir)).unwrap();
    // 230 records in a scrambled order: files of 40 cover wide spans.
    let order: Vec<i64> = (0..230).map(|i| (i * 97) % 230).collect();
    for chunk in order.chunks(23) {
        store.append(Table::Flows, chunk.iter().copied().map(flow).collect());
    }
    for (direction, limit, reuse) in [
        (Order::Desc, 25, false),
        (Order::Desc, 7, true),
        (Order::Asc, 25, true),
        (Order::Asc, 7, false),
    ] {
        let cache = flowlens_store::FileCache::default();
        let mut q = query(None, limit);
        q.order = direction;
        let mut seen = Vec::new();
        loop {
            let page = if reuse {
                store.records_with(&q, &cache)
            } else {
                store.records(&q)
            };
            seen.extend(ports(&page.records));
            match page.cursor {
                Some(c) => q.after = flowlens_store::Cursor::parse(&c),
                None => break,
            }
        }
        let mut want: Vec<i64> = (0..230).collect();
        if direction == Order::Desc {
            want.reverse();
        }
        assert_eq!(seen, want, "{direction:?} by {limit}");
    }
}

#[test]
fn filters_select_from_stored_files() {
    let dir = TempDir::new("filters");
    let store = Store::open(options(&dir)).unwrap();
    store.append(Table::Flows, (0..100).map(flow).collect());
    store.close();
    let check = |text: &str, want: Vec<i64>| {
        let filter = Filter::parse(text).unwrap();
        let got = ports(&store.records(&query(Some(&filter), 1000)).records);
        assert_eq!(got, want, "{text}");
    };
    check(
        "dns.rcode = NXDomain",
        (0..100).filter(|i| i % 20 == 0).rev().collect(),
    );
    check(
        "dns.response_code != 0",
        (0..100).filter(|i| i % 20 == 0).rev().collect(),
    );
    check(
        "dst.namespace = db and rtt > 6ms",
        (0..100)
            .filter(|i| i % 3 == 2 && i % 10 != 0 && i % 7 == 6)
            .rev()
            .collect(),
    );
    check("bytes > 9.5KB", (95..100).rev().collect());
}

#[test]
fn truncated_corrupt_and_leftover_files_do_not_stop_the_store() {
    let dir = TempDir::new("corrupt");
    let store = Store::open(options(&dir)).unwrap();
    store.append(Table::Flows, (0..120).map(flow).collect());
    drop(store);
    let mut files: Vec<_> = walk(&dir.0.join("flows"));
    files.sort();
    assert_eq!(files.len(), 3);
    // Truncate one file, fill another with garbage, leave a .tmp behind.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(&files[1], b"not parquet at all").unwrap();
    std::fs::write(files[2].with_extension("parquet.tmp"), b"half").unwrap();
    let store = Store::open(options(&dir)).unwrap();
    let c = store.counters();
    assert_eq!((c.corrupt_files, c.leftovers_removed, c.files), (2, 1, 1));
    assert_eq!(store.records(&query(None, 1000)).records.len(), 40);
    // Corrupted while open: skipped and counted at the next read.
    std::fs::write(&files[2], b"gone bad").unwrap();
    assert_eq!(store.records(&query(None, 1000)).records.len(), 0);
    assert_eq!(store.counters().corrupt_files, 3);
    // All three are in quarantine, out of the table's folder: the next
    // start reads none of them again.
    assert_eq!(walk(&dir.0.join("quarantine")).len(), 3);
    assert!(walk(&dir.0.join("flows")).is_empty());
    drop(store);
    let store = Store::open(options(&dir)).unwrap();
    assert_eq!(store.counters().corrupt_files, 0);
}

/// Found by fuzzing (`fuzz/` target store_file): a file whose footer reads
/// but whose pages make the Parquet reader panic is quarantined at the
/// first query that reads it, and the store goes on.
#[test]
fn a_file_that_panics_the_parquet_reader_is_quarantined() {
    let dir = TempDir::new("reader-panic");
    let hour = dir.0.join("flows/2025-11-29/07");
    std::fs::create_dir_all(&hour).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/reader-panic.parquet"
        ),
        hour.join("1764400000000_1764400000500_100.parquet"),
    )
    .unwrap();
    let store = Store::open(options(&dir)).unwrap();
    let all = RecordQuery {
        since_ms: 0,
        until_ms: i64::MAX,
        ..query(None, 1000)
    };
    assert!(store.records(&all).records.is_empty());
    let c = store.counters();
    assert_eq!((c.corrupt_files, c.files), (1, 0), "{c:?}");
    assert_eq!(walk(&dir.0.join("quarantine")).len(), 1);
    store.append(Table::Flows, (0..10).map(flow).collect());
    assert_eq!(store.records(&all).records.len(), 10);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn retention_by_age_and_size_removes_the_oldest_and_counts() {
    let dir = TempDir::new("retention");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = |i: i64, ms: i64| {
        let mut r = flow(i);
        r.insert("TimeFlowEndMs".into(), json!(ms));
        r
    };
    let store = Store::open(StoreOptions {
        retention: Some(Duration::from_secs(3600)),
        ..options(&dir)
    })
    .unwrap();
    // 40 records two hours old, 40 fresh.
    store.append(
        Table::Flows,
        (0..40).map(|i| at(i, now - 7_200_000)).collect(),
    );
    store.append(Table::Flows, (40..80).map(|i| at(i, now - 1000)).collect());
    store.maintain();
    let c = store.counters();
    assert_eq!((c.files_removed, c.records_removed, c.files), (1, 40, 1));
    drop(store);

    let one_file = walk(&dir.0.join("flows"))[0].metadata().unwrap().len();
    let store = Store::open(StoreOptions {
        max_disk_bytes: Some(one_file * 2 + one_file / 2),
        ..options(&dir)
    })
    .unwrap();
    store.append(Table::Flows, (80..160).map(|i| at(i, now + i)).collect());
    store.maintain();
    let c = store.counters();
    assert_eq!(c.files, 2, "{c:?}");
    assert_eq!(c.files_removed, 1);
    assert!(c.disk_bytes <= one_file * 2 + one_file / 2);
    let left = store.records(&RecordQuery {
        since_ms: 0,
        until_ms: i64::MAX,
        ..query(None, 1000)
    });
    assert_eq!(left.records.len(), 80, "the oldest file went first");
}

#[test]
fn top_series_and_topology_add_up() {
    let dir = TempDir::new("aggregates");
    let store = Store::open(options(&dir)).unwrap();
    store.append(Table::Flows, (0..90).map(flow).collect());
    let by = flowlens_query::fields::lookup("dst.namespace").unwrap();
    let top = store.top(Table::Flows, None, T0, T0 + 1_000_000, by, Metric::Bytes, 2);
    let sum = |m: i64| {
        (0..90)
            .filter(|i| i % 3 == m)
            .map(|i| 100 * (i + 1))
            .sum::<i64>() as f64
    };
    assert_eq!(top.len(), 2);
    assert_eq!((top[0].key.as_str(), top[0].value), ("db", sum(2)));
    assert_eq!((top[1].key.as_str(), top[1].value), ("backend", sum(1)));
    let flows = store.top(Table::Flows, None, T0, T0 + 1_000_000, by, Metric::Flows, 5);
    assert_eq!(flows.iter().map(|e| e.value).sum::<f64>(), 90.0);
    let rtt = store.top(
        Table::Flows,
        None,
        T0,
        T0 + 1_000_000,
        by,
        Metric::Rtt(Stat::Max),
        5,
    );
    assert_eq!(rtt[0].value, 7.0, "ms");
    let series = store.series(Table::Flows, None, T0, T0 + 90_000, 30_000, Metric::Packets);
    assert_eq!(
        series.len(),
        4,
        "buckets aligned to the step: T0 falls inside the first"
    );
    assert_eq!(
        series.iter().map(|p| p.value).sum::<f64>(),
        (1..=90).sum::<i64>() as f64
    );
    let src = flowlens_query::fields::lookup("src.namespace").unwrap();
    let edges = store.topology(Table::Flows, None, T0, T0 + 1_000_000, src, by);
    assert_eq!(edges.len(), 3, "{edges:?}");
    assert_eq!(edges.iter().map(|e| e.records).sum::<u64>(), 90);
    assert_eq!(edges.iter().map(|e| e.dns_errors).sum::<u64>(), 5);
}

#[test]
fn whole_column_and_row_paths_agree() {
    let dir = TempDir::new("paths");
    let store = Store::open(options(&dir)).unwrap();
    store.append(Table::Flows, (0..130).map(flow).collect());
    // A filter every record passes forces the row path.
    let everything = Filter::parse("packets >= 0").unwrap();
    let by = flowlens_query::fields::lookup("dst.namespace").unwrap();
    for metric in [
        Metric::Bytes,
        Metric::Packets,
        Metric::Flows,
        Metric::Rtt(Stat::Avg),
    ] {
        let columns = store.top(Table::Flows, None, T0, T0 + 1_000_000, by, metric, 10);
        let rows = store.top(
            Table::Flows,
            Some(&everything),
            T0,
            T0 + 1_000_000,
            by,
            metric,
            10,
        );
        let pairs = |e: &[flowlens_store::TopEntry]| {
            e.iter()
                .map(|e| (e.key.clone(), e.value, e.records))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&columns), pairs(&rows), "{metric:?}");
        let a = store.series(Table::Flows, None, T0, T0 + 200_000, 30_000, metric);
        let b = store.series(
            Table::Flows,
            Some(&everything),
            T0,
            T0 + 200_000,
            30_000,
            metric,
        );
        let points = |p: &[flowlens_store::SeriesPoint]| {
            p.iter().map(|p| (p.time_ms, p.value)).collect::<Vec<_>>()
        };
        assert_eq!(points(&a), points(&b), "{metric:?}");
    }
}

/// Top-K and series of a store, as comparable figures.
fn sums(store: &Store, since: i64, until: i64) -> Vec<String> {
    let mut out = Vec::new();
    // Filters rollups can answer (dimensions only) and one they cannot.
    let filters = [
        "",
        "dst.namespace = db",
        "dns.rcode = NXDomain",
        "dst.port = 53",
    ];
    for text in filters {
        let filter = (!text.is_empty()).then(|| Filter::parse(text).unwrap());
        for by in ["dst.namespace", "dns.rcode"] {
            let by = flowlens_query::fields::lookup(by).unwrap();
            for metric in [Metric::Bytes, Metric::Flows, Metric::Packets] {
                for e in store.top(Table::Flows, filter.as_ref(), since, until, by, metric, 10) {
                    out.push(format!(
                        "top {text} {metric:?} {} {} {}",
                        e.key, e.value, e.records
                    ));
                }
            }
        }
        for metric in [Metric::Bytes, Metric::Flows] {
            for step in [60_000, 300_000, 3_600_000] {
                for p in store.series(Table::Flows, filter.as_ref(), since, until, step, metric) {
                    out.push(format!(
                        "series {text} {metric:?} {step} {} {}",
                        p.time_ms, p.value
                    ));
                }
            }
        }
    }
    out
}

/// A store of 6,000 flows over two hours long past, in files of 500, its
/// hours rolled up (one per call), and its options.
fn rolled_up_store(dir: &TempDir) -> (Store, StoreOptions) {
    let rolled = StoreOptions {
        flush_rows: 500,
        rollup_grace: Duration::ZERO,
        ..StoreOptions::new(&dir.0)
    };
    let store = Store::open(rolled.clone()).unwrap();
    store.append(Table::Flows, (0..6000).map(flow).collect());
    store.close();
    while store.roll_up() {}
    (store, rolled)
}

#[test]
fn rollups_answer_as_the_flows_do_and_follow_late_records() {
    let dir = TempDir::new("rollups");
    let (store, rolled) = rolled_up_store(&dir);
    let c = store.counters();
    assert_eq!((c.rollups_written, c.rollup_files), (6, 6), "{c:?}");
    for level in ["flows_1m", "flows_5m", "flows_1h"] {
        assert!(dir.0.join(level).is_dir(), "no {level}");
    }

    let raw = Store::open(StoreOptions {
        rollups: false,
        ..rolled.clone()
    })
    .unwrap();
    // Unaligned ends (partial buckets come from flow files), a whole day.
    let ranges = [
        (T0 + 123_456, T0 + 5_400_321),
        (T0 - 86_400_000, T0 + 86_400_000),
    ];
    for (since, until) in ranges {
        assert_eq!(sums(&store, since, until), sums(&raw, since, until));
    }
    // Unfiltered and dimension-filtered sums read rollups; `dst.port` ones do not.
    let c = store.counters();
    assert!(
        c.rollup_queries >= 2 * 3 * 12,
        "rollups were not read enough: {c:?}"
    );
    assert_eq!(raw.counters().rollup_queries, 0);

    // A record of an hour already rolled up arrives late: that hour is
    // answered from its flows until it is rolled up again.
    let mut late = flow(10);
    late.insert("Bytes".into(), json!(1_000_000));
    store.append(Table::Flows, vec![late.clone()]);
    store.close();
    raw.append(Table::Flows, vec![late]);
    raw.close();
    let (since, until) = ranges[1];
    assert_eq!(sums(&store, since, until), sums(&raw, since, until));
    assert!(store.roll_up() && !store.roll_up());
    assert_eq!(store.counters().rollups_written, 9);
    assert_eq!(
        store.counters().rollup_files,
        6,
        "replaced rollups are removed"
    );
    assert_eq!(sums(&store, since, until), sums(&raw, since, until));
}

/// `--max-disk` counts the rollups with the files they sum: a store whose
/// flow files alone fit, but not with their rollups, removes its oldest.
#[test]
fn the_disk_limit_counts_rollups_too() {
    let dir = TempDir::new("max-disk-rollups");
    let (store, rolled) = rolled_up_store(&dir);
    let c = store.counters();
    assert!(c.rollup_bytes > 0, "{c:?}");
    drop(store);
    let limit = c.disk_bytes;
    let store = Store::open(StoreOptions {
        max_disk_bytes: Some(limit),
        ..rolled
    })
    .unwrap();
    store.maintain();
    let after = store.counters();
    assert!(after.files_removed >= 1, "{after:?}");
    assert!(
        after.disk_bytes + after.rollup_bytes <= limit,
        "{after:?} over {limit}"
    );
}

#[test]
fn the_data_directory_and_every_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("private");
    // A directory made by hand, readable by all: narrowed when opened.
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = Store::open(options(&dir)).unwrap();
    store.append(Table::Flows, (0..100).map(flow).collect());
    store.close();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.0), 0o700);
    let files = walk(&dir.0);
    assert!(!files.is_empty());
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        let mut parent = file.parent().unwrap();
        while parent != dir.0 {
            assert_eq!(mode(parent), 0o700, "{}", parent.display());
            parent = parent.parent().unwrap();
        }
    }
}
