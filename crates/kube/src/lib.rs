//! Kubernetes enrichment for flowlens: watches of the API's pods, services,
//! nodes, ReplicaSets and Jobs kept in a `Cluster` (crates/pipeline), whose
//! labels name the ends of every flow (docs/kubernetes.md).

pub mod flowcollector;
pub mod objects;
pub mod watch;

/// A client of the API (kube-rs's).
pub use kube::Client;

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::Path;

/// Where the API's address and credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--kubeconfig FILE`.
    File(std::path::PathBuf),
    /// `KUBECONFIG` of the environment.
    Environment,
    /// The pod's service account (running in a cluster).
    InCluster,
}

/// The source to use: the flag, else `KUBECONFIG`, else the service
/// account when running in a pod; None (enrichment off) without any.
pub fn source(kubeconfig: Option<&Path>) -> Option<Source> {
    if let Some(path) = kubeconfig {
        return Some(Source::File(path.to_path_buf()));
    }
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        return Some(Source::Environment);
    }
    std::env::var_os("KUBERNETES_SERVICE_HOST").map(|_| Source::InCluster)
}

/// A client of the API `source` names.
pub async fn client(source: &Source) -> Result<kube::Client> {
    let config = match source {
        Source::File(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        Source::Environment => kube::Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .context("kubeconfig of KUBECONFIG")?,
        Source::InCluster => {
            kube::Config::incluster().context("the pod's service account (in-cluster config)")?
        }
    };
    kube::Client::try_from(config).context("a Kubernetes API client")
}
