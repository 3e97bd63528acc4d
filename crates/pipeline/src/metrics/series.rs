//! The metrics' series, kept by the pipeline itself and encoded for
//! Prometheus at scrape time (a `Collector` of prometheus-client). A
//! series is keyed by the numbers of its label values' parts (`Parts`): a
//! flow's update is one hash of 16 bytes and one lookup, no label vector
//! built, hashed with SipHash and compared string by string per flow, as a
//! `Family` lookup does (that was half the pipeline's time).

use super::parts::{NONE, PartId, Parts, hasher};
use flowlens_model::{MetricPoint, MetricSnapshot, PointValue};
use hashbrown::HashTable;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

/// Seconds buckets for RTT and DNS latency: from 100 µs (veth) to 5 s.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 5.0,
];

/// A histogram's observations: per bucket (the last one +Inf), sum, count.
#[derive(Debug, Clone, Default)]
pub struct HistogramValue {
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl HistogramValue {
    fn observe(&mut self, v: f64) {
        let at = LATENCY_BUCKETS
            .iter()
            .position(|bound| v <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[at] += 1;
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    Histogram(Box<HistogramValue>),
}

#[derive(Debug, Clone)]
struct Series {
    /// Time (ms) of its last update, for expiry.
    last_seen: i64,
    value: Value,
}

/// A series' label values: the parts of its source end, its destination
/// end and its extra labels, in label order (`NONE` where it has none).
pub type SeriesKey = [PartId; 4];

/// One metric's series, by label values.
pub struct MetricSeries {
    /// Full name (without `_total` for counters: the encoder adds it).
    pub name: String,
    pub help: &'static str,
    pub histogram: bool,
    /// Label names, in the order of the values in a key's parts.
    pub label_names: Vec<&'static str>,
    series: HashTable<(SeriesKey, Series)>,
}

/// Label values laid end to end, each as `<length>:<value>`, so no two
/// label sets make the same text whatever their values hold.
#[derive(Debug, Default)]
pub struct LabelKey {
    text: String,
}

impl LabelKey {
    pub fn clear(&mut self) {
        self.text.clear();
    }

    pub fn push(&mut self, value: &str) {
        // The length in decimal, by hand: no formatting machinery for each
        // label of each flow.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = value.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[at..] {
            self.text.push(d as char);
        }
        self.text.push(':');
        self.text.push_str(value);
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The values of a key, in order.
    fn values(key: &str) -> Vec<&str> {
        let mut values = Vec::new();
        let mut rest = key;
        while let Some((len, tail)) = rest.split_once(':') {
            let Ok(len) = len.parse::<usize>() else { break };
            let Some((value, after)) = tail.split_at_checked(len) else {
                break;
            };
            values.push(value);
            rest = after;
        }
        values
    }
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    Yes,
    /// A new series past the cap: refused.
    Capped,
}

impl MetricSeries {
    pub fn new(
        name: String,
        help: &'static str,
        histogram: bool,
        label_names: Vec<&'static str>,
    ) -> MetricSeries {
        MetricSeries {
            name,
            help,
            histogram,
            label_names,
            series: HashTable::new(),
        }
    }

    /// Updates the series of `key` with `change` (made if new, within the
    /// cap): one lookup for a series that exists.
    fn update(
        &mut self,
        key: &SeriesKey,
        parts: &mut Parts,
        now_ms: i64,
        max_series: usize,
        change: impl FnOnce(&mut Value),
    ) -> Updated {
        let hash = hasher().hash_one(key);
        if let Some((_, series)) = self.series.find_mut(hash, |(k, _)| k == key) {
            series.last_seen = now_ms;
            change(&mut series.value);
            return Updated::Yes;
        }
        if self.series.len() >= max_series {
            return Updated::Capped;
        }
        let mut value = if self.histogram {
            Value::Histogram(Box::default())
        } else {
            Value::Counter(0)
        };
        change(&mut value);
        let series = Series {
            last_seen: now_ms,
            value,
        };
        parts.retain(key);
        self.series
            .insert_unique(hash, (*key, series), |(k, _)| hasher().hash_one(k));
        Updated::Yes
    }

    /// Adds `by` to the counter of `key`.
    pub fn add(
        &mut self,
        key: &SeriesKey,
        parts: &mut Parts,
        by: u64,
        now_ms: i64,
        max_series: usize,
    ) -> Updated {
        self.update(key, parts, now_ms, max_series, |value| {
            if let Value::Counter(n) = value {
                *n += by;
            }
        })
    }

    /// Observes `v` in the histogram of `key`.
    pub fn observe(
        &mut self,
        key: &SeriesKey,
        parts: &mut Parts,
        v: f64,
        now_ms: i64,
        max_series: usize,
    ) -> Updated {
        self.update(key, parts, now_ms, max_series, |value| {
            if let Value::Histogram(h) = value {
                h.observe(v);
            }
        })
    }

    /// Removes the series not updated since `oldest_ms`; how many.
    pub fn expire(&mut self, oldest_ms: i64, parts: &mut Parts) -> u64 {
        let before = self.series.len();
        self.series.retain(|(key, s)| {
            let keep = s.last_seen >= oldest_ms;
            if !keep {
                parts.release(key);
            }
            keep
        });
        (before - self.series.len()) as u64
    }

    /// Every series' labels and value now.
    fn snapshot(&self, parts: &Parts) -> MetricSnapshot {
        let mut values = String::new();
        let points = self
            .series
            .iter()
            .map(|(key, series)| {
                values.clear();
                for &part in key.iter().filter(|&&part| part != NONE) {
                    values.push_str(parts.text(part));
                }
                let labels = self
                    .label_names
                    .iter()
                    .zip(LabelKey::values(&values))
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                let value = match &series.value {
                    Value::Counter(n) => PointValue::Counter(*n),
                    Value::Histogram(h) => PointValue::Histogram {
                        buckets: h.buckets.to_vec(),
                        sum: h.sum,
                        count: h.count,
                    },
                };
                MetricPoint { labels, value }
            })
            .collect();
        MetricSnapshot {
            name: self.name.clone(),
            help: self.help.to_string(),
            bounds: if self.histogram {
                LATENCY_BUCKETS.to_vec()
            } else {
                Vec::new()
            },
            points,
        }
    }

    fn encode(
        &self,
        parts: &Parts,
        encoder: &mut DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let kind = if self.histogram {
            MetricType::Histogram
        } else {
            MetricType::Counter
        };
        let mut family = encoder.encode_descriptor(&self.name, self.help, None, kind)?;
        let mut values = String::new();
        for (key, series) in self.series.iter() {
            values.clear();
            for &part in key.iter().filter(|&&part| part != NONE) {
                values.push_str(parts.text(part));
            }
            let labels: Vec<(&str, &str)> = self
                .label_names
                .iter()
                .copied()
                .zip(LabelKey::values(&values))
                .collect();
            let metric = family.encode_family(&labels)?;
            match &series.value {
                Value::Counter(n) => ConstCounter::new(*n).encode(metric)?,
                Value::Histogram(h) => {
                    let mut metric = metric;
                    let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
                    let buckets: Vec<(f64, u64)> = bounds.zip(h.buckets).collect();
                    metric.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
                }
            }
        }
        Ok(())
    }
}

/// Every metric's series and the parts of their keys.
#[derive(Default)]
pub struct SeriesSet {
    pub metrics: Vec<MetricSeries>,
    pub parts: Parts,
}

/// The metrics as Prometheus reads them: shared with the stage that
/// updates them, locked once per scrape.
#[derive(Clone)]
pub struct SharedSeries(pub Arc<Mutex<SeriesSet>>);

impl std::fmt::Debug for SharedSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSeries")
    }
}

impl SharedSeries {
    /// Every metric's series now (for exporters that push metrics).
    pub fn snapshot(&self) -> Vec<MetricSnapshot> {
        let set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.metrics.iter().map(|m| m.snapshot(&set.parts)).collect()
    }
}

impl Collector for SharedSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for metric in set.metrics.iter() {
            metric.encode(&set.parts, &mut encoder)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_values_apart_whatever_they_hold() {
        let mut a = LabelKey::default();
        a.push("a:1");
        a.push("");
        let mut b = LabelKey::default();
        b.push("a");
        b.push("1:");
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(LabelKey::values(a.as_str()), ["a:1", ""]);
        assert_eq!(LabelKey::values(b.as_str()), ["a", "1:"]);
        let mut long = LabelKey::default();
        long.push(&"x".repeat(1234));
        assert!(long.as_str().starts_with("1234:x"));
    }

    #[test]
    fn histograms_count_per_bucket_with_an_infinite_last() {
        let mut h = HistogramValue::default();
        for v in [0.00005, 0.0001, 0.003, 9.0] {
            h.observe(v);
        }
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[5], 1);
        assert_eq!(h.buckets[12], 1);
        assert_eq!(h.count, 4);
    }
}
