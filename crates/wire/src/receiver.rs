//! The collector's gRPC side: netobserv's `Collector.Send`. Requests are
//! decoded here and handed to the pipeline through a bounded queue; a call is
//! answered once the pipeline has taken its records, so an agent forgets
//! records only when they are processed (a collector killed mid-way loses
//! nothing the agent does not resend). When the pipeline is behind, calls
//! are refused as busy (RESOURCE_EXHAUSTED, which agents retry) instead of
//! piling up in memory. Whatever is refused or unusable is counted and
//! logged, never fatal.

use crate::convert::from_pb;
use crate::pbflow::{self, collector_server};
use flowlens_model::FlowRecord;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// What the receiver took in and what it refused, and why.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReceiverStats {
    /// `Send` calls answered.
    pub requests: u64,
    /// Records accepted and handed to the pipeline.
    pub records_received: u64,
    /// Records skipped as unusable, by reason (missing_field, bad_address,
    /// out_of_range).
    pub records_invalid: BTreeMap<String, u64>,
    /// Calls refused because the pipeline was behind (the agents retry
    /// them), and their records.
    pub requests_busy: u64,
    pub records_busy: u64,
    /// Calls refused before they reached the receiver, by gRPC code:
    /// malformed protobuf (Internal), too large (OutOfRange), unknown
    /// method (Unimplemented), ...
    pub requests_refused: BTreeMap<String, u64>,
    /// Batches waiting for the pipeline now.
    pub queued_batches: u64,
}

impl ReceiverStats {
    /// Counters that go down as well as up.
    pub const GAUGES: &'static [&'static str] = &["queued_batches"];
}

/// Logs at most once a second, saying how many messages it held back.
struct LogLimiter {
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    const fn new() -> LogLimiter {
        LogLimiter {
            state: Mutex::new((None, 0)),
        }
    }

    fn warn(&self, message: impl FnOnce() -> String) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (last, held) = &mut *state;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            *held += 1;
            return;
        }
        let text = message();
        if *held > 0 {
            tracing::warn!("{text} ({held} similar messages held back)");
        } else {
            tracing::warn!("{text}");
        }
        *last = Some(Instant::now());
        *held = 0;
    }
}

/// Received records, and the call waiting for the pipeline to take them.
pub struct Batch {
    pub records: Vec<FlowRecord>,
    done: tokio::sync::oneshot::Sender<()>,
}

impl Batch {
    /// The records, and a token that answers the call when dropped.
    pub fn take(self) -> (Vec<FlowRecord>, impl Drop) {
        (self.records, Answer(Some(self.done)))
    }
}

struct Answer(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}

#[derive(Clone)]
pub struct Receiver {
    queue: mpsc::Sender<Batch>,
    stats: Arc<Mutex<ReceiverStats>>,
    log: Arc<LogLimiter>,
}

impl Receiver {
    /// A receiver that hands batches to `queue`.
    pub fn new(queue: mpsc::Sender<Batch>) -> Receiver {
        Receiver {
            queue,
            stats: Arc::default(),
            log: Arc::new(LogLimiter::new()),
        }
    }

    pub fn stats_reader(&self) -> impl Fn() -> ReceiverStats + Send + Sync + 'static {
        let stats = self.stats.clone();
        // Weak: reading the counters must not keep the queue open.
        let queue = self.queue.downgrade();
        move || {
            let mut s = stats.lock().map(|s| s.clone()).unwrap_or_default();
            s.queued_batches = queue
                .upgrade()
                .map(|q| (q.max_capacity() - q.capacity()) as u64)
                .unwrap_or(0);
            s
        }
    }

    fn update(&self, f: impl FnOnce(&mut ReceiverStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    /// Counts a call that failed before reaching `send` (seen by the layer
    /// on its way out).
    fn refused(&self, code: tonic::Code, message: &str) {
        self.update(|s| *s.requests_refused.entry(format!("{code:?}")).or_default() += 1);
        self.log
            .warn(|| format!("refused a gRPC call ({code:?}): {message}"));
    }
}

#[tonic::async_trait]
impl collector_server::Collector for Receiver {
    async fn send(
        &self,
        request: Request<pbflow::Records>,
    ) -> Result<Response<pbflow::CollectorReply>, Status> {
        let entries = request.into_inner().entries;
        let n = entries.len() as u64;
        // Take a place in the queue first: under a flood, refusing costs
        // nothing and decoding is skipped.
        let Ok(permit) = self.queue.try_reserve() else {
            self.update(|s| {
                s.requests += 1;
                s.requests_busy += 1;
                s.records_busy += n;
            });
            return Err(if self.queue.is_closed() {
                Status::unavailable("the collector is stopping")
            } else {
                Status::resource_exhausted("the collector is busy; retry later")
            });
        };
        let mut records = Vec::with_capacity(entries.len());
        let mut invalid: BTreeMap<&'static str, u64> = BTreeMap::new();
        for entry in entries {
            match from_pb(entry) {
                Ok(r) => records.push(r),
                Err(e) => {
                    *invalid.entry(e.reason()).or_default() += 1;
                    self.log.warn(|| format!("skipped a record: {e}"));
                }
            }
        }
        self.update(|s| {
            s.requests += 1;
            s.records_received += records.len() as u64;
            for (reason, count) in &invalid {
                *s.records_invalid.entry(reason.to_string()).or_default() += count;
            }
        });
        let (done, processed) = tokio::sync::oneshot::channel();
        permit.send(Batch { records, done });
        processed
            .await
            .map_err(|_| Status::unavailable("the collector stopped before processing"))?;
        Ok(Response::new(pbflow::CollectorReply {}))
    }
}

/// Settings of the gRPC listener.
#[derive(Debug, Clone)]
pub struct ReceiverLimits {
    /// Largest request accepted, in bytes (netobserv's agents send up to
    /// 10,000 records per message).
    pub max_message_bytes: usize,
    /// Calls served at once per connection.
    pub max_concurrent_streams: u32,
}

impl Default for ReceiverLimits {
    fn default() -> ReceiverLimits {
        ReceiverLimits {
            max_message_bytes: 64 << 20,
            max_concurrent_streams: 64,
        }
    }
}

/// Serves `Collector.Send` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    receiver: Receiver,
    limits: ReceiverLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let observer = receiver.clone();
    // Calls refused by tonic itself (undecodable payload, too large, wrong
    // method) never reach `send`; their status is read on the way out.
    let count_refusals =
        tower::util::MapResponseLayer::new(move |response: http::Response<tonic::body::Body>| {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            if let Some(code) = header("grpc-status").and_then(|c| c.parse::<i32>().ok()) {
                let code = tonic::Code::from_i32(code);
                if !matches!(
                    code,
                    tonic::Code::Ok | tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                ) {
                    observer.refused(code, &header("grpc-message").unwrap_or_default());
                }
            }
            response
        });
    let service = collector_server::CollectorServer::new(receiver)
        .max_decoding_message_size(limits.max_message_bytes);
    tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .layer(count_refusals)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}
