//! Rollups: flow records summed per minute, five minutes and hour by the
//! fields charts and top-K group by (namespaces, workloads, hosts, protocol,
//! direction, drop cause and state, DNS response code, connection outcome),
//! as akvorado keeps coarser tables, so week-long charts read thousands of
//! rows instead of millions. Addresses and ports are left out: they would
//! make a rollup as large as the flows it sums.
//!
//! A closed hour of the flows table (its partition, a `YYYY-MM-DD/HH`
//! folder) is rolled up into one file per resolution, under
//! `flows_1m/`, `flows_5m/` and `flows_1h/` with the same partition; a row
//! is a flow-shaped record whose `TimeFlowEndMs` is its bucket's start,
//! whose counters are sums and whose `_Flows` is how many records it sums.
//! A file's name carries (in the id's place) the number of flow records it
//! covers, so a partition that got late files is rolled up again.

use crate::batch::{Columns, Row, to_batch};
use crate::files::{self, DataFile, HOUR_MS, Table};
use crate::schema::WEIGHT;
use crate::store::{Inner, Store, now_ms, slot};
use arrow_array::RecordBatch;
use flowlens_query::{RecordView, Scalar};
use serde_json::{Map, Value};

/// The rollup folders and their bucket length.
pub const RESOLUTIONS: [(&str, i64); 3] = [
    ("flows_1m", 60_000),
    ("flows_5m", 300_000),
    ("flows_1h", 3_600_000),
];

/// The fields rows are grouped by.
pub const DIMENSIONS: &[&str] = &flowlens_model::schema::ROLLUP_DIMENSIONS;

/// The counters rows sum (the schema's `Rollup::Sum` fields).
pub const SUMS: [&str; flowlens_model::schema::ROLLUP_SUMS.len()] =
    flowlens_model::schema::ROLLUP_SUMS;

/// The columns a rollup reads from the flows it sums.
pub fn inputs() -> Vec<&'static str> {
    let mut names = vec!["TimeFlowEndMs"];
    names.extend(DIMENSIONS);
    names.extend(SUMS);
    names
}

/// Whether a filter reading `fields` can be answered from rollup rows.
pub fn covers(fields: &[&str]) -> bool {
    fields.iter().all(|f| DIMENSIONS.contains(f))
}

/// The rollup level (index of `RESOLUTIONS`) for a sum over `range_ms`,
/// in steps of `step_ms` for a series: the coarsest whose buckets are small
/// next to the range (so the partial buckets at its ends, read from flow
/// files, stay few) and, for a series, divide the step; None when no
/// bucket divides the step.
pub fn level_for(range_ms: i64, step_ms: Option<i64>) -> Option<usize> {
    let divides = |level: usize| step_ms.is_none_or(|step| step % RESOLUTIONS[level].1 == 0);
    (0..RESOLUTIONS.len())
        .rev()
        .find(|&level| range_ms >= 24 * RESOLUTIONS[level].1 && divides(level))
        .or_else(|| divides(0).then_some(0))
}

/// One group: its dimensions' values, sums and flow count.
struct Group {
    dims: Map<String, Value>,
    sums: [u64; SUMS.len()],
    flows: u64,
}

/// Groups by (bucket start, dimension values).
#[derive(Default)]
struct Groups(foldhash::HashMap<(i64, String), Group>);

impl Groups {
    fn add(
        &mut self,
        bucket: i64,
        key: String,
        dims: impl FnOnce() -> Map<String, Value>,
        sums: &[u64],
        flows: u64,
    ) {
        let group = self.0.entry((bucket, key)).or_insert_with(|| Group {
            dims: dims(),
            sums: [0; SUMS.len()],
            flows: 0,
        });
        for (total, v) in group.sums.iter_mut().zip(sums) {
            *total += v;
        }
        group.flows += flows;
    }

    /// The groups again at a coarser bucket length.
    fn coarser(&self, bucket_ms: i64) -> Groups {
        let mut out = Groups::default();
        for ((bucket, key), g) in &self.0 {
            out.add(
                bucket.div_euclid(bucket_ms) * bucket_ms,
                key.clone(),
                || g.dims.clone(),
                &g.sums,
                g.flows,
            );
        }
        out
    }

