//! One exporter's buffer and sender. Records are copied into a bounded
//! buffer (beyond it they are dropped and counted: the pipeline never
//! waits); a task of its own takes them in batches and hands each to the
//! exporter's transport, which sends it whole or fails; a failed batch is
//! sent again after a backoff with jitter, so a peer that comes back gets
//! what was buffered. received = sent + dropped + buffered, always.

use crate::record::{ExportRecord, RecordKinds, selects_conversation, selects_flow};
use flowlens_model::{ConversationRecord, FlowRecord};
use flowlens_query::Filter;
use flowlens_wire::exporter::jittered;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// What a peer took of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Bytes written for it.
    pub bytes: u64,
    /// Records the peer said it refused (OTLP's partial success): counted,
    /// not sent again (the peer would refuse them again).
    pub rejected: u64,
}

/// What sends a batch to the peer.
pub trait Deliver: Send + 'static {
    /// Sends `batch`. An error means the batch is sent again (the
    /// transport reconnects as it needs).
    fn deliver(
        &mut self,
        batch: &[ExportRecord],
    ) -> impl Future<Output = Result<Delivered, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Records held while the peer is slow or away.
    pub buffer_records: usize,
    /// Records per batch at most.
    pub batch_size: usize,
    /// A batch not full waits this long for more.
    pub batch_delay: Duration,
    /// A batch taking longer fails (and is retried).
    pub send_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// At shutdown, how long buffered records may still take to leave.
    pub shutdown_grace: Duration,
}

