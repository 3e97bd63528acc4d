//! A real Prometheus (Debian's package) for the tests that scrape flowlens.

use super::{free_local_addr, wait_for_port};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Prometheus with its own config and storage, scraping `target` every
/// second; stopped and its storage removed when dropped.
pub struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    addr: String,
}

impl Prometheus {
    pub fn start(target: &str) -> Prometheus {
        Prometheus::with_jobs(&format!(
            "  - job_name: flowlens\n    static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    /// Prometheus with these `scrape_configs` entries (YAML, indented as
    /// list items under scrape_configs).
    pub fn with_jobs(jobs: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("flowlens-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{jobs}"),
        )
        .unwrap();
        let addr = free_local_addr();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (apt-get install prometheus)");
        wait_for_port(&addr);
        Prometheus { child, dir, addr }
    }

    /// The value of an instant PromQL query (None: no series).
    pub fn query(&self, promql: &str) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-s", "-G", &format!("http://{}/api/v1/query", self.addr)])
            .arg("--data-urlencode")
            .arg(format!("query={promql}"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(|s| s.parse().unwrap())
    }

    /// Polls `promql` until it returns `want` (scrapes are once a second).
    pub fn wait_for(&self, promql: &str, want: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.query(promql);
            if got.is_some_and(|g| (g - want).abs() <= want.abs() * 1e-9)
                || Instant::now() > deadline
            {
                return got;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