    /// The groups as rollup records, in time order.
    fn into_records(self) -> Vec<Map<String, Value>> {
        let mut groups: Vec<((i64, String), Group)> = self.0.into_iter().collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        groups
            .into_iter()
            .enumerate()
            .map(|(i, ((bucket, _), g))| {
                let mut r = g.dims;
                r.insert(crate::ID.into(), Value::from(i as u64));
                r.insert("TimeFlowEndMs".into(), Value::from(bucket));
                for (name, v) in SUMS.iter().zip(g.sums) {
                    r.insert((*name).into(), Value::from(v));
                }
                r.insert(WEIGHT.into(), Value::from(g.flows));
                r
            })
            .collect()
    }
}

fn json_of(v: &Scalar) -> Value {
    match v {
        Scalar::Num(n) if n.fract() == 0.0 => Value::from(*n as i64),
        Scalar::Num(n) => Value::from(*n),
        Scalar::Bool(b) => Value::from(*b),
        other => other.as_text().map(Value::from).unwrap_or(Value::Null),
    }
}

/// A rollup being made: flow batches are added one at a time (an hour of
/// flows need not fit in memory), then `finish` gives the records of each
/// resolution of `RESOLUTIONS`.
#[derive(Default)]
pub struct Rollup {
    minutes: Groups,
}

impl Rollup {
    pub fn add(&mut self, batch: &RecordBatch) {
        let (_, finest) = RESOLUTIONS[0];
        let mut key = String::new();
        let columns = Columns::of(batch);
        for row in 0..columns.rows() {
            let view = Row {
                columns: &columns,
                row,
            };
            let Some(end) = view.end_ms() else { continue };
            let mut values = Vec::new();
            key.clear();
            let mut dims: Vec<(&str, Value)> = Vec::new();
            for name in DIMENSIONS {
                values.clear();
                view.values(name, &mut values);
                if let Some(v) = values.first() {
                    let v = json_of(v);
                    key.push_str(&v.to_string());
                    dims.push((name, v));
                }
                key.push('\u{1}');
            }
            let mut sums = [0u64; SUMS.len()];
            for (total, name) in sums.iter_mut().zip(SUMS) {
                values.clear();
                view.values(name, &mut values);
                if let Some(Scalar::Num(n)) = values.first() {
                    *total = *n as u64;
                }
            }
            let dims_map = || {
                dims.iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect()
            };
            self.minutes.add(
                end.div_euclid(finest) * finest,
                key.clone(),
                dims_map,
                &sums,
                1,
            );
        }
    }

    pub fn finish(self) -> Vec<Vec<Map<String, Value>>> {
        let mut out: Vec<Vec<Map<String, Value>>> = RESOLUTIONS[1..]
            .iter()
            .map(|(_, ms)| self.minutes.coarser(*ms).into_records())
            .collect();
        out.insert(0, self.minutes.into_records());
        out
    }
}

/// A part of a query over flows: `files` read over `[since, until)`;
/// `rolled` files are rollups, whose rows sum `_Flows` records each.
pub(crate) struct Part {
    pub files: Vec<DataFile>,
    pub since: i64,
    pub until: i64,
    pub rolled: bool,
}

/// Records of the flow files per hour (a partition: `files::partition`
/// depends on the hour only), oldest first.
fn rows_by_hour(inner: &Inner) -> std::collections::BTreeMap<i64, u64> {
    let mut rows = std::collections::BTreeMap::new();
    for f in &inner.files[slot(Table::Flows)] {
        *rows.entry(f.last_ms.div_euclid(HOUR_MS)).or_default() += f.rows;
    }
    rows
}

