//! IPFIX to a collector: over UDP, each message one datagram (at most
//! 1,400 bytes, under a usual path MTU) with the templates sent first and
//! again every `TEMPLATE_REFRESH` (RFC 7011 §8.4: a UDP collector that
//! restarted learns them back); over TCP, one stream per connection with
//! the templates first, reconnected (and the templates sent again) after
//! an error.

use crate::ipfix::Encoder;
use crate::record::ExportRecord;
use crate::sink::{Deliver, Delivered};
use flowlens_model::FlowRecord;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

/// Templates go again over UDP this often.
pub const TEMPLATE_REFRESH: Duration = Duration::from_secs(30);
const UDP_MESSAGE: usize = 1400;
const TCP_MESSAGE: usize = 16 << 10;
/// The observation domain of flowlens's messages.
const DOMAIN: u32 = 1;

fn export_time() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

pub struct IpfixUdp {
    address: String,
    socket: Option<UdpSocket>,
    encoder: Encoder,
    templates_sent: Option<Instant>,
}

impl IpfixUdp {
    pub fn new(address: &str) -> IpfixUdp {
        IpfixUdp {
            address: address.to_string(),
            socket: None,
            encoder: Encoder::new(DOMAIN, UDP_MESSAGE),
            templates_sent: None,
        }
    }

    async fn socket(&mut self) -> Result<&UdpSocket, String> {
        if self.socket.is_none() {
            let peer = tokio::net::lookup_host(&self.address)
                .await
                .map_err(|e| format!("{}: {e}", self.address))?
                .next()
                .ok_or_else(|| format!("{}: no address", self.address))?;
            let local = if peer.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
            socket
                .connect(peer)
                .await
                .map_err(|e| format!("{peer}: {e}"))?;
            self.socket = Some(socket);
            self.templates_sent = None;
        }
        Ok(self.socket.as_ref().expect("just made"))
    }
}

impl Deliver for IpfixUdp {
    async fn deliver(&mut self, batch: &[ExportRecord]) -> Result<Delivered, String> {
        let batch = flows_of(batch);
        let templates = self
            .templates_sent
            .is_none_or(|t| t.elapsed() >= TEMPLATE_REFRESH);
        let (messages, _) = self.encoder.encode(batch, templates, export_time());
        let socket = self.socket().await?;
        if let Err(e) = send_datagrams(socket, &messages).await {
            // ICMP port unreachable from an earlier datagram, or no route:
            // a fresh socket next time.
            self.socket = None;
            return Err(format!("{}: {e}", self.address));
        }
        let bytes = messages.iter().map(|m| m.len() as u64).sum();
        if templates {
            self.templates_sent = Some(Instant::now());
        }
        Ok(Delivered { bytes, rejected: 0 })
    }
}

/// The flows of a batch: IPFIX carries flows (an exporter that would take
/// conversations is refused at start).
fn flows_of(batch: &[ExportRecord]) -> Vec<&FlowRecord> {
    batch.iter().filter_map(ExportRecord::as_flow).collect()
}

/// Datagrams handed to the kernel at most per system call.
const DATAGRAMS_PER_CALL: usize = 64;

/// Sends each message as its own datagram on the connected `socket`,
/// many per system call (sendmmsg: a batch of a thousand records is some
/// ninety datagrams, one call each was most of the exporter's time).
async fn send_datagrams(socket: &UdpSocket, messages: &[Vec<u8>]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut sent = 0;
    while sent < messages.len() {
        socket.writable().await?;
        let rest = &messages[sent..];
        match socket.try_io(tokio::io::Interest::WRITABLE, || {
            sendmmsg(socket.as_raw_fd(), rest)
        }) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One sendmmsg(2) of up to `DATAGRAMS_PER_CALL` of `messages`; how many
/// the kernel took.
fn sendmmsg(fd: std::os::fd::RawFd, messages: &[Vec<u8>]) -> std::io::Result<usize> {
    let chunk = &messages[..messages.len().min(DATAGRAMS_PER_CALL)];
    let mut iovecs: Vec<libc::iovec> = chunk
        .iter()
        .map(|m| libc::iovec {
            iov_base: m.as_ptr() as *mut libc::c_void,
            iov_len: m.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is a valid empty header.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: the headers point at iovecs that point at `chunk`'s buffers,
    // all alive for the call; the socket is connected, so no address.
    let n = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), headers.len() as u32, 0) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub struct IpfixTcp {
    address: String,
    stream: Option<TcpStream>,
    encoder: Encoder,
}

impl IpfixTcp {
    pub fn new(address: &str) -> IpfixTcp {
        IpfixTcp {
            address: address.to_string(),
            stream: None,
            encoder: Encoder::new(DOMAIN, TCP_MESSAGE),
        }
    }
}

impl Deliver for IpfixTcp {
    async fn deliver(&mut self, batch: &[ExportRecord]) -> Result<Delivered, String> {
        let batch = flows_of(batch);
        let fresh = self.stream.is_none();
        if fresh {
            let stream = TcpStream::connect(&self.address)
                .await
                .map_err(|e| format!("{}: {e}", self.address))?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
        }
        let (messages, _) = self.encoder.encode(batch, fresh, export_time());
        let stream = self.stream.as_mut().expect("connected");
        let mut bytes = 0;
        for m in &messages {
            if let Err(e) = stream.write_all(m).await {
                self.stream = None;
                return Err(format!("{}: {e}", self.address));
            }
            bytes += m.len() as u64;
        }
        Ok(Delivered { bytes, rejected: 0 })
    }
}
