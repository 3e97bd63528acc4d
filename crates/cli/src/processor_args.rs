//! The pipeline flags shared by `flowlens up` and `flowlens collector`
//! (log types, metrics, conversation timeouts, subnet labels), how they
//! combine with `spec.processor` of a FlowCollector file, and the
//! `Processor` they build.

use crate::capture_args::duration_arg;
use crate::kubernetes::KubeEnrichment;
use anyhow::{Context, Result, bail};
use clap::Args;
use flowlens_config::parse_duration;
use flowlens_config::{ConfigValue, FlowCollectorFile};
use flowlens_pipeline::Processor;
use flowlens_pipeline::conversations::{ConversationTracker, LogTypes, Timeouts, TrackerConfig};
use flowlens_pipeline::enrich::{HostEnricher, HostInventory, SubnetLabels};
use flowlens_pipeline::metrics::{DEFAULT_INCLUDE_LIST, FlowMetrics};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ProcessorArgs {
    /// Send records on to another tool as well (repeatable):
    /// `[NAME=]ipfix+udp://HOST:PORT`, `ipfix+tcp://HOST:PORT`,
    /// `otlp+grpc://HOST:PORT`, `otlp+http://HOST:PORT` or
    /// `kafka://BROKER[,BROKER]/TOPIC`, options after `?`
    /// (docs/exports.md).
    #[arg(long = "export", value_name = "[NAME=]URL")]
    exports: Vec<String>,
    /// Export only the records this filter selects to exporter NAME
    /// (repeatable), e.g. `ipfix-1=not dst.port = 22`.
    #[arg(long = "export-filter", value_name = "NAME=FILTER")]
    export_filters: Vec<String>,
    /// Which records exporter NAME sends: flows (the default),
    /// conversations or both (repeatable), e.g. `otlp-1=both`.
    #[arg(long = "export-records", value_name = "NAME=RECORDS")]
    export_records: Vec<String>,
    /// Records to print: Flows, Conversations, EndedConversations or All
    /// (default: spec.processor.logTypes of the config, else Flows).
    #[arg(long, value_name = "TYPE")]
    log_types: Option<LogTypes>,
    /// Metrics to expose, comma-separated netobserv names without the
    /// `netobserv_` prefix (default: spec.processor.metrics.includeList of
    /// the config, else netobserv's defaults).
    #[arg(long = "metrics", value_name = "LIST", value_delimiter = ',')]
    include_list: Option<Vec<String>>,
    /// Count only the flows this filter selects in the metrics (the filter
    /// language of docs/query.md), e.g. 'src.namespace = shop'.
    #[arg(long, value_name = "FILTER")]
    metrics_filter: Option<String>,
    /// Series per metric at most; updates beyond are counted and refused.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_series_per_metric: usize,
    #[command(flatten)]
    conversations: ConversationArgs,
    /// Name a subnet: NAME=CIDR[,CIDR...] (repeatable; adds to
    /// spec.processor.subnetLabels.customLabels of the config).
    #[arg(long = "subnet-label", value_name = "NAME=CIDRS")]
    subnet_labels: Vec<String>,
    /// The cluster's name in every record's K8S_ClusterName (default:
    /// spec.processor.clusterName of the config; none without either).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// Label flows with pods, services, nodes and their owners from this
    /// cluster's API (default: KUBECONFIG, else the pod's service account
    /// when running in a cluster; off without either). docs/kubernetes.md.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// A deleted pod's, service's or node's addresses keep its labels this
    /// long, for its late flows (an address reused before is the new
    /// holder's from its creation on).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, default_value = "5m")]
    kube_tombstone: Duration,
}

impl ProcessorArgs {
    /// The processor these flags and the file describe; its flow metrics
    /// register in `registry`.
    /// `storing`: a store keeps every conversation record, whatever is
    /// printed. Returns the processor and the log types to print.
    pub fn build(
        &self,
        file: Option<&FlowCollectorFile>,
        registry: &mut Registry,
        storing: bool,
    ) -> Result<(Processor, LogTypes, Option<KubeEnrichment>)> {
        let log_types = match self.log_types {
            Some(t) => t,
            None => file_log_types(file)?.unwrap_or(LogTypes::Flows),
        };
        let tracked = if storing {
            log_types.with_conversations()
        } else {
            log_types
        };
        let subnets = subnet_labels(file, &self.subnet_labels)?;
        let tracker_config = tracker_config(file, &self.conversations, tracked)?;
        let include = include_list(file, self.include_list.clone())?;
        let flow_metrics = FlowMetrics::new(
            registry,
            &include,
            self.max_series_per_metric,
            SERIES_TTL_MS,
        )
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
        let mut processor = Processor::new(
            HostEnricher::new(HostInventory::default(), subnets),
            flow_metrics,
            ConversationTracker::new(tracker_config),
        );
        if let Some(name) = cluster_name(file, self.cluster_name.as_deref())? {
            processor = processor.with_cluster_name(&name);
        }
        let kubernetes = KubeEnrichment::new(
            flowlens_kube::source(self.kubeconfig.as_deref()),
            millis(self.kube_tombstone),
        );
        if let Some(k) = &kubernetes {
            processor = processor.with_cluster(k.cluster.clone());
        }
        if let Some(text) = &self.metrics_filter {
            let filter = flowlens_query::Filter::parse(text)
                .map_err(|e| anyhow::anyhow!("--metrics-filter: {}", e.render(text)))?;
            processor = processor.with_metrics_filter(filter);
        }
        Ok((processor, log_types, kubernetes))
    }
}

