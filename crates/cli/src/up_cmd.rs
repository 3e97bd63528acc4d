//! `flowlens up`: everything on one host in one process — the agent, the
//! pipeline (enrichment, metrics, conversation tracking) and an HTTP
//! listener serving /metrics and /status. Records go to stdout as JSON
//! lines, as `--log-types` says.

use crate::capture_args::CaptureArgs;
use crate::metrics::{CounterSection, CounterSources, serve_metrics};
use crate::pipeline_run::PipelineRun;
use crate::processor_args::ProcessorArgs;
use crate::shutdown::shutdown_signal;
use crate::store_args::StoreArgs;
use anyhow::{Context, Result};
use clap::Args;
use flowlens_agent::{AgentStats, FlowAgent};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    capture: CaptureArgs,
    /// Address of the HTTP listener (/metrics, /status).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9290")]
    listen: SocketAddr,
    #[command(flatten)]
    processor: ProcessorArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Print the agent's counters to stderr on exit.
    #[arg(long)]
    stats: bool,
}

/// Gauges among the agent's counters (they go down as well as up).
pub const AGENT_GAUGES: &[&str] = &["interfaces_attached"];

pub fn agent_section(agent: &FlowAgent) -> CounterSection {
    let stats = agent.stats_handle();
    CounterSection::new("agent", AGENT_GAUGES, move || {
        stats.lock().map(|s| s.clone()).unwrap_or_default()
    })
}

pub fn run(args: UpArgs) -> Result<()> {
    let (settings, file) = args.capture.resolve(true)?;
    let mut registry = Registry::default();
    let store = args.store.open()?;
    let (processor, print) = args
        .processor
        .build(file.as_ref(), &mut registry, store.is_some())?;
    let runtime = crate::shutdown::runtime(2)?;
    let stats: AgentStats = runtime.block_on(async move {
        let stop = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let agent = FlowAgent::new(settings)?;
        let (pipeline, timers) = PipelineRun::start(processor, print, store).await;
        let mut sections = vec![agent_section(&agent)];
        sections.extend(pipeline.counter_sections());
        tokio::spawn(serve_metrics(
            listener,
            registry,
            CounterSources::new(sections),
            pipeline.store().map(crate::api::routes),
        ));
        tracing::info!(listen = %args.listen, "serving /metrics, /status and /api");
        let feeding = pipeline.clone();
        let stats = agent
            .run(move |flows| feeding.ingest(flows.to_vec()), stop)
            .await;
        timers.iter().for_each(|t| t.abort());
        pipeline.finish();
        stats
    })?;
    if args.stats {
        eprint!(
            "flowlens agent stats:\n{}",
            crate::output::counters_text(&stats)
        );
    }
    Ok(())
}
