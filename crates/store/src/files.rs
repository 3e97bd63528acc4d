//! The data directory: `<table>/<YYYY-MM-DD>/<HH>/<first>-<last>-<id>.parquet`,
//! where first and last are the earliest and latest `TimeFlowEndMs` in the
//! file and id the first record id (unique). A file is written under a
//! `.tmp` name, synced and renamed, so a crash leaves either a whole file or
//! a `.tmp` leftover that the next start removes.

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Flows,
    Conversations,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Flows, Table::Conversations];

    pub fn dir(self) -> &'static str {
        match self {
            Table::Flows => "flows",
            Table::Conversations => "conversations",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    pub first_ms: i64,
    pub last_ms: i64,
    pub first_id: u64,
    pub rows: u64,
    pub bytes: u64,
    /// The write-ahead log's LSN up to which this file completes the
    /// records (0: none, or not from the log).
    pub wal_lsn: u64,
}

/// The Parquet key-value metadata key holding a file's `wal_lsn`.
const WAL_LSN_KEY: &str = "flowlens.wal_lsn";

/// The most rows a file may claim per byte it holds. Our densest files (a
/// flush of identical records, every column one dictionary run) hold a
/// few rows per byte; a crafted footer can claim billions of rows that
/// run-length encoding of nulls fits in a few bytes, and decoding them
/// would hold a query (or the start) for minutes.
const MAX_ROWS_PER_BYTE: u64 = 64;

/// The most rows of any one file: far above a flush (`flush_rows`) or a
/// rollup of one, far below what would take a query long to decode.
const MAX_ROWS_PER_FILE: u64 = 16 * 1024 * 1024;

/// The most values (over all columns) a file may claim per byte it holds:
/// a column of nulls costs a few bytes whatever its rows, so our files
/// hold about 160 values a byte (the test below measures them).
const MAX_VALUES_PER_BYTE: u64 = 1024;

/// The most values per row of a list column (a flow's interfaces, ...).
const LIST_ITEMS_PER_ROW: u64 = 16;

/// The most columns of a file: our tables have under a hundred.
const MAX_COLUMNS: usize = 1024;

/// A reader of the file at `path` whose footer is plausible (see
/// `implausible`); errors name the file.
fn open_reader(
    path: &Path,
    options: ArrowReaderOptions,
) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match implausible(reader.metadata(), bytes) {
        Some(why) => Err(format!("{}: {why}", path.display())),
        None => Ok(reader),
    }
}

/// Why a file's footer cannot be one of ours: more columns, rows or
/// values than its bytes could hold.
fn implausible(meta: &parquet::file::metadata::ParquetMetaData, bytes: u64) -> Option<String> {
    let columns = meta.file_metadata().schema_descr().columns();
    if columns.len() > MAX_COLUMNS {
        return Some(format!("it has {} columns", columns.len()));
    }
    let most = bytes
        .saturating_mul(MAX_ROWS_PER_BYTE)
        .min(MAX_ROWS_PER_FILE);
    let declared = meta.file_metadata().num_rows();
    let most_values = bytes.saturating_mul(MAX_VALUES_PER_BYTE);
    let mut values: u64 = 0;
    let mut in_groups: u64 = 0;
    for (i, group) in meta.row_groups().iter().enumerate() {
        let Ok(rows) = u64::try_from(group.num_rows()) else {
            return Some(format!("row group {i} claims {} rows", group.num_rows()));
        };
        in_groups = in_groups.saturating_add(rows);
        // A list column (Interfaces, ...) holds more values than rows, a
        // few per row in our files: its values are bounded the same way.
        for chunk in group.columns() {
            let in_chunk = u64::try_from(chunk.num_values()).unwrap_or(u64::MAX);
            values = values.saturating_add(in_chunk);
            if values > most_values {
                return Some(format!(
                    "it claims over {most_values} values in {bytes} bytes"
                ));
            }
            if in_chunk > most.saturating_mul(LIST_ITEMS_PER_ROW) {
                return Some(format!(
                    "its column {} claims {} values in row group {i}",
                    chunk.column_path(),
                    chunk.num_values()
                ));
            }
        }
    }
    if u64::try_from(declared).ok() != Some(in_groups) {
        Some(format!(
            "its footer claims {declared} rows but its row groups {in_groups}"
        ))
    } else if in_groups > most {
        Some(format!(
            "it claims {in_groups} rows in {bytes} bytes (at most {most} are plausible)"
        ))
    } else {
        None
    }
}

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's
/// civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A partition's length: files are kept by the hour of their latest record.
pub const HOUR_MS: i64 = 3_600_000;

