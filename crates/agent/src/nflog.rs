//! NetworkEvents: the log prefixes of netfilter rules (`log group N prefix
//! "..."`), read from NFLOG in every network namespace the agent can name
//! (its own and those under /run/netns). NFLOG is per namespace, so one
//! listener runs inside each; it closes when the namespace's name goes, so
//! that it never keeps a deleted namespace alive.

use crate::kernel_types::FlowKey;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 3;
const NFULA_CFG_QTHRESH: u16 = 4;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
/// Bytes of each logged packet to copy: enough for IPv6 and ports.
const COPY_RANGE: u32 = 128;

/// One logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NflogEvent {
    /// The packet's flow identity (interface and direction zero).
    pub identity: FlowKey,
    pub prefix: String,
    /// "ingress" (prerouting, input), "egress" (output, postrouting) or
    /// "forward".
    pub direction: &'static str,
    pub group: u16,
    /// When the agent received it (CLOCK_MONOTONIC ns).
    pub seen_mono_ns: u64,
}

struct Listener {
    stop: Arc<AtomicBool>,
}

/// Follows namespaces and runs one NFLOG listener in each.
pub struct NflogWatcher {
    groups: Vec<u16>,
    listeners: HashMap<(u64, u64), Listener>,
    events_tx: Sender<NflogEvent>,
    pub events: Receiver<NflogEvent>,
    /// Messages the kernel dropped because a listener fell behind.
    pub lost: Arc<AtomicU64>,
}

impl NflogWatcher {
    pub fn new(groups: Vec<u16>) -> NflogWatcher {
        let (events_tx, events) = channel();
        NflogWatcher {
            groups,
            listeners: HashMap::new(),
            events_tx,
            events,
            lost: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts listeners in new namespaces and stops those whose namespace
    /// went away.
    pub fn sync_namespaces(&mut self) {
        let mut present = HashMap::new();
        let mut paths = vec![std::path::PathBuf::from("/proc/self/ns/net")];
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            paths.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
        }
        for path in paths {
            if let Ok(meta) = std::fs::metadata(&path) {
                present.entry((meta.dev(), meta.ino())).or_insert(path);
            }
        }
        self.listeners.retain(|id, listener| {
            let keep = present.contains_key(id);
            if !keep {
                listener.stop.store(true, Ordering::Relaxed);
            }
            keep
        });
        for (id, path) in present {
            if self.listeners.contains_key(&id) {
                continue;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let (groups, tx, lost, flag) = (
                self.groups.clone(),
                self.events_tx.clone(),
                self.lost.clone(),
                stop.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name("flowlens-nflog".into())
                .spawn(move || {
                    if let Err(e) = listen(&path, &groups, &tx, &lost, &flag) {
                        tracing::debug!("NFLOG listener in {}: {e}", path.display());
                    }
                });
            if spawned.is_ok() {
                self.listeners.insert(id, Listener { stop });
            }
        }
    }
}

impl Drop for NflogWatcher {
    fn drop(&mut self) {
        for listener in self.listeners.values() {
            listener.stop.store(true, Ordering::Relaxed);
        }
    }
}

fn netlink_message(msg_type: u16, flags: u16, group: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0];
    body.extend_from_slice(&group.to_be_bytes());
    for (kind, value) in attrs {
        let len = 4 + value.len();
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&kind.to_ne_bytes());
        body.extend_from_slice(value);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&msg_type.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    msg.extend_from_slice(&body);
    msg
}

fn send(fd: &OwnedFd, msg: &[u8]) -> std::io::Result<()> {
    // SAFETY: send of a buffer we own on a socket we own.
    let n = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs in its own thread: enters the namespace at `ns_path`, binds the
/// NFLOG groups, and forwards logged packets until `stop`.
fn listen(
    ns_path: &std::path::Path,
    groups: &[u16],
    tx: &Sender<NflogEvent>,
    lost: &AtomicU64,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let ns = std::fs::File::open(ns_path)?;
    // SAFETY: setns affects this thread only; it then creates a socket that
    // belongs to that namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(ns);
    // SAFETY: plain socket/bind syscalls; the fd is owned right away.
    let fd = unsafe {
        let raw = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        );
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let rc = libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        fd
    };
    let config = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
    let mut mode = COPY_RANGE.to_be_bytes().to_vec();
    mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
    // Deliver each packet at once (the default batches for a second), so
    // that it lands in the same eviction as the packet's drop.
    let (timeout, threshold) = (0u32.to_be_bytes(), 1u32.to_be_bytes());
    let settings: [&[(u16, &[u8])]; 3] = [
        &[(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])],
        &[(NFULA_CFG_MODE, &mode)],
        &[
            (NFULA_CFG_TIMEOUT, &timeout),
            (NFULA_CFG_QTHRESH, &threshold),
        ],
    ];
    for &group in groups {
        // A group another program already listens on is left to it.
        for attrs in settings {
            send(
                &fd,
                &netlink_message(config, libc::NLM_F_REQUEST as u16, group, attrs),
            )?;
        }
    }
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own.
        let ready = unsafe { libc::poll(&mut pfd, 1, 300) };
        if ready <= 0 {
            continue;
        }
        // SAFETY: recv into a buffer we own, of the length we pass.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOBUFS) {
                lost.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        for event in parse_messages(&buf[..n as usize]) {
            let _ = tx.send(event);
        }
    }
    Ok(())
}

