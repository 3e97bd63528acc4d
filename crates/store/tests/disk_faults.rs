//! The store on a disk that fails: a small tmpfs that fills up (by the
//! store, or by something else), a read-only remount, and EACCES. Writes
//! fail visibly, no `.tmp` file stays, the oldest files make room when
//! that helps, what had to be dropped is counted exactly, and the store
//! resumes by itself. Needs root (mounts); fails loudly without it.

use flowlens_store::{Order, RecordQuery, Store, StoreCounters, StoreOptions, Table};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the disk-fault tests mount filesystems: run them as root (scripts/test)"
    );
}

fn run(cmd: &str) {
    let status = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(status.success(), "`{cmd}` failed");
}

/// A tmpfs of `size` on a fresh directory, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(name: &str, size: &str) -> SmallDisk {
        require_root();
        let dir = std::env::temp_dir().join(format!("flowlens-disk-{name}-{}", std::process::id()));
        let _ = Command::new("umount")
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status();
        std::fs::create_dir_all(&dir).unwrap();
        run(&format!(
            "mount -t tmpfs -o size={size},mode=0755 tmpfs {}",
            dir.display()
        ));
        SmallDisk(dir)
    }

    fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    fn remount(&self, how: &str) {
        run(&format!("mount -o remount,{how} {}", self.0.display()));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `n` records of round `round`, with text that compresses poorly (so
/// files take room).
fn records(round: u64, n: u64) -> Vec<Map<String, Value>> {
    let now = now_ms();
    (0..n)
        .map(|i| {
            let k = round * n + i;
            let noise = format!(
                "{:016x}{:016x}",
                k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                k ^ 0xdead_beef
            );
            json!({
                "SrcAddr": "198.18.0.1", "DstAddr": "198.18.0.2",
                "SrcPort": 1000 + (k % 60000), "DstPort": 53, "Proto": 17,
                "Bytes": k, "Packets": 1,
                "TimeFlowStartMs": now - 1000, "TimeFlowEndMs": now,
                "DnsName": format!("{noise}.example"),
                "Interfaces": ["veth0"], "IfDirections": [1],
            })
            .as_object()
            .unwrap()
            .clone()
        })
        .collect()
}

fn options(dir: &Path, max_buffered: usize) -> StoreOptions {
    StoreOptions {
        flush_rows: 2_000,
        flush_interval: Duration::from_millis(100),
        max_buffered,
        rollups: false,
        ..StoreOptions::new(dir)
    }
}

/// The newest `limit` flows the store holds now.
fn newest(store: &Store, limit: usize) -> Vec<Map<String, Value>> {
    store
        .records(&RecordQuery {
            table: Table::Flows,
            filter: None,
            since_ms: 0,
            until_ms: now_ms() + 60_000,
            limit,
            order: Order::Desc,
            after: None,
        })
        .records
}

/// Records a query finds now.
fn stored(store: &Store) -> u64 {
    newest(store, 1_000_000).len() as u64
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".tmp") {
                found.push(path);
            }
        }
    }
    found
}

/// Every record is written, buffered, removed (by a policy, counted) or
/// dropped (counted): nothing else.
fn assert_accounted(store: &Store, c: &StoreCounters) {
    assert_eq!(
        c.records_received,
        c.records_written + c.buffered_records + c.records_dropped,
        "{c:?}"
    );
    assert_eq!(
        stored(store),
        c.records_written - c.records_removed + c.buffered_records,
        "{c:?}"
    );
}

#[test]
fn a_store_that_fills_its_disk_makes_room_by_removing_the_oldest() {
    let disk = SmallDisk::mount("fill", "3m");
    let store = Store::open(options(&disk.data(), 100_000)).unwrap();
    for round in 0..120 {
        store.append(Table::Flows, records(round, 2_000));
    }
    let c = store.counters();
    eprintln!(
        "written {} records in {} files, {} files removed for space, {} write errors",
        c.records_written, c.files_written, c.files_removed_for_space, c.write_errors
    );
    assert!(c.files_removed_for_space > 0, "{c:?}");
    assert_eq!(c.files_removed, c.files_removed_for_space, "{c:?}");
    assert_eq!(c.records_dropped, 0, "{c:?}");
    assert_eq!(c.write_errors, 0, "room was made before each write: {c:?}");
    assert_accounted(&store, &c);
    assert!(leftovers(&disk.0).is_empty());
    // The newest records are the ones kept.
    assert_eq!(newest(&store, 1)[0]["Bytes"], 120 * 2_000 - 1);
}

