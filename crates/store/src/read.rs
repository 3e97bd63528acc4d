//! Reading the store: pages of records (newest or oldest first, with a
//! cursor), top-K by any field, time series and topology, all with the
//! filter language. Files are read newest first and skipped by their time
//! span; a page stops reading once no older file can enter it.

use crate::batch::{Columns, Row};
use crate::columnar::{key_column, value_column};
use crate::files::{DataFile, Table};
use crate::rollup;
use crate::rollup::Part;
use crate::schema::WEIGHT;
use crate::store::Store;
use arrow_array::RecordBatch;
use flowlens_query::{FieldDef, Filter, RecordView, Scalar};
use foldhash::{HashMap, HashMapExt};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BinaryHeap;

/// Where a page ends: the end time and id of its last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub time_ms: i64,
    pub id: u64,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Cursor> {
        let (t, id) = text.split_once('.')?;
        Some(Cursor {
            time_ms: t.parse().ok()?,
            id: id.parse().ok()?,
        })
    }

    pub fn text(&self) -> String {
        format!("{}.{}", self.time_ms, self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Newest first (by end time).
    Desc,
    Asc,
}

pub struct RecordQuery<'f> {
    pub table: Table,
    pub filter: Option<&'f Filter>,
    /// End times in [since_ms, until_ms).
    pub since_ms: i64,
    pub until_ms: i64,
    pub limit: usize,
    pub order: Order,
    pub after: Option<Cursor>,
}

#[derive(Debug, Serialize)]
pub struct Page {
    pub records: Vec<Map<String, Value>>,
    /// Pass back to get the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    pub scanned: u64,
}

/// Calls `f` with each row of a batch.
fn for_each_row(batch: &RecordBatch, f: impl FnMut(&Row)) {
    for_each_row_in(batch, Order::Asc, f);
}

/// Calls `f` with each row of a batch, last row first for `Desc`: rows
/// are written in time order, so a newest-first page fills from the
/// newest rows and turns the rest away at a glance.
fn for_each_row_in(batch: &RecordBatch, order: Order, mut f: impl FnMut(&Row)) {
    if crate::interrupt::interrupted() {
        return;
    }
    let columns = Columns::of(batch);
    let mut visit = |row| {
        f(&Row {
            columns: &columns,
            row,
        })
    };
    match order {
        Order::Asc => (0..columns.rows()).for_each(&mut visit),
        Order::Desc => (0..columns.rows()).rev().for_each(&mut visit),
    }
}

/// The last file a scan read whole, kept for the next page of the same
/// export: pages through one file would otherwise decode it once a page.
#[derive(Default)]
pub struct FileCache(std::cell::RefCell<Option<(std::path::PathBuf, Vec<RecordBatch>)>>);

impl FileCache {
    fn read(&self, store: &Store, file: &DataFile) -> Option<Vec<RecordBatch>> {
        if let Some((path, batches)) = &*self.0.borrow()
            && *path == file.path
        {
            return Some(batches.clone());
        }
        let batches = store.read_file(file, None, None)?;
        *self.0.borrow_mut() = Some((file.path.clone(), batches.clone()));
        Some(batches)
    }
}

/// Calls `f` with each buffered row whose end time is in `[since, until)`.
fn in_range_rows(buffered: &[RecordBatch], since: i64, until: i64, mut f: impl FnMut(i64, &Row)) {
    for batch in buffered {
        for_each_row(batch, |row| {
            if let Some(t) = row.end_ms()
                && t >= since
                && t < until
            {
                f(t, row);
            }
        });
    }
}

/// What a scan does with the next file (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Read,
    /// None of its records can matter (all past a page's cursor).
    Skip,
    /// Neither this file nor any older one can matter.
    Stop,
}

/// How a scan reads.
struct ScanPlan<'a> {
    table: Table,
    since: i64,
    until: i64,
    filter: Option<&'a Filter>,
    /// The fields the caller reads besides the filter's (None: all, to
    /// return whole records, through `cache`).
    needs: Option<&'a [&'static str]>,
    /// Desc: the buffer, then files newest first, rows last first; Asc:
    /// files oldest first, then the buffer.
    order: Order,
    cache: Option<&'a FileCache>,
}