/// Every NFLOG packet message in a netlink datagram.
pub fn parse_messages(mut data: &[u8]) -> Vec<NflogEvent> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
        let msg_type = u16::from_ne_bytes(data[4..6].try_into().unwrap());
        if len < 16 || len > data.len() {
            break;
        }
        if msg_type == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
            && let Some(event) = parse_packet_message(&data[16..len])
        {
            out.push(event);
        }
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    out
}

fn parse_packet_message(body: &[u8]) -> Option<NflogEvent> {
    let group = u16::from_be_bytes(body.get(2..4)?.try_into().ok()?);
    let (mut hook, mut prefix, mut payload) = (None, String::new(), None);
    let mut attrs = body.get(4..)?;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes(attrs[0..2].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(attrs[2..4].try_into().ok()?) & 0x3fff;
        if len < 4 || len > attrs.len() {
            break;
        }
        let value = &attrs[4..len];
        match kind {
            NFULA_PACKET_HDR => hook = value.get(2).copied(),
            NFULA_PREFIX => {
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                prefix = String::from_utf8_lossy(&value[..end]).into_owned();
            }
            NFULA_PAYLOAD => payload = Some(value),
            _ => {}
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    let identity = identity_of_ip_packet(payload?)?;
    let direction = match hook? {
        0 | 1 => "ingress",
        2 => "forward",
        _ => "egress",
    };
    let seen_mono_ns = crate::clock::monotonic_now_ns();
    Some(NflogEvent {
        identity,
        prefix,
        direction,
        group,
        seen_mono_ns,
    })
}

/// The flow identity of an IP packet (as the kernel keys it).
pub fn identity_of_ip_packet(packet: &[u8]) -> Option<FlowKey> {
    let mut key = FlowKey::default();
    let (proto, l4) = match packet.first()? >> 4 {
        4 => {
            let ihl = (packet[0] & 0xf) as usize * 4;
            key.eth_protocol = 0x0800;
            key.src_ip[10..12].copy_from_slice(&[0xff, 0xff]);
            key.dst_ip[10..12].copy_from_slice(&[0xff, 0xff]);
            key.src_ip[12..].copy_from_slice(packet.get(12..16)?);
            key.dst_ip[12..].copy_from_slice(packet.get(16..20)?);
            let fragment = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff != 0;
            (packet[9], if fragment { None } else { packet.get(ihl..) })
        }
        6 => {
            key.eth_protocol = 0x86dd;
            key.src_ip.copy_from_slice(packet.get(8..24)?);
            key.dst_ip.copy_from_slice(packet.get(24..40)?);
            (packet[6], packet.get(40..))
        }
        _ => return None,
    };
    key.protocol = proto;
    if let Some(l4) = l4 {
        match proto {
            6 | 17 | 132 if l4.len() >= 4 => {
                key.src_port = u16::from_be_bytes([l4[0], l4[1]]);
                key.dst_port = u16::from_be_bytes([l4[2], l4[3]]);
            }
            1 | 58 if l4.len() >= 2 => {
                key.icmp_type = l4[0];
                key.icmp_code = l4[1];
            }
            _ => {}
        }
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_logged_udp_packet() {
        let mut ip = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        ip.extend_from_slice(&[0x13, 0x88, 0x1b, 0x58, 0, 12, 0, 0]);
        let msg = netlink_message(
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET,
            0,
            3,
            &[
                (NFULA_PACKET_HDR, &[0x08, 0x00, 1, 0]),
                (NFULA_PREFIX, b"deny-web\0"),
                (NFULA_PAYLOAD, &ip),
            ],
        );
        let events = parse_messages(&msg);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.prefix.as_str(), e.direction, e.group),
            ("deny-web", "ingress", 3)
        );
        assert_eq!(
            (
                e.identity.src_port,
                e.identity.dst_port,
                e.identity.protocol
            ),
            (5000, 7000, 17)
        );
        assert_eq!(e.identity.eth_protocol, 0x0800);
        assert_eq!(&e.identity.dst_ip[12..], &[198, 18, 0, 2]);
    }

    #[test]
    fn garbage_is_ignored() {
        assert!(parse_messages(&[0xff; 40]).is_empty());
        assert!(identity_of_ip_packet(&[0x45]).is_none());
    }
}
