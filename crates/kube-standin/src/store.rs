//! The stand-in's objects and their history, kept as the API server's
//! storage (etcd) keeps them: every version of every object since the last
//! compaction, under one resourceVersion counter, and the change events in
//! order. A chunked list is served page after page at the resourceVersion
//! of its first page, and a watch resumes from any version not compacted;
//! older ones are gone (410).

use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// A kind of object the stand-in serves.
#[derive(Debug)]
pub struct ResourceType {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

/// What the stand-in serves: the kinds flowlens reads.
pub const TYPES: &[ResourceType] = &[
    ResourceType {
        api_version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
    },
    ResourceType {
        api_version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
    },
    ResourceType {
        api_version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
    },
    ResourceType {
        api_version: "apps/v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        namespaced: true,
    },
    ResourceType {
        api_version: "batch/v1",
        kind: "Job",
        plural: "jobs",
        namespaced: true,
    },
    ResourceType {
        api_version: "flows.netobserv.io/v1beta2",
        kind: "FlowCollector",
        plural: "flowcollectors",
        namespaced: false,
    },
];

/// The type (index into `TYPES`) of `apiVersion` and `kind`.
pub fn type_of_kind(api_version: &str, kind: &str) -> Option<usize> {
    TYPES
        .iter()
        .position(|t| t.api_version == api_version && t.kind == kind)
}

/// The type served under `apiVersion`'s path with `plural`.
pub fn type_of_plural(api_version: &str, plural: &str) -> Option<usize> {
    TYPES
        .iter()
        .position(|t| t.api_version == api_version && t.plural == plural)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    /// The watch event's `type`.
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// One change, at its resourceVersion.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub ty: usize,
    pub namespace: String,
    pub name: String,
    pub change: Change,
    pub object: Arc<Value>,
}

/// Which objects of a type a request means.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// A namespaced path (`/namespaces/NS/...`) or `metadata.namespace=`.
    pub namespace: Option<String>,
    /// `metadata.name=` of a field selector.
    pub name: Option<String>,
}

impl Selection {
    fn matches(&self, namespace: &str, name: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.name.as_deref().is_none_or(|n| n == name)
    }
}

/// Why a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// 410: the version asked for is compacted.
    Gone(String),
    /// 404.
    NotFound(String),
    /// 409: created twice.
    AlreadyExists(String),
    /// 400 / 422: what is wrong with the request or object.
    Invalid(String),
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// The resourceVersion the whole list is served at.
    pub rv: u64,
    pub items: Vec<Arc<Value>>,
    /// Where the next page starts (None: this was the last).
    pub continue_token: Option<String>,
    /// Objects after this page.
    pub remaining: usize,
}

type Key = (usize, String, String);

#[derive(Debug)]
struct Version {
    rv: u64,
    /// None: deleted at `rv`.
    object: Option<Arc<Value>>,
}

#[derive(Debug)]
pub struct Store {
    rv: u64,
    /// Versions and events at or below this are forgotten.
    compacted: u64,
    versions: BTreeMap<Key, Vec<Version>>,
    events: VecDeque<Event>,
    next_uid: u64,
}

