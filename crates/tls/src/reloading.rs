//! A configuration built from files and rebuilt when they change: each use
//! looks (at most once a second) whether a file's modification time, size
//! or inode moved, and if so builds the configuration again. A build that
//! fails — a key that does not match its new certificate because only one
//! of the two was replaced yet — keeps the previous configuration, is
//! logged and counted, and is tried again when the files move again.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often the files are looked at, at most.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What a file looks like from outside: changes when it is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

fn stamp(path: &PathBuf) -> Stamp {
    // metadata() follows symbolic links: a secret volume's `..data` swap
    // shows as a change of the file behind the link.
    Stamp(
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino()))),
    )
}

struct State<C> {
    current: Arc<C>,
    /// The files' stamps when they were last built from (or tried).
    stamps: Vec<Stamp>,
    looked: Instant,
}

/// Counters of a reloading configuration.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStats {
    /// Rebuilt from changed files.
    pub reloads: u64,
    /// Changed files that did not build (the previous configuration kept).
    pub reload_errors: u64,
}

pub struct Reloading<C> {
    files: Vec<PathBuf>,
    build: Box<dyn Fn() -> Result<C, String> + Send + Sync>,
    state: Mutex<State<C>>,
    stats: Mutex<ReloadStats>,
    what: &'static str,
}

impl<C> Reloading<C> {
    /// Builds the configuration now (an error is the caller's to report);
    /// `what` names it in logs.
    pub fn new(
        what: &'static str,
        files: Vec<PathBuf>,
        build: impl Fn() -> Result<C, String> + Send + Sync + 'static,
    ) -> Result<Reloading<C>, String> {
        let stamps = files.iter().map(stamp).collect();
        let current = Arc::new(build()?);
        Ok(Reloading {
            files,
            build: Box::new(build),
            state: Mutex::new(State {
                current,
                stamps,
                looked: Instant::now(),
            }),
            stats: Mutex::default(),
            what,
        })
    }

    /// The configuration for a new connection: rebuilt first if its files
    /// changed.
    pub fn current(&self) -> Arc<C> {
        // Nothing panics while holding the lock; a poisoned one is as good.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.looked.elapsed() >= LOOK_EVERY {
            state.looked = Instant::now();
            let stamps: Vec<Stamp> = self.files.iter().map(stamp).collect();
            if stamps != state.stamps {
                state.stamps = stamps;
                self.rebuild(&mut state);
            }
        }
        state.current.clone()
    }

    fn rebuild(&self, state: &mut State<C>) {
        match (self.build)() {
            Ok(config) => {
                state.current = Arc::new(config);
                self.count(|s| s.reloads += 1);
                tracing::info!("{}: re-read its changed files", self.what);
            }
            Err(e) => {
                self.count(|s| s.reload_errors += 1);
                tracing::warn!(
                    "{}: its files changed but cannot be used ({e}); the previous ones stay in use",
                    self.what
                );
            }
        }
    }

    fn count(&self, f: impl FnOnce(&mut ReloadStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    pub fn stats(&self) -> ReloadStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
