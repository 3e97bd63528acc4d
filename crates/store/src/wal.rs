//! The write-ahead log: what a sender was told it has is on disk before it
//! is told. Entries are appended to segment files under `<data-dir>/wal/`
//! and made durable by one `fdatasync` per group of entries; each gets a
//! log sequence number (LSN), increasing across restarts. The store writes
//! the highest LSN whose records a Parquet file completes into that file, so
//! at start the log is replayed from just past what the files hold: every
//! acknowledged record reaches the store exactly once, whatever moment the
//! process was killed at. Segments the files fully cover are removed.
//!
//! An entry on disk: `len: u32 LE | crc32(lsn ‖ payload): u32 LE | lsn: u64
//! LE | payload`. A torn or corrupt entry at the end of the newest segment
//! (a write the kill interrupted, never acknowledged) is cut off; one
//! elsewhere is counted and the rest of its segment skipped.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 16;
/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// No entry is larger (a sender's message is bounded far below).
pub const MAX_ENTRY_BYTES: usize = 256 << 20;

/// What opening and replaying the log found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WalCounters {
    /// Entries appended, and groups made durable (one sync each).
    pub entries_appended: u64,
    pub syncs: u64,
    pub bytes_appended: u64,
    /// Entries replayed at start (past what the store's files held).
    pub entries_replayed: u64,
    /// A torn entry cut off the end of the log at start (an unfinished,
    /// never acknowledged write).
    pub torn_tails_cut: u64,
    /// Corrupt entries found inside the log, each ending its segment's
    /// replay.
    pub corrupt_entries: u64,
    /// Writes or syncs that failed (those entries were not acknowledged).
    pub write_errors: u64,
    pub segments_removed: u64,
    /// Now: segments and their bytes.
    pub segments: u64,
    pub bytes: u64,
}

impl WalCounters {
    pub const GAUGES: &'static [&'static str] = &["segments", "bytes"];
}

struct Segment {
    path: PathBuf,
    first_lsn: u64,
    /// The last LSN written to it (first_lsn - 1 when empty).
    last_lsn: u64,
    bytes: u64,
    /// Its length and last LSN at the last successful sync.
    synced_bytes: u64,
    synced_lsn: u64,
}

pub struct Wal {
    dir: PathBuf,
    /// Closed segments, oldest first, then the one being written.
    segments: Vec<Segment>,
    writer: Option<BufWriter<File>>,
    next_lsn: u64,
    pub counters: WalCounters,
}

fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&lsn.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Why reading an entry stopped.
enum ReadEnd {
    /// The clean end of the segment.
    End,
    /// A partial or corrupt entry at this offset.
    Bad(u64, String),
}

/// Reads a segment's entries in order through `visit`; returns where and
/// why reading stopped.
fn read_segment(path: &Path, mut visit: impl FnMut(u64, Vec<u8>)) -> std::io::Result<ReadEnd> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut header = [0u8; HEADER];
    loop {
        match read_full(&mut reader, &mut header)? {
            0 => return Ok(ReadEnd::End),
            n if n < HEADER => return Ok(ReadEnd::Bad(offset, "a partial entry header".into())),
            _ => {}
        }
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let lsn = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        if len > MAX_ENTRY_BYTES {
            return Ok(ReadEnd::Bad(
                offset,
                format!("an entry length of {len} bytes"),
            ));
        }
        // A corrupt length must not make the reader allocate what the file
        // does not hold.
        if offset + (HEADER + len) as u64 > file_len {
            return Ok(ReadEnd::Bad(offset, "a partial entry".into()));
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut reader, &mut payload)? < len {
            return Ok(ReadEnd::Bad(offset, "a partial entry".into()));
        }
        if checksum(lsn, &payload) != crc {
            return Ok(ReadEnd::Bad(offset, "a checksum mismatch".into()));
        }
        visit(lsn, payload);
        offset += (HEADER + len) as u64;
    }
}