/// Every matching record of the snapshot, through `visit`; `next` says,
/// file by file, whether to read it, skip it or end the walk.
fn scan(
    store: &Store,
    plan: ScanPlan,
    mut visit: impl FnMut(Cursor, &dyn RecordView, &dyn Fn() -> Map<String, Value>),
    next: impl Fn(&DataFile) -> Next,
) -> u64 {
    let ScanPlan {
        table,
        since,
        until,
        filter,
        needs,
        order,
        cache,
    } = plan;
    let (mut files, buffered) = store.snapshot(table, since, until);
    if order == Order::Asc {
        files.reverse();
    }
    let projection: Option<Vec<&str>> = needs.map(|needs| {
        let mut names: Vec<&str> = vec!["TimeFlowEndMs", crate::ID];
        names.extend(needs);
        if let Some(f) = filter {
            names.extend(f.expr().inputs());
        }
        names
    });
    let mut scanned = 0;
    let mut visit_batches = |batches: &[RecordBatch]| {
        let batches: Box<dyn Iterator<Item = &RecordBatch>> = match order {
            Order::Asc => Box::new(batches.iter()),
            Order::Desc => Box::new(batches.iter().rev()),
        };
        for batch in batches {
            for_each_row_in(batch, order, |view| {
                scanned += 1;
                if let Some((time_ms, id)) = view.end_and_id()
                    && let k = (Cursor { time_ms, id })
                    && k.time_ms >= since
                    && k.time_ms < until
                    && filter.is_none_or(|f| f.matches_view(view))
                {
                    visit(k, view, &|| view.to_json());
                }
            });
        }
    };
    // What is still buffered is the newest.
    if order == Order::Desc {
        visit_batches(&buffered);
    }
    for file in &files {
        match next(file) {
            Next::Stop => break,
            Next::Skip => continue,
            Next::Read => {}
        }
        let batches = match (cache, &projection) {
            (Some(cache), None) => cache.read(store, file),
            _ => store.read_file(file, projection.as_deref(), None),
        };
        if let Some(batches) = batches {
            visit_batches(&batches);
        }
    }
    if order == Order::Asc {
        visit_batches(&buffered);
    }
    scanned
}

/// Every row of a sum's parts (and of the buffered batches) in range that
/// the filter selects, through `visit(end_ms, row, weight)`: weight is the
/// number of flow records a rollup row sums, 1 for a record.
#[allow(clippy::too_many_arguments)]
fn scan_parts(
    store: &Store,
    parts: &[Part],
    buffered: &[RecordBatch],
    since: i64,
    until: i64,
    filter: Option<&Filter>,
    needs: &[&'static str],
    mut visit: impl FnMut(i64, &Row, u64),
) {
    let mut names: Vec<&str> = vec!["TimeFlowEndMs", WEIGHT];
    names.extend(needs);
    if let Some(f) = filter {
        names.extend(f.expr().inputs());
    }
    let selected = |row: &Row| filter.is_none_or(|f| f.matches_view(row));
    in_range_rows(buffered, since, until, |t, row| {
        if selected(row) {
            visit(t, row, 1);
        }
    });
    for part in parts {
        for file in &part.files {
            let Some(batches) = store.read_file(file, Some(&names), None) else {
                continue;
            };
            in_range_rows(&batches, part.since, part.until, |t, row| {
                if selected(row) {
                    let weight = if part.rolled { row.count(WEIGHT) } else { 1 };
                    visit(t, row, weight);
                }
            });
        }
    }
}

/// The rollup level a sum may read, if any: summed metrics of flows whose
/// filter and grouping read only fields rollups keep.
fn rollup_level(
    table: Table,
    filter: Option<&Filter>,
    by: Option<&FieldDef>,
    metric: Metric,
    range_ms: i64,
    step_ms: Option<i64>,
) -> Option<usize> {
    // A summed metric whose column rollups sum (a derived one, as bytes,
    // reads its first input on flows: the column rollups keep).
    let summed = table == Table::Flows
        && metric.stat().is_none()
        && metric.measure().field.is_none_or(|f| {
            value_column(f, Table::Flows).is_some_and(|c| rollup::SUMS.contains(&c))
        });
    let mut reads: Vec<&str> = by.map(|b| b.inputs()).unwrap_or_default();
    if let Some(f) = filter {
        reads.extend(f.expr().inputs());
    }
    if !summed || !rollup::covers(&reads) {
        return None;
    }
    rollup::level_for(range_ms, step_ms)
}

/// The records of a page being built, by place; the places of records
/// pushed out of the page are reused.
#[derive(Default)]
struct Kept {
    records: Vec<Option<Map<String, Value>>>,
    free: Vec<usize>,
}

impl Kept {
    fn keep(&mut self, record: Map<String, Value>) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.records[i] = Some(record);
                i
            }
            None => {
                self.records.push(Some(record));
                self.records.len() - 1
            }
        }
    }

    fn release(&mut self, i: usize) {
        self.records[i] = None;
        self.free.push(i);
    }

    fn take(&mut self, i: usize) -> Option<Map<String, Value>> {
        self.records[i].take()
    }
}

