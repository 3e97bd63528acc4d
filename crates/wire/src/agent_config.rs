//! Agent configuration from the collector (proto/agent_config.proto): the
//! collector's hub publishes the FlowCollector's current settings to every
//! agent that watches them and keeps what each agent reported; the agent's
//! side watches, reconnecting with backoff, and reports.

use crate::agentconfig::agent_config_client::AgentConfigClient;
use crate::agentconfig::agent_config_server::{AgentConfig, AgentConfigServer};
use crate::agentconfig::{AgentSpec, ApplyReport, ReportReply, WatchRequest};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// A node name at most this long (a DNS name's limit).
const MAX_NODE_BYTES: usize = 253;
/// Agents whose reports are kept at most.
const MAX_AGENTS: usize = 65_536;
/// An error message is cut to this many bytes.
const MAX_ERROR_BYTES: usize = 2_048;
/// The largest message either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// What an agent said of a generation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentReport {
    pub generation: u64,
    pub applied: bool,
    pub error: String,
}

/// The collector's side: the settings to publish and the agents' reports.
#[derive(Clone)]
pub struct AgentConfigHub {
    spec: watch::Sender<Option<AgentSpec>>,
    reports: Arc<Mutex<BTreeMap<String, AgentReport>>>,
    /// Bumped on each report, for whoever writes them into the resource.
    reported: watch::Sender<u64>,
}

impl Default for AgentConfigHub {
    fn default() -> AgentConfigHub {
        AgentConfigHub {
            spec: watch::Sender::new(None),
            reports: Arc::default(),
            reported: watch::Sender::new(0),
        }
    }
}

fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl AgentConfigHub {
    /// Tells every agent, now and as they connect.
    pub fn publish(&self, spec: AgentSpec) {
        self.spec.send_replace(Some(spec));
    }

    /// Each agent's last report, by node.
    pub fn reports(&self) -> BTreeMap<String, AgentReport> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Changes on each report.
    pub fn reported(&self) -> watch::Receiver<u64> {
        self.reported.subscribe()
    }

    pub fn server(self) -> AgentConfigServer<AgentConfigHub> {
        AgentConfigServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn node_of(node: &str) -> Result<(), Status> {
    if node.is_empty() || node.len() > MAX_NODE_BYTES {
        return Err(Status::invalid_argument(format!(
            "node: {} bytes; a node name has 1 to {MAX_NODE_BYTES}",
            node.len()
        )));
    }
    Ok(())
}

/// With mutual TLS, an agent speaks for its own node only: the node (its
/// AgentIP) must be an address its certificate lists, when it lists any.
fn speaks_for<T>(request: &Request<T>, node: &str) -> Result<(), Status> {
    let identity = request
        .extensions()
        .get::<crate::secure::PeerInfo>()
        .and_then(|p| p.identity.as_ref());
    match identity {
        None => Ok(()),
        Some(identity)
            if identity.addresses.is_empty() || node.parse().is_ok_and(|ip| identity.holds(ip)) =>
        {
            Ok(())
        }
        Some(identity) => Err(Status::permission_denied(format!(
            "the client certificate of {} does not hold node {node}",
            identity.name.as_deref().unwrap_or("(unnamed)")
        ))),
    }
}

#[tonic::async_trait]
impl AgentConfig for AgentConfigHub {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<AgentSpec, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        node_of(&request.get_ref().node)?;
        speaks_for(&request, &request.get_ref().node)?;
        let specs = tokio_stream::wrappers::WatchStream::new(self.spec.subscribe());
        Ok(Response::new(Box::pin(specs.filter_map(|s| s.map(Ok)))))
    }

    async fn report(&self, request: Request<ApplyReport>) -> Result<Response<ReportReply>, Status> {
        node_of(&request.get_ref().node)?;
        speaks_for(&request, &request.get_ref().node)?;
        let report = request.into_inner();
        let mut reports = self
            .reports
            .lock()
            .map_err(|_| Status::internal("reports"))?;
        if reports.len() >= MAX_AGENTS && !reports.contains_key(&report.node) {
            return Err(Status::resource_exhausted(format!(
                "reports of {MAX_AGENTS} agents kept already"
            )));
        }
        reports.insert(
            report.node,
            AgentReport {
                generation: report.generation,
                applied: report.applied,
                error: truncated(report.error, MAX_ERROR_BYTES),
            },
        );
        drop(reports);
        self.reported.send_modify(|n| *n += 1);
        Ok(Response::new(ReportReply {}))
    }
}

/// The agent's side: the collector at `uri`, for node `node`.
#[derive(Debug, Clone)]
pub struct AgentConfigSource {
    pub uri: String,
    pub node: String,
    pub tls: Option<std::sync::Arc<flowlens_tls::ClientTls>>,
}

impl AgentConfigSource {
    /// Hands each spec the collector publishes to `specs`, for as long as
    /// `specs` is open: reconnecting with backoff (at most `backoff_max`)
    /// when the collector is away. Errors are logged, not returned.
    pub async fn watch(self, specs: tokio::sync::mpsc::Sender<AgentSpec>, backoff_max: Duration) {
        let mut backoff = Duration::from_millis(200);
        while !specs.is_closed() {
            match self.watch_once(&specs).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::debug!(collector = %self.uri, "agent config: {e} (retrying)");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(backoff_max);
                }
            }
        }
    }

    async fn client(&self) -> Result<AgentConfigClient<tonic::transport::Channel>, Status> {
        let channel =
            crate::secure::channel(&self.uri, self.tls.clone(), Duration::from_secs(5), None)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
        let client = AgentConfigClient::new(channel);
        Ok(client
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    async fn watch_once(&self, specs: &tokio::sync::mpsc::Sender<AgentSpec>) -> Result<(), Status> {
        let mut client = self.client().await?;
        let mut stream = client
            .watch(WatchRequest {
                node: self.node.clone(),
            })
            .await?
            .into_inner();
        while let Some(spec) = stream.message().await? {
            if specs.send(spec).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Tells the collector how applying `generation` went.
    pub async fn report(&self, generation: u64, error: Option<String>) -> Result<(), Status> {
        self.client()
            .await?
            .report(ApplyReport {
                node: self.node.clone(),
                generation,
                applied: error.is_none(),
                error: error.unwrap_or_default(),
            })
            .await?;
        Ok(())
    }
}
