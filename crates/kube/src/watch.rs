//! The watches: one per kind, each a list then a watch (kube-runtime's
//! watcher: paged lists, bookmarks, resumption from the last
//! resourceVersion, a re-list after 410 Gone, backoff on errors), applied to
//! the shared `Cluster` as they come.
//!
//! Labels are never lost in between: a re-list applies every object again
//! and only then treats the objects it did not list as deleted (released
//! into tombstones at that moment, for their late flows).

use crate::objects::{self, Kind};
use flowlens_pipeline::enrich::{Cluster, ClusterEvent};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

/// What the watches did, for `flowlens status` and /metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WatchStats {
    /// Objects applied (added, changed, listed).
    pub objects_applied: u64,
    pub objects_deleted: u64,
    /// Lists (the first, and each re-list after an expired watch).
    pub lists: u64,
    /// Errors of the API (each retried with backoff).
    pub api_errors: u64,
    pub last_api_error: String,
    /// Pods known now.
    pub pods: u64,
}

pub type SharedStats = Arc<Mutex<WatchStats>>;

/// Starts a watch of each kind enrichment reads; they run until the
/// runtime ends.
pub fn spawn(client: Client, cluster: Arc<RwLock<Cluster>>, stats: SharedStats) {
    let c = || (cluster.clone(), stats.clone());
    tokio::spawn(watch(
        Api::<Pod>::all(client.clone()),
        Kind::Pod,
        objects::pod,
        c(),
    ));
    tokio::spawn(watch(
        Api::<Service>::all(client.clone()),
        Kind::Service,
        objects::service,
        c(),
    ));
    tokio::spawn(watch(
        Api::<Node>::all(client.clone()),
        Kind::Node,
        objects::node,
        c(),
    ));
    tokio::spawn(watch(
        Api::<ReplicaSet>::all(client.clone()),
        Kind::ReplicaSet,
        objects::replica_set,
        c(),
    ));
    tokio::spawn(watch(Api::<Job>::all(client), Kind::Job, objects::job, c()));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The identity of a listed object: enough to say it is gone.
fn identity(meta: &ObjectMeta) -> (String, ObjectMeta) {
    let kept = ObjectMeta {
        uid: meta.uid.clone(),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        ..ObjectMeta::default()
    };
    (meta.uid.clone().unwrap_or_default(), kept)
}

async fn watch<K>(
    api: Api<K>,
    kind: Kind,
    to_event: fn(&K) -> ClusterEvent,
    (cluster, stats): (Arc<RwLock<Cluster>>, SharedStats),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let apply = |event: ClusterEvent| {
        if let Ok(mut c) = cluster.write() {
            c.apply(event, now_ms());
            if let Ok(mut s) = stats.lock() {
                s.pods = c.pods() as u64;
            }
        }
    };
    let count = |f: &dyn Fn(&mut WatchStats)| {
        if let Ok(mut s) = stats.lock() {
            f(&mut s);
        }
    };
    // The objects applied, by uid; during a list, those listed so far.
    let mut known: HashMap<String, ObjectMeta> = HashMap::new();
    let mut listed: Option<HashMap<String, ObjectMeta>> = None;
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => {
                listed = Some(HashMap::new());
                count(&|s| s.lists += 1);
            }
            Ok(watcher::Event::InitApply(object)) => {
                let (uid, meta) = identity(object.meta());
                apply(to_event(&object));
                listed.get_or_insert_default().insert(uid, meta);
                count(&|s| s.objects_applied += 1);
            }
            Ok(watcher::Event::InitDone) => {
                let fresh = listed.take().unwrap_or_default();
                for (uid, meta) in &known {
                    if !fresh.contains_key(uid) {
                        apply(objects::gone(kind, meta));
                        count(&|s| s.objects_deleted += 1);
                    }
                }
                known = fresh;
                tracing::info!(kind = kind.name(), objects = known.len(), "listed");
            }
            Ok(watcher::Event::Apply(object)) => {
                let (uid, meta) = identity(object.meta());
                apply(to_event(&object));
                known.insert(uid, meta);
                count(&|s| s.objects_applied += 1);
            }
            Ok(watcher::Event::Delete(object)) => {
                let (uid, meta) = identity(object.meta());
                apply(objects::gone(kind, &meta));
                known.remove(&uid);
                count(&|s| s.objects_deleted += 1);
            }
            Err(e) => {
                let text = format!("{}: {e}", kind.name());
                tracing::warn!("Kubernetes API: {text} (retrying with backoff)");
                count(&|s| {
                    s.api_errors += 1;
                    s.last_api_error.clone_from(&text);
                });
            }
        }
    }
}
