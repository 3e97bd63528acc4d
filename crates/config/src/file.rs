//! The config file: a `FlowCollector` resource as OpenShift Network
//! Observability defines it. Keys flowlens does not know are refused; sections
//! of netobserv's resource that the agent does not use are accepted and
//! reported as unused.

use super::{Feature, duration};
use serde::Deserialize;
use std::{path::Path, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}, {location}key `{key}`: {message}")]
    Parse {
        path: String,
        location: String,
        key: String,
        message: String,
    },
    #[error("invalid {key} `{value}`: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
}

impl ConfigError {
    pub fn invalid(key: &str, value: String, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            value,
            expected: expected.to_string(),
        }
    }
}

/// A section of the file kept as YAML (read by the command that uses it).
pub type ConfigValue = serde_yaml_ng::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FlowCollectorFile {
    pub api_version: ApiVersion,
    pub kind: Kind,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    pub spec: Spec,
    /// What the API server and the collector wrote back (a resource read
    /// from the cluster has it); never read as settings.
    #[serde(default)]
    pub status: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub enum ApiVersion {
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "flows.netobserv.io/v1beta2")]
    NetobservV1beta2,
    #[serde(rename = "flows.netobserv.io/v1beta1")]
    NetobservV1beta1,
}

#[derive(Debug, Clone, Deserialize)]
pub enum Kind {
    FlowCollector,
}

/// Kubernetes' ObjectMeta: what a file says, and what the API server adds
/// to a resource read from a cluster (kept, never read as settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<serde_yaml_ng::Mapping>,
    pub annotations: Option<serde_yaml_ng::Mapping>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<u64>,
    pub creation_timestamp: Option<String>,
    pub deletion_timestamp: Option<String>,
    pub deletion_grace_period_seconds: Option<u64>,
    pub generate_name: Option<String>,
    pub self_link: Option<String>,
    pub finalizers: Option<Vec<String>>,
    pub owner_references: Option<serde_yaml_ng::Value>,
    pub managed_fields: Option<serde_yaml_ng::Value>,
}