/// `YYYY-MM-DD/HH` of a time.
pub fn partition(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}/{:02}", secs.rem_euclid(86_400) / 3600)
}

fn parse_name(name: &str) -> Option<(i64, i64, u64)> {
    let stem = name.strip_suffix(".parquet")?;
    let mut parts = stem.splitn(3, '_');
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    let id = parts.next()?.parse().ok()?;
    Some((first, last, id))
}

/// What listing a table's folder found.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<DataFile>,
    /// Files whose names are not the store's: left alone, reported.
    pub foreign: Vec<PathBuf>,
    /// `.tmp` leftovers of an interrupted write, removed.
    pub leftovers_removed: u64,
    /// Files that cannot be read (truncated, corrupt, or that make the
    /// Parquet reader panic), and why: moved to the quarantine folder,
    /// reported, never deleted.
    pub corrupt: Vec<(PathBuf, String)>,
}

/// Where unreadable files go (under the data directory): out of every
/// table's folder, so no start and no query reads them again.
pub const QUARANTINE: &str = "quarantine";

/// Moves an unreadable file of the data directory `root` to its
/// quarantine folder, named by its path there; the new path.
pub fn quarantine(root: &Path, path: &Path) -> std::io::Result<PathBuf> {
    let folder = root.join(QUARANTINE);
    crate::private::create_dir_all(&folder)?;
    let relative = path.strip_prefix(root).unwrap_or(path);
    let name: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let target = folder.join(name.join("_"));
    std::fs::rename(path, &target)?;
    Ok(target)
}

/// Runs a read of a file's bytes, turning a panic of the reader (a file
/// crafted or damaged in a way it does not expect) into an error, so one
/// bad file never takes the process down (nor, at start, into a loop).
pub fn guarded<T>(read: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("the Parquet reader failed on it: {what}"))
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The files under `root/<dir>` (a table's or a rollup's folder).
pub fn list(root: &Path, dir: &str) -> Listing {
    let mut paths = Vec::new();
    walk(&root.join(dir), &mut paths);
    let mut listing = Listing::default();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".tmp") {
            if std::fs::remove_file(&path).is_ok() {
                listing.leftovers_removed += 1;
            }
            continue;
        }
        match parse_name(&name) {
            Some((first_ms, last_ms, first_id)) => {
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                // Reading the footer checks that the file is whole.
                let rows = guarded(|| {
                    open_reader(&path, ArrowReaderOptions::new()).map(|b| {
                        let meta = b.metadata().file_metadata();
                        let lsn = meta
                            .key_value_metadata()
                            .into_iter()
                            .flatten()
                            .find(|kv| kv.key == WAL_LSN_KEY)
                            .and_then(|kv| kv.value.as_deref()?.parse().ok())
                            .unwrap_or(0);
                        (meta.num_rows() as u64, lsn)
                    })
                });
                let (rows, wal_lsn) = match rows {
                    Ok(found) => found,
                    Err(e) => {
                        let why = match quarantine(root, &path) {
                            Ok(moved) => format!("{e} (moved to {})", moved.display()),
                            Err(q) => format!("{e} (could not be moved to quarantine: {q})"),
                        };
                        listing.corrupt.push((path, why));
                        continue;
                    }
                };
                listing.files.push(DataFile {
                    path,
                    first_ms,
                    last_ms,
                    first_id,
                    rows,
                    bytes,
                    wal_lsn,
                })
            }
            None => listing.foreign.push(path),
        }
    }
    listing.files.sort_by_key(|f| (f.last_ms, f.first_id));
    listing
}

