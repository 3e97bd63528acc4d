//! `flowlens collector`: receives flows from any number of agents over gRPC
//! (netobserv's pbflow) and runs the pipeline on them — enrichment, metrics,
//! conversation tracking — with /metrics and /status on its HTTP listener.

use crate::metrics::{CounterSection, CounterSources, serve_metrics};
use crate::pipeline_run::PipelineRun;
use crate::processor_args::ProcessorArgs;
use crate::shutdown::shutdown_signal;
use crate::store_args::StoreArgs;
use anyhow::{Context, Result};
use clap::Args;
use flowlens_agent::config::load_config_file;
use flowlens_wire::receiver::{Receiver, ReceiverLimits, ReceiverStats, serve};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CollectorArgs {
    /// Address to receive agents' flows on (gRPC, `pbflow.Collector/Send`).
    #[arg(long, value_name = "ADDR")]
    grpc_listen: SocketAddr,
    /// Address of the HTTP listener (/metrics, /status).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9290")]
    listen: SocketAddr,
    /// YAML file shaped like OpenShift's FlowCollector resource (its
    /// spec.processor applies here).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    processor: ProcessorArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Received batches waiting for the pipeline at most; when it is
    /// behind, agents are told to retry (counted as busy).
    #[arg(long, value_name = "N", default_value_t = 256)]
    queue_batches: usize,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ReceiverLimits::default().max_message_bytes)]
    max_message_bytes: usize,
}

pub fn run(args: CollectorArgs) -> Result<()> {
    let file = args.config.as_deref().map(load_config_file).transpose()?;
    let mut registry = Registry::default();
    let store = args.store.open()?;
    let (processor, print) = args
        .processor
        .build(file.as_ref(), &mut registry, store.is_some())?;
    let runtime = crate::shutdown::runtime(2)?;
    runtime.block_on(async move {
        let stop = shutdown_signal();
        let http = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let grpc = tokio::net::TcpListener::bind(args.grpc_listen)
            .await
            .with_context(|| format!("listening on {}", args.grpc_listen))?;
        let (pipeline, timers) = PipelineRun::start(processor, print, store).await;
        let (queue, mut batches) = tokio::sync::mpsc::channel(args.queue_batches.max(1));
        let receiver = Receiver::new(queue);
        let mut sections = vec![CounterSection::new(
            "receiver",
            ReceiverStats::GAUGES,
            receiver.stats_reader(),
        )];
        sections.extend(pipeline.counter_sections());
        tokio::spawn(serve_metrics(
            http,
            registry,
            CounterSources::new(sections),
            pipeline.store().map(crate::api::routes),
        ));
        // The pipeline works on its own thread, so a busy pipeline never
        // stalls the gRPC and HTTP listeners.
        let working = pipeline.clone();
        let worker = std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                while let Some(batch) = batches.blocking_recv() {
                    let (flows, _answer) = batch.take();
                    working.ingest(flows);
                }
            })?;
        tracing::info!(grpc = %args.grpc_listen, listen = %args.listen, "collector ready");
        let limits = ReceiverLimits {
            max_message_bytes: args.max_message_bytes,
            ..ReceiverLimits::default()
        };
        let served = serve(grpc, receiver, limits, stop).await;
        // The receiver is gone with the server: the worker drains the queue
        // and stops.
        tokio::task::spawn_blocking(move || worker.join())
            .await
            .ok();
        timers.iter().for_each(|t| t.abort());
        pipeline.finish();
        served.context("gRPC listener")
    })
}
