//! The store: per-table buffers in memory, Parquet files on disk, retention
//! by age and size, and every record it takes, writes, skips or removes
//! counted.

use crate::batch::to_batch;
use crate::conversation_batch::conversations_to_batch;
use crate::files::{self, DataFile, Table};
use crate::flow_batch::flows_to_batch;
use crate::rollup;
use arrow_array::RecordBatch;
use flowlens_model::{ConversationRecord, FlowRecord};
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
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
    /// Unreadable files found at start or while querying (moved to
    /// `<data-dir>/quarantine`, never read again).
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
    /// Files removed to make room on a filesystem that had too little
    /// free for the next file (also in `files_removed`).
    pub files_removed_for_space: u64,
    /// Times a thread panicked holding the store's lock (the state was
    /// taken over as it was, and reported).
    pub lock_poisoned: u64,
    /// The write-ahead log's LSN up to which the flow files hold every
    /// record.
    pub durable_wal_lsn: u64,
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
        "durable_wal_lsn",
    ];
}

/// Records waiting for their file, as Arrow batches (compact, and shared
/// with queries without copying).
#[derive(Default)]
struct Buffer {
    batches: Vec<RecordBatch>,
    rows: usize,
    since: Option<Instant>,
    /// The highest write-ahead log LSN whose records are all in here.
    wal_lsn: u64,
}

pub(crate) struct Inner {
    buffers: [Buffer; 2],
    /// Per table, the batches being written to a file right now (off the
    /// lock): still answered by queries until the file is listed.
    writing: [Vec<RecordBatch>; 2],
    writing_rows: [usize; 2],
    pub(crate) files: [Vec<DataFile>; 2],
    /// Rollup files per resolution of `rollup::RESOLUTIONS`.
    pub(crate) rollups: [Vec<DataFile>; 3],
    next_id: u64,
    pub(crate) counters: StoreCounters,
}

