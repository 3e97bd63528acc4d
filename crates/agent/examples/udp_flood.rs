//! Benchmark traffic: small UDP datagrams to `FLOWS` distinct flows in
//! turn (source socket and destination port), for SECONDS. Used by bench/agent-overhead.sh.
//!
//!     udp_flood DST_IP FLOWS SECONDS [PAYLOAD_BYTES]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: udp_flood DST_IP FLOWS SECONDS [PAYLOAD_BYTES]");
        std::process::exit(2);
    }
    let dst: std::net::IpAddr = args[1].parse().expect("DST_IP");
    let flows: u32 = args[2].parse().expect("FLOWS");
    let seconds: f64 = args[3].parse().expect("SECONDS");
    let payload = vec![
        0u8;
        args.get(4)
            .map(|p| p.parse().expect("PAYLOAD_BYTES"))
            .unwrap_or(18)
    ];
    // Destination ports 10000..65000 per source socket; more sockets (source
    // ports) when there are more flows than that.
    const PORTS: u32 = 55_000;
    let sockets: Vec<UdpSocket> = (0..flows.div_ceil(PORTS).max(1))
        .map(|_| UdpSocket::bind("0.0.0.0:0").expect("bind"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut sent, mut flow) = (0u64, 0u32);
    while Instant::now() < deadline {
        for _ in 0..1024 {
            let sock = &sockets[(flow / PORTS) as usize];
            let dport = 10_000 + (flow % PORTS) as u16;
            flow = (flow + 1) % flows.max(1);
            if sock.send_to(&payload, (dst, dport)).is_ok() {
                sent += 1;
            }
        }
    }
    println!("{sent}");
}
