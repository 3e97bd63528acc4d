//! OTLP's two transports: gRPC (tonic, one channel that reconnects by
//! itself) and HTTP/1.1 with protobuf bodies (`/v1/logs`, `/v1/metrics`,
//! one kept-alive connection made again after an error). Either sends a
//! request whole or fails, so the sink sends the batch again.

use crate::otlp::{logs_request, metrics_request};
use crate::record::ExportRecord;
use crate::sink::{Deliver, Delivered, SinkStatsHandle};
use crate::target::OtlpOptions;
use flowlens_model::MetricSnapshot;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

/// A peer that does not take the connection by then is down (the sink
/// retries after its backoff).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

enum Transport {
    Grpc(Channel),
    Http {
        address: String,
        connection: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    },
}

/// One OTLP peer.
pub struct OtlpClient {
    transport: Transport,
    headers: Vec<(String, String)>,
}

/// What a peer answered: how many of the request's items it refused
/// (OTLP's partial success).
struct Answer {
    rejected: u64,
}

impl OtlpClient {
    pub fn grpc(address: &str, options: &OtlpOptions) -> Result<OtlpClient, String> {
        let channel = Channel::from_shared(format!("http://{address}"))
            .map_err(|e| format!("{address}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_lazy();
        Ok(OtlpClient {
            transport: Transport::Grpc(channel),
            headers: options.headers.clone(),
        })
    }

    pub fn http(address: &str, options: &OtlpOptions) -> OtlpClient {
        OtlpClient {
            transport: Transport::Http {
                address: address.to_string(),
                connection: None,
            },
            headers: options.headers.clone(),
        }
    }

    fn grpc_request<T>(&self, message: T) -> Result<tonic::Request<T>, String> {
        let mut request = tonic::Request::new(message);
        for (k, v) in &self.headers {
            let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("header `{k}` is not a gRPC metadata name"))?;
            let value = v
                .parse()
                .map_err(|_| format!("header `{k}`: its value is not ASCII"))?;
            request.metadata_mut().insert(key, value);
        }
        Ok(request)
    }

    async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<Bytes, String> {
        let Transport::Http {
            address,
            connection,
        } = &mut self.transport
        else {
            unreachable!("post is HTTP's")
        };
        if connection.as_ref().is_none_or(|c| c.is_closed()) {
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect(address.as_str()),
            )
            .await
            .map_err(|_| format!("{address}: no connection within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("{address}: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("{address}: {e}"))?;
            tokio::spawn(conn);
            *connection = Some(send);
        }
        let send = connection.as_mut().expect("connected");
        let mut request = hyper::Request::post(format!("http://{address}{path}"))
            .header("content-type", "application/x-protobuf")
            .header("host", address.as_str());
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{address}{path}: {e}"))?;
        let answer = send.send_request(request).await;
        let response = match answer {
            Ok(r) => r,
            Err(e) => {
                *connection = None;
                return Err(format!("{address}{path}: {e}"));
            }
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{address}{path}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
            return Err(format!("{address}{path}: HTTP {status}: {text}"));
        }
        Ok(body)
    }

    async fn send_logs(&mut self, batch: &[ExportRecord]) -> Result<(u64, Answer), String> {
        let request = logs_request(batch, now_ns());
        let bytes = request.encoded_len() as u64;
        let rejected = match &self.transport {
            Transport::Grpc(channel) => {
                let mut client = LogsServiceClient::new(channel.clone());
                let answer = client
                    .export(self.grpc_request(request)?)
                    .await
                    .map_err(|s| format!("OTLP logs: {}: {}", s.code(), s.message()))?;
                answer
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_log_records.max(0) as u64)
            }
            Transport::Http { .. } => {
                let body = self.post("/v1/logs", request.encode_to_vec()).await?;
                opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
                    body,
                )
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_log_records.max(0) as u64)
            }
        };
        Ok((bytes, Answer { rejected }))
    }

    /// Pushes the metrics; how many bytes and data points.
    pub async fn send_metrics(
        &mut self,
        metrics: &[MetricSnapshot],
        start_ns: u64,
    ) -> Result<(u64, u64), String> {
        let request = metrics_request(metrics, start_ns, now_ns());
        let bytes = request.encoded_len() as u64;
        let points: u64 = metrics.iter().map(|m| m.points.len() as u64).sum();
        match &self.transport {
            Transport::Grpc(channel) => {
                let mut client = MetricsServiceClient::new(channel.clone());
                client
                    .export(self.grpc_request(request)?)
                    .await
                    .map_err(|s| format!("OTLP metrics: {}: {}", s.code(), s.message()))?;
            }
            Transport::Http { .. } => {
                self.post("/v1/metrics", request.encode_to_vec()).await?;
            }
        }
        Ok((bytes, points))
    }
}

impl Deliver for OtlpClient {
    async fn deliver(&mut self, batch: &[ExportRecord]) -> Result<Delivered, String> {
        let (bytes, answer) = self.send_logs(batch).await?;
        Ok(Delivered {
            bytes,
            rejected: answer.rejected,
        })
    }
}

/// The flow metrics as they are now (the pipeline's series).
pub type MetricsSource = Arc<dyn Fn() -> Vec<MetricSnapshot> + Send + Sync>;

/// Pushes the metrics every `interval` until stopped; counts pushes,
/// failures and points in the exporter's stats.
pub async fn push_metrics(
    mut client: OtlpClient,
    source: MetricsSource,
    interval: Duration,
    stats: SinkStatsHandle,
    name: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let start_ns = now_ns();
    let mut timer = tokio::time::interval(interval);
    timer.tick().await;
    loop {
        let last = tokio::select! {
            _ = timer.tick() => false,
            _ = stop.changed() => true,
        };
        let snapshot = source();
        match client.send_metrics(&snapshot, start_ns).await {
            Ok((bytes, points)) => stats.update(|s| {
                s.metrics_pushes += 1;
                s.metric_points_sent += points;
                s.bytes_sent += bytes;
            }),
            Err(e) => {
                stats.update(|s| s.metrics_push_errors += 1);
                tracing::warn!(exporter = %name, "OTLP metrics push failed (the next one sends the totals): {e}");
            }
        }
        if last {
            return;
        }
    }
}
