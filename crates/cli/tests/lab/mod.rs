//! Test lab: network namespaces joined by veth pairs and a bridge, addressed
//! only in 198.18.0.0/15 and fd00:198:18::/48, and the agent binary run
//! against them. Everything is removed when the lab is dropped.
#![allow(dead_code)]

pub mod delay;
pub mod dns;
pub mod exports;
pub mod kafka;
pub mod prometheus;
pub mod tcp;

use flowlens::netlab::{HostSpec, NetLab};
use flowlens_model::FlowRecord;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Kernel tests share the machine's CPUs and bpf stats; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// These tests need root; say so loudly rather than skip.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "kernel tests must run as root (they create network namespaces and load eBPF)"
    );
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("running sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads an nftables ruleset into a namespace.
pub fn nft(netns: &str, script: &str) {
    let path =
        std::env::temp_dir().join(format!("flowlens-nft-{}-{netns}.nft", std::process::id()));
    std::fs::write(&path, script).unwrap();
    sh(&format!("ip netns exec {netns} nft -f {}", path.display()));
    std::fs::remove_file(path).ok();
}

/// nftables `rules` (one a line) in an input chain of table
/// `flowlens_test` in `netns`.
pub fn nft_input(netns: &str, rules: &[&str]) {
    nft(
        netns,
        &format!(
            "table inet flowlens_test {{\n chain input {{\n  type filter hook input priority 0;\n  {}\n }}\n}}\n",
            rules.join("\n  ")
        ),
    );
}

/// Packets counted by the nftables rule with `comment` in a namespace.
pub fn nft_counter(netns: &str, comment: &str) -> u64 {
    let json = sh(&format!("ip netns exec {netns} nft -j list ruleset"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for item in v["nftables"].as_array().unwrap() {
        let rule = &item["rule"];
        if rule["comment"] == comment {
            for expr in rule["expr"].as_array().unwrap() {
                if let Some(packets) = expr["counter"]["packets"].as_u64() {
                    return packets;
                }
            }
        }
    }
    panic!("no counter for rule {comment} in {json}");
}

/// The wall clock in epoch milliseconds, as the API's times are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// setsockopt(2) of `value` on `fd`: the options std does not offer
/// (SO_LINGER, TCP_QUICKACK, packet socket options).
pub fn set_socket_option<T>(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> std::io::Result<()> {
    // SAFETY: `value` is a live T and the length given is its size.
    let set = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if set == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Asks `server` (ip:port) for the A record of `missing.test` from `bind`
/// with DNS id `id`; the response code of the answer. Call it inside the
/// client's namespace (`Lab::in_netns`).
pub fn ask_missing_name(bind: &str, server: &str, id: u16) -> u8 {
    dns::query(bind, server, id, "missing.test", Duration::from_secs(2))
        .expect("an answer")
        .0
}

/// Counters of interface `dev` in network namespace `netns`.
pub fn interface_counters(netns: &str, dev: &str) -> Counters {
    let json = sh(&format!("ip -n {netns} -s -j link show dev {dev}"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("ip -j output");
    let stats = &v[0]["stats64"];
    let n = |dir: &str, what: &str| stats[dir][what].as_u64().expect("counter");
    Counters {
        tx_bytes: n("tx", "bytes"),
        tx_packets: n("tx", "packets"),
        rx_bytes: n("rx", "bytes"),
        rx_packets: n("rx", "packets"),
    }
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

/// One namespace of the lab, with its end of a veth pair called `eth0`.
pub use flowlens::netlab::Host;

/// The tests' lab: the demo's lab (`flowlens::netlab`) with numbered hosts
/// under a prefix of this process, and the data directory of the `up`s it
/// starts. Its hosts and bridge are the `NetLab`'s (`lab.hosts`).
pub struct Lab {
    pub prefix: String,
    net: NetLab,
    /// The flow store of the `up`s this lab starts (removed with the lab).
    pub data_dir: std::path::PathBuf,
}

impl std::ops::Deref for Lab {
    type Target = NetLab;

    fn deref(&self) -> &NetLab {
        &self.net
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub rx_packets: u64,
}

impl Lab {
    /// `n` hosts on one bridge: 198.18.0.1.. and fd00:198:18::1..; IPv6 is
    /// off unless `ipv6`, and neighbours are static, so the only packets on
    /// the wire are the ones a test sends.
    pub fn new(n: usize, ipv6: bool) -> Lab {
        require_root();
        let seq = LAB_SEQ.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("fl{:x}{}", std::process::id() % 0xfff, seq);
        let mut lab = Lab {
            net: NetLab::new(&format!("{prefix}br")).expect("the lab's bridge"),
            data_dir: std::env::temp_dir().join(format!("flowlens-data-{prefix}")),
            prefix,
        };
        for i in 1..=n {
            let _ = lab.add_host(i, ipv6);
        }
        lab.set_static_neighbours();
        lab
    }

    /// Adds host `i` to the bridge (a container starting).
    pub fn add_host(&mut self, i: usize, ipv6: bool) -> Host {
        let name = format!("{}h{i}", self.prefix);
        let (v4, v6) = (format!("198.18.0.{i}/24"), format!("fd00:198:18::{i}/64"));
        self.net
            .add_host(&HostSpec {
                netns: &name,
                host_if: &name,
                ipv4: &v4,
                ipv6: ipv6.then_some(v6.as_str()),
            })
            .expect("a lab host")
    }

    pub fn set_static_neighbours(&self) {
        self.net
            .set_static_neighbours()
            .expect("the lab's static neighbours");
    }

    /// Starts an agent watching this lab's interfaces, with `extra` flags.
    pub fn start_agent(&self, extra: &[&str]) -> Agent {
        let interfaces = self.host_ifs().join(",");
        let mut args = vec!["--interfaces", interfaces.as_str()];
        args.extend_from_slice(extra);
        Agent::start(&args, &self.host_ifs())
    }

    /// Starts `flowlens up` watching this lab's interfaces, its HTTP
    /// listener on `listen`, its store in the lab's data directory, with
    /// `extra` flags.
    pub fn start_up(&self, listen: &str, extra: &[&str]) -> Agent {
        let interfaces = self.host_ifs().join(",");
        let data_dir = self.data_dir.display().to_string();
        let mut args = vec![
            "--interfaces",
            interfaces.as_str(),
            "--listen",
            listen,
            "--cache-active-timeout",
            "500ms",
            "--data-dir",
            data_dir.as_str(),
        ];
        args.extend_from_slice(extra);
        Agent::start_up(&args, &self.host_ifs())
    }

    /// Counters of `eth0` inside the host's namespace.
    pub fn counters(&self, host: &Host) -> Counters {
        interface_counters(&host.netns, "eth0")
    }

    /// A one-shot iperf3 server on `port` in the host's namespace, listening
    /// by the time this returns.
    pub fn iperf3_server(host: &Host, port: u16) -> std::process::Child {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.netns,
                "iperf3",
                "-s",
                "-1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("iperf3 server (apt-get install iperf3)");
        for _ in 0..100 {
            let listening = sh(&format!(
                "ip netns exec {} ss -Htln sport = :{port}",
                host.netns
            ));
            if !listening.trim().is_empty() {
                return child;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("iperf3 does not listen on {port} in {}", host.netns);
    }

    /// Runs `f` in a thread that has entered the host's network namespace.
    pub fn in_netns<T: Send + 'static>(host: &Host, f: impl FnOnce() -> T + Send + 'static) -> T {
        flowlens::netlab::spawn_in(&host.netns, "lab-netns", f)
            .expect("a thread in the host's namespace")
            .join()
            .expect("netns thread")
            .expect("entering the host's namespace")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The namespaces, links and bridge go with the NetLab.
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A running `flowlens agent`, its records gathered as they are printed.
/// Killed when dropped without `stop` (a failing test leaves none behind).
pub struct Agent {
    child: Child,
    stopped: bool,
    records: Arc<Mutex<Vec<serde_json::Value>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The threads reading its stdout (JSON lines: a bad one panics the
    /// thread) and stderr, joined when it ends so that a panic fails the
    /// test.
    readers: Vec<std::thread::JoinHandle<()>>,
}

pub struct AgentRun {
    pub records: Vec<FlowRecord>,
    pub raw: Vec<serde_json::Value>,
    pub stderr: String,
    pub stats: std::collections::HashMap<String, String>,
}

impl AgentRun {
    pub fn stat(&self, name: &str) -> u64 {
        self.stats
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("stat {name} missing: {}", self.stderr))
    }
}

pub fn flowlens() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowlens"))
}

impl Agent {
    /// Starts the agent with `args` (after `agent --output json --stats`) and
    /// waits until it has attached to each of `expect_attached`.
    pub fn start(args: &[&str], expect_attached: &[String]) -> Agent {
        let mut command = flowlens();
        command
            .args(["agent", "--output", "json", "--stats"])
            .args(args);
        Agent::spawn(command, expect_attached)
    }

    /// Starts the agent inside network namespace `netns` (a node of a
    /// lab of nodes) with `args` (after `agent --output json --stats`).
    pub fn start_in(netns: &str, args: &[&str], expect_attached: &[String]) -> Agent {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns, env!("CARGO_BIN_EXE_flowlens")])
            .args(["agent", "--output", "json", "--stats"])
            .args(args);
        Agent::spawn(command, expect_attached)
    }

    /// Starts `flowlens up` with `args` (after `up --stats`).
    pub fn start_up(args: &[&str], expect_attached: &[String]) -> Agent {
        let mut command = flowlens();
        command.args(["up", "--stats"]).args(args);
        Agent::spawn(command, expect_attached)
    }

    /// Starts the agent with only the capabilities `capsh --drop=DROP` leaves.
    pub fn start_without_capabilities(
        drop: &str,
        args: &[&str],
        expect_attached: &[String],
    ) -> Agent {
        let mut command = Command::new("capsh");
        command
            .arg(format!("--drop={drop}"))
            .arg("--")
            .arg("-c")
            .arg(format!(
                "exec {} agent --output json --stats {}",
                env!("CARGO_BIN_EXE_flowlens"),
                args.join(" ")
            ));
        Agent::spawn(command, expect_attached)
    }

    /// Runs `flowlens SUBCOMMAND args` as `user` (not root) holding only
    /// `ambient` (capsh names, comma-separated) as ambient capabilities.
    pub fn start_as(
        user: &str,
        ambient: &str,
        subcommand: &str,
        args: &[&str],
        expect_attached: &[String],
    ) -> Agent {
        let mut command = Command::new("capsh");
        command
            .arg(format!(
                "--caps={ambient}+eip cap_setpcap,cap_setuid,cap_setgid+ep"
            ))
            .arg("--keep=1")
            .arg(format!("--user={user}"))
            .arg(format!("--addamb={ambient}"))
            .arg("--")
            .arg("-c")
            .arg(format!(
                "exec {} {subcommand} {}",
                env!("CARGO_BIN_EXE_flowlens"),
                args.join(" ")
            ));
        Agent::spawn(command, expect_attached)
    }

    fn spawn(mut command: Command, expect_attached: &[String]) -> Agent {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting flowlens agent");
        let records = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = records.clone();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad JSON line {line}: {e}"));
                sink.lock().unwrap().push(v);
            }
        });
        let err = child.stderr.take().unwrap();
        let lines = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let agent = Agent {
            child,
            stopped: false,
            records,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        };
        for name in expect_attached {
            agent.wait_for_attach(name);
        }
        agent
    }

    /// The flow records printed so far (the process keeps running).
    /// The process id (to read its memory in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn records_so_far(&self) -> Vec<FlowRecord> {
        flow_records(&self.records.lock().unwrap())
    }

    pub fn wait_for_attach(&self, name: &str) {
        self.wait_for_log(&format!("attached interface={name}"));
    }

    /// Waits until a line of the agent's log ends with `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.ends_with(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "agent never logged `{needle}`: {}",
            self.stderr.lock().unwrap().join("\n")
        );
    }

    /// SIGTERM, wait for exit 0, and return everything it printed.
    pub fn stop(self) -> AgentRun {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal`, waits for exit 0, and returns everything it printed.
    pub fn stop_with(self, signal: i32) -> AgentRun {
        self.end(signal, true)
    }

    /// SIGKILL (a crash): what it printed until then.
    pub fn kill(self) -> AgentRun {
        self.end(libc::SIGKILL, false)
    }

    /// Starts `flowlens collector` with `args` and waits until its gRPC
    /// address `grpc` takes connections.
    pub fn start_collector(grpc: &str, args: &[&str]) -> Agent {
        Agent::start_collector_on(&["--grpc-listen", grpc], grpc, args)
    }

    /// Starts `flowlens collector --listen LISTEN` with `args` (flows from
    /// Kafka, no gRPC) and waits until its HTTP listener takes connections.
    pub fn start_kafka_collector(listen: &str, args: &[&str]) -> Agent {
        Agent::start_collector_on(&["--listen", listen], listen, args)
    }

    /// Starts `flowlens collector` with `first` then `args`, and waits until
    /// `address` takes connections (or the collector exits: a panic with
    /// what it printed).
    fn start_collector_on(first: &[&str], address: &str, args: &[&str]) -> Agent {
        let mut command = flowlens();
        command.arg("collector").args(first).args(args);
        let mut collector = Agent::spawn(command, &[]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(address).is_err() {
            if let Ok(Some(status)) = collector.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "the collector exited with {status}: {}",
                    collector.stderr.lock().unwrap().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "nothing listens on {address}");
            std::thread::sleep(Duration::from_millis(20));
        }
        collector
    }

    fn end(mut self, signal: i32, expect_success: bool) -> AgentRun {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let status = self.child.wait().expect("waiting for agent");
        self.stopped = true;
        // The readers reach end of file once the process is gone (a child
        // of its own could hold the pipes longer: 5 s at most).
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for reader in std::mem::take(&mut self.readers) {
            if reader.is_finished() {
                reader
                    .join()
                    .expect("an output reader failed: the process printed a line that is not JSON");
            }
        }
        let stderr = self.stderr.lock().unwrap().join("\n");
        assert!(
            status.success() || !expect_success,
            "agent exited with {status}: {stderr}"
        );
        let raw = self.records.lock().unwrap().clone();
        let records = flow_records(&raw);
        let stats = stderr
            .lines()
            .skip_while(|l| !l.starts_with("flowlens agent stats:"))
            .skip(1)
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let name = parts.next()?.to_string();
                Some((name, parts.next().unwrap_or_default().to_string()))
            })
            .collect();
        AgentRun {
            records,
            raw,
            stderr,
            stats,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The flow records among printed JSON records (plain, or flow logs of
/// `up`); conversation records are left out.
fn flow_records(printed: &[serde_json::Value]) -> Vec<FlowRecord> {
    printed
        .iter()
        .filter(|v| v.get("_RecordType").is_none_or(|t| t == "flowLog"))
        .map(|v| serde_json::from_value(v.clone()).expect("record shape"))
        .collect()
}

/// Waits until something listens on TCP `addr`.
pub fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback address with a port nobody uses now.
pub fn free_local_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `flowlens status --json` of the process listening on `listen`.
pub fn status_json(listen: &str) -> serde_json::Value {
    let out =
        stdout_of(flowlens().args(["status", "--json", "--server", &format!("http://{listen}")]));
    serde_json::from_slice(&out).expect("status JSON")
}

/// What a command that must succeed printed on stdout.
pub fn stdout_of(command: &mut Command) -> Vec<u8> {
    let out = command.output().expect("running a command");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Two hosts, dnsmasq serving DNS on the second, and TCP `port` of the
/// second dropped by nftables (counted, rule comment `deny-<port>`).
pub fn dns_lab(port: u16) -> (Lab, Host, Host, Dnsmasq) {
    let lab = Lab::new(2, false);
    let (client, server) = (lab.hosts[0].clone(), lab.hosts[1].clone());
    let dns = Dnsmasq::start(&server);
    nft(
        &server.netns,
        &format!(
            "table inet t {{\n chain input {{\n  type filter hook input priority 0;\n  tcp dport {port} counter drop comment \"deny-{port}\"\n }}\n}}\n"
        ),
    );
    (lab, client, server, dns)
}

/// Sum of (bytes, packets) over records.
pub fn totals<'a>(records: impl IntoIterator<Item = &'a FlowRecord>) -> (u64, u64) {
    records
        .into_iter()
        .fold((0, 0), |(b, p), r| (b + r.bytes, p + r.packets))
}

/// dnsmasq serving DNS on port 53 of a lab host, stopped when dropped:
/// authoritative for `.test` with `known.test` (any name under it) resolving
/// and NXDOMAIN for other `.test` names; no upstream, so other names are
/// REFUSED.
pub struct Dnsmasq {
    child: Child,
    log: std::path::PathBuf,
}

impl Dnsmasq {
    pub fn start(host: &Host) -> Dnsmasq {
        let log = std::env::temp_dir().join(format!(
            "flowlens-dnsmasq-{}-{}.log",
            std::process::id(),
            host.netns
        ));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.netns,
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
            ])
            .arg(format!("--listen-address={}", host.ipv4))
            .args([
                "--bind-interfaces",
                "--port=53",
                "--local=/test/",
                "--address=/known.test/198.18.0.77",
            ])
            .args(["--log-queries", "--pid-file="])
            .arg(format!("--log-facility={}", log.display()))
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)");
        for _ in 0..100 {
            if !sh(&format!(
                "ip netns exec {} ss -Hlun sport = :53",
                host.netns
            ))
            .trim()
            .is_empty()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Dnsmasq { child, log }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The packets stored for UDP from `src` to port `port`, and how many
/// records carry them.
pub fn stored_udp_packets(data_dir: &std::path::Path, src: &str, port: u16) -> (u64, usize) {
    stored_packets(
        data_dir,
        &format!("proto = udp and src.addr = {src} and dst.port = {port}"),
    )
}

/// The packets and records of the flows `filter` selects in the store of
/// `data_dir`.
pub fn stored_packets(data_dir: &std::path::Path, filter: &str) -> (u64, usize) {
    let store = flowlens_store::Store::open(flowlens_store::StoreOptions::new(data_dir)).unwrap();
    let filter = flowlens_query::Filter::parse(filter).unwrap();
    let page = store.records(&flowlens_store::RecordQuery {
        table: flowlens_store::Table::Flows,
        filter: Some(&filter),
        since_ms: 0,
        until_ms: i64::MAX,
        limit: 1_000_000,
        order: flowlens_store::Order::Asc,
        after: None,
    });
    let packets = page
        .records
        .iter()
        .map(|r| r["Packets"].as_u64().unwrap_or(0))
        .sum();
    (packets, page.records.len())
}

/// Sends `packets` UDP packets of one flow from `host` (source port
/// `from_port`) to `target:port`, packet i at i ms after the returned
/// start, on a thread of its own.
pub fn paced_udp_flow(
    host: &Host,
    from_port: u16,
    target: std::net::Ipv4Addr,
    port: u16,
    packets: u64,
) -> (Instant, std::thread::JoinHandle<()>) {
    let host = host.clone();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        Lab::in_netns(&host, move || {
            let socket = std::net::UdpSocket::bind(("0.0.0.0", from_port)).unwrap();
            for i in 0..packets {
                let due = start + Duration::from_millis(i);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                socket.send_to(&i.to_le_bytes(), (target, port)).unwrap();
            }
        })
    });
    (start, sender)
}

/// Sends `records` to the collector at `grpc` in one call (as an agent
/// would), and waits for its answer.
pub fn send_flows(grpc: &str, records: &[FlowRecord]) {
    use flowlens_wire::pbflow;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client =
            pbflow::collector_client::CollectorClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
        for chunk in records.chunks(20_000) {
            client
                .send(pbflow::Records {
                    entries: chunk.iter().map(flowlens_wire::convert::to_pb).collect(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    });
}
