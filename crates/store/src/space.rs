//! Room on disk. Files go by whole files, oldest first, for three reasons:
//! retention by age, `--max-disk` (flow and conversation files and the
//! rollups together), and a filesystem with too little free space for the
//! next file (checked before each write: the disk may be shared, or
//! smaller than `--max-disk`). Rollups go with the last flow file of their
//! hour. When nothing is left to remove and writes still fail, records stay
//! buffered up to the buffer bound and the rest are dropped and counted
//! (`append_with`); writes are retried and resume by themselves.

use crate::Table;
use crate::files::{self, DataFile};
use crate::store::{Inner, Store, slot};
use std::collections::HashSet;
use std::path::Path;

/// Free bytes for an unprivileged writer on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statvfs the call fills.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Bytes a record takes in a file when no file tells yet.
const DEFAULT_BYTES_PER_ROW: u64 = 256;
/// Room kept beyond the estimate (metadata, the `.tmp` rename, error).
const SLACK_BYTES: u64 = 256 << 10;

/// Why files are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Policy,
    Space,
}

/// A file taken out of its list (`at`: the table's slot, or the rollup
/// level), to be deleted.
struct Taken {
    at: usize,
    file: DataFile,
}

/// Takes the oldest flow or conversation file out of the lists.
fn take_oldest(inner: &mut Inner) -> Option<Taken> {
    let (at, i) = (0..2)
        .flat_map(|t| {
            inner.files[t]
                .iter()
                .enumerate()
                .map(move |(i, f)| (t, i, f.last_ms))
        })
        .min_by_key(|(_, _, last)| *last)
        .map(|(t, i, _)| (t, i))?;
    Some(Taken {
        at,
        file: inner.files[at].remove(i),
    })
}

/// Takes the rollups of hours no flow file is left of out of the lists.
fn take_orphan_rollups(inner: &mut Inner) -> Vec<Taken> {
    let live: HashSet<String> = inner.files[slot(Table::Flows)]
        .iter()
        .map(|f| files::partition(f.last_ms.div_euclid(files::HOUR_MS) * files::HOUR_MS))
        .collect();
    let mut orphans = Vec::new();
    for (at, level) in inner.rollups.iter_mut().enumerate() {
        let (gone, kept): (Vec<_>, Vec<_>) = level
            .drain(..)
            .partition(|f| files::partition_of(&f.path).is_none_or(|p| !live.contains(&p)));
        *level = kept;
        orphans.extend(gone.into_iter().map(|file| Taken { at, file }));
    }
    orphans
}

fn bytes(taken: &[Taken]) -> u64 {
    taken.iter().map(|t| t.file.bytes).sum()
}

/// Deletes files taken out of the lists, counting the data files; one
/// that cannot be deleted (a read-only filesystem) goes back in its list.
/// Whether every one was deleted.
fn delete(inner: &mut Inner, data: Vec<Taken>, rollups: Vec<Taken>, why: Reason) -> bool {
    let gone = |file: &DataFile| match std::fs::remove_file(&file.path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("removing {}: {e}", file.path.display());
            false
        }
        _ => true,
    };
    let mut all = true;
    for Taken { at, file } in rollups {
        if !gone(&file) {
            all = false;
            inner.rollups[at].push(file);
        }
    }
    for Taken { at, file } in data {
        if !gone(&file) {
            all = false;
            inner.files[at].push(file);
            continue;
        }
        let c = &mut inner.counters;
        c.files_removed += 1;
        c.records_removed += file.rows;
        c.bytes_removed += file.bytes;
        if why == Reason::Space {
            c.files_removed_for_space += 1;
        }
    }
    all
}

impl Store {
    /// Retention by age and by `--max-disk` (rollups included).
    pub(crate) fn apply_retention(&self, now_ms: i64) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut doomed: Vec<Taken> = Vec::new();
        if let Some(age) = self.options.retention {
            let oldest_kept = now_ms - age.as_millis() as i64;
            for (at, files) in inner.files.iter_mut().enumerate() {
                let (old, kept): (Vec<_>, Vec<_>) =
                    files.drain(..).partition(|f| f.last_ms < oldest_kept);
                *files = kept;
                doomed.extend(old.into_iter().map(|file| Taken { at, file }));
            }
        }
        let mut rollups = Vec::new();
        if !doomed.is_empty() {
            rollups = take_orphan_rollups(inner);
        }
        if let Some(max) = self.options.max_disk_bytes {
            let listed = |files: &[DataFile]| files.iter().map(|f| f.bytes).sum::<u64>();
            let mut total = inner.files.iter().map(|f| listed(f)).sum::<u64>()
                + inner.rollups.iter().map(|f| listed(f)).sum::<u64>();
            while total > max {
                let Some(oldest) = take_oldest(inner) else {
                    break;
                };
                total -= oldest.file.bytes;
                doomed.push(oldest);
                let orphans = take_orphan_rollups(inner);
                total -= bytes(&orphans);
                rollups.extend(orphans);
            }
        }
        delete(inner, doomed, rollups, Reason::Policy);
    }

    /// Roughly what the next file of `table` takes: its rows at the
    /// bytes per row of the table's last file.
    pub(crate) fn file_size_estimate(
        &self,
        table: Table,
        batches: &[arrow_array::RecordBatch],
    ) -> u64 {
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let per_row = {
            let inner = self.lock();
            inner.files[slot(table)]
                .last()
                .filter(|f| f.rows > 0)
                .map(|f| f.bytes.div_ceil(f.rows))
                .unwrap_or(DEFAULT_BYTES_PER_ROW)
        };
        rows * per_row
    }

    /// Before a write of about `size` bytes: while the filesystem has less
    /// free (with some slack), the oldest files go — unless removing every
    /// file of the store would still leave too little (the disk is full of
    /// something else: the store's history is kept, and the write fails
    /// visibly, records staying buffered). A file that cannot be removed
    /// ends the attempt too.
    pub(crate) fn make_room(&self, size: u64) {
        let need = size + size / 2 + SLACK_BYTES;
        while let Some(free) = free_bytes(&self.options.dir)
            && free < need
        {
            let mut inner = self.lock();
            let inner = &mut *inner;
            let ours = inner.files.iter().chain(inner.rollups.iter()).flatten();
            let ours: u64 = ours.map(|f| f.bytes).sum();
            if free + ours < need {
                tracing::warn!(
                    free,
                    need,
                    store_bytes = ours,
                    "the disk is full, and not of the store's files: nothing removed"
                );
                return;
            }
            let Some(oldest) = take_oldest(inner) else {
                return;
            };
            tracing::warn!(
                free,
                need,
                "too little free disk space for the next store file: removing the oldest, {}",
                oldest.file.path.display()
            );
            let rollups = take_orphan_rollups(inner);
            if !delete(inner, vec![oldest], rollups, Reason::Space) {
                return;
            }
        }
    }
}