impl Default for SinkConfig {
    fn default() -> SinkConfig {
        SinkConfig {
            buffer_records: 100_000,
            batch_size: 1_000,
            batch_delay: Duration::from_millis(200),
            send_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What an exporter received, sent and dropped, by reason.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkStats {
    /// Records handed to the exporter (its filter passed them).
    pub records_received: u64,
    /// Records its filter left out (not received).
    pub records_filtered_out: u64,
    pub records_sent: u64,
    pub batches_sent: u64,
    pub bytes_sent: u64,
    /// Dropped because the buffer was full (the peer away or slow too long).
    pub records_dropped_buffer_full: u64,
    /// Still buffered when flowlens stopped and the grace ran out.
    pub records_dropped_shutdown: u64,
    /// Sent, and refused by the peer (OTLP's partial success).
    pub records_rejected_by_peer: u64,
    /// Failed sends (their records stay buffered and are sent again).
    pub send_errors: u64,
    /// Records waiting now.
    pub buffered_records: u64,
    /// OTLP metrics: pushes made, failed, and data points sent.
    pub metrics_pushes: u64,
    pub metrics_push_errors: u64,
    pub metric_points_sent: u64,
}

impl SinkStats {
    pub const GAUGES: &'static [&'static str] = &["buffered_records"];
}

struct Shared {
    buffer: Mutex<VecDeque<ExportRecord>>,
    /// Records taken out of the buffer for the batch being sent: they
    /// still count against its room and as buffered.
    in_flight: std::sync::atomic::AtomicUsize,
    stats: Mutex<SinkStats>,
    wake: Notify,
    stopping: AtomicBool,
    /// The second (since 1970) of the last buffer-full warning: at most
    /// one a second, however many batches a full buffer refuses.
    warned: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut SinkStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    /// Records waiting, the batch being sent included.
    fn buffered(&self) -> usize {
        self.buffer.lock().map(|b| b.len()).unwrap_or(0) + self.in_flight.load(Ordering::SeqCst)
    }
}

/// Updates an exporter's stats.
#[derive(Clone)]
pub struct SinkStatsHandle(Arc<Shared>);

impl SinkStatsHandle {
    pub fn update(&self, f: impl FnOnce(&mut SinkStats)) {
        self.0.update(f)
    }
}

pub struct Sink {
    name: String,
    filter: Option<Filter>,
    kinds: RecordKinds,
    config: SinkConfig,
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Sink {
    /// Starts the sender on the current runtime.
    pub fn start(
        name: String,
        filter: Option<Filter>,
        kinds: RecordKinds,
        config: SinkConfig,
        deliver: impl Deliver,
    ) -> Sink {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(VecDeque::new()),
            in_flight: Default::default(),
            warned: Default::default(),
            stats: Mutex::default(),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        let task = tokio::spawn(send_loop(
            name.clone(),
            shared.clone(),
            config.clone(),
            deliver,
        ));
        Sink {
            name,
            filter,
            kinds,
            config,
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Copies the flows the filter selects into the buffer (if this
    /// exporter takes flows); those beyond its room are dropped and
    /// counted. Never waits for the peer.
    pub fn push(&self, flows: &[FlowRecord]) {
        if !self.kinds.flows() {
            return;
        }
        let selected: Vec<&FlowRecord> = flows
            .iter()
            .filter(|f| selects_flow(self.filter.as_ref(), f))
            .collect();
        self.take(flows.len(), &selected, |f| ExportRecord::Flow(f.clone()));
    }

    /// The same for conversation records (if this exporter takes them).
    pub fn push_conversations(&self, records: &[ConversationRecord]) {
        if !self.kinds.conversations() {
            return;
        }
        let selected: Vec<&ConversationRecord> = records
            .iter()
            .filter(|c| selects_conversation(self.filter.as_ref(), c))
            .collect();
        self.take(records.len(), &selected, |c| {
            ExportRecord::Conversation(c.clone())
        });
    }

    /// Buffers `selected` of `offered` records, as room allows: only those
    /// that fit are copied (a peer away costs the pipeline no copies).
    fn take<R>(&self, offered: usize, selected: &[&R], copy: impl Fn(&R) -> ExportRecord) {
        let filtered_out = (offered - selected.len()) as u64;
        let wanted = selected.len();
        let (taken, buffered) = {
            let Ok(mut buffer) = self.shared.buffer.lock() else {
                return;
            };
            let held = buffer.len() + self.shared.in_flight.load(Ordering::SeqCst);
            let room = self.config.buffer_records.saturating_sub(held);
            let taken = wanted.min(room);
            buffer.extend(selected[..taken].iter().map(|r| copy(r)));
            (taken, held + taken)
        };
        let dropped = (wanted - taken) as u64;
        self.shared.update(|s| {
            s.records_filtered_out += filtered_out;
            s.records_received += wanted as u64;
            s.records_dropped_buffer_full += dropped;
            s.buffered_records = buffered as u64;
        });
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if dropped > 0 && self.shared.warned.swap(second, Ordering::Relaxed) != second {
            tracing::warn!(
                exporter = %self.name,
                dropped,
                "export buffer full: records dropped (counted in records_dropped_buffer_full)"
            );
        }
        if taken > 0 {
            self.shared.wake.notify_one();
        }
    }

    /// For a part of the exporter outside the sink (OTLP's metrics push)
    /// to count in the same stats.
    pub fn stats_handle(&self) -> SinkStatsHandle {
        SinkStatsHandle(self.shared.clone())
    }

    pub fn stats_reader(&self) -> impl Fn() -> SinkStats + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || {
            let mut s = shared.stats.lock().map(|s| s.clone()).unwrap_or_default();
            s.buffered_records = shared.buffered() as u64;
            s
        }
    }

    /// Sends what is buffered (for at most the shutdown grace), then stops;
    /// what could not leave is counted as dropped.
    pub async fn finish(&self) -> SinkStats {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(self.config.shutdown_grace, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        let left = self.shared.buffered() as u64;
        self.shared.update(|s| {
            s.records_dropped_shutdown += left;
            s.buffered_records = 0;
        });
        if left > 0 {
            tracing::warn!(exporter = %self.name, left, "stopped with records the peer did not take");
        }
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

async fn send_loop(
    name: String,
    shared: Arc<Shared>,
    config: SinkConfig,
    mut deliver: impl Deliver,
) {
    let mut backoff = config.backoff_min;
    loop {
        let waiting = shared.buffered();
        if waiting == 0 {
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            shared.wake.notified().await;
            continue;
        }
        if waiting < config.batch_size && !shared.stopping.load(Ordering::SeqCst) {
            // A trickle: let a batch fill a little.
            tokio::time::sleep(config.batch_delay).await;
        }
        // Taken out (not copied): a batch that fails goes back in front.
        let batch: Vec<ExportRecord> = shared
            .buffer
            .lock()
            .map(|mut b| {
                let n = config.batch_size.min(b.len());
                shared.in_flight.store(n, Ordering::SeqCst);
                b.drain(..n).collect()
            })
            .unwrap_or_default();
        let n = batch.len();
        match tokio::time::timeout(config.send_timeout, deliver.deliver(&batch)).await {
            Ok(Ok(Delivered { bytes, rejected })) => {
                shared.in_flight.store(0, Ordering::SeqCst);
                let rejected = rejected.min(n as u64);
                shared.update(|s| {
                    s.records_sent += n as u64 - rejected;
                    s.records_rejected_by_peer += rejected;
                    s.batches_sent += 1;
                    s.bytes_sent += bytes;
                });
                if rejected > 0 {
                    tracing::warn!(exporter = %name, rejected, "the peer refused records (counted in records_rejected_by_peer)");
                }
                backoff = config.backoff_min;
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => format!("no answer within {:?}", config.send_timeout),
                };
                if let Ok(mut b) = shared.buffer.lock() {
                    // Back in front, in order; the buffer's bound holds
                    // (the batch kept its room while it was out).
                    for record in batch.into_iter().rev() {
                        b.push_front(record);
                    }
                    shared.in_flight.store(0, Ordering::SeqCst);
                }
                shared.update(|s| s.send_errors += 1);
                tracing::warn!(exporter = %name, "export failed, retrying: {why}");
                tokio::time::sleep(jittered(backoff)).await;
                backoff = (backoff * 2).min(config.backoff_max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails while `down` is set, else keeps what it got.
    struct Flaky {
        down: Arc<AtomicBool>,
        got: Arc<Mutex<Vec<u16>>>,
    }

    impl Deliver for Flaky {
        async fn deliver(&mut self, batch: &[ExportRecord]) -> Result<Delivered, String> {
            if self.down.load(Ordering::SeqCst) {
                return Err("peer down".into());
            }
            self.got
                .lock()
                .unwrap()
                .extend(batch.iter().map(|r| match r {
                    ExportRecord::Flow(f) => f.src_port,
                    ExportRecord::Conversation(c) => c.src_port,
                }));
            Ok(Delivered {
                bytes: batch.len() as u64 * 10,
                rejected: 0,
            })
        }
    }

    fn records(from: u16, n: u16) -> Vec<FlowRecord> {
        (from..from + n)
            .map(|p| FlowRecord {
                src_port: p,
                proto: 17,
                ..Default::default()
            })
            .collect()
    }

    fn config() -> SinkConfig {
        SinkConfig {
            buffer_records: 100,
            batch_size: 30,
            batch_delay: Duration::from_millis(5),
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            ..SinkConfig::default()
        }
    }

    #[tokio::test]
    async fn a_peer_away_costs_only_what_the_buffer_cannot_hold() {
        let down = Arc::new(AtomicBool::new(true));
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink::start(
            "test".into(),
            Some(Filter::parse("proto = 17").unwrap()),
            RecordKinds::Flows,
            config(),
            Flaky {
                down: down.clone(),
                got: got.clone(),
            },
        );
        let stats = sink.stats_reader();
        sink.push(&records(0, 80));
        sink.push(&records(80, 50));
        // A TCP record the filter leaves out.
        sink.push(&[FlowRecord {
            proto: 6,
            ..Default::default()
        }]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = stats();
        assert_eq!(
            (s.records_received, s.records_dropped_buffer_full),
            (130, 30)
        );
        assert_eq!(s.records_filtered_out, 1);
        assert!(s.send_errors >= 1);
        down.store(false, Ordering::SeqCst);
        let s = sink.finish().await;
        assert_eq!(s.records_sent, 100);
        assert_eq!(
            s.records_received,
            s.records_sent + s.records_dropped_buffer_full + s.records_dropped_shutdown
        );
        let got = got.lock().unwrap().clone();
        assert_eq!(got, (0..100).collect::<Vec<u16>>(), "in order, each once");
    }

    #[tokio::test]
    async fn what_a_dead_peer_never_took_is_counted_at_shutdown() {
        let sink = Sink::start(
            "dead".into(),
            None,
            RecordKinds::Flows,
            SinkConfig {
                shutdown_grace: Duration::from_millis(50),
                ..config()
            },
            Flaky {
                down: Arc::new(AtomicBool::new(true)),
                got: Arc::default(),
            },
        );
        sink.push(&records(0, 40));
        let s = sink.finish().await;
        assert_eq!((s.records_sent, s.records_dropped_shutdown), (0, 40));
    }
}
