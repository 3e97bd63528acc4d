//! The flow metrics' values at one moment, as plain data: what an exporter
//! that pushes metrics (OTLP) reads, without knowing how the pipeline
//! keeps its series.

/// One metric and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSnapshot {
    /// The name without Prometheus's `_total` (as OTLP names a sum).
    pub name: String,
    pub help: String,
    /// The histogram's upper bounds (the last bucket, +Inf, implied);
    /// empty for a counter.
    pub bounds: Vec<f64>,
    pub points: Vec<MetricPoint>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// Label names and values, in the metric's label order.
    pub labels: Vec<(String, String)>,
    pub value: PointValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// A monotonic counter, cumulative since the process started.
    Counter(u64),
    /// Per bucket (one more than the bounds), sum and count, cumulative.
    Histogram {
        buckets: Vec<u64>,
        sum: f64,
        count: u64,
    },
}
