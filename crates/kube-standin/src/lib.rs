//! A stand-in Kubernetes API server for flowlens's tests, where no
//! kube-apiserver can run: the real list/watch protocol (resourceVersion,
//! chunked lists with `continue`, watch events, bookmarks, 410 Gone after a
//! compaction) over HTTPS, with a bearer token, and a kubeconfig a client
//! reads as it reads a cluster's.
//!
//! A test changes the objects through the handle (`apply`, `delete`) while
//! clients watch, and breaks the protocol on purpose: `break_watches`
//! aborts every open watch, `compact` makes older versions gone (watches
//! resuming from them get 410 and must re-list), `expire_watches` also
//! tells every open watch 410 Gone (as the API server does to a watcher its
//! cache can no longer serve), `fail_next` answers requests with errors. `stats` says what clients asked and were sent.

mod http;
pub mod objects;
pub mod store;
mod tls;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Store, TYPES};

/// How the stand-in behaves where the API leaves it to the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bookmarks on watches that asked for them, this often.
    pub bookmark_interval: Duration,
    /// Lists are served in pages of at most this many objects, whatever
    /// the client's limit (as a server may), so clients must follow
    /// `continue`.
    pub max_page: Option<usize>,
    /// Watches end (cleanly) after at most this long, whatever the
    /// client's `timeoutSeconds`: clients must resume them.
    pub max_watch: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            bookmark_interval: Duration::from_secs(1),
            max_page: None,
            max_watch: None,
        }
    }
}

/// What clients asked and were sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    /// Refused for a missing or wrong token.
    pub unauthorized: u64,
    /// Lists started (without `continue`).
    pub lists: u64,
    /// Pages served after the first, with `continue`.
    pub continued_pages: u64,
    pub watches: u64,
    /// ADDED, MODIFIED and DELETED events sent on watches.
    pub events_sent: u64,
    pub bookmarks: u64,
    /// 410s: watches from, and continue tokens of, compacted versions.
    pub gone: u64,
    /// Requests answered with an error by `fail_next`.
    pub failed: u64,
    /// Watches aborted by `break_watches`.
    pub broken: u64,
    /// Watches ended by their timeout.
    pub ended: u64,
}

/// Wakes the open watches: a new resourceVersion, a break, an expiry.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pulse {
    pub rv: u64,
    pub breaks: u64,
    pub expiries: u64,
}

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub pulse: tokio::sync::watch::Sender<Pulse>,
    pub options: Options,
    pub token: String,
    faults: AtomicU32,
    stats: Mutex<Stats>,
    /// Every object stored, each version (for schema validation).
    stored: Mutex<Vec<Arc<Value>>>,
}

impl Shared {
    pub fn count(&self, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut stats) = self.stats.lock() {
            f(&mut stats);
        }
    }

    /// True when this request is to fail (`fail_next`).
    pub fn take_fault(&self) -> bool {
        self.faults
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Runs a change of the store and wakes the watches.
    pub fn write<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut store);
        let rv = store.rv();
        drop(store);
        self.pulse.send_modify(|p| p.rv = rv);
        out
    }

    pub fn remember(&self, object: &Arc<Value>) {
        if let Ok(mut stored) = self.stored.lock() {
            stored.push(object.clone());
        }
    }
}

