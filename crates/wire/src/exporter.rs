//! The agent's sending side: records wait in a bounded buffer and leave in
//! batches; while the collector is away the buffer holds them, the sender
//! reconnects with exponential backoff, and every record it had to give up
//! is counted by reason.

use crate::convert::to_pb;
use crate::pbflow::{self, collector_client::CollectorClient};
use crate::secure::ConnectError;
use flowlens_model::FlowRecord;
use flowlens_tls::ClientTls;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// The collector, `host:port` or `http://host:port`.
    pub collector: String,
    /// Records per `Send` call at most.
    pub batch_size: usize,
    /// Records held while the collector is slow or away; beyond, new
    /// records are dropped and counted.
    pub buffer_records: usize,
    /// A `Send` taking longer fails (and is retried).
    pub send_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// At shutdown, how long buffered records may still take to leave.
    pub shutdown_grace: Duration,
    /// TLS towards the collector (its CA, our certificate).
    pub tls: Option<Arc<ClientTls>>,
}

impl ExporterConfig {
    pub fn new(collector: &str) -> ExporterConfig {
        ExporterConfig {
            collector: collector.to_string(),
            batch_size: 1000,
            buffer_records: 100_000,
            send_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            tls: None,
        }
    }

    /// The collector's URI: a bare HOST:PORT is https:// with TLS settings,
    /// http:// without.
    pub fn uri(&self) -> String {
        if self.collector.contains("://") {
            self.collector.clone()
        } else if self.tls.is_some() {
            format!("https://{}", self.collector)
        } else {
            format!("http://{}", self.collector)
        }
    }
}

/// What the exporter received, sent and dropped (Vector's model).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExporterStats {
    pub records_received: u64,
    pub records_sent: u64,
    pub batches_sent: u64,
    /// Dropped because the buffer was full (collector away too long).
    pub records_dropped_buffer_full: u64,
    /// Dropped because the collector refused them as invalid.
    pub records_dropped_rejected: u64,
    /// Still buffered when the agent stopped and the grace period ran out.
    pub records_dropped_shutdown: u64,
    /// Failed `Send` calls (their records stay buffered and are retried).
    pub send_errors: u64,
    /// `Send` calls the collector refused as busy (retried after backoff).
    pub send_busy: u64,
    pub connects: u64,
    pub connect_failures: u64,
    /// Connections whose TLS handshake failed, by reason (unknown_ca,
    /// expired_certificate, wrong_name, peer_refused_certificate, not_tls,
    /// ...); they count in connect_failures too.
    pub connect_failures_tls: std::collections::BTreeMap<String, u64>,
    /// Records waiting now.
    pub buffered_records: u64,
    /// 1 while a connection to the collector is up.
    pub connected: u64,
}

impl ExporterStats {
    /// Counters that go down as well as up.
    pub const GAUGES: &'static [&'static str] = &["buffered_records", "connected"];
}

struct Shared {
    buffer: Mutex<VecDeque<pbflow::Record>>,
    stats: Mutex<ExporterStats>,
    wake: Notify,
    stopping: std::sync::atomic::AtomicBool,
}

pub struct Exporter {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    config: ExporterConfig,
}

impl Exporter {
    /// Starts the sender on the current tokio runtime.
    pub fn start(config: ExporterConfig) -> Result<Exporter, String> {
        let uri = config.uri();
        Endpoint::from_shared(uri.clone())
            .map_err(|e| format!("collector address `{}`: {e}", config.collector))?;
        if uri.starts_with("http://") && config.tls.is_some() {
            return Err(format!(
                "collector address `{uri}` is plaintext (http://) but TLS settings were given: write https:// or HOST:PORT"
            ));
        }
        if config.batch_size == 0 || config.buffer_records == 0 {
            return Err("collector batch size and buffer must be at least 1".into());
        }
        let shared = Arc::new(Shared {
            buffer: Mutex::new(VecDeque::new()),
            stats: Mutex::new(ExporterStats::default()),
            wake: Notify::new(),
            stopping: false.into(),
        });
        let task = tokio::spawn(send_loop(shared.clone(), config.clone()));
        Ok(Exporter {
            shared,
            task,
            config,
        })
    }

    /// Buffers records for sending; those beyond the buffer's room are
    /// dropped and counted.
    pub fn enqueue(&self, records: &[FlowRecord]) {
        let mut dropped = 0;
        let buffered = {
            let Ok(mut buffer) = self.shared.buffer.lock() else {
                return;
            };
            for record in records {
                if buffer.len() >= self.config.buffer_records {
                    dropped += 1;
                } else {
                    buffer.push_back(to_pb(record));
                }
            }
            buffer.len()
        };
        self.shared.update(|s| {
            s.records_received += records.len() as u64;
            s.records_dropped_buffer_full += dropped;
            s.buffered_records = buffered as u64;
        });
        if dropped > 0 {
            tracing::warn!(dropped, "collector buffer full: records dropped");
        }
        self.shared.wake.notify_one();
    }

    pub fn stats(&self) -> ExporterStats {
        self.shared.snapshot()
    }

