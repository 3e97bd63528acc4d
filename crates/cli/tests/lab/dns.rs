//! DNS of the tests' own: a client that times its queries, and a server
//! that answers after a known delay, so that a DNS latency can be pinned
//! from both sides (at least the server's delay, at most the client's).

use super::Lab;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Asks `server` (ip:port) from `bind` for the A record of `name` with DNS
/// id `id`: the answer's rcode and the latency the client measured, or None
/// when no answer came within `wait`. Call it inside the client's namespace
/// (`Lab::in_netns`).
pub fn query(
    bind: &str,
    server: &str,
    id: u16,
    name: &str,
    wait: Duration,
) -> Option<(u8, Duration)> {
    let sock = UdpSocket::bind(bind).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let started = Instant::now();
    sock.send_to(&flowlens_agent::dns::a_query(id, name), server)
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).ok()?;
    let latency = started.elapsed();
    assert!(n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id);
    Some((buf[3] & 0xf, latency))
}

/// `query` from the lab's first host (198.18.0.1), port `src_port`.
pub fn ask(
    lab: &Lab,
    server: &str,
    id: u16,
    name: &str,
    src_port: u16,
    wait: Duration,
) -> Option<(u8, Duration)> {
    let (server, name) = (server.to_string(), name.to_string());
    Lab::in_netns(&lab.hosts[0], move || {
        query(&format!("198.18.0.1:{src_port}"), &server, id, &name, wait)
    })
}

/// A DNS server on the second host's `port` (198.18.0.2): it answers a
/// query of even id NXDomain after `delay` (slept once the query is read,
/// so the query's arrival to the answer's leaving is at least that), and
/// never answers an odd one. Stops after `queries` queries.
pub fn delaying_server(
    lab: &Lab,
    port: u16,
    delay: Duration,
    queries: usize,
) -> std::thread::JoinHandle<()> {
    let sock = Lab::in_netns(&lab.hosts[1], move || {
        UdpSocket::bind(("198.18.0.2", port)).unwrap()
    });
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..queries {
            let (n, from) = sock.recv_from(&mut buf).expect("a query");
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            if id % 2 == 1 {
                continue;
            }
            std::thread::sleep(delay);
            let mut answer = buf[..n].to_vec();
            // QR, the query's RD, RA, rcode 3 (NXDomain).
            answer[2] = 0x80 | (buf[2] & 0x01);
            answer[3] = 0x80 | 3;
            sock.send_to(&answer, from).unwrap();
        }
    })
}