pub struct Store {
    pub(crate) options: StoreOptions,
    inner: Mutex<Inner>,
    poisoned: AtomicU64,
    /// One file write per table at a time, in order.
    write_turns: [Mutex<()>; 2],
    /// Set when a writer thread (`start_writer`) writes full buffers; until
    /// then the appending thread writes them itself.
    background_writes: AtomicBool,
    write_due: Condvar,
    write_due_lock: Mutex<bool>,
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
        crate::private::own_dir(&options.dir)?;
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
        counters.durable_wal_lsn = files[slot(Table::Flows)]
            .iter()
            .map(|f| f.wal_lsn)
            .max()
            .unwrap_or(0);
        let store = Store {
            options,
            poisoned: AtomicU64::new(0),
            write_turns: Default::default(),
            background_writes: AtomicBool::new(false),
            write_due: Condvar::new(),
            write_due_lock: Mutex::new(false),
            inner: Mutex::new(Inner {
                buffers: Default::default(),
                writing: Default::default(),
                writing_rows: [0; 2],
                files,
                rollups,
                next_id,
                counters,
            }),
        };
        store.update_gauges();
        Ok(store)
    }

    /// The store's state, also after a thread panicked holding it: the
    /// state is consistent between statements that change it, so it is
    /// taken over, and the panic counted and reported (never silent
    /// zeros).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| {
            self.inner.clear_poison();
            self.poisoned.fetch_add(1, Ordering::Relaxed);
            tracing::error!("a store thread panicked holding its lock; the store goes on");
            poisoned.into_inner()
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.options.dir
    }

    pub fn counters(&self) -> StoreCounters {
        let mut counters = self.lock().counters.clone();
        counters.lock_poisoned = self.poisoned.load(Ordering::Relaxed);
        counters
    }

    /// The write-ahead log's LSN up to which the flow files hold every
    /// record: replay starts past it, and the log may drop what it covers.
    pub fn durable_wal_lsn(&self) -> u64 {
        self.lock().counters.durable_wal_lsn
    }

    pub(crate) fn update_gauges(&self) {
        {
            let mut inner = self.lock();
            let files = inner.files.iter().flatten();
            let (n, bytes) = files.fold((0, 0), |(n, b), f| (n + 1, b + f.bytes));
            let held =
                |t: Table| (inner.buffers[slot(t)].rows + inner.writing_rows[slot(t)]) as u64;
            let (flows, conversations) = (held(Table::Flows), held(Table::Conversations));
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

    /// Takes records as JSON objects (tools and tests; the pipeline's ways
    /// in are the typed `append_flows` and `append_conversations`); each
    /// gets a store id (`_Id`, unique and increasing, also across
    /// restarts). Every `flush_rows` records make a file.
    pub fn append(&self, table: Table, mut records: Vec<Map<String, Value>>) {
        self.append_with(table, records.len(), 0, |first_id, rows| {
            for (i, record) in records[rows.clone()].iter_mut().enumerate() {
                record.insert(crate::ID.into(), Value::from(first_id + i as u64));
            }
            to_batch(&records[rows])
        });
    }

    /// Takes the conversation tracker's records (conversations; flow logs
    /// are flows, stored by `append_flows`), building their columns
    /// straight from the typed fields.
    pub fn append_conversations(&self, records: &[ConversationRecord]) {
        self.append_with(Table::Conversations, records.len(), 0, |first_id, rows| {
            conversations_to_batch(&records[rows], first_id)
        });
    }

    /// Takes flow records, as `append` does, building their columns
    /// straight from the typed fields.
    pub fn append_flows(&self, flows: &[FlowRecord]) {
        self.append_flows_logged(flows, 0);
    }

    /// Takes flow records that the write-ahead log holds as entry
    /// `wal_lsn`: the file they end up in records it, so a replay after a
    /// restart starts past them.
    pub fn append_flows_logged(&self, flows: &[FlowRecord], wal_lsn: u64) {
        self.append_with(Table::Flows, flows.len(), wal_lsn, |first_id, rows| {
            flows_to_batch(&flows[rows], first_id)
        });
    }

    /// Appends `offered` records in batches `make(first_id, rows)` builds
    /// of a range of them, each filling the buffer at most up to a file —
    /// but a log entry's records (`wal_lsn` > 0) stay one batch, so a file
    /// holds whole entries. Records beyond the buffer's room (writes
    /// failing) are dropped and counted. A full buffer is written by the
    /// writer thread, or here when there is none — never under the lock
    /// queries take.
    fn append_with(
        &self,
        table: Table,
        offered: usize,
        wal_lsn: u64,
        mut make: impl FnMut(u64, std::ops::Range<usize>) -> RecordBatch,
    ) {
        if offered == 0 {
            return;
        }
        let mut at = 0;
        while at < offered {
            let full = {
                let mut inner = self.lock();
                let inner = &mut *inner;
                if at == 0 {
                    inner.counters.records_received += offered as u64;
                }
                let held = inner.buffers[slot(table)].rows + inner.writing_rows[slot(table)];
                let room = self.options.max_buffered.saturating_sub(held);
                let to_file = match self.options.flush_rows.checked_sub(held) {
                    Some(n) if n > 0 && wal_lsn == 0 => n,
                    _ => usize::MAX,
                };
                let take = (offered - at).min(room).min(to_file);
                if take == 0 {
                    let dropped = (offered - at) as u64;
                    inner.counters.records_dropped += dropped;
                    inner.buffers[slot(table)].wal_lsn =
                        inner.buffers[slot(table)].wal_lsn.max(wal_lsn);
                    tracing::warn!(
                        dropped,
                        "store buffer full (writes failing): records dropped"
                    );
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
                if at == offered {
                    buffer.wal_lsn = buffer.wal_lsn.max(wal_lsn);
                }
                buffer.rows >= self.options.flush_rows
            };
            if full {
                if self.background_writes.load(Ordering::Acquire) {
                    self.wake_writer();
                } else {
                    self.flush(table);
                }
            }
        }
        self.update_gauges();
    }

    /// Writes a table's buffer out as one file. The Parquet encoding and
    /// the syncs happen off the lock: appends, queries and counters go on
    /// meanwhile (queries see the batches being written until the file is
    /// listed). A failed write puts its batches back, to be retried.
    pub fn flush(&self, table: Table) {
        let at = slot(table);
        let _turn = self.write_turns[at]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (batches, wal_lsn) = {
            let mut inner = self.lock();
            let buffer = std::mem::take(&mut inner.buffers[at]);
            if buffer.rows == 0 {
                inner.buffers[at].wal_lsn = buffer.wal_lsn;
                return;
            }
            inner.writing[at] = buffer.batches.clone();
            inner.writing_rows[at] = buffer.rows;
            (buffer.batches, buffer.wal_lsn)
        };
        self.make_room(self.file_size_estimate(table, &batches));
        let written = files::write(&self.options.dir, table.dir(), &batches, wal_lsn);
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.writing[at].clear();
        inner.writing_rows[at] = 0;
        match written {
            Ok(file) => {
                inner.counters.records_written += file.rows;
                inner.counters.files_written += 1;
                if table == Table::Flows {
                    inner.counters.durable_wal_lsn = inner.counters.durable_wal_lsn.max(wal_lsn);
                }
                inner.files[at].push(file);
            }
            Err(e) => {
                inner.counters.write_errors += 1;
                tracing::error!(
                    "writing the {} store: {e} (kept in memory, retried)",
                    table.dir()
                );
                let buffer = &mut inner.buffers[at];
                let mut kept = batches;
                kept.append(&mut buffer.batches);
                buffer.batches = kept;
                buffer.rows = buffer.batches.iter().map(|b| b.num_rows()).sum();
                buffer.wal_lsn = buffer.wal_lsn.max(wal_lsn);
                // Retried after another flush interval, not in a busy loop.
                buffer.since = Some(Instant::now());
            }
        }
    }

    /// Whether a table's buffer should be written now: a file's worth, or
    /// its oldest record waited the flush interval.
    fn due(&self, table: Table) -> bool {
        let inner = self.lock();
        let buffer = &inner.buffers[slot(table)];
        buffer.rows >= self.options.flush_rows
            || buffer
                .since
                .is_some_and(|t| t.elapsed() >= self.options.flush_interval)
    }

    fn wake_writer(&self) {
        let mut due = self
            .write_due_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *due = true;
        self.write_due.notify_one();
    }

    /// Starts the thread that writes buffers out (when full or due), so
    /// the threads that append — the pipeline, the agent's ring-buffer
    /// drain — never wait for a Parquet encode or a sync. It ends with the
    /// last reference to the store but its own.
    pub fn start_writer(
        store: &std::sync::Arc<Store>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        store.background_writes.store(true, Ordering::Release);
        let weak = std::sync::Arc::downgrade(store);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                loop {
                    let Some(store) = weak.upgrade() else { return };
                    for table in Table::ALL {
                        if store.due(table) {
                            store.flush(table);
                        }
                    }
                    store.update_gauges();
                    let due = store
                        .write_due_lock
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    let (mut due, _) = store
                        .write_due
                        .wait_timeout_while(due, Duration::from_millis(500), |d| !*d)
                        .unwrap_or_else(|p| p.into_inner());
                    *due = false;
                }
            })
    }

    /// Timer work: writes buffers that waited long enough (when no writer
    /// thread does), applies the retention.
    pub fn maintain(&self) {
        if !self.background_writes.load(Ordering::Acquire) {
            for table in Table::ALL {
                if self.due(table) {
                    self.flush(table);
                }
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

    /// The files and buffered records a read of `table` between `since`
    /// and `until` (end times, ms) looks at, newest first.
    pub(crate) fn snapshot(
        &self,
        table: Table,
        since: i64,
        until: i64,
    ) -> (Vec<DataFile>, Vec<RecordBatch>) {
        let inner = self.lock();
        let mut files: Vec<DataFile> = inner.files[slot(table)]
            .iter()
            .filter(|f| f.last_ms >= since && f.first_ms < until)
            .cloned()
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse((f.last_ms, f.first_id)));
        let mut buffered = inner.buffers[slot(table)].batches.clone();
        buffered.extend(inner.writing[slot(table)].iter().cloned());
        (files, buffered)
    }

    /// A file's batches for a query (see `files::read_with`); None when it
    /// is gone (retention) or unreadable — the latter reported and counted.
    pub(crate) fn read_file(
        &self,
        file: &DataFile,
        only: Option<&[&str]>,
        dictionary: Option<&str>,
    ) -> Option<Vec<arrow_array::RecordBatch>> {
        // A query past its deadline, or whose client left, reads no more.
        if crate::interrupt::interrupted() {
            return None;
        }
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
        {
            let mut inner = self.lock();
            let before = inner.files.iter().map(Vec::len).sum::<usize>();
            for files in inner.files.iter_mut() {
                files.retain(|f| f.path != file.path);
            }
            if inner.files.iter().map(Vec::len).sum::<usize>() < before {
                inner.counters.corrupt_files += 1;
                match files::quarantine(&self.options.dir, &file.path) {
                    Ok(moved) => {
                        tracing::warn!("unreadable store file: {why}; moved to {}", moved.display())
                    }
                    Err(e) => tracing::warn!(
                        "unreadable store file: {why}; skipped (could not be moved to quarantine: {e})"
                    ),
                }
            }
        }
        self.update_gauges();
    }
}