    /// A handle that reads the counters while the exporter runs.
    pub fn stats_reader(&self) -> impl Fn() -> ExporterStats + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.snapshot()
    }

    /// Sends what is buffered (for at most the shutdown grace), then stops;
    /// what could not leave is counted as dropped.
    pub async fn finish(self) -> ExporterStats {
        self.shared
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake.notify_one();
        let mut task = self.task;
        if tokio::time::timeout(self.config.shutdown_grace, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        let left = self.shared.buffer.lock().map(|b| b.len()).unwrap_or(0) as u64;
        self.shared.update(|s| {
            s.records_dropped_shutdown += left;
            s.buffered_records = 0;
            s.connected = 0;
        });
        if left > 0 {
            tracing::warn!(left, "stopped with records the collector did not take");
        }
        self.shared.snapshot()
    }
}

impl Shared {
    fn snapshot(&self) -> ExporterStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut ExporterStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The oldest records, up to `n`, left in the buffer until sent.
    fn peek(&self, n: usize) -> Vec<pbflow::Record> {
        self.buffer
            .lock()
            .map(|b| b.iter().take(n).cloned().collect())
            .unwrap_or_default()
    }

    /// Removes the `n` oldest records (they were sent or refused for good).
    fn remove(&self, n: usize) {
        let left = self
            .buffer
            .lock()
            .map(|mut b| {
                let n = n.min(b.len());
                b.drain(..n);
                b.len()
            })
            .unwrap_or(0);
        self.update(|s| s.buffered_records = left as u64);
    }
}

async fn connect(config: &ExporterConfig) -> Result<CollectorClient<Channel>, ConnectError> {
    let channel = crate::secure::channel(
        &config.uri(),
        config.tls.clone(),
        Duration::from_secs(2),
        Some(config.send_timeout),
    )
    .await?;
    Ok(CollectorClient::new(channel).max_encoding_message_size(usize::MAX))
}

/// Whether a failed `Send` should be retried (the collector was away,
/// busy or slow) rather than its records given up as refused.
fn retryable(code: tonic::Code) -> bool {
    !matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::OutOfRange
            | tonic::Code::Unimplemented
            // Records this agent's certificate cannot vouch for: sending
            // them again changes nothing.
            | tonic::Code::PermissionDenied
    )
}

/// 50–100 % of `d`, so that senders cut off together (agents, exporters)
/// do not all come back in the same instant.
pub fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d / 2 + d.mul_f64((nanos % 1000) as f64 / 2000.0)
}

/// This agent's identity towards collectors while it runs: its host name
/// and a random number, so that two agents (or two runs of one) never
/// share batch numbers.
fn agent_identity() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    // RandomState is seeded from the operating system's randomness.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{host}/{:016x}", hasher.finish())
}

async fn send_loop(shared: Arc<Shared>, config: ExporterConfig) {
    let mut client: Option<CollectorClient<Channel>> = None;
    let mut backoff = config.backoff_min;
    let agent = agent_identity();
    let mut sequence = 0u64;
    // The batch being sent: sent again as it is, with its number, until
    // the collector answers (so the collector can store it once).
    let mut in_flight: Option<pbflow::Records> = None;
    loop {
        if in_flight.is_none() {
            let entries = shared.peek(config.batch_size);
            if entries.is_empty() {
                if shared.stopping() {
                    return;
                }
                shared.wake.notified().await;
                continue;
            }
            sequence += 1;
            in_flight = Some(pbflow::Records {
                entries,
                batch: Some(pbflow::BatchId {
                    agent: agent.clone(),
                    sequence,
                }),
                ..Default::default()
            });
        }
        let batch = in_flight.as_ref().expect("a batch is in flight");
        let mut failed = false;
        if client.is_none() {
            match connect(&config).await {
                Ok(c) => {
                    client = Some(c);
                    shared.update(|s| {
                        s.connects += 1;
                        s.connected = 1;
                    });
                    tracing::info!(collector = %config.collector, "connected to the collector");
                }
                Err(e) => {
                    shared.update(|s| {
                        s.connect_failures += 1;
                        if let Some(failure) = e.tls {
                            *s.connect_failures_tls
                                .entry(failure.reason().to_string())
                                .or_default() += 1;
                        }
                    });
                    tracing::warn!(collector = %config.collector, "cannot reach the collector: {e}");
                    failed = true;
                }
            }
        }
        if let Some(c) = client.as_mut() {
            let n = batch.entries.len();
            match c.send(batch.clone()).await {
                Ok(_) => {
                    in_flight = None;
                    shared.remove(n);
                    shared.update(|s| {
                        s.records_sent += n as u64;
                        s.batches_sent += 1;
                    });
                    backoff = config.backoff_min;
                }
                Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                    shared.update(|s| s.send_busy += 1);
                    failed = true;
                }
                Err(status) if !retryable(status.code()) => {
                    in_flight = None;
                    shared.remove(n);
                    shared.update(|s| s.records_dropped_rejected += n as u64);
                    tracing::error!("the collector refused {n} records: {status}");
                }
                Err(status) => {
                    shared.update(|s| {
                        s.send_errors += 1;
                        s.connected = 0;
                    });
                    tracing::warn!("sending to the collector failed: {}", status.message());
                    client = None;
                    failed = true;
                }
            }
        }
        if failed {
            tokio::time::sleep(jittered(backoff)).await;
            backoff = (backoff * 2).min(config.backoff_max);
        }
    }
}