/// Fills `buf` as far as the reader goes; the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match reader.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Wal {
    /// Opens (creating) the log in `dir` and replays it: `visit(lsn,
    /// payload)` sees every entry in LSN order, the caller skipping those
    /// the store already holds. A torn tail is cut off so that appends
    /// continue from a clean end; LSNs continue past `at_least` too (the
    /// store's, in case the log was removed).
    pub fn open(
        dir: impl Into<PathBuf>,
        at_least: u64,
        mut visit: impl FnMut(u64, Vec<u8>),
    ) -> std::io::Result<Wal> {
        let dir = dir.into();
        crate::private::create_dir_all(&dir)?;
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let first = name.strip_suffix(".wal")?.parse().ok()?;
                Some((first, e.path()))
            })
            .collect();
        names.sort();
        let mut counters = WalCounters::default();
        let mut segments = Vec::new();
        let mut last_lsn = at_least;
        let count = names.len();
        for (i, (first_lsn, path)) in names.into_iter().enumerate() {
            let mut seg_last = first_lsn.saturating_sub(1);
            let end = read_segment(&path, |lsn, payload| {
                seg_last = lsn;
                if lsn > at_least {
                    counters.entries_replayed += 1;
                }
                visit(lsn, payload);
            })?;
            if let ReadEnd::Bad(offset, why) = end {
                if i + 1 == count {
                    tracing::warn!(
                        "write-ahead log {}: cutting off {why} at byte {offset} (a write the stop interrupted)",
                        path.display()
                    );
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(offset)?;
                    counters.torn_tails_cut += 1;
                } else {
                    tracing::error!(
                        "write-ahead log {}: {why} at byte {offset}; the rest of this segment is skipped",
                        path.display()
                    );
                    counters.corrupt_entries += 1;
                }
            }
            // A segment's name is its first LSN: LSNs go on past it even
            // when none of its entries could be read.
            last_lsn = last_lsn.max(seg_last).max(first_lsn.saturating_sub(1));
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            segments.push(Segment {
                path,
                first_lsn,
                last_lsn: seg_last,
                bytes,
                synced_bytes: bytes,
                synced_lsn: seg_last,
            });
        }
        let mut wal = Wal {
            dir,
            segments,
            writer: None,
            next_lsn: last_lsn + 1,
            counters,
        };
        wal.start_segment()?;
        wal.update_gauges();
        Ok(wal)
    }

    /// A fresh segment for the next entries: never append after an old
    /// segment's end, which may hold a cut tail.
    fn start_segment(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        let path = self.dir.join(segment_name(self.next_lsn));
        // An empty segment of an earlier run has this name: it is reused.
        self.segments.retain(|s| s.path != path);
        let file = crate::private::create(&path)?;
        sync_dir(&self.dir);
        self.writer = Some(BufWriter::with_capacity(1 << 20, file));
        self.segments.push(Segment {
            path,
            first_lsn: self.next_lsn,
            last_lsn: self.next_lsn - 1,
            bytes: 0,
            synced_bytes: 0,
            synced_lsn: self.next_lsn - 1,
        });
        Ok(())
    }

    /// After a failed write or sync: what was appended since the last sync
    /// was not acknowledged, so it is cut off the segment (a restart must
    /// not replay a batch its sender was told to send again), and writing
    /// goes on in a new segment. LSNs are not reused.
    fn abandon_unsynced(&mut self) {
        self.counters.write_errors += 1;
        if let Some(writer) = self.writer.take() {
            // Drop the buffered bytes instead of flushing them.
            let (file, _) = writer.into_parts();
            let segment = self.segments.last_mut().expect("a segment is open");
            let cut = file
                .set_len(segment.synced_bytes)
                .and_then(|_| file.sync_data());
            if let Err(e) = cut {
                tracing::error!(
                    "write-ahead log {}: cannot cut off unacknowledged entries: {e}",
                    segment.path.display()
                );
            }
            segment.bytes = segment.synced_bytes;
            segment.last_lsn = segment.synced_lsn;
        }
        if let Err(e) = self.start_segment() {
            tracing::error!("write-ahead log: cannot start a new segment: {e}");
        }
    }

    /// The LSN the next entry gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Appends an entry (durable at the next `sync`); its LSN.
    pub fn append(&mut self, payload: &[u8]) -> std::io::Result<u64> {
        if payload.len() > MAX_ENTRY_BYTES {
            return Err(std::io::Error::other(format!(
                "an entry of {} bytes is larger than the log takes",
                payload.len()
            )));
        }
        if self.writer.is_none() {
            // A failed sync could not start a segment: try again now.
            self.start_segment()?;
        }
        let lsn = self.next_lsn;
        let writer = self.writer.as_mut().expect("a segment is open");
        let mut header = [0u8; HEADER];
        header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&checksum(lsn, payload).to_le_bytes());
        header[8..16].copy_from_slice(&lsn.to_le_bytes());
        let written = writer
            .write_all(&header)
            .and_then(|_| writer.write_all(payload));
        if let Err(e) = written {
            self.abandon_unsynced();
            return Err(e);
        }
        self.next_lsn += 1;
        let segment = self.segments.last_mut().expect("a segment is open");
        segment.last_lsn = lsn;
        segment.bytes += (HEADER + payload.len()) as u64;
        self.counters.entries_appended += 1;
        self.counters.bytes_appended += (HEADER + payload.len()) as u64;
        Ok(lsn)
    }

    /// Makes every appended entry durable. On failure nothing appended
    /// since the last sync may be acknowledged; the segment is abandoned
    /// (a new one is started) so a later sync cannot make those entries
    /// durable behind the caller's back in a torn state.
    pub fn sync(&mut self) -> std::io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(std::io::Error::other("no segment is open"));
        };
        match writer.flush().and_then(|_| writer.get_ref().sync_data()) {
            Ok(()) => {
                self.counters.syncs += 1;
                let segment = self.segments.last_mut().expect("a segment is open");
                (segment.synced_bytes, segment.synced_lsn) = (segment.bytes, segment.last_lsn);
                let full = segment.bytes >= SEGMENT_BYTES;
                if full && let Err(e) = self.start_segment() {
                    tracing::warn!("write-ahead log: cannot start a new segment yet: {e}");
                }
                self.update_gauges();
                Ok(())
            }
            Err(e) => {
                self.abandon_unsynced();
                Err(e)
            }
        }
    }

    /// Whether `release(durable_lsn)` would remove a segment.
    pub fn would_release(&self, durable_lsn: u64) -> bool {
        let open = self.segments.len().saturating_sub(1);
        let closed = self.segments[..open]
            .first()
            .is_some_and(|s| s.last_lsn <= durable_lsn);
        let open_done = self.segments.len() == 1
            && self.segments[0].bytes >= SEGMENT_BYTES / 4
            && self.segments[0].last_lsn <= durable_lsn;
        closed || open_done
    }

    /// Removes the closed segments whose entries are all at or below
    /// `durable_lsn` (in the store's files).
    pub fn release(&mut self, durable_lsn: u64) {
        let open = self.segments.len().saturating_sub(1);
        let mut removed = 0;
        for segment in &self.segments[..open] {
            if segment.last_lsn > durable_lsn {
                break;
            }
            match std::fs::remove_file(&segment.path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed += 1,
                Err(e) => {
                    tracing::warn!("removing {}: {e}", segment.path.display());
                    break;
                }
            }
        }
        if removed > 0 {
            self.segments.drain(..removed);
            self.counters.segments_removed += removed as u64;
            sync_dir(&self.dir);
        }
        // The open segment too, once all of it is durable elsewhere and it
        // is big enough to be worth a new file.
        if self.segments.len() == 1
            && self.segments[0].bytes >= SEGMENT_BYTES / 4
            && self.segments[0].last_lsn <= durable_lsn
            && self.start_segment().is_ok()
        {
            self.release(durable_lsn);
        }
        self.update_gauges();
    }

    fn update_gauges(&mut self) {
        self.counters.segments = self.segments.len() as u64;
        self.counters.bytes = self.segments.iter().map(|s| s.bytes).sum();
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> u64 {
        self.segments
            .first()
            .map(|s| s.first_lsn)
            .unwrap_or(self.next_lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    /// Flips one byte of a file.
    fn corrupt_byte(path: &Path, offset: u64) -> std::io::Result<()> {
        let mut f = OpenOptions::new().read(true).write(true).open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut b = [0u8; 1];
        f.read_exact(&mut b)?;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(&[b[0] ^ 0xff])
    }

    fn entries(dir: &Path, at_least: u64) -> (Wal, Vec<(u64, Vec<u8>)>) {
        let mut seen = Vec::new();
        let wal = Wal::open(dir, at_least, |lsn, p| seen.push((lsn, p))).unwrap();
        (wal, seen)
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flowlens-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn entries_come_back_in_order_across_reopens() {
        let dir = temp("order");
        let (mut wal, seen) = entries(&dir, 0);
        assert!(seen.is_empty());
        for i in 0..10u8 {
            assert_eq!(wal.append(&[i; 100]).unwrap(), i as u64 + 1);
        }
        wal.sync().unwrap();
        drop(wal);
        let (mut wal, seen) = entries(&dir, 0);
        assert_eq!(seen.len(), 10);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(i, (lsn, p))| *lsn == i as u64 + 1 && p[0] == i as u8)
        );
        assert_eq!(wal.append(b"next").unwrap(), 11);
        wal.sync().unwrap();
        wal.release(11);
        drop(wal);
        // Everything durable elsewhere: the closed segments are gone, LSNs
        // continue; the caller skips what the store holds.
        let (mut wal, seen) = entries(&dir, 11);
        assert_eq!(seen, vec![(11, b"next".to_vec())]);
        assert_eq!(wal.counters.entries_replayed, 0);
        assert_eq!(wal.first_lsn(), 11);
        assert_eq!(wal.append(b"x").unwrap(), 12);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_and_a_corrupt_entry_ends_its_segment() {
        let dir = temp("torn");
        let (mut wal, _) = entries(&dir, 0);
        for i in 0..3u8 {
            wal.append(&[i; 10]).unwrap();
        }
        wal.sync().unwrap();
        let path = wal.segments.last().unwrap().path.clone();
        drop(wal);
        // A torn last entry: its last 4 bytes never made it.
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 4)
            .unwrap();
        let (wal, seen) = entries(&dir, 0);
        assert_eq!(seen.len(), 2);
        assert_eq!(wal.counters.torn_tails_cut, 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * 26);
        drop(wal);
        // A flipped byte in the first entry of a segment that is not the
        // last: counted, the segment's rest skipped, nothing cut.
        corrupt_byte(&path, HEADER as u64 + 3).unwrap();
        let (mut wal, seen) = entries(&dir, 0);
        assert!(seen.is_empty());
        assert_eq!(wal.counters.corrupt_entries, 1);
        assert_eq!(
            wal.append(b"y").unwrap(),
            3,
            "LSNs go on past what was read"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// A segment of any bytes opens: what reads is replayed, the rest
        /// cut or skipped and counted, and appends go on after it.
        #[test]
        fn any_segment_bytes_open(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        ) {
            let dir = temp("arbitrary");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(segment_name(1)), &bytes).unwrap();
            let (mut wal, _) = entries(&dir, 0);
            let lsn = wal.append(b"after").unwrap();
            wal.sync().unwrap();
            drop(wal);
            let (_, seen) = entries(&dir, 0);
            proptest::prop_assert!(seen.iter().any(|(l, p)| *l == lsn && p == b"after"));
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
