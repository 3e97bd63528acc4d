//! The watches against the stand-in API server (HTTPS, a kubeconfig, the
//! real list/watch protocol): chunked lists, owners to the top workload,
//! address reuse, broken and expired watches, and API errors, each checked
//! by the labels the cluster gives exact addresses.

use flowlens_kube::Source;
use flowlens_kube::watch::{self, SharedStats, WatchStats};
use flowlens_kube_standin::objects::{PodObject, job, node, replica_set, service};
use flowlens_kube_standin::{ApiServer, Options};
use flowlens_pipeline::enrich::Cluster;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A stand-in and flowlens's watches of it.
struct Watched {
    server: ApiServer,
    cluster: Arc<RwLock<Cluster>>,
    stats: SharedStats,
    _runtime: tokio::runtime::Runtime,
}

impl Watched {
    fn start(options: Options, setup: impl FnOnce(&ApiServer)) -> Watched {
        let server = ApiServer::start(options).expect("the stand-in");
        setup(&server);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let source = Source::File(server.kubeconfig().to_path_buf());
        let client = runtime
            .block_on(flowlens_kube::client(&source))
            .expect("a client of the kubeconfig");
        let cluster = Arc::new(RwLock::new(Cluster::new(60_000)));
        let stats = SharedStats::default();
        let _entered = runtime.enter();
        watch::spawn(client, cluster.clone(), stats.clone());
        drop(_entered);
        Watched {
            server,
            cluster,
            stats,
            _runtime: runtime,
        }
    }

    /// The name, namespace, kind, owner and owner kind of `ip` at `t_ms`.
    fn labels(&self, ip: &str, t_ms: i64) -> Option<[String; 5]> {
        let ip: IpAddr = ip.parse().unwrap();
        let cluster = self.cluster.read().unwrap();
        let labels = cluster.labels_at(ip, t_ms)?;
        let text = |l: &Option<flowlens_model::Label>| l.as_deref().unwrap_or("").to_string();
        Some([
            text(&labels.name),
            text(&labels.namespace),
            text(&labels.kind),
            text(&labels.owner_name),
            text(&labels.owner_type),
        ])
    }

    fn name(&self, ip: &str, t_ms: i64) -> Option<String> {
        self.labels(ip, t_ms).map(|[name, ..]| name)
    }

    fn stats(&self) -> WatchStats {
        self.stats.lock().unwrap().clone()
    }

    /// Waits until `ip` is labelled `name` now; how long it took.
    fn wait_for_name(&self, ip: &str, name: &str) -> Duration {
        let start = Instant::now();
        while self.name(ip, now_ms()).as_deref() != Some(name) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{ip} not labelled {name} after 10 s: {:?}; watches {:?}, stand-in {:?}",
                self.labels(ip, now_ms()),
                self.stats(),
                self.server.stats()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }
}

fn strings(values: [&str; 5]) -> [String; 5] {
    values.map(String::from)
}

#[test]
fn owners_resolve_to_the_top_workload_across_chunked_lists() {
    let options = Options {
        max_page: Some(2),
        ..Options::default()
    };
    let w = Watched::start(options, |s| {
        s.apply(node("node-a", "198.18.0.10", Some("zone-a")))
            .unwrap();
        s.apply(replica_set("shop", "web-7d9f", "web")).unwrap();
        s.apply(job("ops", "backup-29011", Some("backup"))).unwrap();
        s.apply(service("shop", "web", "198.19.0.80")).unwrap();
        let pods = [
            PodObject::new("shop", "web-7d9f-a")
                .owned_by("ReplicaSet", "web-7d9f")
                .ips(&["198.18.4.2", "fd00:198:18::4:2"]),
            PodObject::new("ops", "backup-29011-b")
                .owned_by("Job", "backup-29011")
                .ips(&["198.18.4.3"]),
            PodObject::new("shop", "db-0")
                .owned_by("StatefulSet", "db")
                .ips(&["198.18.4.4"]),
            PodObject::new("kube-system", "agent-x")
                .owned_by("DaemonSet", "agent")
                .ips(&["198.18.4.5"]),
            PodObject::new("shop", "debug").ips(&["198.18.4.6"]),
            PodObject::new("kube-system", "proxy-x")
                .owned_by("DaemonSet", "proxy")
                .host_network()
                .ips(&["198.18.0.10"]),
        ];
        for pod in pods {
            s.apply(pod.on("node-a", "198.18.0.10").object()).unwrap();
        }
    });
    w.wait_for_name("198.18.4.6", "debug");
    w.wait_for_name("198.18.4.2", "web-7d9f-a");
    let t = now_ms();
    let expect = [
        (
            "198.18.4.2",
            ["web-7d9f-a", "shop", "Pod", "web", "Deployment"],
        ),
        (
            "fd00:198:18::4:2",
            ["web-7d9f-a", "shop", "Pod", "web", "Deployment"],
        ),
        (
            "198.18.4.3",
            ["backup-29011-b", "ops", "Pod", "backup", "CronJob"],
        ),
        ("198.18.4.4", ["db-0", "shop", "Pod", "db", "StatefulSet"]),
        (
            "198.18.4.5",
            ["agent-x", "kube-system", "Pod", "agent", "DaemonSet"],
        ),
        ("198.18.4.6", ["debug", "shop", "Pod", "debug", "Pod"]),
        ("198.19.0.80", ["web", "shop", "Service", "web", "Service"]),
        // The host-network pod's address is its node's.
        ("198.18.0.10", ["node-a", "", "Node", "node-a", "Node"]),
    ];
    for (ip, labels) in expect {
        assert_eq!(w.labels(ip, t), Some(strings(labels)), "{ip}");
    }
    let served = w.server.stats();
    assert!(
        served.continued_pages >= 2,
        "six pods in pages of two: {served:?}"
    );
    assert_eq!(w.stats().pods, 6);
    flowlens_kube_standin::validate_objects(&w.server.stored())
        .expect("the stand-in's objects pass the real schemas");
}

