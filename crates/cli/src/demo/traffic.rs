//! The demo's workloads: real sockets in the lab's namespaces, sending
//! traffic that shows every feature — web requests with DNS lookups, a
//! database over a lossy link (retransmissions), lookups of names that do not
//! exist (NXDOMAIN), connects denied by policy, refused, and timing out.

use super::lab::{
    self, BACKEND, CLOSED_PORT, DATABASE, DB_PORT, DNS, FRONTEND, LEGACY, LEGACY_PORT, WEB_PORT,
};
use anyhow::Result;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Bytes a web request answers with, and a database query.
const WEB_REPLY: usize = 24 * 1024;
const DB_REPLY: usize = 256 * 1024;

pub struct Traffic {
    stop: Arc<AtomicBool>,
}

impl Traffic {
    /// Starts the servers, then the clients.
    pub fn start() -> Result<Traffic> {
        let stop = Arc::new(AtomicBool::new(false));
        serve(BACKEND.netns, BACKEND.addr, WEB_PORT, |mut conn| {
            // A web request: look up the database, query it, answer.
            let mut request = [0u8; 256];
            let _ = conn.read(&mut request);
            let _ = resolve("database.data.demo");
            let _ = query(DATABASE.addr, DB_PORT, DB_REPLY);
            let _ = conn.write_all(&vec![b'w'; WEB_REPLY]);
        })?;
        serve(DATABASE.netns, DATABASE.addr, DB_PORT, |mut conn| {
            let mut request = [0u8; 256];
            if conn.read(&mut request).unwrap_or(0) > 0 {
                let _ = conn.write_all(&vec![b'd'; DB_REPLY]);
            }
        })?;

        // The frontend's users: a page every 300 ms.
        every(
            &stop,
            FRONTEND.netns,
            "demo-web",
            Duration::from_millis(300),
            || {
                if resolve("backend.shop.demo").is_ok() {
                    let _ = query(BACKEND.addr, WEB_PORT, WEB_REPLY);
                }
            },
        )?;
        // A misconfigured client asks for a name that does not exist.
        every(
            &stop,
            FRONTEND.netns,
            "demo-nxdomain",
            Duration::from_secs(2),
            || {
                let _ = resolve("checkout.shop.demo");
            },
        )?;
        every(
            &stop,
            BACKEND.netns,
            "demo-nxdomain-db",
            Duration::from_secs(5),
            || {
                let _ = resolve("replica.data.demo");
            },
        )?;
        // The frontend tries the database directly: denied by policy.
        every(
            &stop,
            FRONTEND.netns,
            "demo-denied",
            Duration::from_secs(4),
            || {
                let _ = TcpStream::connect((DATABASE.addr, DB_PORT));
            },
        )?;
        // A port where nothing listens: refused.
        every(
            &stop,
            FRONTEND.netns,
            "demo-refused",
            Duration::from_secs(3),
            || {
                let _ = TcpStream::connect((BACKEND.addr, CLOSED_PORT));
            },
        )?;
        // A service that is down: connects time out.
        every(
            &stop,
            BACKEND.netns,
            "demo-timeout",
            Duration::from_secs(5),
            || {
                let _ = resolve("legacy.data.demo");
                let _ = TcpStream::connect((LEGACY.addr, LEGACY_PORT));
            },
        )?;
        Ok(Traffic { stop })
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A server on `addr:port` in `netns`, a thread per connection.
fn serve(netns: &'static str, addr: &'static str, port: u16, handle: fn(TcpStream)) -> Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    lab::spawn_in(netns, "demo-server", move || {
        let listener = TcpListener::bind((addr, port));
        let ok = listener.is_ok();
        let _ = ready_tx.send(listener.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        if !ok {
            return;
        }
        for conn in listener.unwrap().incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            std::thread::spawn(move || handle(conn));
        }
    })?;
    ready_rx
        .recv()?
        .map_err(|e| anyhow::anyhow!("demo server on {addr}:{port}: {e}"))
}

/// Runs `work` in `netns` every `period` until stopped.
fn every(
    stop: &Arc<AtomicBool>,
    netns: &'static str,
    name: &str,
    period: Duration,
    work: impl Fn() + Send + 'static,
) -> Result<()> {
    let stop = stop.clone();
    lab::spawn_in(netns, name, move || {
        while !stop.load(Ordering::Relaxed) {
            work();
            std::thread::sleep(period);
        }
    })?;
    Ok(())
}

/// Sends a request and reads the whole answer (`expect` bytes).
fn query(addr: &str, port: u16, expect: usize) -> std::io::Result<()> {
    let mut conn = TcpStream::connect((addr, port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < expect {
        match conn.read(&mut buf)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(())
}

/// Asks the lab's DNS server for the A record of `name`: its address, or
/// the response code when there is none.
fn resolve(name: &str) -> Result<Ipv4Addr, u8> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|_| 0xff)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|_| 0xff)?;
    let id = (std::process::id() as u16)
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0) as u16);
    let server = SocketAddr::new(DNS.addr.parse().expect("address"), 53);
    sock.send_to(&flowlens_agent::dns::a_query(id, name), server)
        .map_err(|_| 0xff)?;
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).map_err(|_| 0xff)?;
    let answer = &buf[..n];
    let rcode = answer.get(3).map(|b| b & 0x0f).unwrap_or(0xff);
    if rcode != 0 {
        return Err(rcode);
    }
    // The answer's last four bytes are the A record's address.
    match answer.len().checked_sub(4).map(|at| &answer[at..]) {
        Some([a, b, c, d]) => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => Err(0xff),
    }
}
