//! Benchmark traffic: small UDP datagrams to `--flows` destination ports in
//! turn, for `--seconds`. Used by bench/agent-overhead.sh.
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
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut sent, mut port) = (0u64, 0u32);
    while Instant::now() < deadline {
        for _ in 0..1024 {
            let dport = 10_000 + (port % flows) as u16 % 55_000;
            port = port.wrapping_add(1);
            if sock.send_to(&payload, (dst, dport)).is_ok() {
                sent += 1;
            }
        }
    }
    println!("{sent}");
}
