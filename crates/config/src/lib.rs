//! flowlens configuration: a YAML file shaped like OpenShift's
//! `FlowCollector` resource, overridden by command-line flags, resolved into
//! `AgentSettings` (the agent's) and read by the collector and `up` for the
//! processor's keys; durations as every command writes them. Its own crate,
//! so that the collector and the query API do not depend on the eBPF agent.

pub mod duration;
pub mod exporters;
pub mod features;
pub mod file;
pub mod interface_selector;

pub use duration::{duration_arg, parse_duration};
pub use features::Feature;
pub use file::{
    AGENT_ADVANCED_KEYS, Advanced, ConfigError, ConfigValue, FlowCollectorFile, load_config_file,
    parse_config,
};
pub use interface_selector::InterfaceSelector;

use std::time::Duration;

pub const DEFAULT_CACHE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_CACHE_MAX_FLOWS: u32 = 100_000;
pub const DEFAULT_DNS_PORT: u16 = 53;
pub const DEFAULT_NFLOG_GROUPS: [u16; 4] = [0, 1, 2, 3];
pub const DEFAULT_DNS_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent runs with, after the file and the flags are merged.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub interfaces: InterfaceSelector,
    pub cache_active_timeout: Duration,
    pub cache_max_flows: u32,
    /// 1 in `sampling` packets is accounted; 1 = every packet.
    pub sampling: u32,
    pub features: Vec<Feature>,
    /// DNSTracking: server ports to watch, and how long a query may wait
    /// for its response before it is reported unanswered.
    pub dns_ports: Vec<u16>,
    pub dns_query_timeout: Duration,
    /// NetworkEvents: NFLOG groups whose log prefixes name policy verdicts.
    pub nflog_groups: Vec<u16>,
    /// Warnings to show the user once at start (unused sections, features
    /// not yet supported), so nothing in the config is ignored silently.
    pub warnings: Vec<String>,
}

/// Values given on the command line; each one overrides the file.
#[derive(Debug, Clone, Default)]
pub struct AgentOverrides {
    pub interfaces: Option<Vec<String>>,
    pub exclude_interfaces: Option<Vec<String>>,
    pub cache_active_timeout: Option<Duration>,
    pub cache_max_flows: Option<u32>,
    pub sampling: Option<u32>,
    pub features: Option<Vec<Feature>>,
    pub dns_ports: Option<Vec<u16>>,
    pub dns_query_timeout: Option<Duration>,
    pub nflog_groups: Option<Vec<u16>>,
}

impl AgentSettings {
    /// Merges the file (if any) with the flags. Errors name the setting.
    pub fn resolve(
        file: Option<&FlowCollectorFile>,
        flags: &AgentOverrides,
    ) -> Result<AgentSettings, ConfigError> {
        let ebpf = file.and_then(|f| f.ebpf());
        if let Some(f) = file {
            // Checked here so that a bad spec.kafka fails every command.
            f.kafka_deployment()?;
        }
        let mut warnings = file.map(|f| f.unused_sections()).unwrap_or_default();

        let include = flags
            .interfaces
            .clone()
            .or_else(|| ebpf.and_then(|e| e.interfaces.clone()))
            .unwrap_or_default();
        let exclude = flags
            .exclude_interfaces
            .clone()
            .or_else(|| ebpf.and_then(|e| e.exclude_interfaces.clone()))
            .unwrap_or_else(|| vec!["lo".to_string()]);
        let interfaces = InterfaceSelector::new(&include, &exclude)?;

        let cache_active_timeout = flags
            .cache_active_timeout
            .or_else(|| ebpf.and_then(|e| e.cache_active_timeout))
            .unwrap_or(DEFAULT_CACHE_ACTIVE_TIMEOUT);
        if cache_active_timeout < Duration::from_millis(10) {
            return Err(ConfigError::invalid(
                "cacheActiveTimeout",
                format!("{cache_active_timeout:?}"),
                "at least 10ms",
            ));
        }
        let cache_max_flows = flags
            .cache_max_flows
            .or_else(|| ebpf.and_then(|e| e.cache_max_flows))
            .unwrap_or(DEFAULT_CACHE_MAX_FLOWS);
        if cache_max_flows == 0 {
            return Err(ConfigError::invalid(
                "cacheMaxFlows",
                "0".into(),
                "a positive number of flows",
            ));
        }
        let sampling = flags
            .sampling
            .or_else(|| ebpf.and_then(|e| e.sampling))
            .unwrap_or(1)
            .max(1);

        let mut features = flags
            .features
            .clone()
            .or_else(|| ebpf.and_then(|e| e.features.clone()))
            .unwrap_or_default();
        let mut seen = Vec::new();
        features.retain(|f| {
            let first = !seen.contains(f);
            seen.push(*f);
            first
        });
        for feature in features.iter().filter(|f| !f.is_supported()) {
            warnings.push(format!(
                "feature {feature} is not yet supported by this version of flowlens; flows are captured without it"
            ));
        }

        let dns_ports = flags
            .dns_ports
            .clone()
            .or_else(|| ebpf.and_then(|e| e.dns_tracking_ports.clone()))
            .unwrap_or_else(|| vec![DEFAULT_DNS_PORT]);
        if dns_ports.is_empty() || dns_ports.len() > 4 || dns_ports.contains(&0) {
            return Err(ConfigError::invalid(
                "dnsTrackingPorts",
                format!("{dns_ports:?}"),
                "one to four non-zero port numbers",
            ));
        }
        let dns_query_timeout = flags
            .dns_query_timeout
            .or_else(|| ebpf.and_then(|e| e.dns_query_timeout))
            .unwrap_or(DEFAULT_DNS_QUERY_TIMEOUT);

        let nflog_groups = flags
            .nflog_groups
            .clone()
            .or_else(|| ebpf.and_then(|e| e.nflog_groups.clone()))
            .unwrap_or_else(|| DEFAULT_NFLOG_GROUPS.to_vec());

        Ok(AgentSettings {
            nflog_groups,
            interfaces,
            cache_active_timeout,
            cache_max_flows,
            sampling,
            features,
            dns_ports,
            dns_query_timeout,
            warnings,
        })
    }
}
