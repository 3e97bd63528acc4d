//! A pod's top workload: the owner a user names it by. Kubernetes points a
//! pod at its controller (a ReplicaSet, a Job, a StatefulSet, ...), and
//! some controllers at theirs in turn (a Deployment's ReplicaSet, a
//! CronJob's Job); netobserv's `K8S_OwnerName`/`K8S_OwnerType` are the top
//! of that chain.

use std::collections::HashMap;

/// An object's controlling owner, as its `ownerReferences` entry with
/// `controller: true` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
}

/// The kinds whose objects are controlled in turn (by a Deployment, a
/// CronJob, or another controller such as a rollout's).
const INTERMEDIATE: [&str; 2] = ["ReplicaSet", "Job"];

/// The controlling owners of ReplicaSets and Jobs, by namespace and name.
#[derive(Debug, Default)]
pub struct Owners {
    controllers: HashMap<(String, String, String), Option<OwnerRef>>,
}

impl Owners {
    /// Whether objects of `kind` are worth remembering (ReplicaSet, Job).
    pub fn tracks(kind: &str) -> bool {
        INTERMEDIATE.contains(&kind)
    }

    /// A ReplicaSet or Job `name` in `namespace`, controlled by
    /// `controller` (None: a bare one). Returns whether its top owner
    /// changed (pods it owns need their labels again).
    pub fn set(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        controller: Option<OwnerRef>,
    ) -> bool {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        self.controllers.insert(key, controller.clone()) != Some(controller)
    }

    pub fn remove(&mut self, kind: &str, namespace: &str, name: &str) {
        self.controllers
            .remove(&(kind.to_string(), namespace.to_string(), name.to_string()));
    }

    /// The top owner of a pod `pod` in `namespace` whose controller is
    /// `controller`: a ReplicaSet's or Job's own controller (a Deployment,
    /// a CronJob, ...) if it has one, the controller itself otherwise; the
    /// pod for a bare pod. A ReplicaSet or Job not seen yet (or deleted before its
    /// pods) stands for itself.
    pub fn top_of(&self, namespace: &str, pod: &str, controller: Option<&OwnerRef>) -> OwnerRef {
        let Some(controller) = controller else {
            return OwnerRef {
                kind: "Pod".into(),
                name: pod.to_string(),
            };
        };
        let upper = Owners::tracks(&controller.kind)
            .then(|| {
                let key = (
                    controller.kind.clone(),
                    namespace.to_string(),
                    controller.name.clone(),
                );
                self.controllers.get(&key)?.as_ref()
            })
            .flatten();
        upper.unwrap_or(controller).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, name: &str) -> OwnerRef {
        OwnerRef {
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn pods_are_named_by_their_top_workload() {
        let mut owners = Owners::default();
        assert!(owners.set(
            "ReplicaSet",
            "shop",
            "web-7d9f",
            Some(owner("Deployment", "web"))
        ));
        assert!(owners.set(
            "Job",
            "ops",
            "backup-2901",
            Some(owner("CronJob", "backup"))
        ));
        assert!(owners.set("Job", "ops", "once", None));
        let rs = owner("ReplicaSet", "web-7d9f");
        assert_eq!(
            owners.top_of("shop", "web-7d9f-x2", Some(&rs)),
            owner("Deployment", "web")
        );
        assert_eq!(
            owners.top_of("other", "p", Some(&rs)),
            rs,
            "namespaces apart"
        );
        assert_eq!(
            owners.top_of("ops", "b", Some(&owner("Job", "backup-2901"))),
            owner("CronJob", "backup")
        );
        assert_eq!(
            owners.top_of("ops", "o", Some(&owner("Job", "once"))),
            owner("Job", "once")
        );
        let sts = owner("StatefulSet", "db");
        assert_eq!(owners.top_of("shop", "db-0", Some(&sts)), sts);
        assert_eq!(owners.top_of("shop", "debug", None), owner("Pod", "debug"));
    }

    #[test]
    fn an_unknown_or_gone_replica_set_stands_for_itself() {
        let mut owners = Owners::default();
        let rs = owner("ReplicaSet", "api-55c");
        assert_eq!(owners.top_of("shop", "api-55c-a", Some(&rs)), rs);
        owners.set(
            "ReplicaSet",
            "shop",
            "api-55c",
            Some(owner("Deployment", "api")),
        );
        assert!(
            !owners.set(
                "ReplicaSet",
                "shop",
                "api-55c",
                Some(owner("Deployment", "api"))
            ),
            "unchanged"
        );
        assert_eq!(
            owners.top_of("shop", "api-55c-a", Some(&rs)),
            owner("Deployment", "api")
        );
        owners.remove("ReplicaSet", "shop", "api-55c");
        assert_eq!(owners.top_of("shop", "api-55c-a", Some(&rs)), rs);
        // A ReplicaSet another controller owns is named by that one.
        owners.set(
            "ReplicaSet",
            "shop",
            "canary-1",
            Some(owner("Rollout", "canary")),
        );
        let rs = owner("ReplicaSet", "canary-1");
        assert_eq!(
            owners.top_of("shop", "p", Some(&rs)),
            owner("Rollout", "canary")
        );
        assert!(Owners::tracks("Job") && !Owners::tracks("Pod"));
    }
}