#[test]
fn a_reused_address_is_never_the_previous_pods() {
    let w = Watched::start(Options::default(), |s| {
        s.apply(PodObject::new("shop", "old").ips(&["198.18.5.2"]).object())
            .unwrap();
    });
    w.wait_for_name("198.18.5.2", "old");
    let old_seen = now_ms();
    w.server.delete("Pod", "shop", "old").unwrap();
    // The API's times are whole seconds: the successor is created in a
    // later second, as a real one is (scheduling, sandbox, CNI).
    std::thread::sleep(Duration::from_millis(1_100));
    w.server
        .apply(PodObject::new("shop", "new").ips(&["198.18.5.2"]).object())
        .unwrap();
    let took = w.wait_for_name("198.18.5.2", "new");
    assert!(took < Duration::from_secs(2), "labelled after {took:?}");
    // A late flow of the old pod keeps its name (a tombstone).
    assert_eq!(w.name("198.18.5.2", old_seen).as_deref(), Some("old"));
    assert_eq!(w.stats().objects_deleted, 1);
}

#[test]
fn a_broken_then_expired_watch_relists_without_losing_labels() {
    let options = Options {
        max_page: Some(1),
        ..Options::default()
    };
    let w = Watched::start(options, |s| {
        for (name, ip) in [("stays", "198.18.6.2"), ("goes", "198.18.6.3")] {
            s.apply(PodObject::new("shop", name).ips(&[ip]).object())
                .unwrap();
        }
    });
    // Both listed (a list is in name order, a page each: "goes" first).
    w.wait_for_name("198.18.6.3", "goes");
    w.wait_for_name("198.18.6.2", "stays");
    let lists_before = w.stats().lists;

    // Sample the pod that stays all through the break: never unlabelled.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (cluster, stop) = (w.cluster.clone(), stop.clone());
        std::thread::spawn(move || {
            let ip: IpAddr = "198.18.6.2".parse().unwrap();
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let labels = cluster.read().unwrap().labels_at(ip, now_ms()).cloned();
                let name = labels
                    .as_ref()
                    .and_then(|l| l.name.as_deref().map(str::to_string));
                assert_eq!(name.as_deref(), Some("stays"), "sample {samples}");
                samples += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        })
    };
    // The connection breaks; while the watch is away the pod goes and a
    // new one comes; then the history is compacted and every watch told
    // 410 Gone: the watcher must list again.
    let before_break = now_ms();
    w.server.break_watches();
    w.server.delete("Pod", "shop", "goes").unwrap();
    w.server
        .apply(PodObject::new("shop", "came").ips(&["198.18.6.4"]).object())
        .unwrap();
    w.server.expire_watches();
    w.wait_for_name("198.18.6.4", "came");
    let start = Instant::now();
    while w.stats().objects_deleted < 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", w.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("the pod that stays kept its labels");
    assert!(samples > 10, "{samples} samples");

    let served = w.server.stats();
    assert!(served.broken >= 1 && served.gone >= 1, "{served:?}");
    assert!(w.stats().lists > lists_before, "re-listed: {:?}", w.stats());
    // The pod deleted while the watch was away is a tombstone, released
    // when its delete or the re-list was seen: named for flows until then,
    // and not long after.
    assert_eq!(w.name("198.18.6.3", before_break).as_deref(), Some("goes"));
    assert_eq!(w.name("198.18.6.3", now_ms() + 10_000), None);
    assert_eq!(w.stats().pods, 2);
}

#[test]
fn watches_that_end_resume_and_bookmarks_keep_them_current() {
    let options = Options {
        max_watch: Some(Duration::from_millis(700)),
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let w = Watched::start(options, |s| {
        s.apply(PodObject::new("shop", "a").ips(&["198.18.7.2"]).object())
            .unwrap();
    });
    w.wait_for_name("198.18.7.2", "a");
    std::thread::sleep(Duration::from_millis(1_600));
    for i in 0..3 {
        let name = format!("p{i}");
        let ip = format!("198.18.7.{}", 10 + i);
        w.server
            .apply(PodObject::new("shop", &name).ips(&[&ip]).object())
            .unwrap();
        let took = w.wait_for_name(&ip, &name);
        assert!(took < Duration::from_secs(2), "{name} after {took:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let served = w.server.stats();
    assert!(served.ended >= 5 && served.bookmarks >= 3, "{served:?}");
    // Resumed from their last version, never listed again.
    assert_eq!(w.stats().lists, 5, "one list per kind: {:?}", w.stats());
    assert_eq!(served.gone, 0);
}

#[test]
fn api_errors_are_counted_and_retried() {
    let w = Watched::start(Options::default(), |s| {
        s.apply(PodObject::new("shop", "a").ips(&["198.18.8.2"]).object())
            .unwrap();
        // The first lists fail: the watcher backs off and tries again.
        s.fail_next(4);
    });
    w.wait_for_name("198.18.8.2", "a");
    let stats = w.stats();
    assert_eq!(stats.api_errors, 4, "{stats:?}");
    assert!(
        stats.last_api_error.contains("500") || stats.last_api_error.contains("InternalError"),
        "{stats:?}"
    );
    assert_eq!(w.server.stats().failed, 4);
}