/// Columns whose values rarely repeat: a dictionary would only be built
/// and dropped (Parquet falls back once it outgrows its page).
const NO_DICTIONARY: &[&str] = &[
    crate::ID,
    "TimeFlowStartMs",
    "TimeFlowEndMs",
    "SrcPort",
    "DstPort",
    "Bytes",
    "Packets",
    "TimeFlowRttNs",
    "DnsId",
    "DnsLatencyMs",
];

fn properties() -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level 3")))
        .set_max_row_group_row_count(Some(64 * 1024))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk);
    for name in NO_DICTIONARY {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*name), false);
    }
    for name in [crate::ID, "TimeFlowStartMs", "TimeFlowEndMs"] {
        builder = builder.set_column_encoding(
            ColumnPath::from(name),
            parquet::basic::Encoding::DELTA_BINARY_PACKED,
        );
    }
    builder.build()
}

/// (earliest end time, latest end time, smallest id) of batches.
fn span(batches: &[RecordBatch]) -> (i64, i64, u64) {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, UInt64Type};
    let (mut first, mut last, mut id) = (i64::MAX, i64::MIN, u64::MAX);
    for batch in batches {
        let schema = batch.schema_ref();
        if let Ok(at) = schema.index_of("TimeFlowEndMs") {
            let times = batch.column(at).as_primitive::<Int64Type>();
            for t in times.iter().flatten() {
                (first, last) = (first.min(t), last.max(t));
            }
        }
        if let Ok(at) = schema.index_of(crate::ID) {
            let ids = batch.column(at).as_primitive::<UInt64Type>();
            id = ids.iter().flatten().fold(id, u64::min);
        }
    }
    if first > last {
        (first, last) = (0, 0);
    }
    (first, last, if id == u64::MAX { 0 } else { id })
}

/// Writes batches of records (with ids and end times) as one file of
/// `dir` (a table's or a rollup's folder) in the partition of their latest
/// end time; returns it.
pub fn write(
    root: &Path,
    dir: &str,
    batches: &[RecordBatch],
    wal_lsn: u64,
) -> std::io::Result<DataFile> {
    let (_, last_ms, first_id) = span(batches);
    write_in(root, dir, &partition(last_ms), batches, first_id, wal_lsn)
}

/// Writes batches as one file of `dir/partition`, named by their end
/// times and `id` (written under a temporary name, synced, renamed).
pub fn write_in(
    root: &Path,
    dir: &str,
    partition: &str,
    batches: &[RecordBatch],
    id: u64,
    wal_lsn: u64,
) -> std::io::Result<DataFile> {
    let (first_ms, last_ms, _) = span(batches);
    let dir = root.join(dir).join(partition);
    create_dirs_synced(root, &dir)?;
    let path = dir.join(format!("{first_ms}_{last_ms}_{id}.parquet"));
    let tmp = path.with_extension("parquet.tmp");
    let written = write_parquet(&tmp, batches, wal_lsn).and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        // No partial file is left behind to fill the disk further.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    let bytes = std::fs::metadata(&path)?.len();
    Ok(DataFile {
        path,
        first_ms,
        last_ms,
        first_id: id,
        rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
        bytes,
        wal_lsn,
    })
}

fn write_parquet(path: &Path, batches: &[RecordBatch], wal_lsn: u64) -> std::io::Result<()> {
    let file = crate::private::create(path)?;
    let mut properties = properties();
    if wal_lsn > 0 {
        properties = properties
            .into_builder()
            .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                WAL_LSN_KEY.to_string(),
                wal_lsn.to_string(),
            )]))
            .build();
    }
    let mut writer = ArrowWriter::try_new(file, crate::schema::arrow_schema(), Some(properties))
        .map_err(std::io::Error::other)?;
    for batch in batches {
        writer.write(batch).map_err(std::io::Error::other)?;
    }
    let file = writer.into_inner().map_err(std::io::Error::other)?;
    file.sync_all()
}

/// Creates `dir` (under `root`) and syncs each directory it created into
/// its parent, so a new hour's folder survives a crash with its files.
fn create_dirs_synced(root: &Path, dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() && at != root {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    crate::private::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent()
            && let Ok(d) = std::fs::File::open(parent)
        {
            d.sync_all()?;
        }
    }
    Ok(())
}

