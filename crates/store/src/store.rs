//! The store: per-table buffers in memory, Parquet files on disk, retention
//! by age and size, and every record it takes, writes, skips or removes
//! counted.

use crate::batch::to_batch;
use crate::files::{self, DataFile, Table};
use crate::flow_batch::flows_to_batch;
use crate::rollup;
use arrow_array::RecordBatch;
use flowlens_model::FlowRecord;
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
    /// Roll closed hours of flows up per minute, 5 minutes and hour (see
    /// `rollup`), and answer unfiltered sums from them.
    pub rollups: bool,
    /// An hour is closed (rolled up) this long after its end: records of it
    /// that arrive later make it be rolled up again.
    pub rollup_grace: Duration,
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
            rollups: true,
            rollup_grace: Duration::from_secs(120),
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
    /// Rollup files written, and rollups that failed (retried later).
    pub rollups_written: u64,
    /// Sums answered (partly) from rollups.
    pub rollup_queries: u64,
    pub rollup_errors: u64,
    /// Now: rollup files and their bytes (not counted in `files`).
    pub rollup_files: u64,
    pub rollup_bytes: u64,
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
        "rollup_files",
        "rollup_bytes",
    ];
}

/// Records waiting for their file, as Arrow batches (compact, and shared
/// with queries without copying).
#[derive(Default)]
struct Buffer {
    batches: Vec<RecordBatch>,
    rows: usize,
    since: Option<Instant>,
}

pub(crate) struct Inner {
    buffers: [Buffer; 2],
    pub(crate) files: [Vec<DataFile>; 2],
    /// Rollup files per resolution of `rollup::RESOLUTIONS`.
    pub(crate) rollups: [Vec<DataFile>; 3],
    next_id: u64,
    pub(crate) counters: StoreCounters,
}

pub struct Store {
    pub(crate) options: StoreOptions,
    pub(crate) inner: Mutex<Inner>,
}

pub(crate) fn slot(table: Table) -> usize {
    match table {
        Table::Flows => 0,
        Table::Conversations => 1,
    }
}

