//! The demo's lab: network namespaces named `<namespace>.<workload>` (the
//! enricher reads them as workloads in namespaces) on one bridge, addressed
//! in 198.18.10.0/24, with the nftables rules that make its failures: the
//! tests' lab (`crate::netlab`) with the demo's names and rules. Removed when
//! dropped (and leftovers of a demo that was killed are removed before a new
//! one starts).

use crate::netlab::{self, HostSpec, NetLab, run, run_in};
use anyhow::Result;

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

/// The lab, its workloads up; removed when dropped.
pub struct DemoLab {
    lab: NetLab,
}

impl DemoLab {
    pub fn create() -> Result<DemoLab> {
        remove_leftovers();
        let mut lab = NetLab::new(BRIDGE)?;
        for w in WORKLOADS {
            lab.add_host(&HostSpec {
                netns: w.netns,
                host_if: w.host_if,
                ipv4: &format!("{}/24", w.addr),
                ipv6: None,
            })?;
        }
        // Everyone knows everyone's MAC, the legacy service's included: its
        // SYNs leave and vanish (a host that is down), they do not fail fast
        // on a neighbour lookup.
        lab.set_static_neighbours()?;
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
        Ok(DemoLab { lab })
    }

    /// The host-side interfaces the agent watches.
    pub fn interfaces(&self) -> Vec<String> {
        self.lab.host_ifs()
    }
}

/// Removes what a demo that was killed left behind.
fn remove_leftovers() {
    let names: Vec<(&str, &str)> = WORKLOADS.iter().map(|w| (w.netns, w.host_if)).collect();
    netlab::remove(BRIDGE, &names);
}

/// Runs `f` on a new thread inside `netns` (its sockets live there).
pub fn spawn_in(netns: &'static str, name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    netlab::spawn_in(netns, name, f).map(drop)
}
