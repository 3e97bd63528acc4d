//! TCP of the tests' own whose ending is known, and the kernel's own TCP
//! counters to check it by.

use super::{Lab, set_socket_option, sh};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// One of the kernel's own counters in `file` (`/proc/net/snmp` or
/// `/proc/net/netstat`) of `netns`: a line of names under `prefix`, then
/// its values.
pub fn kernel_counter(netns: &str, file: &str, prefix: &str, field: &str) -> u64 {
    let text = sh(&format!("ip netns exec {netns} cat {file}"));
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let values: Vec<&str> = lines[1].split_whitespace().collect();
    let at = names
        .iter()
        .position(|n| *n == field)
        .unwrap_or_else(|| panic!("{field} in {file}"));
    values[at].parse().unwrap()
}

/// A `Tcp:` counter of /proc/net/snmp in `netns` (RetransSegs, OutRsts, ...).
pub fn snmp_tcp(netns: &str, field: &str) -> u64 {
    kernel_counter(netns, "/proc/net/snmp", "Tcp:", field)
}

/// How the client of a transfer ends its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// FIN after the data; the server reads to the end and closes too.
    Orderly,
    /// Once the server has read the data, the client closes with
    /// SO_LINGER 0: one RST, no FIN.
    Abort,
}

/// `bytes` from the first host to the second's `port`, ended as `ending`
/// says. Orderly: the server reads to the end, then closes; the client
/// closes only after that, so no segment ever reaches a closed socket.
pub fn transfer(lab: &Lab, port: u16, bytes: usize, ending: Ending) {
    let (client, server) = (lab.hosts[0].clone(), lab.hosts[1].clone());
    let at = format!("{}:{port}", server.ipv4);
    let bind = at.clone();
    // Sockets stay in the namespace they were made in.
    let listener = Lab::in_netns(&server, move || TcpListener::bind(bind).unwrap());
    let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = vec![0u8; bytes];
        conn.read_exact(&mut got).unwrap();
        read_tx.send(()).unwrap();
        let mut rest = Vec::new();
        match conn.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "nothing after the data"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    });
    let mut conn = Lab::in_netns(&client, move || TcpStream::connect(at).unwrap());
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        conn.write_all(&chunk[..n]).unwrap();
        sent += n;
    }
    match ending {
        Ending::Orderly => {
            conn.shutdown(std::net::Shutdown::Write).unwrap();
            receiver.join().unwrap();
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).unwrap();
        }
        Ending::Abort => {
            read_rx.recv().unwrap();
            abort_on_close(&conn);
            drop(conn);
            receiver.join().unwrap();
        }
    }
}

/// Makes `conn`'s close abort the connection (SO_LINGER 0): one RST
/// instead of a FIN.
pub fn abort_on_close(conn: &TcpStream) {
    let abort = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_socket_option(conn.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &abort)
        .expect("SO_LINGER");
}

/// The smoothed RTT `ss -ti` shows for the TCP socket `filter` names in
/// `netns`, in nanoseconds.
pub fn ss_rtt_ns(netns: &str, filter: &str) -> f64 {
    let ss = sh(&format!("ip netns exec {netns} ss -tinH {filter}"));
    let ms: f64 = ss
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rtt:"))
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rtt in ss output: {ss}"));
    ms * 1e6
}

/// `transfer` ended orderly.
pub fn orderly_transfer(lab: &Lab, port: u16, bytes: usize) {
    transfer(lab, port, bytes, Ending::Orderly)
}

/// Waits (up to 5 s) until the client's connections to `server:port` are
/// all in TIME_WAIT: a closed socket may still retransmit its last
/// segments, so the kernel's counters are read only after.
pub fn wait_until_closed(client_netns: &str, server: &str, port: u16) {
    for _ in 0..100 {
        let open = sh(&format!(
            "ip netns exec {client_netns} ss -tnH exclude time-wait dst {server}:{port}"
        ));
        if open.trim().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