/// The parts of `spec.processor` a running pipeline takes without a
/// restart.
pub struct LiveProcessor {
    pub cluster_name: Option<String>,
    pub subnets: SubnetLabels,
}

/// Keys of `spec.processor` applied live; any other change waits for a
/// restart (the pipeline's metrics, log types and timeouts are built once).
pub const LIVE_PROCESSOR_KEYS: &[&str] = &["clusterName", "subnetLabels"];

impl ProcessorArgs {
    /// Where the Kubernetes API is, if anywhere (flag, KUBECONFIG, the
    /// pod's service account).
    pub fn kube_source(&self) -> Option<flowlens_kube::Source> {
        flowlens_kube::source(self.kubeconfig.as_deref())
    }

    /// The live parts of `file`'s `spec.processor`, the flags still
    /// winning over it.
    pub fn live(&self, file: &FlowCollectorFile) -> Result<LiveProcessor> {
        Ok(LiveProcessor {
            cluster_name: cluster_name(Some(file), self.cluster_name.as_deref())?,
            subnets: subnet_labels(Some(file), &self.subnet_labels)?,
        })
    }
}

/// The keys of `spec.processor` that differ between two files, but the
/// live ones: what a running pipeline cannot take.
pub fn restart_keys(started: Option<&FlowCollectorFile>, now: &FlowCollectorFile) -> Vec<String> {
    let section = |file: Option<&FlowCollectorFile>| -> serde_json::Map<String, serde_json::Value> {
        file.and_then(|f| f.spec.processor.as_ref())
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    };
    let (before, after) = (section(started), section(Some(now)));
    let mut keys: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| !LIVE_PROCESSOR_KEYS.contains(&k.as_str()))
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("spec.processor.{k}"))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[derive(Args, Debug)]
struct ConversationArgs {
    /// Heartbeat interval of open conversations (default: 30s, or
    /// spec.processor.advanced.conversationHeartbeatInterval).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    conversation_heartbeat_interval: Option<Duration>,
    /// A conversation with no flow for this long ends (default: 10s, or
    /// spec.processor.advanced.conversationEndTimeout).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    conversation_end_timeout: Option<Duration>,
    /// A closing conversation ends this much later (default: 5s, or
    /// spec.processor.advanced.conversationTerminatingTimeout).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    conversation_terminating_timeout: Option<Duration>,
    /// Timeouts for one protocol: PROTO=HEARTBEAT/END/TERMINATING, e.g.
    /// udp=30s/5s/1s (proto: tcp, udp, icmp, icmpv6, sctp or a number). Repeatable.
    #[arg(long = "conversation-timeouts", value_name = "PROTO=H/E/T")]
    per_protocol: Vec<String>,
    /// Conversations tracked at once; beyond, they are counted as dropped.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_connections_tracked: usize,
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl ProcessorArgs {
    /// The exporters of the file's `spec.exporters`, then of the flags
    /// (checked: type, scheme, address, options, names, filters, records).
    pub fn export_targets(
        &self,
        file: Option<&FlowCollectorFile>,
    ) -> Result<Vec<flowlens_export::ExportTarget>> {
        let entries = file.map(FlowCollectorFile::exporters).transpose()?;
        let from_file = entries
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, entry)| crate::export_config::entry_target(&entry, i))
            .collect::<Result<Vec<_>>>()?;
        flowlens_export::ExportTarget::parse_all(
            from_file,
            &self.exports,
            &self.export_filters,
            &self.export_records,
        )
        .map_err(anyhow::Error::msg)
    }
}

/// The value at `path` under `spec.processor` of the config file, if any.
fn processor_value<'a>(
    file: Option<&'a FlowCollectorFile>,
    path: &[&str],
) -> Option<&'a ConfigValue> {
    path.iter()
        .try_fold(file?.spec.processor.as_ref()?, |value, key| value.get(key))
}