#[test]
fn a_disk_full_of_something_else_drops_only_what_the_buffer_cannot_hold_and_resumes() {
    let disk = SmallDisk::mount("ballast", "4m");
    let store = Store::open(options(&disk.data(), 10_000)).unwrap();
    store.append(Table::Flows, records(0, 2_000));
    let before = store.counters();
    assert_eq!(before.records_written, 2_000);
    // Something else takes every free byte.
    let ballast = disk.0.join("ballast");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", ballast.display()))
        .output()
        .unwrap();
    for round in 1..=8 {
        store.append(Table::Flows, records(round, 2_000));
    }
    let c = store.counters();
    eprintln!(
        "disk full: {} write errors, {} buffered, {} dropped",
        c.write_errors, c.buffered_records, c.records_dropped
    );
    assert!(c.write_errors > 0, "{c:?}");
    assert_eq!(
        c.records_written, 2_000,
        "the store's history is kept: {c:?}"
    );
    assert_eq!(c.files_removed, 0, "{c:?}");
    assert_eq!(
        c.buffered_records, 10_000,
        "the buffer holds its bound: {c:?}"
    );
    assert_eq!(c.records_dropped, 16_000 - 10_000, "{c:?}");
    assert_accounted(&store, &c);
    assert!(leftovers(&disk.0).is_empty(), "{:?}", leftovers(&disk.0));

    // Space returns: the buffered records are written by the next timed
    // flush (the writer thread's, or `maintain`'s), and appends go on.
    std::fs::remove_file(&ballast).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    store.maintain();
    let c = store.counters();
    assert_eq!(c.buffered_records, 0, "{c:?}");
    assert_eq!(c.records_written, 2_000 + 10_000, "{c:?}");
    assert_eq!(c.records_dropped, 6_000, "{c:?}");
    store.append(Table::Flows, records(9, 2_000));
    let c = store.counters();
    assert_eq!(c.records_written, 2_000 + 10_000 + 2_000, "{c:?}");
    assert_accounted(&store, &c);
}

/// A fault that makes writes fail (`fail`, undone by `heal`): the write
/// made meanwhile fails visibly and keeps its records buffered, no `.tmp`
/// stays, and once healed the store writes them.
fn a_fault_fails_one_write_and_the_store_resumes(
    disk: &SmallDisk,
    fail: impl FnOnce(),
    heal: impl FnOnce(),
) {
    let store = Store::open(options(&disk.data(), 100_000)).unwrap();
    store.append(Table::Flows, records(0, 2_000));
    fail();
    store.append(Table::Flows, records(1, 2_000));
    let c = store.counters();
    heal();
    assert_eq!(c.write_errors, 1, "{c:?}");
    assert_eq!(c.buffered_records, 2_000, "{c:?}");
    assert_accounted(&store, &c);
    assert!(leftovers(&disk.0).is_empty());
    store.close();
    let c = store.counters();
    assert_eq!((c.records_written, c.buffered_records), (4_000, 0), "{c:?}");
    assert!(leftovers(&disk.0).is_empty());
    assert_accounted(&store, &c);
}

#[test]
fn a_read_only_remount_fails_writes_visibly_and_the_store_resumes() {
    let disk = SmallDisk::mount("readonly", "16m");
    a_fault_fails_one_write_and_the_store_resumes(
        &disk,
        || disk.remount("ro"),
        || disk.remount("rw"),
    );
}

#[test]
fn eacces_fails_writes_visibly_and_the_store_resumes() {
    let disk = SmallDisk::mount("eacces", "16m");
    // This thread (which writes: no writer thread) loses root's file
    // permissions; the data directory is root's, 0755.
    a_fault_fails_one_write_and_the_store_resumes(
        &disk,
        || unsafe {
            libc::setfsuid(65534);
        },
        || unsafe {
            libc::setfsuid(0);
        },
    );
}
