//! The host's network interfaces, and a netlink subscription that says when
//! they change (a veth appears when a container starts).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInterface {
    pub index: u32,
    pub name: String,
}

/// The interfaces of the agent's network namespace now.
pub fn list_interfaces() -> io::Result<Vec<HostInterface>> {
    // SAFETY: if_nameindex returns a list terminated by a zero entry, freed
    // below with if_freenameindex; names are NUL-terminated C strings.
    unsafe {
        let head = libc::if_nameindex();
        if head.is_null() {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut entry = head;
        while (*entry).if_index != 0 && !(*entry).if_name.is_null() {
            out.push(HostInterface {
                index: (*entry).if_index,
                name: CStr::from_ptr((*entry).if_name)
                    .to_string_lossy()
                    .into_owned(),
            });
            entry = entry.add(1);
        }
        libc::if_freenameindex(head);
        Ok(out)
    }
}

/// A NETLINK_ROUTE socket subscribed to link events. Its messages are not
/// parsed: any of them means "list the interfaces again".
pub struct LinkWatcher {
    fd: AsyncFd<OwnedFd>,
}

impl LinkWatcher {
    pub fn new() -> io::Result<LinkWatcher> {
        const RTMGRP_LINK: u32 = 1;
        // SAFETY: plain socket/bind syscalls on a zeroed sockaddr_nl we own.
        let fd = unsafe {
            let raw = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            );
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            addr.nl_groups = RTMGRP_LINK;
            let rc = libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            );
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            fd
        };
        Ok(LinkWatcher {
            fd: crate::agent::readable_fd(fd)?,
        })
    }

    /// Waits for at least one link event and consumes all that are queued.
    pub async fn changed(&self) -> io::Result<()> {
        let mut buf = [0u8; 16384];
        loop {
            let mut guard = self.fd.readable().await?;
            let mut got_any = false;
            loop {
                // SAFETY: recv into a buffer we own, of the length we pass.
                let n = unsafe {
                    libc::recv(
                        self.fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n > 0 {
                    got_any = true;
                    continue;
                }
                let err = io::Error::last_os_error();
                if n < 0 && err.kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    break;
                }
                if n < 0 && err.raw_os_error() == Some(libc::ENOBUFS) {
                    // Events were lost: a full rescan covers them.
                    got_any = true;
                    continue;
                }
                return Err(err);
            }
            if got_any {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_loopback() {
        let all = list_interfaces().unwrap();
        assert!(all.iter().any(|i| i.name == "lo"), "{all:?}");
    }
}
