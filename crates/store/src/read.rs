//! Reading the store: pages of records (newest or oldest first, with a
//! cursor) with the filter language, and the scans `aggregate` runs top-K,
//! series and topology on. Files are read newest first and skipped by their time
//! span; a page stops reading once no older file can enter it.

use crate::batch::{Columns, Row};
use crate::files::{DataFile, Table};
use crate::rollup::Part;
use crate::schema::WEIGHT;
use crate::store::Store;
use arrow_array::RecordBatch;
use flowlens_query::{Filter, RecordView};
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
pub(crate) fn for_each_row(batch: &RecordBatch, f: impl FnMut(&Row)) {
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
pub(crate) fn in_range_rows(
    buffered: &[RecordBatch],
    since: i64,
    until: i64,
    mut f: impl FnMut(i64, &Row),
) {
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
pub(crate) enum Next {
    Read,
    /// None of its records can matter (all past a page's cursor).
    Skip,
    /// Neither this file nor any older one can matter.
    Stop,
}

/// How a scan reads.
pub(crate) struct ScanPlan<'a> {
    pub(crate) table: Table,
    pub(crate) since: i64,
    pub(crate) until: i64,
    pub(crate) filter: Option<&'a Filter>,
    /// The fields the caller reads besides the filter's (None: all, to
    /// return whole records, through `cache`).
    pub(crate) needs: Option<&'a [&'static str]>,
    /// Desc: the buffer, then files newest first, rows last first; Asc:
    /// files oldest first, then the buffer.
    pub(crate) order: Order,
    pub(crate) cache: Option<&'a FileCache>,
}

/// Every matching record of the snapshot, through `visit`; `next` says,
/// file by file, whether to read it, skip it or end the walk.
pub(crate) fn scan(
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
pub(crate) fn scan_parts(
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
