//! The HTTP listener of every command (/metrics, /status, the API and the
//! console), served within bounds a hostile client cannot stretch: at most
//! `--max-http-connections` connections, request headers read within
//! `--http-header-timeout` (a client that trickles its headers — slowloris
//! — or keeps an idle connection open is closed after it), and no byte
//! moving either way for the idle timeout closes a connection (a client
//! that stops reading its answer). A query's own budget is
//! `--query-timeout` (docs/query.md).

use crate::http_guard::{Guard, guard};
use axum::Router;
use clap::Args;
use flowlens_wire::connections::{BoundedListener, ConnectionLimits, ConnectionStats};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
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
}

/// Request headers take at most this many bytes (a URL included).
const MAX_HEADER_BYTES: usize = 64 << 10;

/// The HTTP listener, ready to serve; its counters can be read before.
pub struct HttpListener {
    listener: BoundedListener,
    header_timeout: Duration,
    guard: Guard,
}

impl HttpListener {
    /// `longest_answer`: the longest a response may take to start (the
    /// query deadline), which the idle timeout must leave room for.
    pub fn new(
        listener: tokio::net::TcpListener,
        args: &HttpArgs,
        longest_answer: Duration,
    ) -> HttpListener {
        let limits = ConnectionLimits {
            max_connections: args.max_http_connections.max(1),
            idle_timeout: (longest_answer + Duration::from_secs(30)).max(Duration::from_secs(60)),
        };
        // Bound to loopback, only requests naming a loopback host are
        // answered (DNS rebinding); tokens will lift it.
        let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
        HttpListener {
            listener: BoundedListener::new(listener, limits),
            header_timeout: args.http_header_timeout,
            guard: Guard {
                loopback_hosts_only: loopback,
            },
        }
    }

    pub fn stats_reader(&self) -> impl Fn() -> ConnectionStats + Send + Sync + 'static {
        self.listener.stats_reader()
    }

    /// Serves `app` until the process ends; a connection's error ends that
    /// connection only.
    pub async fn serve(mut self, app: Router) {
        let app = app.layer(axum::middleware::from_fn_with_state(self.guard, guard));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(MAX_HEADER_BYTES.max(8192))
            .max_headers(100);
        loop {
            let connection = self.listener.accept().await;
            let service = TowerToHyperService::new(app.clone());
            let serving = http.serve_connection(TokioIo::new(connection), service);
            tokio::spawn(async move {
                // Timeouts and resets are the clients' doing; nothing to log.
                let _ = serving.await;
            });
        }
    }
}