/// netobserv's spec sections; the ones flowlens does not use yet are kept
/// opaque and reported by `unused_sections`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    pub agent: Option<AgentSpec>,
    pub namespace: Option<String>,
    pub deployment_model: Option<serde_yaml_ng::Value>,
    pub processor: Option<serde_yaml_ng::Value>,
    pub loki: Option<serde_yaml_ng::Value>,
    pub console_plugin: Option<serde_yaml_ng::Value>,
    pub exporters: Option<serde_yaml_ng::Value>,
    pub kafka: Option<serde_yaml_ng::Value>,
    pub network_policy: Option<serde_yaml_ng::Value>,
    pub prometheus: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentSpec {
    #[serde(rename = "type")]
    pub agent_type: Option<AgentType>,
    pub ebpf: Option<EbpfSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AgentType {
    #[serde(rename = "eBPF", alias = "ebpf", alias = "EBPF")]
    Ebpf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EbpfSpec {
    /// flowlens always needs root (CAP_BPF, CAP_NET_ADMIN); accepted for
    /// compatibility with netobserv's resource.
    pub privileged: Option<bool>,
    pub features: Option<Vec<Feature>>,
    pub sampling: Option<u32>,
    #[serde(default, with = "duration::serde_opt")]
    pub cache_active_timeout: Option<Duration>,
    pub cache_max_flows: Option<u32>,
    pub interfaces: Option<Vec<String>>,
    pub exclude_interfaces: Option<Vec<String>>,
    // flowlens extensions.
    /// DNSTracking: DNS server ports to watch (default [53]).
    pub dns_tracking_ports: Option<Vec<u16>>,
    /// DNSTracking: a query unanswered after this long is reported (default 5s).
    #[serde(default, with = "duration::serde_opt")]
    pub dns_query_timeout: Option<Duration>,
    /// NetworkEvents: NFLOG groups to read rule prefixes from (default 0-3).
    pub nflog_groups: Option<Vec<u16>>,
    // netobserv keys about the agent's deployment, not its capture.
    pub log_level: Option<String>,
    pub image_pull_policy: Option<String>,
    pub resources: Option<serde_yaml_ng::Value>,
    pub kafka_batch_size: Option<u64>,
    pub advanced: Option<serde_yaml_ng::Value>,
    pub metrics: Option<serde_yaml_ng::Value>,
    pub flow_filter: Option<serde_yaml_ng::Value>,
}

impl FlowCollectorFile {
    pub fn ebpf(&self) -> Option<&EbpfSpec> {
        self.spec.agent.as_ref()?.ebpf.as_ref()
    }

    /// Sections present in the file that this agent does not act on.
    pub fn unused_sections(&self) -> Vec<String> {
        let spec = &self.spec;
        let mut unused: Vec<&str> = [
            ("spec.processor", spec.processor.is_some()),
            ("spec.loki", spec.loki.is_some()),
            ("spec.consolePlugin", spec.console_plugin.is_some()),
            ("spec.networkPolicy", spec.network_policy.is_some()),
            ("spec.prometheus", spec.prometheus.is_some()),
        ]
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| name)
        .collect();
        if let Some(e) = self.ebpf() {
            let ebpf_unused = [
                ("spec.agent.ebpf.logLevel", e.log_level.is_some()),
                (
                    "spec.agent.ebpf.imagePullPolicy",
                    e.image_pull_policy.is_some(),
                ),
                ("spec.agent.ebpf.resources", e.resources.is_some()),
                (
                    "spec.agent.ebpf.kafkaBatchSize",
                    e.kafka_batch_size.is_some(),
                ),
                ("spec.agent.ebpf.metrics", e.metrics.is_some()),
                ("spec.agent.ebpf.flowFilter", e.flow_filter.is_some()),
            ];
            unused.extend(ebpf_unused.into_iter().filter(|(_, p)| *p).map(|(n, _)| n));
        }
        let mut unused: Vec<String> = unused.into_iter().map(str::to_string).collect();
        if let Some(advanced) = self
            .ebpf()
            .and_then(|e| e.advanced.as_ref())
            .and_then(|a| a.as_mapping())
        {
            unused.extend(
                advanced
                    .keys()
                    .filter_map(|k| k.as_str())
                    .filter(|k| !AGENT_ADVANCED_KEYS.contains(k))
                    .map(|k| format!("spec.agent.ebpf.advanced.{k}")),
            );
        }
        unused
            .into_iter()
            .map(|name| format!("{name} is not used by the flowlens agent; ignored"))
            .collect()
    }

    /// A file named by flowlens's key `key` under `spec.agent.ebpf.advanced`
    /// or `spec.processor.advanced` (docs/security.md).
    pub fn advanced_file(
        &self,
        section: Advanced,
        key: &str,
    ) -> Result<Option<std::path::PathBuf>, ConfigError> {
        let (name, value) = match section {
            Advanced::Agent => (
                "spec.agent.ebpf.advanced",
                self.ebpf().and_then(|e| e.advanced.as_ref()),
            ),
            Advanced::Processor => (
                "spec.processor.advanced",
                self.spec.processor.as_ref().and_then(|p| p.get("advanced")),
            ),
        };
        let Some(value) = value.and_then(|a| a.get(key)) else {
            return Ok(None);
        };
        match value.as_str() {
            Some(path) if !path.is_empty() => Ok(Some(path.into())),
            _ => Err(ConfigError::invalid(
                &format!("{name}.{key}"),
                format!("{value:?}"),
                "the path of a PEM file",
            )),
        }
    }
}

/// Which `advanced` section a flowlens key sits in.
#[derive(Debug, Clone, Copy)]
pub enum Advanced {
    Agent,
    Processor,
}

/// flowlens's keys under `spec.agent.ebpf.advanced` (netobserv's own
/// there, such as env and scheduling, are reported unused).
pub const AGENT_ADVANCED_KEYS: &[&str] = &["collectorCA", "collectorCert", "collectorKey"];

/// Parses a config text; `path` only names the source in errors.
pub fn parse_config(text: &str, path: &str) -> Result<FlowCollectorFile, ConfigError> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let location = inner
            .location()
            .map(|l| format!("line {} column {}, ", l.line(), l.column()))
            .unwrap_or_default();
        let message = inner.to_string();
        // serde_yaml_ng appends its own "at line N column M"; we say it first.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        let key = if key == "." {
            "(document)".to_string()
        } else {
            key
        };
        ConfigError::Parse {
            path: path.to_string(),
            location,
            key,
            message,
        }
    })
}

