//! OTLP's two transports: gRPC (tonic, one channel that reconnects by
//! itself) and HTTP/1.1 with protobuf bodies (`/v1/logs`, `/v1/metrics`,
//! one kept-alive connection made again after an error), each plaintext or
//! TLS (the collector's certificate verified against the given CA or the
//! system's, our certificate shown if one is given). Either sends a
//! request whole or fails, so the sink sends the batch again.

use crate::otlp::{logs_request, metrics_request};
use crate::record::ExportRecord;
use crate::sink::{Deliver, Delivered, SinkStatsHandle};
use crate::target::{OtlpOptions, PeerTls};
use flowlens_model::MetricSnapshot;
use flowlens_tls::{ClientTls, ClientTlsFiles};
use flowlens_wire::secure::{ConnectError, tls_connector};
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
        tls: Option<Arc<ClientTls>>,
        connection: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    },
}

/// The TLS client of `settings`, offering `alpn`; an error names the file.
/// The collector's certificate is always verified (`insecureSkipVerify`
/// is refused where the FlowCollector file is read, naming its key; no URL
/// option sets it).
fn client_tls(
    address: &str,
    settings: Option<&PeerTls>,
    alpn: &[u8],
) -> Result<Option<Arc<ClientTls>>, String> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let files = ClientTlsFiles {
        ca: settings.ca_file.clone(),
        cert: settings.cert_file.clone(),
        key: settings.key_file.clone(),
    };
    ClientTls::new(files, &[alpn])
        .map(|tls| Some(Arc::new(tls)))
        .map_err(|e| format!("{address}: TLS: {e}"))
}

/// The host part of `HOST:PORT` (an IPv6 address keeps its brackets: the
/// TLS name check takes either form).
fn host_of(address: &str) -> &str {
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// An HTTP/1.1 connection over `io`, driven by a task of its own.
async fn http1<IO>(
    io: IO,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// A failed gRPC call in words; a TLS handshake's failure names its reason.
fn grpc_failure(what: &str, status: &tonic::Status) -> String {
    let cause = ConnectError::of(status);
    if cause.tls.is_some() {
        format!("{what}: {cause}")
    } else {
        format!("{what}: {}: {}", status.code(), status.message())
    }
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
        let tls = client_tls(address, options.tls.as_ref(), b"h2")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = Channel::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| format!("{address}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = match tls {
            Some(tls) => endpoint.connect_with_connector_lazy(tls_connector(tls)),
            None => endpoint.connect_lazy(),
        };
        Ok(OtlpClient {
            transport: Transport::Grpc(channel),
            headers: options.headers.clone(),
        })
    }

    pub fn http(address: &str, options: &OtlpOptions) -> Result<OtlpClient, String> {
        Ok(OtlpClient {
            transport: Transport::Http {
                address: address.to_string(),
                tls: client_tls(address, options.tls.as_ref(), b"http/1.1")?,
                connection: None,
            },
            headers: options.headers.clone(),
        })
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
            tls,
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
            let send = match tls {
                Some(tls) => {
                    let stream = tls.connect(stream, host_of(address)).await.map_err(|f| {
                        format!(
                            "{address}: TLS with the collector failed: {f} ({})",
                            f.reason()
                        )
                    })?;
                    http1(stream).await
                }
                None => http1(stream).await,
            }
            .map_err(|e| format!("{address}: {e}"))?;
            *connection = Some(send);
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let send = connection.as_mut().expect("connected");
        let mut request = hyper::Request::post(format!("{scheme}://{address}{path}"))
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
                    .map_err(|s| grpc_failure("OTLP logs", &s))?;
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
                    .map_err(|s| grpc_failure("OTLP metrics", &s))?;
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
