//! The FlowCollector resource (flows.netobserv.io/v1beta2, cluster-scoped;
//! deploy/kubernetes defines it): a watch of the one the collector applies,
//! and the patch of its status conditions.

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::Value;

fn resource() -> ApiResource {
    ApiResource {
        group: "flows.netobserv.io".into(),
        version: "v1beta2".into(),
        api_version: "flows.netobserv.io/v1beta2".into(),
        kind: "FlowCollector".into(),
        plural: "flowcollectors".into(),
    }
}

fn api(client: Client) -> Api<DynamicObject> {
    Api::all_with(client, &resource())
}

/// What the watch saw of the resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Created, changed or listed: the whole object.
    Object(Value),
    /// Deleted (or absent from a list).
    Gone,
    /// The API answered with an error (retried with backoff).
    Error(String),
}

/// Watches the FlowCollector `name`, handing what it sees to `seen` until
/// `seen` closes.
pub async fn watch(client: Client, name: String, seen: tokio::sync::mpsc::Sender<Seen>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api(client), config).default_backoff().boxed();
    let mut listed = false;
    while let Some(event) = events.next().await {
        let what = match event {
            Ok(watcher::Event::Init) => {
                listed = false;
                continue;
            }
            Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                listed = true;
                Seen::Object(serde_json::to_value(&o).unwrap_or_default())
            }
            // A list without it: it does not exist (or no longer).
            Ok(watcher::Event::InitDone) if !listed => Seen::Gone,
            Ok(watcher::Event::InitDone) => continue,
            Ok(watcher::Event::Delete(_)) => Seen::Gone,
            Err(e) => Seen::Error(e.to_string()),
        };
        if seen.send(what).await.is_err() {
            return;
        }
    }
}

/// Now, as the API writes a time (RFC 3339, whole seconds): a condition's
/// `lastTransitionTime`.
pub fn api_time_now() -> String {
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    serde_json::to_value(now)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Writes `status` (observedGeneration, conditions) into the resource's
/// status subresource.
pub async fn set_status(client: Client, name: &str, status: Value) -> anyhow::Result<()> {
    let patch = serde_json::json!({ "status": status });
    api(client)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The FlowCollector `name` now (None when there is none).
pub async fn get(client: Client, name: &str) -> anyhow::Result<Option<Value>> {
    let object = api(client).get_opt(name).await?;
    Ok(object.map(|o| serde_json::to_value(&o).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_the_apis_whole_seconds() {
        let t = super::api_time_now();
        assert_eq!(t.len(), "2026-12-04T20:00:00Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
        assert!(!t.contains('.'), "{t}");
    }
}