pub fn load_config_file(path: &Path) -> Result<FlowCollectorFile, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_config(&text, &shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentOverrides, AgentSettings};

    const USERS_EXAMPLE: &str = "apiVersion: v1
kind: FlowCollector
metadata:
  name: your-flowcollector
  namespace: your-namespace
spec:
  agent:
    type: ebpf
    ebpf:
      privileged: true
      features:
        - FlowRTT
";

    #[test]
    fn users_example_loads_as_written() {
        let file = parse_config(USERS_EXAMPLE, "example.yaml").unwrap();
        let settings = AgentSettings::resolve(Some(&file), &AgentOverrides::default()).unwrap();
        assert_eq!(settings.features, vec![Feature::FlowRTT]);
        assert_eq!(settings.cache_active_timeout, Duration::from_secs(5));
        assert!(!settings.interfaces.selects("lo"));
    }

    #[test]
    fn netobserv_spelling_and_capture_keys() {
        let text = "apiVersion: flows.netobserv.io/v1beta2
kind: FlowCollector
metadata: {name: cluster}
spec:
  namespace: netobserv
  agent:
    type: eBPF
    ebpf:
      sampling: 50
      cacheActiveTimeout: 200ms
      cacheMaxFlows: 1000
      interfaces: [\"/^veth/\"]
      excludeInterfaces: [lo]
";
        let file = parse_config(text, "fc.yaml").unwrap();
        let flags = AgentOverrides {
            sampling: Some(1),
            ..Default::default()
        };
        let s = AgentSettings::resolve(Some(&file), &flags).unwrap();
        assert_eq!(s.sampling, 1, "flags override the file");
        assert_eq!(s.cache_active_timeout, Duration::from_millis(200));
        assert_eq!(s.cache_max_flows, 1000);
        assert!(s.interfaces.selects("veth1") && !s.interfaces.selects("eth0"));
    }

    fn error_of(text: &str) -> String {
        parse_config(text, "bad.yaml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_feature_names_key_value_and_choices() {
        let err = error_of(&USERS_EXAMPLE.replace("- FlowRTT", "- FlowRT"));
        assert!(err.contains("spec.agent.ebpf.features[0]"), "{err}");
        assert!(
            err.contains("FlowRT`") && err.contains("DNSTracking"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_lists_valid_keys() {
        let err = error_of(&USERS_EXAMPLE.replace("privileged: true", "privilegd: true"));
        assert!(
            err.contains("privilegd") && err.contains("cacheActiveTimeout"),
            "{err}"
        );
        assert!(err.contains("line 10"), "{err}");
    }

    #[test]
    fn bad_duration_and_wrong_type() {
        let err = error_of(&USERS_EXAMPLE.replace("privileged: true", "cacheActiveTimeout: soon"));
        assert!(
            err.contains("spec.agent.ebpf.cacheActiveTimeout") && err.contains("`soon`"),
            "{err}"
        );
        let err = error_of(&USERS_EXAMPLE.replace("privileged: true", "sampling: many"));
        assert!(
            err.contains("spec.agent.ebpf.sampling") && err.contains("many"),
            "{err}"
        );
        let err = error_of(&USERS_EXAMPLE.replace("type: ebpf", "type: IPFIX"));
        assert!(
            err.contains("spec.agent.type") && err.contains("eBPF"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_features_are_reported() {
        let file =
            parse_config(&USERS_EXAMPLE.replace("FlowRTT", "IPSec"), "example.yaml").unwrap();
        let s = AgentSettings::resolve(Some(&file), &AgentOverrides::default()).unwrap();
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("IPSec") && w.contains("not yet supported"))
        );
        let file = parse_config(USERS_EXAMPLE, "example.yaml").unwrap();
        let s = AgentSettings::resolve(Some(&file), &AgentOverrides::default()).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }
}
