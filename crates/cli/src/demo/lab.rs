//! The demo's lab: network namespaces named `<namespace>.<workload>` (the
//! enricher reads them as workloads in namespaces) on one bridge, addressed
//! in 198.18.10.0/24, with the nftables rules that make its failures. Made
//! with iproute2 and nft, removed when dropped (and leftovers of a demo that
//! was killed are removed before a new one starts).

use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};

pub const BRIDGE: &str = "fldemo0";

/// One workload of the lab.
pub struct Workload {
    /// Its network namespace: `<namespace>.<workload>`.
    pub netns: &'static str,
    pub addr: &'static str,
    /// The veth end in the host namespace, where the agent attaches.
    pub host_if: &'static str,
}

pub const FRONTEND: Workload = Workload {
    netns: "shop.frontend",
    addr: "198.18.10.10",
    host_if: "fldemo-front",
};
pub const BACKEND: Workload = Workload {
    netns: "shop.backend",
    addr: "198.18.10.20",
    host_if: "fldemo-back",
};
pub const DATABASE: Workload = Workload {
    netns: "data.database",
    addr: "198.18.10.30",
    host_if: "fldemo-db",
};
/// A service that is down: its interface is down, so connects time out.
pub const LEGACY: Workload = Workload {
    netns: "data.legacy",
    addr: "198.18.10.40",
    host_if: "fldemo-legacy",
};
pub const DNS: Workload = Workload {
    netns: "infra.dns",
    addr: "198.18.10.53",
    host_if: "fldemo-dns",
};

pub const WORKLOADS: [&Workload; 5] = [&FRONTEND, &BACKEND, &DATABASE, &LEGACY, &DNS];

/// Ports of the demo's services.
pub const WEB_PORT: u16 = 8080;
pub const CLOSED_PORT: u16 = 8081;
pub const DB_PORT: u16 = 5432;
pub const LEGACY_PORT: u16 = 9000;

/// Packets of the database link dropped at random, in percent each way.
pub const LOSS_PERCENT: u32 = 2;

/// The database's rules: only the backend may connect (the frontend is
/// denied and counted), and its link loses packets at random.
fn database_rules() -> String {
    format!(
        "table inet flowlens_demo {{\n\
         \x20chain input {{\n\
         \x20 type filter hook input priority 0;\n\
         \x20 ip saddr {front} tcp dport {DB_PORT} counter drop comment \"policy: only the backend may reach the database\"\n\
         \x20 tcp dport {DB_PORT} numgen random mod 100 < {LOSS_PERCENT} counter drop comment \"lossy link (in)\"\n\
         \x20}}\n\
         \x20chain output {{\n\
         \x20 type filter hook output priority 0;\n\
         \x20 tcp sport {DB_PORT} numgen random mod 100 < {LOSS_PERCENT} counter drop comment \"lossy link (out)\"\n\
         \x20}}\n\
         }}\n",
        front = FRONTEND.addr
    )
}

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_in(netns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["ip", "netns", "exec", netns];
    all.extend_from_slice(args);
    run(&all)
}

pub struct DemoLab {
    _private: (),
}

impl DemoLab {
    pub fn create() -> Result<DemoLab> {
        remove();
        let lab = DemoLab { _private: () };
        run(&["ip", "link", "add", BRIDGE, "type", "bridge"])?;
        run(&["ip", "link", "set", BRIDGE, "up"])?;
        run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{BRIDGE}.disable_ipv6=1"),
        ])?;
        for w in WORKLOADS {
            add(w)?;
        }
        // Everyone knows everyone's MAC, the legacy service's included: its
        // SYNs leave and vanish (a host that is down), they do not fail fast
        // on a neighbour lookup.
        let macs: Vec<(&Workload, String)> = WORKLOADS
            .iter()
            .map(|w| Ok((*w, mac_of(w)?)))
            .collect::<Result<_>>()?;
        for w in WORKLOADS {
            for (peer, mac) in macs.iter().filter(|(p, _)| p.netns != w.netns) {
                run(&[
                    "ip",
                    "-n",
                    w.netns,
                    "neigh",
                    "replace",
                    peer.addr,
                    "lladdr",
                    mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ])?;
            }
        }
        run(&["ip", "-n", LEGACY.netns, "link", "set", "eth0", "down"])?;
        // Clients give up a connect after one SYN retry (~3 s), not two minutes.
        for w in [&FRONTEND, &BACKEND] {
            run_in(w.netns, &["sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])?;
        }
        let rules = std::env::temp_dir().join(format!("flowlens-demo-{}.nft", std::process::id()));
        std::fs::write(&rules, database_rules())?;
        let loaded = run_in(DATABASE.netns, &["nft", "-f", &rules.to_string_lossy()]);
        let _ = std::fs::remove_file(&rules);
        loaded?;
        Ok(lab)
    }

    /// The host-side interfaces the agent watches.
    pub fn interfaces(&self) -> Vec<&'static str> {
        WORKLOADS.iter().map(|w| w.host_if).collect()
    }
}

fn add(w: &Workload) -> Result<()> {
    run(&["ip", "netns", "add", w.netns])?;
    run_in(
        w.netns,
        &[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    )?;
    run(&[
        "ip", "link", "add", w.host_if, "type", "veth", "peer", "name", "eth0", "netns", w.netns,
    ])?;
    run(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{}.disable_ipv6=1", w.host_if),
    ])?;
    run(&["ip", "link", "set", w.host_if, "master", BRIDGE, "up"])?;
    run(&["ip", "-n", w.netns, "link", "set", "lo", "up"])?;
    run(&["ip", "-n", w.netns, "link", "set", "eth0", "up"])?;
    run(&[
        "ip",
        "-n",
        w.netns,
        "addr",
        "add",
        &format!("{}/24", w.addr),
        "dev",
        "eth0",
    ])?;
    Ok(())
}

fn mac_of(w: &Workload) -> Result<String> {
    let text = run(&["ip", "-n", w.netns, "-br", "link", "show", "dev", "eth0"])?;
    text.split_whitespace()
        .nth(2)
        .map(str::to_string)
        .with_context(|| format!("no MAC for eth0 of {}", w.netns))
}

/// Removes every part of a demo lab, whatever is left of it.
fn remove() {
    for w in WORKLOADS {
        let quiet = |args: &[&str]| {
            let _ = Command::new(args[0])
                .args(&args[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["ip", "netns", "del", w.netns]);
        quiet(&["ip", "link", "del", w.host_if]);
    }
    let _ = Command::new("ip")
        .args(["link", "del", BRIDGE])
        .stderr(Stdio::null())
        .status();
}

impl Drop for DemoLab {
    fn drop(&mut self) {
        remove();
    }
}

/// Runs `f` on a new thread inside `netns` (its sockets live there).
pub fn spawn_in(
    netns: &'static str,
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>> {
    let file = std::fs::File::open(format!("/run/netns/{netns}"))
        .with_context(|| format!("opening network namespace {netns}"))?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            // SAFETY: setns with a namespace fd we own; it moves this thread only.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            if rc != 0 {
                tracing::error!(
                    "entering network namespace {netns}: {}",
                    std::io::Error::last_os_error()
                );
                return;
            }
            drop(file);
            f()
        })
        .context("starting a demo thread")
}
