//! The collector's gRPC side: netobserv's `Collector.Send`. Requests are
//! decoded here and handed on through a queue bounded in batches and in
//! records; a call is answered when whoever takes the batch says so — the
//! collector does once the records are in its write-ahead log on disk, so
//! an agent forgets records only when they are durable. When the queue is
//! full, calls are refused as busy (RESOURCE_EXHAUSTED, which agents retry)
//! instead of piling up in memory; a call with more records than allowed is
//! refused whole. Whatever is refused or unusable is counted and logged,
//! never fatal.

use crate::connections::{BoundedListener, ConnectionLimits};
use crate::pbflow::{self, collector_server};
use crate::secure::PeerInfo;
use flowlens_model::FlowRecord;
use flowlens_model::record::Label;
use flowlens_tls::{PeerIdentity, ServerTls};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
/// The status a call is answered with (re-exported for whoever answers
/// batches).
pub use tonic::Status;
use tonic::{Request, Response};

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
    /// Calls refused for carrying more records than a call may.
    pub requests_too_many_records: u64,
    /// Records refused by mutual TLS, by reason: other_node (a record's
    /// AgentIP is not an address the client's certificate holds),
    /// unnamed_certificate (the certificate names no node).
    pub records_refused_identity: BTreeMap<String, u64>,
    /// Batches waiting for the pipeline now, and their records.
    pub queued_batches: u64,
    pub queued_records: u64,
}

impl ReceiverStats {
    /// Counters that go down as well as up.
    pub const GAUGES: &'static [&'static str] = &["queued_batches", "queued_records"];
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

/// The sender's id of a batch: agent identity and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchId {
    pub agent: String,
    pub sequence: u64,
}

/// Received records, the sender's id of them, and the call waiting for its
/// answer.
pub struct Batch {
    pub records: Vec<FlowRecord>,
    pub id: Option<BatchId>,
    pub answer: Answer,
}

/// The answer to a call, given once; a batch dropped unanswered answers
/// UNAVAILABLE (the agent sends it again). It holds the batch's place in
/// the queue's record budget until then.
pub struct Answer {
    done: Option<tokio::sync::oneshot::Sender<Result<(), Status>>>,
    _place: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Answer {
    /// The answer of a batch no call waits for (made in-process).
    pub fn detached() -> Answer {
        Answer {
            done: None,
            _place: None,
        }
    }

    /// The answer of a batch made in-process whose maker waits for it (the
    /// collector's Kafka consumer commits once its records are durable).
    pub fn waiting() -> (Answer, tokio::sync::oneshot::Receiver<Result<(), Status>>) {
        let (done, answered) = tokio::sync::oneshot::channel();
        let answer = Answer {
            done: Some(done),
            _place: None,
        };
        (answer, answered)
    }

    /// The records are taken (durable, for the collector).
    pub fn ok(mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(Ok(()));
        }
    }

    /// The records were not taken; the sender should retry.
    pub fn fail(mut self, status: Status) {
        if let Some(done) = self.done.take() {
            let _ = done.send(Err(status));
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(Err(Status::unavailable(
                "the collector stopped before storing the records",
            )));
        }
    }
}

/// The addresses of a node by its name (from the cluster's Node objects),
/// for client certificates that name a node but list no address.
pub type NodeAddresses = Arc<dyn Fn(&str) -> Option<Vec<std::net::IpAddr>> + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    queue: mpsc::Sender<Batch>,
    node_addresses: Option<NodeAddresses>,
    /// Records waiting in the queue at most (a permit per record).
    queued_records: Arc<tokio::sync::Semaphore>,
    limits: ReceiverLimits,
    stats: Arc<Mutex<ReceiverStats>>,
    log: Arc<LogLimiter>,
}

