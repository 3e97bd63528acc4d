//! A store file damaged or crafted: the bytes become one flow file of a
//! data directory, which the store opens and queries. An unreadable file
//! is quarantined and counted; nothing may panic out of the store.
#![no_main]

use flowlens_store::{Order, RecordQuery, Store, StoreOptions, Table};
use libfuzzer_sys::fuzz_target;

/// The Parquet reader panics on some crafted files, and the store catches
/// that (the file is quarantined). libFuzzer's hook would abort at any
/// panic, caught or not; this one only reports. A panic that escapes the
/// store still aborts the run (libfuzzer-sys catches it and aborts).
fn report_panics_only() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let in_parquet = info
                .location()
                .is_some_and(|l| l.file().contains("/parquet-"));
            if !in_parquet {
                eprintln!("{info}");
            }
        }))
    });
}

fuzz_target!(|data: &[u8]| {
    report_panics_only();
    let dir = std::env::temp_dir().join(format!("flowlens-fuzz-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let hour = dir.join("flows/2025-11-29/07");
    std::fs::create_dir_all(&hour).unwrap();
    std::fs::write(hour.join("1764400000000_1764400000500_100.parquet"), data).unwrap();
    let store = Store::open(StoreOptions {
        rollups: false,
        ..StoreOptions::new(&dir)
    })
    .expect("the store opens whatever its files hold");
    let _ = store.records(&RecordQuery {
        table: Table::Flows,
        filter: None,
        since_ms: 0,
        until_ms: i64::MAX,
        limit: 100,
        order: Order::Desc,
        after: None,
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
});