impl Store {
    pub fn records(&self, q: &RecordQuery) -> Page {
        self.records_with(q, &FileCache::default())
    }

    /// A page, reading through `cache`: pass the same one to each page of
    /// one walk through many pages (an export).
    pub fn records_with(&self, q: &RecordQuery, cache: &FileCache) -> Page {
        // The page so far, its worst entry on top of the heap (a page holds
        // at most `limit + 1` records however many it looks at).
        let mut page: BinaryHeap<(std::cmp::Reverse<Cursor>, usize)> = BinaryHeap::new();
        let mut asc_page: BinaryHeap<(Cursor, usize)> = BinaryHeap::new();
        let mut kept = Kept::default();
        let limit = q.limit.max(1);
        let worst = std::cell::Cell::new(None::<Cursor>);
        let asc_worst = std::cell::Cell::new(None::<Cursor>);
        let plan = ScanPlan {
            table: q.table,
            since: q.since_ms,
            until: q.until_ms,
            filter: q.filter,
            needs: None,
            order: q.order,
            cache: Some(cache),
        };
        let scanned = scan(
            self,
            plan,
            |k, _, json| {
                let beyond = match (q.order, q.after) {
                    (Order::Desc, Some(after)) => k < after,
                    (Order::Asc, Some(after)) => k > after,
                    (_, None) => true,
                };
                if !beyond {
                    return;
                }
                match q.order {
                    Order::Desc => {
                        // Keep the `limit` largest keys: a min-heap.
                        if page.len() == limit && page.peek().is_some_and(|(w, _)| k <= w.0) {
                            return;
                        }
                        page.push((std::cmp::Reverse(k), kept.keep(json())));
                        if page.len() > limit
                            && let Some((_, i)) = page.pop()
                        {
                            kept.release(i);
                        }
                        if page.len() == limit {
                            worst.set(page.peek().map(|(w, _)| w.0));
                        }
                    }
                    Order::Asc => {
                        if asc_page.len() == limit && asc_page.peek().is_some_and(|(w, _)| k >= *w)
                        {
                            return;
                        }
                        asc_page.push((k, kept.keep(json())));
                        if asc_page.len() > limit
                            && let Some((_, i)) = asc_page.pop()
                        {
                            kept.release(i);
                        }
                        if asc_page.len() == limit {
                            asc_worst.set(asc_page.peek().map(|(w, _)| *w));
                        }
                    }
                }
            },
            |file| match (q.order, q.after) {
                // Newest first: a file whose newest record is older than the
                // page's oldest cannot change the page (nor any file after
                // it)...
                (Order::Desc, _) if worst.get().is_some_and(|w| file.last_ms < w.time_ms) => {
                    Next::Stop
                }
                // ...oldest first, one whose oldest is newer than the
                // page's newest (later files may still start earlier)...
                (Order::Asc, _) if asc_worst.get().is_some_and(|w| file.first_ms > w.time_ms) => {
                    Next::Skip
                }
                // ...and one whose oldest is newer than the cursor was read
                // by an earlier page (an export pages through all of them).
                (Order::Desc, Some(after)) if file.first_ms > after.time_ms => Next::Skip,
                (Order::Asc, Some(after)) if file.last_ms < after.time_ms => Next::Skip,
                _ => Next::Read,
            },
        );
        let mut entries: Vec<(Cursor, usize)> = match q.order {
            Order::Desc => page.into_iter().map(|(k, i)| (k.0, i)).collect(),
            Order::Asc => asc_page.into_iter().collect(),
        };
        entries.sort();
        if q.order == Order::Desc {
            entries.reverse();
        }
        let cursor = (entries.len() == limit)
            .then(|| entries.last().map(|(k, _)| k.text()))
            .flatten();
        Page {
            records: entries
                .into_iter()
                .filter_map(|(_, i)| kept.take(i))
                .collect(),
            cursor,
            scanned,
        }
    }
}

