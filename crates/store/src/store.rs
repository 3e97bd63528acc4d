//! The store: per-table buffers in memory, Parquet files on disk, retention
//! by age and size, and every record it takes, writes, skips or removes
//! counted.

use crate::files::{self, DataFile, Table};
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub dir: PathBuf,
    /// Records older than this are removed (by whole files).
    pub retention: Option<Duration>,
    /// When the files take more, the oldest go first.
    pub max_disk_bytes: Option<u64>,
    /// A table's buffer is written out at this many records...
    pub flush_rows: usize,
    /// ...or when its oldest record has waited this long.
    pub flush_interval: Duration,
    /// Records held in memory at most while writes fail; beyond, new
    /// records are dropped and counted.
    pub max_buffered: usize,
}

impl StoreOptions {
    pub fn new(dir: impl Into<PathBuf>) -> StoreOptions {
        StoreOptions {
            dir: dir.into(),
            retention: None,
            max_disk_bytes: None,
            flush_rows: 64 * 1024,
            flush_interval: Duration::from_secs(5),
            max_buffered: 1_000_000,
        }
    }
}

/// What the store took in, wrote, skipped and removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreCounters {
    pub records_received: u64,
    pub records_written: u64,
    pub files_written: u64,
    /// Writes that failed (their records stay buffered and are retried).
    pub write_errors: u64,
    /// Records dropped because writes kept failing and the buffer was full.
    pub records_dropped: u64,
    /// Files removed by retention, and their records and bytes.
    pub files_removed: u64,
    pub records_removed: u64,
    pub bytes_removed: u64,
    /// Unreadable files found at start or while querying (skipped).
    pub corrupt_files: u64,
    /// `.tmp` leftovers of writes a crash interrupted (removed at start).
    pub leftovers_removed: u64,
    /// Now: files, their bytes, records waiting in memory.
    pub files: u64,
    pub disk_bytes: u64,
    pub buffered_records: u64,
    /// Of those, flows and conversation records.
    pub buffered_flows: u64,
    pub buffered_conversations: u64,
}

impl StoreCounters {
    pub const GAUGES: &'static [&'static str] = &[
        "files",
        "disk_bytes",
        "buffered_records",
        "buffered_flows",
        "buffered_conversations",
    ];
}

struct Buffer {
    records: Vec<Map<String, Value>>,
    since: Option<Instant>,
}

struct Inner {
    buffers: [Buffer; 2],
    files: [Vec<DataFile>; 2],
    next_id: u64,
    counters: StoreCounters,
}

pub struct Store {
    options: StoreOptions,
    inner: Mutex<Inner>,
}