/// A duration under `spec.processor.advanced`, in netobserv's Go syntax.
fn advanced_duration(file: Option<&FlowCollectorFile>, key: &str) -> Result<Option<Duration>> {
    let Some(value) = processor_value(file, &["advanced", key]) else {
        return Ok(None);
    };
    let text = value.as_str().with_context(|| {
        format!("spec.processor.advanced.{key}: expected a duration such as 10s")
    })?;
    parse_duration(text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("spec.processor.advanced.{key}: {e}"))
}

fn protocol_number(name: &str) -> Result<u8> {
    let vocabulary = &flowlens_model::vocab::PROTOCOLS;
    if let Some(code) = vocabulary.find(name).and_then(|t| t.code) {
        return Ok(code as u8);
    }
    name.parse().with_context(|| {
        let names: Vec<&str> = vocabulary.names().collect();
        format!(
            "unknown protocol `{name}` ({} or a number)",
            names.join(", ")
        )
    })
}

fn tracker_config(
    file: Option<&FlowCollectorFile>,
    args: &ConversationArgs,
    log_types: LogTypes,
) -> Result<TrackerConfig> {
    let defaults = Timeouts::default();
    let pick = |flag: Option<Duration>, key: &str, default: i64| -> Result<i64> {
        Ok(match flag {
            Some(d) => millis(d),
            None => advanced_duration(file, key)?.map(millis).unwrap_or(default),
        })
    };
    let timeouts = Timeouts {
        heartbeat_ms: pick(
            args.conversation_heartbeat_interval,
            "conversationHeartbeatInterval",
            defaults.heartbeat_ms,
        )?,
        end_ms: pick(
            args.conversation_end_timeout,
            "conversationEndTimeout",
            defaults.end_ms,
        )?,
        terminating_ms: pick(
            args.conversation_terminating_timeout,
            "conversationTerminatingTimeout",
            defaults.terminating_ms,
        )?,
    };
    let mut per_protocol = std::collections::HashMap::new();
    for spec in &args.per_protocol {
        let bad = || {
            format!(
                "--conversation-timeouts `{spec}`: expected PROTO=HEARTBEAT/END/TERMINATING, e.g. udp=30s/5s/1s"
            )
        };
        let (proto, values) = spec.split_once('=').with_context(bad)?;
        let parts: Vec<&str> = values.split('/').collect();
        let [h, e, t] = parts[..] else { bail!(bad()) };
        let d = |text: &str| {
            parse_duration(text)
                .map(millis)
                .map_err(|err| anyhow::anyhow!("{}: {err}", bad()))
        };
        per_protocol.insert(
            protocol_number(proto)?,
            Timeouts {
                heartbeat_ms: d(h)?,
                end_ms: d(e)?,
                terminating_ms: d(t)?,
            },
        );
    }
    Ok(TrackerConfig {
        log_types,
        timeouts,
        per_protocol,
        max_connections_tracked: args.max_connections_tracked,
    })
}

/// Series not updated for this long are removed (vanished endpoints).
const SERIES_TTL_MS: i64 = 5 * 60 * 1000;

/// `spec.processor.metrics.includeList`, the flag, or netobserv's default.
fn include_list(
    file: Option<&FlowCollectorFile>,
    flag: Option<Vec<String>>,
) -> Result<Vec<String>> {
    if let Some(list) = flag {
        return Ok(list);
    }
    let from_file = processor_value(file, &["metrics", "includeList"]);
    match from_file {
        Some(list) => list
            .as_sequence()
            .context("spec.processor.metrics.includeList must be a list")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .context("spec.processor.metrics.includeList: expected names")
            })
            .collect(),
        None => Ok(DEFAULT_INCLUDE_LIST.iter().map(|s| s.to_string()).collect()),
    }
}

/// The cluster's name: the flag, else `spec.processor.clusterName`.
fn cluster_name(file: Option<&FlowCollectorFile>, flag: Option<&str>) -> Result<Option<String>> {
    let name = match flag {
        Some(name) => name.to_string(),
        None => match processor_value(file, &["clusterName"]) {
            Some(value) => value
                .as_str()
                .context("spec.processor.clusterName: expected a string")?
                .to_string(),
            None => return Ok(None),
        },
    };
    // A label value: one line of at most 253 characters, as a DNS name.
    if name.is_empty() || name.len() > 253 || name.chars().any(char::is_control) {
        anyhow::bail!(
            "cluster name `{}`: expected 1 to 253 printable characters",
            name.escape_default()
        );
    }
    Ok(Some(name))
}