/// What top-K and time series measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Bytes,
    Packets,
    Flows,
    Drops,
    DropBytes,
    Retransmits,
    Rtt(Stat),
    DnsLatency(Stat),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    Avg,
    P50,
    P90,
    P99,
    Max,
}

impl Metric {
    pub const NAMES: &'static str = "bytes, packets, flows, drops, drop_bytes, retransmits, rtt[_avg|_p50|_p90|_p99|_max], dns_latency[_avg|_p50|_p90|_p99|_max]";

    pub fn parse(text: &str) -> Option<Metric> {
        let stat = |s: &str| match s {
            "" | "_avg" => Some(Stat::Avg),
            "_p50" => Some(Stat::P50),
            "_p90" => Some(Stat::P90),
            "_p99" => Some(Stat::P99),
            "_max" => Some(Stat::Max),
            _ => None,
        };
        Some(match text {
            "bytes" => Metric::Bytes,
            "packets" => Metric::Packets,
            "flows" => Metric::Flows,
            "drops" => Metric::Drops,
            "drop_bytes" => Metric::DropBytes,
            "retransmits" => Metric::Retransmits,
            t if t.starts_with("rtt") => Metric::Rtt(stat(&t[3..])?),
            t if t.starts_with("dns_latency") => Metric::DnsLatency(stat(&t[11..])?),
            _ => return None,
        })
    }

    /// The filter field whose values this metric sums or summarizes, and
    /// the factor to the reported unit (RTT in ms, DNS latency in ms).
    fn field(self) -> Option<(&'static str, f64)> {
        Some(match self {
            Metric::Bytes => ("bytes", 1.0),
            Metric::Packets => ("packets", 1.0),
            Metric::Flows => return None,
            Metric::Drops => ("drop.packets", 1.0),
            Metric::DropBytes => ("drop.bytes", 1.0),
            Metric::Retransmits => ("tcp.retransmits", 1.0),
            Metric::Rtt(_) => ("rtt", 1e-6),
            Metric::DnsLatency(_) => ("dns.latency", 1.0),
        })
    }

    fn stat(self) -> Option<Stat> {
        match self {
            Metric::Rtt(s) | Metric::DnsLatency(s) => Some(s),
            _ => None,
        }
    }
}

/// Running aggregate of one group.
#[derive(Debug, Default, Clone)]
struct Agg {
    sum: f64,
    count: u64,
    values: Vec<f64>,
}

/// A metric resolved once per query: the field it reads and its factor.
struct Measure {
    field: Option<&'static FieldDef>,
    factor: f64,
    keep_values: bool,
}

impl Metric {
    fn measure(self) -> Measure {
        let (field, factor) = match self.field() {
            Some((name, factor)) => (
                Some(flowlens_query::fields::lookup(name).expect("metric field")),
                factor,
            ),
            None => (None, 1.0),
        };
        Measure {
            field,
            factor,
            keep_values: self.stat().is_some(),
        }
    }