fn slot(table: Table) -> usize {
    match table {
        Table::Flows => 0,
        Table::Conversations => 1,
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating) the data directory and lists its files: leftovers
    /// of an interrupted write are removed, unreadable files reported and
    /// skipped. Nothing needs repair by hand.
    pub fn open(options: StoreOptions) -> std::io::Result<Store> {
        std::fs::create_dir_all(&options.dir)?;
        let mut counters = StoreCounters::default();
        let mut files: [Vec<DataFile>; 2] = Default::default();
        let mut next_id = 0;
        for table in Table::ALL {
            let listing = files::list(&options.dir, table);
            counters.leftovers_removed += listing.leftovers_removed;
            counters.corrupt_files += listing.corrupt.len() as u64;
            for (path, why) in &listing.corrupt {
                tracing::warn!("skipping unreadable store file {}: {why}", path.display());
            }
            for path in &listing.foreign {
                tracing::warn!("ignoring {} (not a store file name)", path.display());
            }
            next_id = listing
                .files
                .iter()
                .map(|f| f.first_id + f.rows)
                .fold(next_id, u64::max);
            files[slot(table)] = listing.files;
        }
        let store = Store {
            options,
            inner: Mutex::new(Inner {
                buffers: [
                    Buffer {
                        records: vec![],
                        since: None,
                    },
                    Buffer {
                        records: vec![],
                        since: None,
                    },
                ],
                files,
                next_id,
                counters,
            }),
        };
        store.update_gauges();
        Ok(store)
    }

    pub fn counters(&self) -> StoreCounters {
        self.inner
            .lock()
            .map(|i| i.counters.clone())
            .unwrap_or_default()
    }

    fn update_gauges(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            let files = inner.files.iter().flatten();
            let (n, bytes) = files.fold((0, 0), |(n, b), f| (n + 1, b + f.bytes));
            let flows = inner.buffers[slot(Table::Flows)].records.len() as u64;
            let conversations = inner.buffers[slot(Table::Conversations)].records.len() as u64;
            let c = &mut inner.counters;
            (c.files, c.disk_bytes) = (n, bytes);
            c.buffered_records = flows + conversations;
            (c.buffered_flows, c.buffered_conversations) = (flows, conversations);
        }
    }

    /// Takes records; each gets a store id (`_Id`, unique and increasing,
    /// also across restarts). Every `flush_rows` records make a file.
    pub fn append(&self, table: Table, records: Vec<Map<String, Value>>) {
        if let Ok(mut inner) = self.inner.lock() {
            let inner = &mut *inner;
            inner.counters.records_received += records.len() as u64;
            // Ids follow the clock (ms << 16), so they keep increasing
            // across restarts without reading old files.
            let mut id = inner.next_id.max((now_ms() as u64) << 16);
            let mut dropped = 0u64;
            for mut record in records {
                let buffer = &mut inner.buffers[slot(table)];
                if buffer.records.len() >= self.options.max_buffered {
                    dropped += 1;
                    continue;
                }
                record.insert(crate::ID.into(), Value::from(id));
                id += 1;
                buffer.records.push(record);
                buffer.since.get_or_insert_with(Instant::now);
                if buffer.records.len() >= self.options.flush_rows {
                    self.flush_locked(inner, table);
                }
            }
            inner.next_id = id;
            if dropped > 0 {
                inner.counters.records_dropped += dropped;
                tracing::warn!(
                    dropped,
                    "store buffer full (writes failing): records dropped"
                );
            }
        }
        self.update_gauges();
    }

    /// Writes a table's buffer out as one file.
    pub fn flush(&self, table: Table) {
        if let Ok(mut inner) = self.inner.lock() {
            self.flush_locked(&mut inner, table);
        }
    }

    fn flush_locked(&self, inner: &mut Inner, table: Table) {
        let buffer = &mut inner.buffers[slot(table)];
        if buffer.records.is_empty() {
            return;
        }
        match files::write(&self.options.dir, table, &buffer.records) {
            Ok(file) => {
                inner.counters.records_written += file.rows;
                inner.counters.files_written += 1;
                buffer.records.clear();
                buffer.since = None;
                inner.files[slot(table)].push(file);
            }
            Err(e) => {
                inner.counters.write_errors += 1;
                tracing::error!(
                    "writing the {} store: {e} (kept in memory, retried)",
                    table.dir()
                );
            }
        }
    }

    /// Timer work: writes buffers that waited long enough, applies the
    /// retention.
    pub fn maintain(&self) {
        for table in Table::ALL {
            let due = self.inner.lock().is_ok_and(|i| {
                i.buffers[slot(table)]
                    .since
                    .is_some_and(|t| t.elapsed() >= self.options.flush_interval)
            });
            if due {
                self.flush(table);
            }
        }
        self.apply_retention(now_ms());
        self.update_gauges();
    }

    /// Writes everything out (at shutdown).
    pub fn close(&self) {
        for table in Table::ALL {
            self.flush(table);
        }
        self.update_gauges();
    }

    fn apply_retention(&self, now_ms: i64) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let inner = &mut *inner;
        let mut doomed: Vec<DataFile> = Vec::new();
        if let Some(age) = self.options.retention {
            let oldest_kept = now_ms - age.as_millis() as i64;
            for files in inner.files.iter_mut() {
                let (old, kept): (Vec<_>, Vec<_>) =
                    files.drain(..).partition(|f| f.last_ms < oldest_kept);
                *files = kept;
                doomed.extend(old);
            }
        }
        if let Some(max) = self.options.max_disk_bytes {
            let mut total: u64 = inner.files.iter().flatten().map(|f| f.bytes).sum();
            while total > max {
                // The oldest file of either table goes first.
                let Some((t, i)) = (0..2)
                    .flat_map(|t| {
                        inner.files[t]
                            .iter()
                            .enumerate()
                            .map(move |(i, f)| (t, i, f.last_ms))
                    })
                    .min_by_key(|(_, _, last)| *last)
                    .map(|(t, i, _)| (t, i))
                else {
                    break;
                };
                let file = inner.files[t].remove(i);
                total -= file.bytes;
                doomed.push(file);
            }
        }
        for file in doomed {
            if let Err(e) = std::fs::remove_file(&file.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("removing {}: {e}", file.path.display());
                continue;
            }
            let c = &mut inner.counters;
            c.files_removed += 1;
            c.records_removed += file.rows;
            c.bytes_removed += file.bytes;
        }
    }

    /// The files and buffered records a read of `table` between `since`
    /// and `until` (end times, ms) looks at, newest first.
    pub(crate) fn snapshot(
        &self,
        table: Table,
        since: i64,
        until: i64,
    ) -> (Vec<DataFile>, Vec<Map<String, Value>>) {
        let Ok(inner) = self.inner.lock() else {
            return (vec![], vec![]);
        };
        let mut files: Vec<DataFile> = inner.files[slot(table)]
            .iter()
            .filter(|f| f.last_ms >= since && f.first_ms < until)
            .cloned()
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse((f.last_ms, f.first_id)));
        (files, inner.buffers[slot(table)].records.clone())
    }

    /// A file's batches for a query (see `files::read_with`); None when it
    /// is gone (retention) or unreadable — the latter reported and counted.
    pub(crate) fn read_file(
        &self,
        file: &DataFile,
        only: Option<&[&str]>,
        dictionary: Option<&str>,
    ) -> Option<Vec<arrow_array::RecordBatch>> {
        match files::read_with(&file.path, only, dictionary) {
            Ok(batches) => Some(batches),
            Err(why) => {
                if file.path.exists() {
                    self.report_corrupt(file, &why);
                }
                None
            }
        }
    }

    /// Counts a file found unreadable while querying.
    pub(crate) fn report_corrupt(&self, file: &DataFile, why: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            let before = inner.files.iter().map(Vec::len).sum::<usize>();
            for files in inner.files.iter_mut() {
                files.retain(|f| f.path != file.path);
            }
            if inner.files.iter().map(Vec::len).sum::<usize>() < before {
                inner.counters.corrupt_files += 1;
                tracing::warn!("skipping unreadable store file: {why}");
            }
        }
    }
}