impl Receiver {
    /// A receiver that hands batches to `queue`, within `limits`.
    pub fn new(queue: mpsc::Sender<Batch>, limits: ReceiverLimits) -> Receiver {
        crate::codec::allow_records_per_call(limits.max_records_per_call);
        Receiver {
            queue,
            node_addresses: None,
            queued_records: Arc::new(tokio::sync::Semaphore::new(limits.max_queued_records)),
            limits,
            stats: Arc::default(),
            log: Arc::new(LogLimiter::new()),
        }
    }

    /// Checks the records of a certificate without addresses against the
    /// addresses of the node it names.
    pub fn with_node_addresses(mut self, lookup: NodeAddresses) -> Receiver {
        self.node_addresses = Some(lookup);
        self
    }

    pub fn stats_reader(&self) -> impl Fn() -> ReceiverStats + Send + Sync + 'static {
        let stats = self.stats.clone();
        // Weak: reading the counters must not keep the queue open.
        let queue = self.queue.downgrade();
        let records = self.queued_records.clone();
        let max_records = self.limits.max_queued_records;
        move || {
            let mut s = stats.lock().map(|s| s.clone()).unwrap_or_default();
            s.queued_batches = queue
                .upgrade()
                .map(|q| (q.max_capacity() - q.capacity()) as u64)
                .unwrap_or(0);
            s.queued_records = (max_records - records.available_permits()) as u64;
            s
        }
    }

    fn update(&self, f: impl FnOnce(&mut ReceiverStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    /// The node a client certificate names, if every record's AgentIP is
    /// an address the certificate vouches for: one of its IP addresses, or
    /// for a certificate that lists none, one of the addresses of the
    /// cluster's node of that name (with Kubernetes enrichment). A
    /// certificate with neither binds its records to its name only. The
    /// call is refused (and its records counted) otherwise.
    fn vouched(&self, identity: &PeerIdentity, records: &[FlowRecord]) -> Result<Label, Status> {
        let refuse = |reason: &str, message: String| {
            self.update(|s| {
                *s.records_refused_identity
                    .entry(reason.to_string())
                    .or_default() += records.len() as u64
            });
            self.log.warn(|| format!("refused a call: {message}"));
            Status::permission_denied(message)
        };
        let Some(name) = &identity.name else {
            return Err(refuse(
                "unnamed_certificate",
                "the client certificate names no node (no DNS name, no common name)".into(),
            ));
        };
        let vouched = if identity.addresses.is_empty() {
            match self.node_addresses.as_ref().and_then(|lookup| lookup(name)) {
                Some(of_node) => PeerIdentity {
                    addresses: of_node,
                    ..identity.clone()
                },
                // Nothing to hold the records' addresses against.
                None => return Ok(Label::from(name.as_str())),
            }
        } else {
            identity.clone()
        };
        if let Some(r) = records
            .iter()
            .find(|r| !r.agent_ip.ip().is_some_and(|ip| vouched.holds(ip)))
        {
            return Err(refuse(
                "other_node",
                format!(
                    "the certificate of {name} vouches for the addresses {:?}; a record claims agent {}",
                    vouched.addresses, r.agent_ip
                ),
            ));
        }
        Ok(Label::from(name.as_str()))
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
        // The client certificate's identity, with mutual TLS.
        let identity = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.identity.clone());
        // Decoded in place by the codec (records.rs): flow records already.
        let message = request.into_inner();
        let n = message.len() as u64;
        if message.len() > self.limits.max_records_per_call {
            self.update(|s| {
                s.requests += 1;
                s.requests_too_many_records += 1;
            });
            return Err(Status::invalid_argument(format!(
                "a call carries at most {} records; this one has {n}",
                self.limits.max_records_per_call
            )));
        }
        // Take a place in the queue first: under a flood, refusing costs
        // nothing.
        let place = u32::try_from(message.len())
            .ok()
            .and_then(|n| self.queued_records.clone().try_acquire_many_owned(n).ok());
        let (Ok(permit), Some(place)) = (self.queue.try_reserve(), place) else {
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
        let crate::convert::DecodedRecords {
            mut records,
            invalid: skipped,
            batch,
        } = message.into_flows();
        let agent_name = match &identity {
            None => None,
            Some(identity) => Some(self.vouched(identity, &records)?),
        };
        // Only a verified certificate names the agent: whatever a sender
        // wrote there itself is dropped.
        for r in &mut records {
            r.agent_name.clone_from(&agent_name);
        }
        let mut invalid: BTreeMap<&'static str, u64> = BTreeMap::new();
        for e in skipped {
            *invalid.entry(e.reason()).or_default() += 1;
            self.log.warn(|| format!("skipped a record: {e}"));
        }
        self.update(|s| {
            s.requests += 1;
            s.records_received += records.len() as u64;
            for (reason, count) in &invalid {
                *s.records_invalid.entry(reason.to_string()).or_default() += count;
            }
        });
        // A verified agent's batches are numbered under its certificate's
        // name: another node's certificate cannot take (or spoil) them.
        let id = batch.map(|b| BatchId {
            agent: match &agent_name {
                Some(name) => format!("{name}/{}", b.agent),
                None => b.agent,
            },
            sequence: b.sequence,
        });
        let (done, answered) = tokio::sync::oneshot::channel();
        permit.send(Batch {
            records,
            id,
            answer: Answer {
                done: Some(done),
                _place: Some(place),
            },
        });
        answered.await.map_err(|_| {
            Status::unavailable("the collector stopped before storing the records")
        })??;
        Ok(Response::new(pbflow::CollectorReply {}))
    }
}

/// Settings of the gRPC listener: every input is bounded.
#[derive(Debug, Clone)]
pub struct ReceiverLimits {
    /// Largest request accepted, in bytes (a record takes ~150–400 bytes;
    /// netobserv's agents send up to 10,000 records per message).
    pub max_message_bytes: usize,
    /// Records one call may carry.
    pub max_records_per_call: usize,
    /// Records waiting to be taken at most, over all calls.
    pub max_queued_records: usize,
    /// Calls served at once per connection.
    pub max_concurrent_streams: u32,
    /// A call that takes longer is cancelled (the agent sends it again).
    pub request_timeout: Duration,
    /// A connection is closed after this long, idle or not (gRPC's
    /// MAX_CONNECTION_AGE; agents reconnect), so none is held forever;
    /// HTTP/2 pings close dead ones sooner.
    pub max_connection_age: Duration,
    /// Connections open at once (an agent keeps one).
    pub max_connections: usize,
    /// A connection that moves no byte for this long is closed (a live
    /// one answers the pings sent every 30 s).
    pub idle_timeout: Duration,
}

impl ReceiverLimits {
    pub fn connections(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
        }
    }
}

impl Default for ReceiverLimits {
    fn default() -> ReceiverLimits {
        ReceiverLimits {
            max_message_bytes: 8 << 20,
            max_records_per_call: 20_000,
            max_queued_records: 500_000,
            max_concurrent_streams: 16,
            request_timeout: Duration::from_secs(30),
            max_connection_age: Duration::from_secs(3600),
            max_connections: 4096,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Serves `Collector.Send` on `listener` (made with the limits'
/// `connections()`), over TLS with `tls`, until `shutdown` completes.
pub async fn serve(
    listener: BoundedListener,
    tls: Option<Arc<ServerTls>>,
    receiver: Receiver,
    agent_config: Option<crate::agent_config::AgentConfigHub>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let limits = receiver.limits.clone();
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
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_connection_age(limits.max_connection_age)
        .max_connection_age_grace(limits.request_timeout)
        .http2_max_header_list_size(16 << 10)
        .http2_max_pending_accept_reset_streams(Some(64))
        .layer(count_refusals)
        .add_service(service)
        .add_optional_service(agent_config.map(|hub| hub.server()))
        .serve_with_incoming_shutdown(crate::secure::incoming(listener, tls), shutdown)
        .await
}
