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

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// The process's effective capabilities (CapEff of /proc/self/status).
pub fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The capabilities the agent needs and lacks, by name. CAP_SYS_ADMIN
/// stands in for CAP_BPF and CAP_PERFMON (kernels before 5.8 know only it).
pub fn missing_capabilities(tracing: bool, enter_namespaces: bool) -> Vec<&'static str> {
    let caps = effective_capabilities();
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    let admin = has(CAP_SYS_ADMIN);
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !admin {
        missing.push("CAP_BPF");
    }
    if tracing && !has(CAP_PERFMON) && !admin {
        missing.push("CAP_PERFMON");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if enter_namespaces && !admin {
        missing.push("CAP_SYS_ADMIN");
    }
    missing
}