/// The files of a folder of the data directory: leftovers of interrupted
/// writes removed, unreadable files reported, skipped and counted.
fn open_folder(root: &std::path::Path, dir: &str, counters: &mut StoreCounters) -> Vec<DataFile> {
    let listing = files::list(root, dir);
    counters.leftovers_removed += listing.leftovers_removed;
    counters.corrupt_files += listing.corrupt.len() as u64;
    for (path, why) in &listing.corrupt {
        tracing::warn!("skipping unreadable store file {}: {why}", path.display());
    }
    for path in &listing.foreign {
        tracing::warn!("ignoring {} (not a store file name)", path.display());
    }
    listing.files
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
            let listed = open_folder(&options.dir, table.dir(), &mut counters);
            next_id = listed
                .iter()
                .map(|f| f.first_id + f.rows)
                .fold(next_id, u64::max);
            files[slot(table)] = listed;
        }
        let mut rollups: [Vec<DataFile>; 3] = Default::default();
        for (level, (dir, _)) in rollup::RESOLUTIONS.iter().enumerate() {
            rollups[level] = open_folder(&options.dir, dir, &mut counters);
        }
        let store = Store {
            options,
            inner: Mutex::new(Inner {
                buffers: Default::default(),
                files,
                rollups,
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

    pub(crate) fn update_gauges(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            let files = inner.files.iter().flatten();
            let (n, bytes) = files.fold((0, 0), |(n, b), f| (n + 1, b + f.bytes));
            let flows = inner.buffers[slot(Table::Flows)].rows as u64;
            let conversations = inner.buffers[slot(Table::Conversations)].rows as u64;
            let rolled = inner.rollups.iter().flatten();
            let (rollup_files, rollup_bytes) =
                rolled.fold((0, 0), |(n, b), f| (n + 1, b + f.bytes));
            let c = &mut inner.counters;
            (c.files, c.disk_bytes) = (n, bytes);
            (c.rollup_files, c.rollup_bytes) = (rollup_files, rollup_bytes);
            c.buffered_records = flows + conversations;
            (c.buffered_flows, c.buffered_conversations) = (flows, conversations);
        }
    }

    /// Takes records; each gets a store id (`_Id`, unique and increasing,
    /// also across restarts). Every `flush_rows` records make a file.
    pub fn append(&self, table: Table, mut records: Vec<Map<String, Value>>) {
        self.append_with(table, records.len(), |first_id, rows| {
            for (i, record) in records[rows.clone()].iter_mut().enumerate() {
                record.insert(crate::ID.into(), Value::from(first_id + i as u64));
            }
            to_batch(&records[rows])
        });
    }

    /// Takes flow records, as `append` does, building their columns
    /// straight from the typed fields.
    pub fn append_flows(&self, flows: &[FlowRecord]) {
        self.append_with(Table::Flows, flows.len(), |first_id, rows| {
            flows_to_batch(&flows[rows], first_id)
        });
    }

    /// Appends `offered` records in batches `make(first_id, rows)` builds
    /// of a range of them, each filling the buffer at most up to a file;
    /// records beyond the buffer's room are dropped and counted.
    fn append_with(
        &self,
        table: Table,
        offered: usize,
        mut make: impl FnMut(u64, std::ops::Range<usize>) -> RecordBatch,
    ) {
        if offered == 0 {
            return;
        }
        if let Ok(mut inner) = self.inner.lock() {
            let inner = &mut *inner;
            inner.counters.records_received += offered as u64;
            let mut at = 0;
            while at < offered {
                let buffer = &inner.buffers[slot(table)];
                let room = self.options.max_buffered.saturating_sub(buffer.rows);
                // Up to a file's worth; past it (writes failing), all that fits,
                // with one more write attempt.
                let to_file = match self.options.flush_rows.checked_sub(buffer.rows) {
                    Some(n) if n > 0 => n,
                    _ => usize::MAX,
                };
                let take = (offered - at).min(room).min(to_file);
                if take == 0 {
                    break;
                }
                // Ids follow the clock (ms << 16), so they keep increasing
                // across restarts without reading old files.
                let first_id = inner.next_id.max((now_ms() as u64) << 16);
                inner.next_id = first_id + take as u64;
                let batch = make(first_id, at..at + take);
                let buffer = &mut inner.buffers[slot(table)];
                buffer.batches.push(batch);
                buffer.rows += take;
                buffer.since.get_or_insert_with(Instant::now);
                at += take;
                if buffer.rows >= self.options.flush_rows {
                    self.flush_locked(inner, table);
                }
            }
            let dropped = (offered - at) as u64;
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
        if buffer.rows == 0 {
            return;
        }
        match files::write(&self.options.dir, table.dir(), &buffer.batches) {
            Ok(file) => {
                inner.counters.records_written += file.rows;
                inner.counters.files_written += 1;
                *buffer = Buffer::default();
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
        // Rollups go with the flows they sum: when no flow file of their
        // hour is left (only removing flow files can make that so).
        if !doomed.is_empty() {
            let hours: std::collections::HashSet<i64> = inner.files[slot(Table::Flows)]
                .iter()
                .map(|f| f.last_ms.div_euclid(files::HOUR_MS))
                .collect();
            let live: std::collections::HashSet<String> = hours
                .into_iter()
                .map(|h| files::partition(h * files::HOUR_MS))
                .collect();
            for level in inner.rollups.iter_mut() {
                level.retain(|f| {
                    let keep = files::partition_of(&f.path).is_some_and(|p| live.contains(&p));
                    if !keep {
                        let _ = std::fs::remove_file(&f.path);
                    }
                    keep
                });
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
    ) -> (Vec<DataFile>, Vec<RecordBatch>) {
        let Ok(inner) = self.inner.lock() else {
            return (vec![], vec![]);
        };
        let mut files: Vec<DataFile> = inner.files[slot(table)]
            .iter()
            .filter(|f| f.last_ms >= since && f.first_ms < until)
            .cloned()
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse((f.last_ms, f.first_id)));
        (files, inner.buffers[slot(table)].batches.clone())
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
