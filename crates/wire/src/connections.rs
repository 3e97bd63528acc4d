//! Accepting TCP connections under bounds, for every listener a hostile
//! client can reach (gRPC and HTTP): at most so many connections at once
//! (one past the limit is closed as soon as it is accepted, and counted),
//! and a connection that moves no byte either way for the idle timeout is
//! closed (a client that opens connections and sends nothing, or stops
//! reading its answer, holds no place for long). Protocol timeouts (HTTP's
//! header read, HTTP/2 pings) sit on top of this.

use serde::Serialize;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
}

/// What a listener accepted and closed.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused_over_limit: AtomicU64,
    closed_idle: AtomicU64,
    accept_errors: AtomicU64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectionStats {
    pub connections_open: u64,
    pub connections_accepted: u64,
    /// Closed at once: the listener had its most connections open.
    pub connections_refused: u64,
    /// Closed after moving nothing for the idle timeout.
    pub connections_closed_idle: u64,
    pub accept_errors: u64,
}

impl ConnectionStats {
    pub const GAUGES: &'static [&'static str] = &["connections_open"];
}

/// A listener that hands out connections within its limits.
pub struct BoundedListener {
    listener: TcpListener,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    counters: Arc<Counters>,
    /// After an accept error, the listener waits this out first.
    backoff: Option<Pin<Box<Sleep>>>,
}

/// How long an accept error (out of file descriptors, say) is waited out.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl BoundedListener {
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> BoundedListener {
        BoundedListener {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            counters: Arc::default(),
            backoff: None,
        }
    }

    /// Reads the listener's counters (for /metrics and /status).
    pub fn stats_reader(&self) -> impl Fn() -> ConnectionStats + Send + Sync + 'static {
        let (counters, slots) = (self.counters.clone(), self.slots.clone());
        let most = self.limits.max_connections.max(1);
        move || ConnectionStats {
            connections_open: (most - slots.available_permits()) as u64,
            connections_accepted: counters.accepted.load(Ordering::Relaxed),
            connections_refused: counters.refused_over_limit.load(Ordering::Relaxed),
            connections_closed_idle: counters.closed_idle.load(Ordering::Relaxed),
            accept_errors: counters.accept_errors.load(Ordering::Relaxed),
        }
    }

    /// The next connection within the limit; those past it are closed
    /// here. Accept errors (out of file descriptors, a connection reset
    /// before it was taken) are counted and waited out, never fatal.
    pub fn poll_next_connection(&mut self, cx: &mut Context<'_>) -> Poll<BoundedStream> {
        loop {
            if let Some(backoff) = &mut self.backoff {
                std::task::ready!(backoff.as_mut().poll(cx));
                self.backoff = None;
            }
            match self.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("accepting a connection: {e}");
                    self.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                }
                Poll::Ready(Ok((stream, _))) => {
                    let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                        self.counters
                            .refused_over_limit
                            .fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                        continue;
                    };
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    return Poll::Ready(BoundedStream {
                        inner: stream,
                        _slot: slot,
                        idle: self.limits.idle_timeout,
                        deadline: Instant::now() + self.limits.idle_timeout,
                        timer: Box::pin(tokio::time::sleep(self.limits.idle_timeout)),
                        counters: self.counters.clone(),
                    });
                }
            }
        }
    }

    pub async fn accept(&mut self) -> BoundedStream {
        std::future::poll_fn(|cx| self.poll_next_connection(cx)).await
    }
}

/// A connection holding its place under the limit, closed when idle.
pub struct BoundedStream {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    /// When the connection counts as idle, unless it moves before.
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
    counters: Arc<Counters>,
}

impl BoundedStream {
    /// The client's address.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.peer_addr().ok()
    }

    fn moved(&mut self) {
        self.deadline = Instant::now() + self.idle;
    }

    /// Called when the connection cannot move now: an error once it has
    /// been still for the idle timeout (and the timer armed otherwise).
    fn still(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        loop {
            if self.timer.deadline() != self.deadline {
                let deadline = self.deadline;
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return None,
                Poll::Ready(()) if Instant::now() >= self.deadline => {
                    self.counters.closed_idle.fetch_add(1, Ordering::Relaxed);
                    return Some(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection moved no byte for the idle timeout",
                    ));
                }
                Poll::Ready(()) => continue,
            }
        }
    }
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.still(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl BoundedStream {
    /// What a write returned, with the idle clock kept.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.still(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn listener(max: usize, idle: Duration) -> (BoundedListener, std::net::SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let limits = ConnectionLimits {
            max_connections: max,
            idle_timeout: idle,
        };
        (BoundedListener::new(l, limits), addr)
    }

    #[tokio::test]
    async fn a_connection_past_the_limit_is_closed_and_counted() {
        let (mut bounded, addr) = listener(2, Duration::from_secs(60)).await;
        let stats = bounded.stats_reader();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(bounded.accept().await);
            }
        });
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        // The third is closed by the server: its read ends.
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut byte))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
        let s = stats();
        assert_eq!((s.connections_open, s.connections_refused), (2, 1));
        server.abort();
    }

    #[tokio::test]
    async fn a_still_connection_is_closed_a_moving_one_is_not() {
        let (mut bounded, addr) = listener(8, Duration::from_millis(300)).await;
        let stats = bounded.stats_reader();
        tokio::spawn(async move {
            loop {
                let mut conn = bounded.accept().await;
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let mut still = TcpStream::connect(addr).await.unwrap();
        let mut moving = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            moving.write_all(b"x").await.unwrap();
            moving.read_exact(&mut buf).await.unwrap();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), still.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "the still one was closed");
        moving.write_all(b"y").await.unwrap();
        moving.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"y", "the moving one still answers");
        assert_eq!(stats().connections_closed_idle, 1);
    }
}
