//! Aggregates over the stored flows: top-K, time series and topology, each
//! from rollup rows where they cover the question and from flow files for
//! the rest (scanned as `read` scans them for records).

use crate::columnar::{key_column, value_column};
use crate::files::Table;
use crate::read::*;
use crate::rollup;
use crate::schema::WEIGHT;
use crate::store::Store;
use flowlens_query::{FieldDef, Filter, RecordView, Scalar};
use foldhash::{HashMap, HashMapExt};
use serde::Serialize;

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
