//! `flowlens demo` (root): a small lab of network namespaces standing for
//! workloads in three namespaces (shop: frontend, backend; data: database and
//! a legacy service that is down; infra: DNS served by dnsmasq), continuous
//! traffic with the failures users hunt for, and `flowlens up` watching it.
//! Prints the console's address; Ctrl-C stops everything and removes the lab.

mod lab;
mod traffic;

use crate::capture_args::duration_arg;
use anyhow::{Context, Result, bail};
use clap::Args;
use lab::DemoLab;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Address of the console and API of the demo's `up`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9290")]
    listen: SocketAddr,
    /// Where the demo's `up` keeps its store (default: a new directory,
    /// removed at the end).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Stop the workloads' traffic after this long (`90s`, `5m`) and keep
    /// the console serving what was captured: a finished scenario whose
    /// figures no longer move (default: traffic until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    traffic_for: Option<Duration>,
}

/// Every feature the lab shows.
const FEATURES: &str =
    "FlowRTT,DNSTracking,PacketDrop,NetworkEvents,TCPRetransmits,ConnectionTracking";

/// Commands the lab needs, with the Debian package of each.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("dnsmasq", "dnsmasq-base"),
    ("sysctl", "procps"),
];

pub fn run(args: DemoArgs) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("flowlens demo builds network namespaces and loads eBPF programs: run it as root");
    }
    install_missing_tools()?;
    let (data_dir, temporary) = match args.data_dir {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("flowlens-demo-{}", std::process::id())),
            true,
        ),
    };

    eprintln!(
        "flowlens demo: building the lab (namespaces shop, data, infra on bridge {})",
        lab::BRIDGE
    );
    let lab = DemoLab::create()?;
    let dns = Guard(start_dnsmasq()?);
    let up = Guard(start_up(&lab, args.listen, &data_dir)?);
    let result = serve(args.listen, args.traffic_for, up);
    drop(dns);
    drop(lab);
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    eprintln!("flowlens demo: stopped; the lab is removed");
    result
}

/// Runs the traffic until Ctrl-C (or `up` ends, or `traffic_for` has
/// passed, when only the traffic stops), then stops `up`.
fn serve(listen: SocketAddr, traffic_for: Option<Duration>, mut up: Guard) -> Result<()> {
    wait_until_serving(listen, &mut up.0)?;
    let mut traffic = Some(traffic::Traffic::start()?);
    let traffic_until = traffic_for.map(|d| Instant::now() + d);
    let url = format!("http://{listen}/");
    println!("flowlens demo: console at {url}");
    println!("  DNS errors:    {url}?view=flows&quick=dns_errors");
    println!("  packet drops:  {url}?view=flows&quick=drops");
    println!("  topology:      {url}?view=topology");
    println!("Press Ctrl-C to stop and remove the lab.");
    let runtime = crate::shutdown::runtime(1)?;
    let ended = runtime.block_on(async {
        let stop = crate::shutdown::shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return None,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if let Ok(Some(status)) = up.0.try_wait() {
                        return Some(status);
                    }
                    if traffic.is_some() && traffic_until.is_some_and(|t| Instant::now() >= t) {
                        traffic = None;
                        eprintln!("flowlens demo: traffic stopped; the console keeps what it captured");
                    }
                }
            }
        }
    });
    drop(traffic);
    match ended {
        Some(status) => bail!("flowlens up stopped on its own ({status}); see its messages above"),
        None => {
            up.stop(Duration::from_secs(10));
            Ok(())
        }
    }
}

fn install_missing_tools() -> Result<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !on_path("apt-get") {
        bail!(
            "the demo needs {} (not installed, and there is no apt-get to install them)",
            missing.join(", ")
        );
    }
    eprintln!("flowlens demo: installing {}", missing.join(" "));
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if !ok(Command::new("apt-get").args(["update", "-q"]))
        || !ok(Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    {
        bail!(
            "installing {} failed; install them and run the demo again",
            missing.join(", ")
        );
    }
    Ok(())
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(cmd).is_file()))
        .unwrap_or(false)
}

/// dnsmasq in the DNS workload: authoritative for `.demo`, so the names it
/// knows resolve and every other `.demo` name is NXDOMAIN.
fn start_dnsmasq() -> Result<Child> {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        lab::DNS.netns,
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
    ])
    .arg(format!("--listen-address={}", lab::DNS.addr))
    .args([
        "--bind-interfaces",
        "--port=53",
        "--local=/demo/",
        "--pid-file=",
        "--log-facility=/dev/null",
    ]);
    for (name, w) in [
        ("backend.shop.demo", &lab::BACKEND),
        ("database.data.demo", &lab::DATABASE),
        ("legacy.data.demo", &lab::LEGACY),
    ] {
        cmd.arg(format!("--address=/{name}/{}", w.addr));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting dnsmasq")
}

/// This binary's `up`, watching the lab's interfaces.
fn start_up(lab: &DemoLab, listen: SocketAddr, data_dir: &std::path::Path) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the flowlens binary")?;
    Command::new(exe)
        .arg("up")
        .arg("--interfaces")
        .arg(lab.interfaces().join(","))
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--features")
        .arg(FEATURES)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting flowlens up")
}

fn wait_until_serving(listen: SocketAddr, up: &mut Child) -> Result<()> {
    let started = Instant::now();
    let server = format!("http://{listen}");
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = up.try_wait()? {
            bail!("flowlens up stopped while starting ({status}); see its messages above");
        }
        if crate::http_client::get(
            &crate::http_client::ServerArgs::plain(&server),
            "/api/status",
        )
        .is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("flowlens up did not answer on {listen} within 60 s")
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
struct Guard(Child);

impl Guard {
    fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < grace {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