/// A running stand-in, on 127.0.0.1 and a port of its own; stopped when
/// dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    dir: PathBuf,
    kubeconfig: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    pub fn start(options: Options) -> Result<ApiServer> {
        let credentials = tls::credentials()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let token = format!(
            "standin-{:x}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos(),
            addr.port()
        );
        let dir = std::env::temp_dir().join(format!(
            "flowlens-standin-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_text(addr, &credentials.ca_pem, &token),
        )
        .with_context(|| format!("writing {}", kubeconfig.display()))?;

        let (pulse, _) = tokio::sync::watch::channel(Pulse::default());
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            pulse,
            options,
            token,
            faults: AtomicU32::new(0),
            stats: Mutex::default(),
            stored: Mutex::default(),
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel();
        let app = http::router(shared.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(credentials.server);
        let thread = std::thread::Builder::new()
            .name("kube-standin".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the stand-in's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("the stand-in's listener");
                    http::serve(listener, acceptor, app, stopped).await;
                });
            })?;
        Ok(ApiServer {
            shared,
            addr,
            dir,
            kubeconfig,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// A kubeconfig naming this server, its CA and a token.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates or replaces an object (`apiVersion`, `kind` and metadata
    /// say which); the stored object, with its resourceVersion.
    pub fn apply(&self, object: Value) -> Result<Value> {
        let stored = self
            .shared
            .write(|s| s.apply(object, false))
            .map_err(|e| anyhow!("{e:?}"))?;
        self.shared.remember(&stored);
        Ok(Value::clone(&stored))
    }

    /// Deletes the object of `kind` (`namespace` empty for cluster-scoped
    /// ones) named `name`.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> Result<()> {
        let ty = type_named(kind)?;
        self.shared
            .write(|s| s.delete(ty, namespace, name))
            .map_err(|e| anyhow!("{e:?}"))?;
        Ok(())
    }

    /// The object now, as a client would get it.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let ty = type_named(kind).ok()?;
        let store = self.shared.store.lock().ok()?;
        store.get(ty, namespace, name).map(|o| Value::clone(&o))
    }

    /// Forgets the history: every version older than now is gone.
    pub fn compact(&self) {
        self.shared.write(Store::compact);
    }

    /// Compacts, and tells every open watch 410 Gone: each client must
    /// list again (the watch cache no longer holds where it is).
    pub fn expire_watches(&self) {
        self.compact();
        self.shared.pulse.send_modify(|p| p.expiries += 1);
    }

    /// Aborts every open watch mid-stream (a connection broken).
    pub fn break_watches(&self) {
        self.shared.pulse.send_modify(|p| p.breaks += 1);
    }

    /// Answers the next `n` requests with 500 Internal Server Error.
    pub fn fail_next(&self, n: u32) {
        self.shared.faults.store(n, Ordering::SeqCst);
    }

    pub fn stats(&self) -> Stats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Every version of every object stored, in order.
    pub fn stored(&self) -> Vec<Value> {
        self.shared
            .stored
            .lock()
            .map(|s| s.iter().map(|o| Value::clone(o)).collect())
            .unwrap_or_default()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn type_named(kind: &str) -> Result<usize> {
    TYPES
        .iter()
        .position(|t| t.kind == kind)
        .ok_or_else(|| anyhow!("{kind}: not a kind the stand-in serves"))
}

fn kubeconfig_text(addr: SocketAddr, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster:
    server: https://{addr}
    certificate-authority-data: {ca}
users:
- name: flowlens
  user:
    token: {token}
contexts:
- name: standin
  context:
    cluster: standin
    user: flowlens
current-context: standin
"
    )
}

/// The Kubernetes release whose schemas objects and manifests are checked
/// against.
pub const KUBERNETES_VERSION: &str = "1.37.0";

/// `kubernetes-validate` (PyPI): `FLOWLENS_KUBERNETES_VALIDATE` (set by
/// scripts/test, which installs it), else the one on PATH.
pub fn kubernetes_validate() -> Command {
    let program = std::env::var_os("FLOWLENS_KUBERNETES_VALIDATE")
        .unwrap_or_else(|| "kubernetes-validate".into());
    let mut command = Command::new(program);
    command.args(["--strict", "--kubernetes-version", KUBERNETES_VERSION]);
    command
}

/// Checks files of manifests against the real schemas, strictly (no field
/// the schema does not have); the validator's report when one fails.
pub fn validate_files(files: &[PathBuf]) -> Result<()> {
    let out = kubernetes_validate().args(files).output().context(
        "running kubernetes-validate (scripts/test installs it; pip install kubernetes-validate)",
    )?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "kubernetes-validate: {report}");
    Ok(())
}

/// Checks objects (as the stand-in serves them) against the real schemas.
pub fn validate_objects(objects: &[Value]) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "flowlens-validate-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let file = dir.join(format!("{i:04}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(object)?)?;
        files.push(file);
    }
    let checked = validate_files(&files);
    let _ = std::fs::remove_dir_all(&dir);
    checked
}
