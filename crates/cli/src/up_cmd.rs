//! `flowlens up`: everything on one host in one process — the agent, the
//! pipeline (conversation tracking) and an HTTP listener serving /metrics.
//! Records go to stdout as JSON lines, as `--log-types` says.

use crate::capture_args::CaptureArgs;
use crate::metrics::{MetricsSources, serve_metrics};
use crate::output::JsonLineWriter;
use crate::shutdown::shutdown_signal;
use anyhow::{Context, Result};
use clap::Args;
use flowlens_agent::FlowAgent;
use flowlens_agent::config::FlowCollectorFile;
use flowlens_pipeline::conversations::{ConversationTracker, LogTypes, TrackerConfig};
use flowlens_pipeline::enrich::{Enricher, HostEnricher, HostInventory, SubnetLabels};
use flowlens_pipeline::metrics::{DEFAULT_INCLUDE_LIST, FlowMetrics};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often conversations are checked for heartbeats and ends.
const TRACKER_TICK: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    capture: CaptureArgs,
    /// Address of the HTTP listener (/metrics).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9290")]
    listen: SocketAddr,
    /// Records to print: Flows, Conversations, EndedConversations or All
    /// (default: spec.processor.logTypes of the config, else Flows).
    #[arg(long, value_name = "TYPE")]
    log_types: Option<LogTypes>,
    /// Metrics to expose, comma-separated netobserv names without the
    /// `netobserv_` prefix (default: spec.processor.metrics.includeList of
    /// the config, else netobserv's defaults).
    #[arg(long = "metrics", value_name = "LIST", value_delimiter = ',')]
    include_list: Option<Vec<String>>,
    /// Series per metric at most; updates beyond are counted and refused.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_series_per_metric: usize,
    /// Name a subnet: NAME=CIDR[,CIDR...] (repeatable; adds to
    /// spec.processor.subnetLabels.customLabels of the config).
    #[arg(long = "subnet-label", value_name = "NAME=CIDRS")]
    subnet_labels: Vec<String>,
    /// Print the agent's counters to stderr on exit.
    #[arg(long)]
    stats: bool,
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
    let from_file = file
        .and_then(|f| f.spec.processor.as_ref())
        .and_then(|p| p.get("metrics"))
        .and_then(|m| m.get("includeList"));
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

/// How often the host's addresses and network namespaces are listed again.
const INVENTORY_REFRESH: Duration = Duration::from_secs(5);

/// Subnet labels from `spec.processor.subnetLabels.customLabels` and the flags.
fn subnet_labels(file: Option<&FlowCollectorFile>, flags: &[String]) -> Result<SubnetLabels> {
    let mut labels: Vec<(String, Vec<String>)> = Vec::new();
    let custom = file
        .and_then(|f| f.spec.processor.as_ref())
        .and_then(|p| p.get("subnetLabels"))
        .and_then(|s| s.get("customLabels"));
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

fn scan_inventory() -> HostInventory {
    HostInventory {
        host_name: flowlens_agent::host::host_name(),
        owners: flowlens_agent::host::namespace_addresses()
            .into_iter()
            .collect(),
    }
}

/// `spec.processor.logTypes` of a FlowCollector file, if it says one.
fn file_log_types(file: Option<&FlowCollectorFile>) -> Result<Option<LogTypes>> {
    let Some(value) = file
        .and_then(|f| f.spec.processor.as_ref())
        .and_then(|p| p.get("logTypes"))
    else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .context("spec.processor.logTypes must be a string")?;
    text.parse()
        .map(Some)
        .map_err(|e: String| anyhow::anyhow!("spec.processor.logTypes: {e}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn run(args: UpArgs) -> Result<()> {
    let (settings, file) = args.capture.resolve()?;
    let log_types = match args.log_types {
        Some(t) => t,
        None => file_log_types(file.as_ref())?.unwrap_or(LogTypes::Flows),
    };
    let subnets = subnet_labels(file.as_ref(), &args.subnet_labels)?;
    let mut registry = Registry::default();
    let include = include_list(file.as_ref(), args.include_list)?;
    let flow_metrics = FlowMetrics::new(
        &mut registry,
        &include,
        args.max_series_per_metric,
        SERIES_TTL_MS,
    )
    .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    let flow_metrics = Arc::new(Mutex::new(flow_metrics));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stats = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let agent = FlowAgent::new(settings)?;
        let tracker = Arc::new(Mutex::new(ConversationTracker::new(TrackerConfig {
            log_types,
            ..TrackerConfig::default()
        })));
        let writer = Arc::new(Mutex::new(JsonLineWriter::default()));
        let sources = MetricsSources {
            agent: agent.stats_handle(),
            tracker: tracker.clone(),
            flow_metrics: flow_metrics.clone(),
        };
        tokio::spawn(serve_metrics(listener, registry, sources));
        tracing::info!(listen = %args.listen, "serving /metrics");

        let enricher = Arc::new(std::sync::RwLock::new(HostEnricher {
            inventory: tokio::task::spawn_blocking(scan_inventory)
                .await
                .unwrap_or_default(),
            subnets,
        }));
        let refreshed = enricher.clone();
        let inventory = tokio::spawn(async move {
            let mut timer = tokio::time::interval(INVENTORY_REFRESH);
            loop {
                timer.tick().await;
                if let Ok(fresh) = tokio::task::spawn_blocking(scan_inventory).await
                    && let Ok(mut e) = refreshed.write()
                {
                    e.inventory = fresh;
                }
            }
        });
        let (ticking, ticking_writer, ticking_metrics) =
            (tracker.clone(), writer.clone(), flow_metrics.clone());
        let ticker = tokio::spawn(async move {
            let mut timer = tokio::time::interval(TRACKER_TICK);
            loop {
                timer.tick().await;
                let records = ticking
                    .lock()
                    .map(|mut t| t.tick(now_ms()))
                    .unwrap_or_default();
                if let Ok(mut m) = ticking_metrics.lock() {
                    m.expire(now_ms());
                }
                if let Ok(mut w) = ticking_writer.lock() {
                    w.write(&records);
                }
            }
        });
        let (flows_tracker, flows_writer, flows_enricher, flows_metrics) = (
            tracker.clone(),
            writer.clone(),
            enricher.clone(),
            flow_metrics.clone(),
        );
        let stats = agent
            .run(
                move |flows| {
                    let now = now_ms();
                    let mut records = Vec::new();
                    let mut flows = flows.to_vec();
                    if let Ok(e) = flows_enricher.read() {
                        flows.iter_mut().for_each(|f| e.enrich(f));
                    }
                    if let Ok(mut m) = flows_metrics.lock() {
                        flows.iter().for_each(|f| m.observe(f, now));
                    }
                    if let Ok(mut t) = flows_tracker.lock() {
                        for flow in &flows {
                            records.extend(t.on_flow(flow, now));
                        }
                    }
                    if let Ok(mut w) = flows_writer.lock() {
                        w.write(&records);
                    }
                },
                shutdown_signal(),
            )
            .await;
        ticker.abort();
        inventory.abort();
        // Conversations still open end now, with cause `active`.
        let last = tracker.lock().map(|mut t| t.flush()).unwrap_or_default();
        if let Ok(mut w) = writer.lock() {
            w.write(&last);
        }
        stats
    })?;
    if args.stats {
        eprint!("flowlens agent stats:\n{}", stats.to_text());
    }
    Ok(())
}
