//! The HTTP listener of every command (/metrics, /status, the API and the
//! console), served within bounds a hostile client cannot stretch: at most
//! `--max-http-connections` connections, request headers read within
//! `--http-header-timeout` (a client that trickles its headers — slowloris
//! — or keeps an idle connection open is closed after it), and no byte
//! moving either way for the idle timeout closes a connection (a client
//! that stops reading its answer). A query's own budget is
//! `--query-timeout` (docs/query.md).

use crate::authorize::{Access, authorize};
use crate::http_guard::{Guard, guard};
use crate::tokens::TokenFile;
use axum::Router;
use clap::Args;
use flowlens_tls::{ServerTls, ServerTlsFiles};
use flowlens_wire::connections::{BoundedListener, ConnectionLimits, ConnectionStats};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// HTTP connections open at once at most; one more is closed at once
    /// (counted in `http_connections`).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_http_connections: usize,
    /// A request's headers must arrive within this, and an idle
    /// keep-alive connection is closed after it.
    #[arg(long, value_name = "DURATION", value_parser = flowlens_config::duration_arg, default_value = "10s")]
    pub http_header_timeout: Duration,
    /// Serve HTTPS with this certificate (PEM, the leaf first; re-read
    /// when the file changes).
    #[arg(long, value_name = "FILE", requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,
    /// Require API tokens (a YAML file of their SHA-256, names, scope
    /// filters and rights; re-read when it changes): docs/security.md.
    #[arg(long, value_name = "FILE")]
    pub api_tokens: Option<PathBuf>,
    /// Allow listening off loopback without TLS (gRPC and HTTP): flow
    /// records then cross the network in clear.
    #[arg(long)]
    pub insecure: bool,
}

/// HTTP/1.1, offered in the TLS handshake.
const HTTP1: &[u8] = b"http/1.1";

/// Request headers take at most this many bytes (a URL included).
const MAX_HEADER_BYTES: usize = 64 << 10;

/// The HTTP listener, ready to serve; its counters can be read before.
pub struct HttpListener {
    listener: BoundedListener,
    tls: Option<Arc<ServerTls>>,
    access: Option<Access>,
    header_timeout: Duration,
    guard: Guard,
}

impl HttpListener {
    /// `longest_answer`: the longest a response may take to start (the
    /// query deadline), which the idle timeout must leave room for.
    /// Refuses a plaintext listener off loopback without `--insecure`, and
    /// certificate files that cannot be used.
    pub fn new(
        listener: tokio::net::TcpListener,
        args: &HttpArgs,
        longest_answer: Duration,
    ) -> Result<HttpListener, String> {
        let tls = match (&args.http_tls_cert, &args.http_tls_key) {
            (Some(cert), Some(key)) => {
                let files = ServerTlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: None,
                };
                let tls = ServerTls::new(files, &[HTTP1], Duration::from_secs(10))
                    .map_err(|e| format!("HTTPS: {e}"))?;
                Some(Arc::new(tls))
            }
            _ => None,
        };
        if tls.is_none() {
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            flowlens_tls::plaintext_allowed(
                addr,
                args.insecure,
                "HTTP",
                "--http-tls-cert and --http-tls-key",
            )?;
        }
        let limits = ConnectionLimits {
            max_connections: args.max_http_connections.max(1),
            idle_timeout: (longest_answer + Duration::from_secs(30)).max(Duration::from_secs(60)),
        };
        let access = match &args.api_tokens {
            Some(path) => Some(Access::new(TokenFile::open(path.clone())?)),
            None => None,
        };
        // Bound to loopback without tokens, only requests naming a loopback
        // host are answered (DNS rebinding); a rebinding page has no token.
        let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
        Ok(HttpListener {
            listener: BoundedListener::new(listener, limits),
            tls,
            guard: Guard {
                loopback_hosts_only: loopback && access.is_none(),
            },
            access,
            header_timeout: args.http_header_timeout,
        })
    }

    /// Authorization's counters (with tokens only).
    pub fn access(&self) -> Option<Access> {
        self.access.clone()
    }

    /// The TLS side's counters (HTTPS only).
    pub fn tls(&self) -> Option<Arc<ServerTls>> {
        self.tls.clone()
    }

    pub fn stats_reader(&self) -> impl Fn() -> ConnectionStats + Send + Sync + 'static {
        self.listener.stats_reader()
    }

    /// Serves `app` until the process ends; a connection's error ends that
    /// connection only.
    pub async fn serve(mut self, app: Router) {
        let app = match self.access.clone() {
            Some(access) => app.layer(axum::middleware::from_fn_with_state(access, authorize)),
            None => app,
        };
        // The guard outermost: refusals carry its headers too.
        let app = app.layer(axum::middleware::from_fn_with_state(self.guard, guard));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(MAX_HEADER_BYTES.max(8192))
            .max_headers(100);
        loop {
            let connection = self.listener.accept().await;
            let service = TowerToHyperService::new(app.clone());
            let (http, tls) = (http.clone(), self.tls.clone());
            // Timeouts, resets and failed handshakes are the clients' doing
            // (counted by the TLS side); nothing to log.
            tokio::spawn(async move {
                match tls {
                    None => {
                        let _ = http
                            .serve_connection(TokioIo::new(connection), service)
                            .await;
                    }
                    Some(tls) => {
                        if let Ok((stream, _)) = tls.accept(connection).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                }
            });
        }
    }
}