/// Subnet labels from `spec.processor.subnetLabels.customLabels` and the flags.
fn subnet_labels(file: Option<&FlowCollectorFile>, flags: &[String]) -> Result<SubnetLabels> {
    let mut labels: Vec<(String, Vec<String>)> = Vec::new();
    let custom = processor_value(file, &["subnetLabels", "customLabels"]);
    if let Some(custom) = custom {
        let list = custom
            .as_sequence()
            .context("spec.processor.subnetLabels.customLabels must be a list")?;
        for (i, item) in list.iter().enumerate() {
            let at = format!("spec.processor.subnetLabels.customLabels[{i}]");
            let name = item
                .get("name")
                .and_then(|n| n.as_str())
                .with_context(|| format!("{at}.name: expected a string"))?;
            let cidrs = item
                .get("cidrs")
                .and_then(|c| c.as_sequence())
                .with_context(|| format!("{at}.cidrs: expected a list of CIDRs"))?
                .iter()
                .map(|c| {
                    c.as_str()
                        .map(str::to_string)
                        .with_context(|| format!("{at}.cidrs: expected strings"))
                })
                .collect::<Result<Vec<_>>>()?;
            labels.push((name.to_string(), cidrs));
        }
    }
    for flag in flags {
        let (name, cidrs) = flag
            .split_once('=')
            .with_context(|| format!("--subnet-label `{flag}`: expected NAME=CIDR[,CIDR...]"))?;
        labels.push((
            name.to_string(),
            cidrs.split(',').map(str::to_string).collect(),
        ));
    }
    SubnetLabels::parse(&labels).map_err(|e| anyhow::anyhow!("subnet labels: {e}"))
}

/// `spec.processor.logTypes` of a FlowCollector file, if it says one.
fn file_log_types(file: Option<&FlowCollectorFile>) -> Result<Option<LogTypes>> {
    let Some(value) = processor_value(file, &["logTypes"]) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .context("spec.processor.logTypes must be a string")?;
    text.parse()
        .map(Some)
        .map_err(|e: String| anyhow::anyhow!("spec.processor.logTypes: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlens_config::parse_config;

    fn args(per_protocol: &[&str]) -> ConversationArgs {
        ConversationArgs {
            conversation_heartbeat_interval: None,
            conversation_end_timeout: Some(Duration::from_secs(20)),
            conversation_terminating_timeout: None,
            per_protocol: per_protocol.iter().map(|s| s.to_string()).collect(),
            max_connections_tracked: 7,
        }
    }

    #[test]
    fn timeouts_from_flags_file_and_defaults() {
        let file = parse_config(
            "apiVersion: v1\nkind: FlowCollector\nspec:\n  processor:\n    advanced:\n      conversationHeartbeatInterval: 1m\n      conversationEndTimeout: 5s\n",
            "fc.yaml",
        )
        .unwrap();
        let config = tracker_config(Some(&file), &args(&["udp=30s/5s/1s"]), LogTypes::All).unwrap();
        assert_eq!(config.timeouts.heartbeat_ms, 60_000, "from the file");
        assert_eq!(config.timeouts.end_ms, 20_000, "the flag wins");
        assert_eq!(config.timeouts.terminating_ms, 5_000, "netobserv's default");
        assert_eq!(
            config.timeouts_for(17),
            Timeouts {
                heartbeat_ms: 30_000,
                end_ms: 5_000,
                terminating_ms: 1_000
            }
        );
        assert_eq!(config.max_connections_tracked, 7);
    }

    #[test]
    fn bad_timeouts_are_refused_with_the_expected_form() {
        let err = tracker_config(None, &args(&["udp=30s/5s"]), LogTypes::All)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("udp=30s/5s") && err.contains("PROTO=HEARTBEAT/END/TERMINATING"),
            "{err}"
        );
        // (gre is protocol 47 of the vocabulary, so its timeouts are valid.)
        let err = tracker_config(None, &args(&["warp=1s/1s/1s"]), LogTypes::All)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown protocol `warp`"), "{err}");
    }

    #[test]
    fn the_cluster_name_from_the_flag_or_the_file() {
        let file = parse_config(
            "apiVersion: v1\nkind: FlowCollector\nspec:\n  processor:\n    clusterName: prod-east\n",
            "fc.yaml",
        )
        .unwrap();
        assert_eq!(
            cluster_name(Some(&file), None).unwrap().as_deref(),
            Some("prod-east")
        );
        assert_eq!(
            cluster_name(Some(&file), Some("lab")).unwrap().as_deref(),
            Some("lab")
        );
        assert_eq!(cluster_name(None, None).unwrap(), None);
        let err = cluster_name(None, Some("a\nb")).unwrap_err().to_string();
        assert!(err.contains("a\\nb") && err.contains("printable"), "{err}");
        let bad = parse_config(
            "apiVersion: v1\nkind: FlowCollector\nspec:\n  processor:\n    clusterName: [1]\n",
            "fc.yaml",
        )
        .unwrap();
        let err = cluster_name(Some(&bad), None).unwrap_err().to_string();
        assert!(err.contains("spec.processor.clusterName"), "{err}");
    }
}
