//! A link with a known delay. This kernel has neither netem nor the `fq`
//! qdisc (so no departure-time pacing either), so the delay is made in user
//! space: the host's veth end is taken off the bridge and a relay of the
//! tests copies every frame between it and a new veth pair on the bridge,
//! each after `one_way`. Every round trip through the host is then at least
//! twice that: a floor that RTT figures can be checked against.
//!
//! The relay is transparent to offloads: its packet sockets carry the
//! virtio-net header (`PACKET_VNET_HDR`), so a frame whose checksum the
//! sender left to the device, or a TSO super-frame, is handed on with that
//! work still to do instead of arriving corrupt or too big.

use super::{Host, Lab, set_socket_option, sh};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest frame a veth hands over (a GSO frame) plus the virtio header.
const FRAME_CAPACITY: usize = 65_536 + 64;

/// A host whose traffic waits `one_way` in each direction. Dropping it stops
/// the relay and puts the host back on the bridge.
pub struct DelayedLink {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    host_if: String,
    relay_if: String,
    bridge: String,
    /// Frames the kernel refused to send on (the tests expect none: a lost
    /// frame would be retransmitted and stretch an RTT past the floor).
    send_errors: Arc<AtomicU64>,
}

impl DelayedLink {
    pub fn insert(lab: &Lab, host: &Host, one_way: Duration) -> DelayedLink {
        let relay_if = format!("{}d", host.host_if);
        let bridge_end = format!("{}e", host.host_if);
        let bridge = lab.bridge.clone();
        sh(&format!(
            "ip link set {h} nomaster && \
             ip link add {relay_if} type veth peer name {bridge_end} && \
             sysctl -qw net.ipv6.conf.{relay_if}.disable_ipv6=1 && \
             sysctl -qw net.ipv6.conf.{bridge_end}.disable_ipv6=1 && \
             ip link set {bridge_end} master {bridge} up && \
             ip link set {relay_if} promisc on up && \
             ip link set {h} promisc on",
            h = host.host_if
        ));
        let (host_side, relay_side) = (packet_socket(&host.host_if), packet_socket(&relay_if));
        let (host_side, relay_side) = (Arc::new(host_side), Arc::new(relay_side));
        let mut link = DelayedLink {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            host_if: host.host_if.clone(),
            relay_if,
            bridge,
            send_errors: Arc::new(AtomicU64::new(0)),
        };
        link.relay(host_side.clone(), relay_side.clone(), one_way);
        link.relay(relay_side, host_side, one_way);
        link
    }

    /// Frames the relay could not send on so far.
    pub fn send_errors(&self) -> u64 {
        self.send_errors.load(Ordering::Relaxed)
    }

    /// Copies every frame that arrives on `from` out of `to`, `delay` after
    /// its arrival: one thread receives and stamps, one sends when due (a
    /// FIFO, since every frame waits the same).
    fn relay(&mut self, from: Arc<OwnedFd>, to: Arc<OwnedFd>, delay: Duration) {
        let (due_tx, due_rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; FRAME_CAPACITY];
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: buf is writable for its length; the socket is open.
                let n =
                    unsafe { libc::recv(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0
                    && due_tx
                        .send((Instant::now() + delay, buf[..n as usize].to_vec()))
                        .is_err()
                {
                    return;
                }
            }
        }));
        let send_errors = self.send_errors.clone();
        self.threads.push(std::thread::spawn(move || {
            for (due, frame) in due_rx {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                // SAFETY: frame is readable for its length; the socket is open.
                let sent =
                    unsafe { libc::send(to.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
                if sent != frame.len() as isize {
                    send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
}

impl Drop for DelayedLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // The bridge end goes with its peer.
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip link del {relay}; ip link set {h} promisc off; ip link set {h} master {b}",
                relay = self.relay_if,
                h = self.host_if,
                b = self.bridge
            ))
            .status();
    }
}

/// A raw packet socket bound to `dev` that sees only the frames arriving on
/// it (not the ones it sends), each led by its virtio-net header, and whose
/// receive wakes every 100 ms so that the relay can stop.
fn packet_socket(dev: &str) -> OwnedFd {
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket calls on a descriptor owned here; every pointer
    // passed points at a live value of the size given.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, all as i32);
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let fd = OwnedFd::from_raw_fd(fd);
        let on: libc::c_int = 1;
        for option in [libc::PACKET_VNET_HDR, libc::PACKET_IGNORE_OUTGOING] {
            set_socket_option(fd.as_raw_fd(), libc::SOL_PACKET, option, &on)
                .unwrap_or_else(|e| panic!("packet socket option {option}: {e}"));
        }
        let wake = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        set_socket_option(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &wake)
            .expect("SO_RCVTIMEO");
        let name = std::ffi::CString::new(dev).unwrap();
        let index = libc::if_nametoindex(name.as_ptr());
        assert!(index > 0, "no interface {dev}");
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = all;
        addr.sll_ifindex = index as i32;
        let bound = libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(
            bound,
            0,
            "binding to {dev}: {}",
            std::io::Error::last_os_error()
        );
        fd
    }
}
