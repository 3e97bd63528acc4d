//! `flowlens up`: everything on one host in one process — the agent, the
//! pipeline (enrichment, metrics, conversation tracking) and an HTTP
//! listener serving /metrics and /status. Records go to stdout as JSON
//! lines, as `--log-types` says.

use crate::capture_args::CaptureArgs;
use crate::durable_ingest::DurableIngest;
use crate::http_server::{HttpArgs, HttpListener};
use crate::metrics::{CounterSection, serve_metrics};
use crate::pipeline_run::PipelineRun;
use crate::processor_args::ProcessorArgs;
use crate::shutdown::shutdown_signal;
use crate::store_args::StoreArgs;
use anyhow::{Context, Result};
use clap::Args;
use flowlens_agent::{AgentStats, FlowAgent};
use flowlens_wire::receiver::{Answer, Batch};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use tokio::sync::mpsc::error::TrySendError;

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
    #[command(flatten)]
    http: HttpArgs,
    /// Print the agent's counters to stderr on exit.
    #[arg(long)]
    stats: bool,
}

/// Eviction batches the agent may queue for the write-ahead log (an
/// eviction every few seconds, so minutes of them).
const LOG_QUEUE_BATCHES: usize = 1024;

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
    if let Some(f) = &file {
        f.refuse_kafka_deployment()?;
    }
    let mut registry = Registry::default();
    let store = args.store.open()?;
    let query_limits = args.store.query_limits();
    let exports = args.processor.export_targets(file.as_ref())?;
    let (processor, print, kubernetes) =
        args.processor
            .build(file.as_ref(), &mut registry, store.is_some())?;
    let runtime = crate::shutdown::runtime(2)?;
    let stats: AgentStats = runtime.block_on(async move {
        let stop = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let listener = HttpListener::new(listener, &args.http, query_limits.timeout)
            .map_err(anyhow::Error::msg)?;
        let features = settings.features.clone();
        let mut agent = FlowAgent::new(settings)?;
        agent.attach();
        // Attached and listening: it keeps what it still needs (maps,
        // interfaces that appear, entering namespaces for their names).
        crate::privileges::drop_unneeded(
            &features,
            crate::privileges::StillNeeded {
                reloads: false,
                enters_namespaces: true,
            },
        );
        let (pipeline, timers) = PipelineRun::start(processor, print, store, None, exports).await?;
        let mut sections = vec![agent_section(&agent)];
        sections.extend(pipeline.counter_sections());
        if let Some(k) = &kubernetes {
            k.start().await?;
            sections.push(k.section());
        }
        // With a store, the agent's flows go through the write-ahead log
        // (replayed first) on a thread of their own: the agent's ring-buffer
        // drain never waits for a sync or a Parquet encode.
        let durable = match DurableIngest::start(&pipeline, &mut sections).await? {
            Some(ingest) => {
                let dropped = ingest.drop_counter();
                let (queue, batches) = tokio::sync::mpsc::channel(LOG_QUEUE_BATCHES);
                let worker = std::thread::Builder::new()
                    .name("durable-ingest".into())
                    .spawn(move || ingest.run(batches))?;
                Some((queue, dropped, worker))
            }
            None => None,
        };
        tokio::spawn(serve_metrics(
            listener,
            registry,
            sections,
            pipeline
                .store()
                .map(|store| crate::api::routes(store, query_limits)),
        ));
        tracing::info!(listen = %args.listen, "serving /metrics, /status and /api");
        let feeding = pipeline.clone();
        let (queue, worker) = match durable {
            Some((queue, dropped, worker)) => (Some((queue, dropped)), Some(worker)),
            None => (None, None),
        };
        let stats = agent
            .run(
                move |flows| match &queue {
                    Some((queue, dropped)) => {
                        let batch = Batch {
                            records: flows.to_vec(),
                            id: None,
                            answer: Answer::detached(),
                        };
                        if let Err(refused) = queue.try_send(batch) {
                            let n = match refused {
                                TrySendError::Full(b) | TrySendError::Closed(b) => b.records.len(),
                            };
                            dropped(n as u64);
                            tracing::warn!(n, "the write-ahead log is behind: flows dropped");
                        }
                    }
                    None => feeding.ingest(flows.to_vec()),
                },
                stop,
            )
            .await;
        // The agent's queue is gone with its callback: the log's thread
        // takes what is left and stops.
        let ingest = match worker {
            Some(worker) => tokio::task::spawn_blocking(move || worker.join().ok())
                .await
                .ok()
                .flatten(),
            None => None,
        };
        timers.iter().for_each(|t| t.abort());
        pipeline.finish();
        pipeline.finish_exports().await;
        if let Some(ingest) = ingest {
            ingest.close();
        }
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
