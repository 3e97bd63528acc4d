//! The capture flags shared by `flowlens agent` and `flowlens up`, and how
//! they combine with the config file.

use anyhow::Result;
use clap::Args;
use flowlens_config::{
    AgentOverrides, AgentSettings, Feature, FlowCollectorFile, load_config_file,
};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// YAML file shaped like OpenShift's FlowCollector resource (spec.agent.ebpf).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Interfaces to watch, comma-separated names or /regex/ (default: all).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    interfaces: Option<Vec<String>>,
    /// Interfaces to skip, comma-separated names or /regex/ (default: lo).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    exclude_interfaces: Option<Vec<String>>,
    /// How often flows are evicted and printed, e.g. 5s, 500ms (default: 5s).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    cache_active_timeout: Option<Duration>,
    /// Capacity of the kernel flow map, in per-interface entries (default: 100000).
    #[arg(long, value_name = "N")]
    cache_max_flows: Option<u32>,
    /// Account 1 in N packets; 0 or 1 accounts every packet (default: 1).
    #[arg(long, value_name = "N")]
    sampling: Option<u32>,
    /// Features to enable, comma-separated (FlowRTT, DNSTracking, PacketDrop, ...).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    features: Option<Vec<Feature>>,
    /// DNSTracking: DNS server ports to watch, comma-separated (default: 53).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    dns_ports: Option<Vec<u16>>,
    /// DNSTracking: report a query unanswered after this long (default: 5s).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    dns_timeout: Option<Duration>,
    /// NetworkEvents: NFLOG groups to read rule log prefixes from,
    /// comma-separated (default: 0,1,2,3).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    nflog_groups: Option<Vec<u16>>,
}

pub use flowlens_config::duration_arg;

impl CaptureArgs {
    /// The capture settings given as flags (each wins over any file).
    pub fn overrides(&self) -> AgentOverrides {
        AgentOverrides {
            interfaces: self.interfaces.clone(),
            exclude_interfaces: self.exclude_interfaces.clone(),
            cache_active_timeout: self.cache_active_timeout,
            cache_max_flows: self.cache_max_flows,
            sampling: self.sampling,
            features: self.features.clone(),
            dns_ports: self.dns_ports.clone(),
            dns_query_timeout: self.dns_timeout,
            nflog_groups: self.nflog_groups.clone(),
        }
    }

    /// The file (if any) and the settings it and the flags give; warnings
    /// about the config are logged here, once. `uses_processor`: the
    /// command reads `spec.processor` itself (it is not unused then).
    pub fn resolve(
        self,
        uses_processor: bool,
    ) -> Result<(AgentSettings, Option<FlowCollectorFile>)> {
        let file = self.config.as_deref().map(load_config_file).transpose()?;
        let overrides = self.overrides();
        let settings = AgentSettings::resolve(file.as_ref(), &overrides)?;
        for warning in &settings.warnings {
            // Both run where the processor does (up, collector).
            if uses_processor
                && (warning.starts_with("spec.processor ")
                    || warning.starts_with("spec.exporters "))
            {
                continue;
            }
            tracing::warn!("{warning}");
        }
        Ok((settings, file))
    }
}
