//! A lab of network namespaces on one bridge: what `flowlens demo` runs its
//! workloads in and what the kernel tests run their hosts in (one lab for
//! both). Each host is a namespace whose `eth0` is one end of a veth pair;
//! the other end, in the host namespace, sits on the bridge and is where the
//! agent attaches. Neighbours can be made static, so that the only packets
//! on the wire are the ones sent on purpose. Made with iproute2; everything
//! made is removed when the lab is dropped.

use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};

/// One namespace of the lab.
#[derive(Debug, Clone)]
pub struct Host {
    pub netns: String,
    /// The veth end in the host namespace, where the agent attaches.
    pub host_if: String,
    pub ipv4: String,
    /// Its IPv6 address (assigned only when the host was made with IPv6).
    pub ipv6: String,
    /// The MAC of its `eth0`, upper case.
    pub mac: String,
}

/// How to make a host.
pub struct HostSpec<'a> {
    pub netns: &'a str,
    pub host_if: &'a str,
    /// IPv4 address and prefix length (`198.18.0.1/24`).
    pub ipv4: &'a str,
    /// IPv6 address and prefix length; None leaves IPv6 off in the host.
    pub ipv6: Option<&'a str>,
}

pub struct NetLab {
    pub bridge: String,
    pub hosts: Vec<Host>,
}

/// Runs a command; its standard output, or an error with its standard
/// error.
pub fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside network namespace `netns`.
pub fn run_in(netns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["ip", "netns", "exec", netns];
    all.extend_from_slice(args);
    run(&all)
}

/// Runs a command whose failure does not matter (removing what may be
/// gone already).
fn quietly(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes a bridge and hosts by name, whatever is left of them (a lab
/// whose process was killed).
pub fn remove(bridge: &str, hosts: &[(&str, &str)]) {
    for (netns, host_if) in hosts {
        quietly(&["ip", "netns", "del", netns]);
        quietly(&["ip", "link", "del", host_if]);
    }
    quietly(&["ip", "link", "del", bridge]);
}

impl NetLab {
    /// A bridge named `bridge`, up, without IPv6 of its own (so it sends
    /// no MLD or router solicitations).
    pub fn new(bridge: &str) -> Result<NetLab> {
        run(&["ip", "link", "add", bridge, "type", "bridge"])?;
        let lab = NetLab {
            bridge: bridge.to_string(),
            hosts: Vec::new(),
        };
        run(&["ip", "link", "set", bridge, "up"])?;
        run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{bridge}.disable_ipv6=1"),
        ])?;
        Ok(lab)
    }

    /// Adds a host on the bridge (a container starting).
    pub fn add_host(&mut self, spec: &HostSpec) -> Result<Host> {
        let (netns, host_if) = (spec.netns, spec.host_if);
        run(&["ip", "netns", "add", netns])?;
        // Listed at once, so that a failure below still removes it.
        self.hosts.push(Host {
            netns: netns.to_string(),
            host_if: host_if.to_string(),
            ipv4: address(spec.ipv4).to_string(),
            ipv6: spec.ipv6.map(address).unwrap_or_default().to_string(),
            mac: String::new(),
        });
        let v6_off = if spec.ipv6.is_some() { "0" } else { "1" };
        run_in(
            netns,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.all.disable_ipv6={v6_off}"),
                &format!("net.ipv6.conf.default.disable_ipv6={v6_off}"),
            ],
        )?;
        run(&[
            "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ])?;
        run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{host_if}.disable_ipv6=1"),
        ])?;
        run(&["ip", "link", "set", host_if, "master", &self.bridge, "up"])?;
        run(&["ip", "-n", netns, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", netns, "link", "set", "eth0", "up"])?;
        run(&["ip", "-n", netns, "addr", "add", spec.ipv4, "dev", "eth0"])?;
        if let Some(v6) = spec.ipv6 {
            run_in(
                netns,
                &["sysctl", "-qw", "net.ipv6.conf.eth0.router_solicitations=0"],
            )?;
            run(&["ip", "-n", netns, "addr", "add", v6, "dev", "eth0", "nodad"])?;
        }
        let link = run(&["ip", "-n", netns, "-br", "link", "show", "dev", "eth0"])?;
        let mac = link
            .split_whitespace()
            .nth(2)
            .with_context(|| format!("no MAC for eth0 of {netns}"))?
            .to_uppercase();
        let host = self.hosts.last_mut().expect("pushed above");
        host.mac = mac;
        Ok(host.clone())
    }

    /// Every host knows every other's MAC (IPv4, and IPv6 where it has
    /// it): no neighbour discovery on the wire, and a host that is down
    /// loses packets instead of failing fast on a lookup.
    pub fn set_static_neighbours(&self) -> Result<()> {
        for h in &self.hosts {
            let pin = |family: &str, addr: &str, mac: &str| {
                run(&[
                    "ip",
                    "-n",
                    &h.netns,
                    family,
                    "neigh",
                    "replace",
                    addr,
                    "lladdr",
                    mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ])
            };
            for peer in self.hosts.iter().filter(|p| p.netns != h.netns) {
                pin("-4", &peer.ipv4, &peer.mac)?;
                if !h.ipv6.is_empty() && !peer.ipv6.is_empty() {
                    pin("-6", &peer.ipv6, &peer.mac)?;
                }
            }
        }
        Ok(())
    }

    /// The host-side interfaces, where the agent attaches.
    pub fn host_ifs(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.host_if.clone()).collect()
    }
}

/// The address of `address/prefix`.
fn address(cidr: &str) -> &str {
    cidr.split('/').next().unwrap_or(cidr)
}

impl Drop for NetLab {
    fn drop(&mut self) {
        let names: Vec<(&str, &str)> = self
            .hosts
            .iter()
            .map(|h| (h.netns.as_str(), h.host_if.as_str()))
            .collect();
        remove(&self.bridge, &names);
    }
}

/// Starts `f` on a new thread inside network namespace `netns` (its
/// sockets live there); join the handle for its result.
pub fn spawn_in<T: Send + 'static>(
    netns: &str,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T>>> {
    let file = std::fs::File::open(format!("/run/netns/{netns}"))
        .with_context(|| format!("opening network namespace {netns}"))?;
    let netns = netns.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            // SAFETY: setns with a namespace fd we own; it moves this thread only.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            if rc != 0 {
                let why = format!(
                    "entering network namespace {netns}: {}",
                    std::io::Error::last_os_error()
                );
                tracing::error!("{why}");
                bail!(why);
            }
            drop(file);
            Ok(f())
        })
        .context("starting a thread in a network namespace")
}