/// Per hour, its rollup file at `level` if that covers all of the hour's
/// `rows` flow records (a file's name carries the records it covers).
fn fresh_rollups<'a>(
    inner: &'a Inner,
    level: usize,
    rows: &std::collections::BTreeMap<i64, u64>,
) -> foldhash::HashMap<i64, &'a DataFile> {
    let hours: foldhash::HashMap<String, i64> = rows
        .keys()
        .map(|hour| (files::partition(hour * HOUR_MS), *hour))
        .collect();
    inner.rollups[level]
        .iter()
        .filter_map(|f| {
            let hour = *hours.get(&files::partition_of(&f.path)?)?;
            (rows.get(&hour) == Some(&f.first_id)).then_some((hour, f))
        })
        .collect()
}

impl Store {
    /// Rolls up the oldest closed hour of flows that has no rollup yet, or
    /// whose rollup misses records that came late; false when there was
    /// none. Slow (it reads an hour of flows): call it off the paths that
    /// must stay quick; queries and appends go on meanwhile.
    pub fn roll_up(&self) -> bool {
        if !self.options.rollups {
            return false;
        }
        let now_ms = now_ms();
        let grace = self.options.rollup_grace.as_millis() as i64;
        let todo = {
            let inner = self.lock();
            let rows = rows_by_hour(&inner);
            let fresh: Vec<_> = (0..RESOLUTIONS.len())
                .map(|level| fresh_rollups(&inner, level, &rows))
                .collect();
            rows.iter()
                .find(|(hour, _)| {
                    let closed = (*hour + 1) * HOUR_MS + grace <= now_ms;
                    closed && !fresh.iter().all(|f| f.contains_key(hour))
                })
                .map(|(hour, rows)| {
                    let sources: Vec<DataFile> = inner.files[slot(Table::Flows)]
                        .iter()
                        .filter(|f| f.last_ms.div_euclid(HOUR_MS) == *hour)
                        .cloned()
                        .collect();
                    (files::partition(hour * HOUR_MS), *rows, sources)
                })
        };
        let Some((partition, rows, sources)) = todo else {
            return false;
        };
        let mut rollup = Rollup::default();
        for file in &sources {
            let batches = self.read_file(file, Some(&inputs()), None);
            for batch in batches.unwrap_or_default() {
                rollup.add(&batch);
            }
        }
        let mut written = Vec::new();
        for ((dir, _), records) in RESOLUTIONS.iter().zip(rollup.finish()) {
            match files::write_in(
                &self.options.dir,
                dir,
                &partition,
                &[to_batch(&records)],
                rows,
                0,
            ) {
                Ok(file) => written.push(file),
                Err(e) => {
                    tracing::error!("writing the {dir} rollup of {partition}: {e} (retried later)");
                    self.lock().counters.rollup_errors += 1;
                    for f in written {
                        let _ = std::fs::remove_file(f.path);
                    }
                    return false;
                }
            }
        }
        let mut inner = self.lock();
        for (level, file) in written.into_iter().enumerate() {
            // The files this one replaces (unless it took the same name).
            inner.rollups[level].retain(|old| {
                let replaced =
                    files::partition_of(&old.path).as_deref() == Some(partition.as_str());
                if replaced && old.path != file.path {
                    let _ = std::fs::remove_file(&old.path);
                }
                !replaced
            });
            inner.rollups[level].push(file);
            inner.counters.rollups_written += 1;
        }
        drop(inner);
        self.update_gauges();
        true
    }