/// The partition (`YYYY-MM-DD/HH`) a file is in, from its path.
pub fn partition_of(path: &Path) -> Option<String> {
    let hour = path.parent()?;
    let day = hour.parent()?;
    Some(format!(
        "{}/{}",
        day.file_name()?.to_string_lossy(),
        hour.file_name()?.to_string_lossy()
    ))
}

/// The batches of a file, with only the columns named in `only` when
/// given, and text column `dictionary` kept dictionary-encoded (as Parquet
/// stores it: each distinct value once, rows as indexes); an unreadable
/// (truncated, corrupt) file is an error naming the file and what is wrong.
pub fn read_with(
    path: &Path,
    only: Option<&[&str]>,
    dictionary: Option<&str>,
) -> Result<Vec<RecordBatch>, String> {
    guarded(|| read_unguarded(path, only, dictionary))
}

fn read_unguarded(
    path: &Path,
    only: Option<&[&str]>,
    dictionary: Option<&str>,
) -> Result<Vec<RecordBatch>, String> {
    let options = match dictionary {
        None => ArrowReaderOptions::new(),
        Some(name) => {
            let schema = crate::schema::arrow_schema();
            let fields: Vec<_> = schema
                .fields()
                .iter()
                .map(|f| {
                    if f.name() == name {
                        std::sync::Arc::new(arrow_schema::Field::new(
                            name,
                            arrow_schema::DataType::Dictionary(
                                Box::new(arrow_schema::DataType::Int32),
                                Box::new(arrow_schema::DataType::Utf8),
                            ),
                            true,
                        ))
                    } else {
                        f.clone()
                    }
                })
                .collect();
            ArrowReaderOptions::new()
                .with_schema(std::sync::Arc::new(arrow_schema::Schema::new(fields)))
        }
    };
    let b = open_reader(path, options)?.with_batch_size(8192);
    let reader = match only {
        None => b.build(),
        Some(names) => {
            let schema = b.schema().clone();
            let roots = names.iter().filter_map(|n| schema.index_of(n).ok());
            let mask = ProjectionMask::roots(b.parquet_schema(), roots);
            b.with_projection(mask).build()
        }
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_utc_dates_and_hours() {
        assert_eq!(partition(0), "1970-01-01/00");
        assert_eq!(partition(1_764_400_000_000), "2025-11-29/07");
        assert_eq!(partition(951_782_400_000 + 3_600_000 * 23), "2000-02-29/23");
    }

    /// The densest files the store writes (a flush of identical records,
    /// with every field set or with most columns null) are well inside the
    /// bounds; the same footer on fewer bytes is not.
    #[test]
    fn row_counts_a_file_could_not_hold_are_refused() {
        let dir = std::env::temp_dir().join(format!("flowlens-files-{}", std::process::id()));
        let full = flowlens_model::fixtures::full_record();
        let bare = flowlens_model::FlowRecord {
            interfaces: vec!["eth0".into()],
            if_directions: vec![0],
            ..flowlens_model::FlowRecord::default()
        };
        for record in [full, bare] {
            let flows = vec![record; 64 * 1024];
            let batch = crate::flow_batch::flows_to_batch(&flows, 0);
            let file = write(&dir, "flows", &[batch], 0).unwrap();
            let reader = open_reader(&file.path, ArrowReaderOptions::new()).unwrap();
            let values: i64 = reader
                .metadata()
                .row_groups()
                .iter()
                .flat_map(|g| g.columns())
                .map(|c| c.num_values())
                .sum();
            let (rows_per_byte, values_per_byte) =
                (file.rows / file.bytes, values as u64 / file.bytes);
            assert!(
                rows_per_byte * 4 < MAX_ROWS_PER_BYTE,
                "{rows_per_byte} rows/byte"
            );
            assert!(
                values_per_byte * 4 < MAX_VALUES_PER_BYTE,
                "{values_per_byte} values/byte"
            );
            let why = implausible(reader.metadata(), file.rows / MAX_ROWS_PER_BYTE - 1).unwrap();
            assert!(
                why.contains("values in") || why.contains("65536 rows in"),
                "{why}"
            );
            std::fs::remove_file(&file.path).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
