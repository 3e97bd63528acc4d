//! TLS on the gRPC link. The collector's listener hands tonic connections
//! that are plaintext or TLS (`Connection`); a TLS handshake runs in a task
//! of its own with a deadline, so a client that stalls its handshake holds
//! up nobody else. The client's certificate identity rides with every
//! request (`PeerInfo` in its extensions). The agents' side dials through
//! `channel`, which verifies the collector's certificate.

use crate::connections::{BoundedListener, BoundedStream};
use flowlens_tls::{ClientTls, HandshakeFailure, PeerIdentity, ServerTls};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Endpoint};

/// What the collector knows of the peer of a call.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// The client certificate's identity (mutual TLS only).
    pub identity: Option<PeerIdentity>,
}

pub enum Connection {
    Plain(BoundedStream),
    Tls(
        Box<tokio_rustls::server::TlsStream<BoundedStream>>,
        Option<PeerIdentity>,
    ),
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        let (stream, identity) = match self {
            Connection::Plain(s) => (s, None),
            Connection::Tls(s, identity) => (s.get_ref().0, identity.clone()),
        };
        PeerInfo {
            remote: stream.peer_addr(),
            identity,
        }
    }
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Connection::Plain($s) => $e,
            Connection::Tls($s, _) => $e,
        }
    };
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        both!(self, s => Pin::new(s).poll_write(cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        both!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s) => s.is_write_vectored(),
            Connection::Tls(s, _) => s.is_write_vectored(),
        }
    }
}

/// The listener's connections, TLS ones once their handshake finished;
/// those whose handshake failed are counted (by `tls`) and closed.
pub fn incoming(
    mut listener: BoundedListener,
    tls: Option<Arc<ServerTls>>,
) -> impl tokio_stream::Stream<Item = io::Result<Connection>> {
    let (ready, connections) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let connection = tokio::select! {
                c = listener.accept() => c,
                // The server stopped taking connections.
                _ = ready.closed() => return,
            };
            let Some(tls) = &tls else {
                if ready.send(Ok(Connection::Plain(connection))).await.is_err() {
                    return;
                }
                continue;
            };
            let (tls, ready) = (tls.clone(), ready.clone());
            tokio::spawn(async move {
                if let Ok((stream, identity)) = tls.accept(connection).await {
                    let _ = ready
                        .send(Ok(Connection::Tls(Box::new(stream), identity)))
                        .await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(connections)
}

/// A channel to `uri`: plaintext for `http://`, TLS through `tls` for
/// `https://`. The error says why, in a user's words (a refused
/// certificate names the reason).
pub async fn channel(
    uri: &str,
    tls: Option<Arc<ClientTls>>,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
) -> Result<Channel, ConnectError> {
    let mut endpoint = Endpoint::from_shared(uri.to_string())
        .map_err(|e| ConnectError::other(format!("collector address `{uri}`: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    if let Some(timeout) = call_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    let https = endpoint.uri().scheme_str() == Some("https");
    let connected = match (https, tls) {
        (false, _) => endpoint.connect().await,
        (true, None) => {
            return Err(ConnectError::other(format!(
                "{uri}: https needs the collector's CA (--collector-ca)"
            )));
        }
        (true, Some(tls)) => endpoint.connect_with_connector(tls_connector(tls)).await,
    };
    connected.map_err(|e| ConnectError::of(&e))
}

/// A connector for tonic's endpoints that dials the URI's host and port
/// and verifies the peer's certificate through `tls` (the certificate must
/// name the host as written).
pub fn tls_connector(
    tls: Arc<ClientTls>,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = Box<dyn std::error::Error + Send + Sync>,
    Future: Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |uri: http::Uri| {
        let tls = tls.clone();
        async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
            let _ = tcp.set_nodelay(true);
            let stream = tls.connect(tcp, &host).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

/// Why a channel could not be opened.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// The TLS handshake's failure, when that is what failed.
    pub tls: Option<HandshakeFailure>,
    pub message: String,
}

impl ConnectError {
    fn other(message: String) -> ConnectError {
        ConnectError { tls: None, message }
    }

    /// Finds the cause in an error's chain (tonic wraps what the connector
    /// returned).
    pub fn of(e: &(dyn std::error::Error + 'static)) -> ConnectError {
        let mut messages = Vec::new();
        let mut tls = None;
        let mut next = Some(e);
        while let Some(e) = next {
            if let Some(f) = e.downcast_ref::<HandshakeFailure>() {
                tls = Some(*f);
            }
            let text = e.to_string();
            if !messages.contains(&text) {
                messages.push(text);
            }
            next = e.source();
        }
        let message = match tls {
            Some(f) => format!("TLS with the collector failed: {f} ({})", f.reason()),
            None => messages.join(": "),
        };
        ConnectError { tls, message }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
