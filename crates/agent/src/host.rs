//! Facts about the host the agent reports with every record.

use std::net::IpAddr;

/// Addresses of the interfaces that are up in the current network
/// namespace (loopback excepted; IPv6 link-local excepted).
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs allocates a list we walk read-only and free below.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return out;
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
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out.push(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ));
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let addr = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                    if !addr.is_unicast_link_local() {
                        out.push(IpAddr::V6(addr));
                    }
                }
                _ => {}
            }
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The address that names this host in records (netobserv's AgentIP): the
/// first IPv4 address of an interface that is up, else an IPv6 one, else the
/// loopback address.
pub fn agent_ip() -> IpAddr {
    let addresses = local_addresses();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// This host's name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Every address on this host, with the network namespace that holds it
/// (None: the agent's own namespace; Some(name): a namespace named under
/// /run/netns, as `ip netns` lists them).
pub fn namespace_addresses() -> Vec<(IpAddr, Option<String>)> {
    let mut out: Vec<(IpAddr, Option<String>)> =
        local_addresses().into_iter().map(|a| (a, None)).collect();
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return out;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // setns changes the calling thread only: do it in a thread of its own.
        let found = std::thread::spawn(move || -> Vec<IpAddr> {
            let Ok(ns) = std::fs::File::open(&path) else {
                return Vec::new();
            };
            // SAFETY: setns on a namespace fd, affecting this thread only.
            if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) } != 0
            {
                return Vec::new();
            }
            local_addresses()
        })
        .join()
        .unwrap_or_default();
        out.extend(found.into_iter().map(|a| (a, Some(name.clone()))));
    }
    out
}

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// A capability set of a /proc/…/status text (`CapEff`, `CapPrm`,
/// `CapBnd`, ...).
pub fn capability_set(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// The process's effective capabilities (CapEff of /proc/self/status).
pub fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| capability_set(&status, "CapEff"))
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
