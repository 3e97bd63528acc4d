//! Facts about the host the agent reports with every record.

use std::net::IpAddr;

/// The address that names this host in records (netobserv's AgentIP): the
/// first global IPv4 address of an interface that is up, else a global IPv6
/// one, else the loopback address.
pub fn agent_ip() -> IpAddr {
    let mut v4 = None;
    let mut v6 = None;
    // SAFETY: getifaddrs allocates a list we walk read-only and free below.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return IpAddr::from([127, 0, 0, 1]);
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            let up = ifa.ifa_flags & libc::IFF_UP as u32 != 0;
            if ifa.ifa_addr.is_null() || !up || ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0 {
                continue;
            }
            match (*ifa.ifa_addr).sa_family as i32 {
                libc::AF_INET if v4.is_none() => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    v4 = Some(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ));
                }
                libc::AF_INET6 if v6.is_none() => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let addr = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                    if !addr.is_unicast_link_local() {
                        v6 = Some(IpAddr::V6(addr));
                    }
                }
                _ => {}
            }
        }
        libc::freeifaddrs(head);
    }
    v4.or(v6).unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Whether the process can load eBPF programs and attach them (root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
