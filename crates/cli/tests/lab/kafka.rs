//! A real Kafka-protocol broker for the tests: tansu (from crates.io;
//! scripts/test installs it and names it in FLOWLENS_TANSU), storing in
//! SQLite so that a restart keeps what it acknowledged, read by an
//! independent consumer (kafka-python, from PyPI: peers/kafka_read.py).

use super::exports::wait_until;
use super::free_local_addr;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn tool(var: &str, what: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var}: {what} (scripts/test installs it)"))
}

/// A tansu broker on a free port, its data in `dir`.
pub struct Broker {
    child: Child,
    pub address: String,
    dir: PathBuf,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        Broker::start_at(dir, free_local_addr())
    }

    /// A tansu broker on `address`, its data in `dir` (kept from an
    /// earlier broker there).
    pub fn start_at(dir: &Path, address: String) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let url = format!("tcp://{address}");
        let child = Command::new(tool("FLOWLENS_TANSU", "tansu from crates.io"))
            .current_dir(dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu");
        wait_until("tansu listens", || {
            std::net::TcpStream::connect(&address).is_ok()
        });
        Broker {
            child,
            address,
            dir: dir.to_path_buf(),
        }
    }

    /// Kills the broker (SIGKILL: what it acknowledged is in SQLite, the
    /// rest is lost) and starts another on its address and data. Not
    /// SIGTERM: while tansu 0.6 shuts down it answers produce requests
    /// with UNKNOWN_SERVER_ERROR, which producers do not retry.
    pub fn restart(mut self) -> Broker {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (dir, address) = (self.dir.clone(), self.address.clone());
        drop(self);
        Broker::start_at(&dir, address)
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let out = Command::new(tool("FLOWLENS_TANSU", "tansu from crates.io"))
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.address)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu topic create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every message of `topics`, read by kafka-python.
    pub fn read(&self, topics: &[&str]) -> Vec<Value> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/kafka_read.py");
        let out = Command::new(tool("FLOWLENS_PEERS_PYTHON", "a Python with kafka-python"))
            .arg(script)
            .arg(&self.address)
            .args(topics)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kafka_read.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