    /// The record fields the metric reads.
    fn inputs(self) -> Vec<&'static str> {
        self.measure().field.map(|f| f.inputs()).unwrap_or_default()
    }
}

impl Agg {
    fn add(&mut self, measure: &Measure, view: &dyn RecordView) {
        self.add_weighted(measure, view, 1);
    }

    /// Adds a row that stands for `weight` records (a rollup row; its
    /// counters are already sums).
    fn add_weighted(&mut self, measure: &Measure, view: &dyn RecordView, weight: u64) {
        match measure.field {
            None => {
                self.sum += weight as f64;
                self.count += weight;
            }
            Some(field) => {
                for v in field.values(view) {
                    if let Scalar::Num(n) = v {
                        let n = n * measure.factor;
                        self.sum += n;
                        self.count += 1;
                        if measure.keep_values {
                            self.values.push(n);
                        }
                    }
                }
            }
        }
    }

    fn value(&mut self, metric: Metric) -> f64 {
        let quantile = |values: &mut Vec<f64>, q: f64| {
            if values.is_empty() {
                return 0.0;
            }
            values.sort_by(f64::total_cmp);
            values[((values.len() - 1) as f64 * q).round() as usize]
        };
        match metric.stat() {
            None => self.sum,
            Some(Stat::Avg) => {
                if self.count == 0 {
                    0.0
                } else {
                    self.sum / self.count as f64
                }
            }
            Some(Stat::P50) => quantile(&mut self.values, 0.5),
            Some(Stat::P90) => quantile(&mut self.values, 0.9),
            Some(Stat::P99) => quantile(&mut self.values, 0.99),
            Some(Stat::Max) => self.values.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// Calls `f` with each group key of a record (`""` when it has none);
/// text is lent, numbers are written into `scratch`.
fn for_each_key(
    field: &FieldDef,
    view: &dyn RecordView,
    scratch: &mut String,
    mut f: impl FnMut(&str),
) {
    use std::fmt::Write;
    let values = field.group_values(view);
    if values.is_empty() {
        return f("");
    }
    for v in values {
        scratch.clear();
        let _ = match v {
            Scalar::Num(n) if n.fract() == 0.0 => write!(scratch, "{}", n as i64),
            Scalar::Num(n) => write!(scratch, "{n}"),
            Scalar::Bool(b) => write!(scratch, "{b}"),
            ref other => {
                f(other.as_text().unwrap_or_default());
                continue;
            }
        };
        f(scratch);
    }
}

/// The first group key of a record.
fn first_key(field: &FieldDef, view: &dyn RecordView) -> String {
    let mut scratch = String::new();
    let mut key = None;
    for_each_key(field, view, &mut scratch, |k| {
        key.get_or_insert_with(|| k.to_string());
    });
    key.unwrap_or_default()
}

#[derive(Debug, Serialize)]
pub struct TopEntry {
    pub key: String,
    pub value: f64,
    /// Records in the group.
    pub records: u64,
}

#[derive(Debug, Serialize)]
pub struct SeriesPoint {
    pub time_ms: i64,
    pub value: f64,
}

#[derive(Debug, Serialize)]
pub struct Edge {
    pub src: String,
    pub dst: String,
    pub bytes: f64,
    pub drops: f64,
    pub dns_errors: u64,
    pub rtt_avg_ms: Option<f64>,
    pub records: u64,
}

/// Aggregates and record counts by group key.
type Groups = HashMap<String, (Agg, u64)>;

/// The group of `key`, made on first use (copying the key only then).
fn group<'g>(groups: &'g mut Groups, key: &str) -> &'g mut (Agg, u64) {
    if !groups.contains_key(key) {
        groups.insert(key.to_string(), Default::default());
    }
    groups.get_mut(key).expect("just inserted")
}

/// Bytes, drops, RTT, DNS errors and records of one edge so far.
type EdgeAgg = (Agg, Agg, Agg, u64, u64);

impl Store {
    /// The `k` groups of `by` with the highest `metric`.
    #[allow(clippy::too_many_arguments)]
    pub fn top(
        &self,
        table: Table,
        filter: Option<&Filter>,
        since: i64,
        until: i64,
        by: &FieldDef,
        metric: Metric,
        k: usize,
    ) -> Vec<TopEntry> {
        let mut groups = match self.top_by_columns(table, filter, since, until, by, metric) {
            Some(groups) => groups,
            None => self.top_by_rows(table, filter, since, until, by, metric),
        };
        let mut entries: Vec<TopEntry> = groups
            .drain()
            .map(|(key, (mut agg, records))| TopEntry {
                value: agg.value(metric),
                key,
                records,
            })
            .collect();
        entries.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.key.cmp(&b.key)));
        entries.truncate(k);
        entries
    }

    /// Top-K groups by reading whole columns, when the query allows it
    /// (see `columnar`): no filter, a text key, a summed or averaged metric.
    fn top_by_columns(
        &self,
        table: Table,
        filter: Option<&Filter>,
        since: i64,
        until: i64,
        by: &FieldDef,
        metric: Metric,
    ) -> Option<Groups> {
        if filter.is_some() || metric.stat().is_some_and(|s| s != Stat::Avg) {
            return None;
        }
        let key = key_column(by)?;
        let measure = metric.measure();
        let value = match measure.field {
            None => None,
            Some(f) => Some(value_column(f, table)?),
        };
        let level = rollup_level(table, None, Some(by), metric, until - since, None);
        let (parts, buffered) = self.plan(table, since, until, level);
        let mut groups = Groups::new();
        let mut scratch = String::new();
        in_range_rows(&buffered, since, until, |_, row| {
            for_each_key(by, row, &mut scratch, |key| {
                let (agg, n) = group(&mut groups, key);
                agg.add(&measure, row);
                *n += 1;
            });
        });
        for part in &parts {
            let (value, weight) = match part.rolled {
                true => (value.or(Some(WEIGHT)), Some(WEIGHT)),
                false => (value, None),
            };
            let sums = self.sums_by_key(&part.files, part.since, part.until, key, value, weight)?;
            for (key, (sum, count, records)) in sums {
                let (agg, n) = group(&mut groups, &key);
                agg.sum += sum * measure.factor;
                agg.count += count;
                *n += records;
            }
        }
        Some(groups)
    }

    fn top_by_rows(
        &self,
        table: Table,
        filter: Option<&Filter>,
        since: i64,
        until: i64,
        by: &FieldDef,
        metric: Metric,
    ) -> Groups {
        let mut groups = Groups::new();
        let measure = metric.measure();
        let mut needs = by.inputs();
        needs.extend(metric.inputs());
        let mut scratch = String::new();
        let level = rollup_level(table, filter, Some(by), metric, until - since, None);
        let (parts, buffered) = self.plan(table, since, until, level);
        scan_parts(
            self,
            &parts,
            &buffered,
            since,
            until,
            filter,
            &needs,
            |_, row, weight| {
                for_each_key(by, row, &mut scratch, |key| {
                    let (agg, n) = group(&mut groups, key);
                    agg.add_weighted(&measure, row, weight);
                    *n += weight;
                });
            },
        );
        groups
    }

    /// `metric` per `step_ms` bucket of end time.
    pub fn series(
        &self,
        table: Table,
        filter: Option<&Filter>,
        since: i64,
        until: i64,
        step_ms: i64,
        metric: Metric,
    ) -> Vec<SeriesPoint> {
        let step = step_ms.max(1);
        let start = since.div_euclid(step) * step;
        let count = ((until - start + step - 1) / step).clamp(0, 100_000) as usize;
        let mut buckets: Vec<Agg> = vec![Agg::default(); count];
        let slot = |t: i64| ((t - start) / step) as usize;
        let measure = metric.measure();
        let value_column = match measure.field {
            None => Some(None),
            Some(f) => value_column(f, table).map(Some),
        };
        let by_columns = filter.is_none() && metric.stat().is_none_or(|s| s == Stat::Avg);
        let mut done = false;
        if by_columns && let Some(value) = value_column {
            let level = rollup_level(table, None, None, metric, until - since, Some(step));
            let (parts, buffered) = self.plan(table, since, until, level);
            in_range_rows(&buffered, since, until, |t, row| {
                if let Some(b) = buckets.get_mut(slot(t)) {
                    b.add(&measure, row);
                }
            });
            done = parts.iter().all(|part| {
                let value = if part.rolled {
                    value.or(Some(WEIGHT))
                } else {
                    value
                };
                self.for_each_column_value(&part.files, part.since, part.until, value, |t, v| {
                    if let (Some(b), Some(v)) = (buckets.get_mut(slot(t)), v) {
                        b.sum += v * measure.factor;
                        b.count += 1;
                    }
                })
            });
        }
        if !done {
            buckets.iter_mut().for_each(|b| *b = Agg::default());
            let level = rollup_level(table, filter, None, metric, until - since, Some(step));
            let (parts, buffered) = self.plan(table, since, until, level);
            let needs = metric.inputs();
            scan_parts(
                self,
                &parts,
                &buffered,
                since,
                until,
                filter,
                &needs,
                |t, row, weight| {
                    if let Some(b) = buckets.get_mut(slot(t)) {
                        b.add_weighted(&measure, row, weight);
                    }
                },
            );
        }
        buckets
            .into_iter()
            .enumerate()
            .map(|(i, mut agg)| SeriesPoint {
                time_ms: start + i as i64 * step,
                value: agg.value(metric),
            })
            .collect()
    }

    /// Edges between endpoints named by `src`/`dst` fields (e.g.
    /// src.namespace/dst.namespace), with traffic and trouble per edge.
    pub fn topology(
        &self,
        table: Table,
        filter: Option<&Filter>,
        since: i64,
        until: i64,
        src: &FieldDef,
        dst: &FieldDef,
    ) -> Vec<Edge> {
        let mut edges: HashMap<(String, String), EdgeAgg> = HashMap::new();
        let rcode = flowlens_query::fields::lookup("dns.rcode").expect("field");
        let (m_bytes, m_drops, m_rtt) = (
            Metric::Bytes.measure(),
            Metric::Drops.measure(),
            Metric::Rtt(Stat::Avg).measure(),
        );
        let mut needs = src.inputs();
        needs.extend(dst.inputs());
        needs.extend(rcode.inputs());
        for m in [Metric::Bytes, Metric::Drops, Metric::Rtt(Stat::Avg)] {
            needs.extend(m.inputs());
        }
        let plan = ScanPlan {
            table,
            since,
            until,
            filter,
            needs: Some(&needs),
            order: Order::Desc,
            cache: None,
        };
        scan(
            self,
            plan,
            |_, view, _| {
                let key = (first_key(src, view), first_key(dst, view));
                let (bytes, drops, rtt, dns_errors, n) = edges.entry(key).or_default();
                bytes.add(&m_bytes, view);
                drops.add(&m_drops, view);
                rtt.add(&m_rtt, view);
                if rcode
                    .values(view)
                    .iter()
                    .any(|v| v.as_text().is_some_and(|t| t != "NoError"))
                {
                    *dns_errors += 1;
                }
                *n += 1;
            },
            |_| Next::Read,
        );
        let mut out: Vec<Edge> = edges
            .into_iter()
            .map(
                |((src, dst), (mut bytes, mut drops, mut rtt, dns_errors, records))| Edge {
                    src,
                    dst,
                    bytes: bytes.value(Metric::Bytes),
                    drops: drops.value(Metric::Drops),
                    dns_errors,
                    rtt_avg_ms: (rtt.count > 0).then(|| rtt.value(Metric::Rtt(Stat::Avg))),
                    records,
                },
            )
            .collect();
        out.sort_by(|a, b| b.bytes.total_cmp(&a.bytes));
        out
    }
}