impl Default for Store {
    fn default() -> Store {
        // Not 0 or 1: a client must not read meaning into small numbers.
        Store {
            rv: 7_000,
            compacted: 7_000,
            versions: BTreeMap::new(),
            events: VecDeque::new(),
            next_uid: 1,
        }
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

impl Store {
    /// The latest resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Creates or replaces `object` (its `apiVersion`, `kind`, name and
    /// namespace say which); the stored object, with its new
    /// resourceVersion, and a uid and creationTimestamp if it had none
    /// (an update keeps the first ones). `create` refuses an existing one.
    pub fn apply(&mut self, mut object: Value, create: bool) -> Result<Arc<Value>, StoreError> {
        let (ty, namespace, name) = self.key_of(&object)?;
        let key = (ty, namespace.clone(), name.clone());
        let current = self.current(&key).cloned();
        if create && current.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "{} {namespace}/{name} already exists",
                TYPES[ty].kind
            )));
        }
        self.rv += 1;
        let meta = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| StoreError::Invalid("metadata: missing".into()))?;
        let kept = |field: &str| {
            current
                .as_ref()
                .and_then(|c| c["metadata"].get(field).cloned())
        };
        let uid = kept("uid").unwrap_or_else(|| {
            let uid = format!("5a7e1d00-0000-4000-8000-{:012x}", self.next_uid);
            self.next_uid += 1;
            json!(uid)
        });
        meta.entry("uid").or_insert(uid);
        let created = kept("creationTimestamp").unwrap_or_else(|| json!(now_rfc3339()));
        meta.entry("creationTimestamp").or_insert(created);
        // As the API server: the generation counts changes of the spec
        // (or of the whole object but its metadata and status).
        let spec = |o: &Value| {
            let mut o = o.clone();
            if let Some(fields) = o.as_object_mut() {
                fields.remove("metadata");
                fields.remove("status");
            }
            o
        };
        let generation = match &current {
            None => 1,
            Some(c) => {
                let was = c["metadata"]["generation"].as_u64().unwrap_or(1);
                was + u64::from(spec(c) != spec(&object))
            }
        };
        let meta = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| StoreError::Invalid("metadata: missing".into()))?;
        meta.insert("generation".into(), json!(generation));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        let object = Arc::new(object);
        let change = if current.is_some() {
            Change::Modified
        } else {
            Change::Added
        };
        self.record(key, Some(object.clone()), change, object.clone());
        Ok(object)
    }

    /// Deletes an object; the object as it was, at the delete's
    /// resourceVersion (what a watch's DELETED event carries).
    pub fn delete(
        &mut self,
        ty: usize,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, StoreError> {
        let key = (ty, namespace.to_string(), name.to_string());
        let mut last = Value::clone(self.current(&key).ok_or_else(|| {
            StoreError::NotFound(format!("{} {namespace}/{name} not found", TYPES[ty].kind))
        })?);
        self.rv += 1;
        last["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let last = Arc::new(last);
        self.record(key, None, Change::Deleted, last.clone());
        Ok(last)
    }

    fn record(&mut self, key: Key, object: Option<Arc<Value>>, change: Change, event: Arc<Value>) {
        let (ty, namespace, name) = key.clone();
        self.versions.entry(key).or_default().push(Version {
            rv: self.rv,
            object,
        });
        self.events.push_back(Event {
            rv: self.rv,
            ty,
            namespace,
            name,
            change,
            object: event,
        });
    }

    fn key_of(&self, object: &Value) -> Result<Key, StoreError> {
        let api_version = text(object, "/apiVersion")
            .ok_or_else(|| StoreError::Invalid("apiVersion: missing".into()))?;
        let kind =
            text(object, "/kind").ok_or_else(|| StoreError::Invalid("kind: missing".into()))?;
        let ty = type_of_kind(api_version, kind).ok_or_else(|| {
            StoreError::Invalid(format!(
                "{api_version} {kind}: not a kind this server serves"
            ))
        })?;
        let name = text(object, "/metadata/name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| StoreError::Invalid("metadata.name: missing".into()))?;
        let namespace = text(object, "/metadata/namespace").unwrap_or("");
        match (TYPES[ty].namespaced, namespace.is_empty()) {
            (true, true) => Err(StoreError::Invalid(format!(
                "metadata.namespace: missing on namespaced {kind} {name}"
            ))),
            (false, false) => Err(StoreError::Invalid(format!(
                "metadata.namespace: {kind} {name} is cluster-scoped"
            ))),
            _ => Ok((ty, namespace.to_string(), name.to_string())),
        }
    }

    fn current(&self, key: &Key) -> Option<&Arc<Value>> {
        self.versions.get(key)?.last()?.object.as_ref()
    }

    /// The object now.
    pub fn get(&self, ty: usize, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.current(&(ty, namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Up to `limit` objects of `ty` that `selection` means, at the
    /// resourceVersion of the list, after where `continue_token` says the
    /// previous page ended (a new list at the latest resourceVersion
    /// without one).
    pub fn list(
        &self,
        ty: usize,
        selection: &Selection,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Page, StoreError> {
        let (rv, after) = match continue_token {
            Some(token) => {
                let (rv, after) = parse_continue(token)?;
                if rv < self.compacted {
                    return Err(StoreError::Gone(format!(
                        "The provided continue parameter is too old to display a consistent list \
                         result (resourceVersion {rv} is compacted, the oldest is {})",
                        self.compacted
                    )));
                }
                (rv, Some(after))
            }
            None => (self.rv, None),
        };
        let start = (ty, String::new(), String::new());
        let mut matching = self
            .versions
            .range(start..)
            .take_while(|((t, _, _), _)| *t == ty)
            .filter(|((_, ns, name), _)| {
                after
                    .as_ref()
                    .is_none_or(|(a_ns, a_name)| (ns, name) > (a_ns, a_name))
            })
            .filter(|((_, ns, name), _)| selection.matches(ns, name))
            .filter_map(|((_, ns, name), versions)| {
                let at = versions.iter().rev().find(|v| v.rv <= rv)?;
                Some((ns, name, at.object.clone()?))
            });
        let limit = limit.unwrap_or(usize::MAX).max(1);
        let mut items = Vec::new();
        let mut last = None;
        for (ns, name, object) in matching.by_ref().take(limit) {
            items.push(object);
            last = Some((ns.clone(), name.clone()));
        }
        let remaining = matching.count();
        let continue_token = match last {
            Some((ns, name)) if remaining > 0 => Some(make_continue(rv, &ns, &name)),
            _ => None,
        };
        Ok(Page {
            rv,
            items,
            continue_token,
            remaining,
        })
    }

    /// The events of `ty` that `selection` means after `rv`; gone when
    /// `rv` is compacted.
    pub fn events_after(
        &self,
        ty: usize,
        selection: &Selection,
        rv: u64,
    ) -> Result<Vec<Event>, StoreError> {
        if rv < self.compacted {
            return Err(StoreError::Gone(format!(
                "too old resource version: {rv} ({})",
                self.compacted
            )));
        }
        let first = self.events.partition_point(|e| e.rv <= rv);
        Ok(self
            .events
            .range(first..)
            .filter(|e| e.ty == ty && selection.matches(&e.namespace, &e.name))
            .cloned()
            .collect())
    }

    /// Forgets every version but the latest, and every event: watches from
    /// before now and continue tokens of lists before now are gone.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.events.clear();
        self.versions.retain(|_, versions| {
            let latest = versions.pop();
            versions.clear();
            versions.extend(latest.filter(|v| v.object.is_some()));
            !versions.is_empty()
        });
    }
}

/// Continue tokens are opaque to clients; this one is the list's
/// resourceVersion and the last key served, hex-encoded.
fn make_continue(rv: u64, namespace: &str, name: &str) -> String {
    let raw = format!("{rv}/{namespace}/{name}");
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn parse_continue(token: &str) -> Result<(u64, (String, String)), StoreError> {
    let bad = || StoreError::Invalid(format!("continue: {token:?} is not a continue token"));
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let raw = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, '/');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let namespace = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, (namespace, name)))
}

/// Now as the API writes times: RFC 3339, whole seconds, UTC.
fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "shop"},
               "status": {"podIP": ip}})
    }

    #[test]
    fn a_chunked_list_is_served_at_its_first_pages_version() {
        let mut store = Store::default();
        for i in 0..5 {
            store
                .apply(pod(&format!("p{i}"), "198.18.0.1"), true)
                .unwrap();
        }
        let all = Selection::default();
        let first = store.list(0, &all, Some(2), None).unwrap();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.remaining, 3);
        // Changes after the first page are not in the later pages.
        store.delete(0, "shop", "p3").unwrap();
        store.apply(pod("p9", "198.18.0.9"), true).unwrap();
        let token = first.continue_token.unwrap();
        let second = store.list(0, &all, Some(2), Some(&token)).unwrap();
        let third = store
            .list(0, &all, Some(2), second.continue_token.as_deref())
            .unwrap();
        let names: Vec<_> = [first.items, second.items, third.items]
            .concat()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
        assert!(third.continue_token.is_none());
        assert_eq!(first.rv, third.rv);
    }

    #[test]
    fn compaction_makes_old_versions_gone() {
        let mut store = Store::default();
        store.apply(pod("a", "198.18.0.1"), true).unwrap();
        store.apply(pod("b", "198.18.0.2"), true).unwrap();
        let page = store.list(0, &Selection::default(), Some(1), None).unwrap();
        let watched_from = page.rv;
        store.apply(pod("c", "198.18.0.3"), true).unwrap();
        store.compact();
        let token = page.continue_token.unwrap();
        assert!(matches!(
            store.list(0, &Selection::default(), Some(1), Some(&token)),
            Err(StoreError::Gone(_))
        ));
        assert!(
            store
                .events_after(0, &Selection::default(), watched_from)
                .is_err()
        );
        // From the compacted version on, a watch sees what follows.
        store.delete(0, "shop", "a").unwrap();
        let events = store
            .events_after(0, &Selection::default(), store.compacted())
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].change, Change::Deleted);
    }

    #[test]
    fn an_update_keeps_uid_and_creation_and_bumps_the_version() {
        let mut store = Store::default();
        let first = store.apply(pod("a", "198.18.0.1"), true).unwrap();
        let second = store.apply(pod("a", "198.18.0.7"), false).unwrap();
        assert_eq!(first["metadata"]["uid"], second["metadata"]["uid"]);
        assert_eq!(
            first["metadata"]["creationTimestamp"],
            second["metadata"]["creationTimestamp"]
        );
        assert_ne!(
            first["metadata"]["resourceVersion"],
            second["metadata"]["resourceVersion"]
        );
        assert!(matches!(
            store.apply(pod("a", "198.18.0.1"), true),
            Err(StoreError::AlreadyExists(_))
        ));
    }

    #[test]
    fn the_generation_counts_changes_of_the_spec_only() {
        let mut store = Store::default();
        let mut fc = json!({"apiVersion": "flows.netobserv.io/v1beta2", "kind": "FlowCollector",
                            "metadata": {"name": "cluster"}, "spec": {"agent": {"ebpf": {"sampling": 1}}}});
        assert_eq!(
            store.apply(fc.clone(), true).unwrap()["metadata"]["generation"],
            1
        );
        fc["status"] = json!({"conditions": []});
        assert_eq!(
            store.apply(fc.clone(), false).unwrap()["metadata"]["generation"],
            1
        );
        fc["spec"]["agent"]["ebpf"]["sampling"] = json!(2);
        assert_eq!(store.apply(fc, false).unwrap()["metadata"]["generation"], 2);
    }

    #[test]
    fn objects_without_their_keys_are_refused_with_what_is_missing() {
        let mut store = Store::default();
        let e = store
            .apply(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}),
                true,
            )
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(m) if m.contains("metadata.namespace")));
        let e = store
            .apply(
                json!({"apiVersion": "v9", "kind": "Pod", "metadata": {}}),
                true,
            )
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(m) if m.contains("v9 Pod")));
        assert!(parse_continue("zz").is_err());
    }
}