    /// How a sum over flows in `[since, until)` is read: from the rollups
    /// at `level` for every hour that has a complete one (its buckets that
    /// lie wholly in the range), from flow files for the rest — hours not
    /// rolled up yet, and the partial buckets at the two ends. Without a
    /// level (or rollups off), all from flow files. Also the buffered
    /// records, which the caller adds.
    pub(crate) fn plan(
        &self,
        table: Table,
        since: i64,
        until: i64,
        level: Option<usize>,
    ) -> (Vec<Part>, Vec<RecordBatch>) {
        let (files, buffered) = self.snapshot(table, since, until);
        let raw = |files| Part {
            files,
            since,
            until,
            rolled: false,
        };
        let Some(level) = level.filter(|_| table == Table::Flows && self.options.rollups) else {
            return (vec![raw(files)], buffered);
        };
        let bucket = RESOLUTIONS[level].1;
        let inner_start = (since + bucket - 1).div_euclid(bucket) * bucket;
        let inner_end = until.div_euclid(bucket) * bucket;
        if inner_start >= inner_end {
            return (vec![raw(files)], buffered);
        }
        let mut inner = self.lock();
        let rows = rows_by_hour(&inner);
        let fresh = fresh_rollups(&inner, level, &rows);
        let (mut unrolled, mut rolled, mut head, mut tail) = (vec![], vec![], vec![], vec![]);
        let mut seen = std::collections::HashSet::new();
        for file in files {
            let hour = file.last_ms.div_euclid(HOUR_MS);
            match fresh.get(&hour) {
                None => unrolled.push(file),
                Some(rollup) => {
                    if seen.insert(hour) {
                        rolled.push((*rollup).clone());
                    }
                    if file.first_ms < inner_start {
                        head.push(file.clone());
                    }
                    if file.last_ms >= inner_end {
                        tail.push(file);
                    }
                }
            }
        }
        if !rolled.is_empty() {
            inner.counters.rollup_queries += 1;
        }
        let parts = vec![
            raw(unrolled),
            Part {
                files: rolled,
                since: inner_start,
                until: inner_end,
                rolled: true,
            },
            Part {
                files: head,
                since,
                until: inner_start,
                rolled: false,
            },
            Part {
                files: tail,
                since: inner_end,
                until,
                rolled: false,
            },
        ];
        (parts, buffered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::to_batch;

    #[test]
    fn levels_by_range_and_step() {
        assert_eq!(level_for(7 * 86_400_000, Some(3_600_000)), Some(2));
        assert_eq!(level_for(7 * 86_400_000, Some(600_000)), Some(1));
        assert_eq!(level_for(3_600_000, None), Some(0));
        assert_eq!(level_for(6 * 3_600_000, None), Some(1));
        assert_eq!(level_for(86_400_000, None), Some(2));
        assert_eq!(level_for(7 * 86_400_000, Some(90_000)), None);
    }
    use serde_json::json;

    fn flow(end: i64, ns: &str, bytes: u64) -> Map<String, Value> {
        json!({"TimeFlowEndMs": end, "_Id": end as u64, "SrcK8S_Namespace": ns, "Bytes": bytes,
               "Packets": 1, "SrcAddr": format!("198.18.0.{}", end % 200), "Proto": 6})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn sums_per_bucket_and_dimensions() {
        let hour = 1_764_400_000_000 / 3_600_000 * 3_600_000;
        let records = [
            flow(hour + 1_000, "a", 10),
            flow(hour + 2_000, "a", 20),
            flow(hour + 61_000, "a", 5),
            flow(hour + 62_000, "b", 7),
            flow(hour + 400_000, "a", 1),
        ];
        let mut rollup = Rollup::default();
        rollup.add(&to_batch(&records[..2]));
        rollup.add(&to_batch(&records[2..]));
        let levels = rollup.finish();
        let minute: Vec<(i64, &str, u64, u64)> = levels[0]
            .iter()
            .map(|r| {
                (
                    r["TimeFlowEndMs"].as_i64().unwrap() - hour,
                    r["SrcK8S_Namespace"].as_str().unwrap(),
                    r["Bytes"].as_u64().unwrap(),
                    r[WEIGHT].as_u64().unwrap(),
                )
            })
            .collect();
        // Addresses are not a dimension: the first minute's two flows are one row.
        assert_eq!(
            minute,
            vec![
                (0, "a", 30, 2),
                (60_000, "a", 5, 1),
                (60_000, "b", 7, 1),
                (360_000, "a", 1, 1)
            ]
        );
        let five: Vec<(i64, u64)> = levels[1]
            .iter()
            .map(|r| {
                (
                    r["TimeFlowEndMs"].as_i64().unwrap() - hour,
                    r["Bytes"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(five, vec![(0, 35), (0, 7), (300_000, 1)]);
        let hourly: u64 = levels[2].iter().map(|r| r[WEIGHT].as_u64().unwrap()).sum();
        assert_eq!((levels[2].len(), hourly), (2, 5));
        assert!(levels[2].iter().all(|r| r["Proto"] == 6));
    }
}
