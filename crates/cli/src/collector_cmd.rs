//! `flowlens collector`: receives flows from any number of agents over gRPC
//! (netobserv's pbflow), or consumes them from Kafka as a member of a
//! consumer group, and runs the pipeline on them — enrichment, metrics,
//! conversation tracking — with /metrics and /status on its HTTP listener.

use crate::durable_ingest::DurableIngest;
use crate::flowcollector_watch::{FlowCollectorWatch, fetch};
use crate::http_server::{HttpArgs, HttpListener};
use crate::metrics::{CounterSection, serve_metrics};
use crate::pipeline_run::PipelineRun;
use crate::processor_args::ProcessorArgs;
use crate::shutdown::shutdown_signal;
use crate::store_args::StoreArgs;
use crate::tls_args::GrpcTlsArgs;
use anyhow::{Context, Result};
use clap::Args;
use flowlens_config::{FlowCollectorFile, load_config_file};
use flowlens_export::bus_consumer::{BusConsumer, BusConsumerConfig, BusConsumerStats};
use flowlens_tls::TlsStats;
use flowlens_wire::agent_config::AgentConfigHub;
use flowlens_wire::connections::{BoundedListener, ConnectionStats};
use flowlens_wire::receiver::{Receiver, ReceiverLimits, ReceiverStats, serve};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct CollectorArgs {
    /// Address to receive agents' flows on (gRPC, `pbflow.Collector/Send`).
    /// Needed unless the flows come from Kafka.
    #[arg(long, value_name = "ADDR")]
    grpc_listen: Option<SocketAddr>,
    /// Consume agents' flows from Kafka (BROKER:PORT[,BROKER:PORT]/TOPIC,
    /// what `flowlens agent --kafka` produces). Offsets are committed once
    /// the records are durable in the store. TLS and SASL come from the
    /// file's spec.kafka; a file with spec.deploymentModel: Kafka needs no
    /// flag. docs/exports.md.
    #[arg(long, value_name = "BROKERS/TOPIC")]
    kafka: Option<String>,
    /// Kafka consumer group: collectors of one group share the topic's
    /// partitions, and take over those of a collector that stops.
    #[arg(long, value_name = "GROUP", default_value = "flowlens-collector")]
    kafka_group: String,
    /// A collector of the group not heard from this long loses its
    /// partitions to the others.
    #[arg(long, value_name = "DURATION", value_parser = crate::capture_args::duration_arg, default_value = "10s")]
    kafka_session_timeout: std::time::Duration,
    /// Address of the HTTP listener (/metrics, /status).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9290")]
    listen: SocketAddr,
    /// YAML file shaped like OpenShift's FlowCollector resource (its
    /// spec.processor applies here).
    #[arg(long, value_name = "FILE", conflicts_with = "flowcollector")]
    config: Option<PathBuf>,
    /// Follow the cluster's FlowCollector resource of this name (in place
    /// of --config): its spec.processor applies here, its spec.agent.ebpf
    /// goes to the agents that run with --config-from-collector, and what
    /// was applied is written into its status.conditions.
    #[arg(long, value_name = "NAME")]
    flowcollector: Option<String>,
    #[command(flatten)]
    processor: ProcessorArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    grpc_tls: GrpcTlsArgs,
    /// Received batches waiting for the pipeline at most; when it is
    /// behind, agents are told to retry (counted as busy).
    #[arg(long, value_name = "N", default_value_t = 256)]
    queue_batches: usize,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ReceiverLimits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Records one call may carry; a call with more is refused whole.
    #[arg(long, value_name = "N", default_value_t = ReceiverLimits::default().max_records_per_call)]
    max_records_per_call: usize,
    /// Records waiting to be logged at most, over all calls; beyond, agents
    /// are told to retry.
    #[arg(long, value_name = "N", default_value_t = ReceiverLimits::default().max_queued_records)]
    max_queued_records: usize,
    /// gRPC connections open at once at most (an agent keeps one); one
    /// more is closed at once (counted in `grpc_connections`).
    #[arg(long, value_name = "N", default_value_t = ReceiverLimits::default().max_connections)]
    max_grpc_connections: usize,
    /// A gRPC connection that moves no byte for this long is closed (live
    /// agents answer the collector's pings every 30 s).
    #[arg(long, value_name = "DURATION", value_parser = crate::capture_args::duration_arg, default_value = "2m")]
    grpc_idle_timeout: std::time::Duration,
    /// With Kubernetes enrichment, a flow seen by the agents of two nodes
    /// is counted once (the source node's record, the other's interfaces
    /// and drops folded in): records wait this long for their other
    /// node's. 0 turns the join off. docs/kubernetes.md.
    #[arg(long, value_name = "DURATION", value_parser = crate::capture_args::duration_arg, default_value = "6s")]
    cross_node_window: std::time::Duration,
}

/// The FlowCollector resource `name` to follow, and what it says now.
async fn follow(
    name: &str,
    processor: &ProcessorArgs,
) -> Result<(flowlens_kube::Client, Option<FlowCollectorFile>)> {
    let source = processor.kube_source().context(
        "--flowcollector reads the Kubernetes API: give --kubeconfig, set KUBECONFIG or run in a pod",
    )?;
    let client = flowlens_kube::client(&source).await?;
    let file = fetch(client.clone(), name)
        .await
        .with_context(|| format!("reading FlowCollector {name}"))?;
    if file.is_none() {
        tracing::info!(
            name,
            "no FlowCollector yet: defaults and flags apply until one appears"
        );
    }
    Ok((client, file))
}

pub fn run(args: CollectorArgs) -> Result<()> {
    let runtime = crate::shutdown::runtime(2)?;
    let following = match &args.flowcollector {
        Some(name) => Some((
            name.clone(),
            runtime.block_on(follow(name, &args.processor))?,
        )),
        None => None,
    };
    let file = match &following {
        Some((_, (_, file))) => file.clone(),
        None => args.config.as_deref().map(load_config_file).transpose()?,
    };
    let mut registry = Registry::default();
    let store = args.store.open()?;
    let query_limits = args.store.query_limits();
    let (processor, print, kubernetes) =
        args.processor
            .build(file.as_ref(), &mut registry, store.is_some())?;
    let bus = crate::export_config::kafka_bus(args.kafka.as_deref(), file.as_ref())?;
    if args.grpc_listen.is_none() && bus.is_none() {
        anyhow::bail!(
            "nothing to receive flows from: give --grpc-listen ADDR, --kafka BROKERS/TOPIC, or a file with spec.deploymentModel: Kafka"
        );
    }
    let exports = args.processor.export_targets(file.as_ref())?;
    let processor_args = Arc::new(args.processor);
    let grpc_tls = args.grpc_tls.server(file.as_ref())?;
    if let (None, Some(grpc_listen)) = (&grpc_tls, args.grpc_listen) {
        flowlens_tls::plaintext_allowed(
            grpc_listen,
            args.http.insecure,
            "gRPC",
            "--grpc-tls-cert and --grpc-tls-key",
        )
        .map_err(anyhow::Error::msg)?;
    }
    runtime.block_on(async move {
        let stop = shutdown_signal();
        let http = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let grpc = match args.grpc_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?,
            ),
            None => None,
        };
        let http = HttpListener::new(http, &args.http, query_limits.timeout)
            .map_err(anyhow::Error::msg)?;
        // Both listeners bound: a collector needs no capability at all.
        crate::privileges::drop_logged(0);
        let (pipeline, timers) = PipelineRun::start(
            processor,
            print,
            store,
            Some(args.cross_node_window),
            exports,
        )
        .await?;
        let (queue, mut batches) = tokio::sync::mpsc::channel(args.queue_batches.max(1));
        let limits = ReceiverLimits {
            max_message_bytes: args.max_message_bytes,
            max_records_per_call: args.max_records_per_call,
            max_queued_records: args.max_queued_records,
            max_connections: args.max_grpc_connections,
            idle_timeout: args.grpc_idle_timeout,
            ..ReceiverLimits::default()
        };
        let grpc = grpc.map(|g| BoundedListener::new(g, limits.connections()));
        let mut receiver = Receiver::new(queue.clone(), limits);
        if let Some(k) = &kubernetes {
            // Client certificates that name a node but list no address are
            // held to the addresses of the cluster's node of that name.
            let cluster = k.cluster.clone();
            receiver = receiver.with_node_addresses(Arc::new(move |name: &str| {
                let cluster = cluster.read().ok()?;
                cluster.node_addresses(name).map(<[_]>::to_vec)
            }));
        }
        let mut sections = Vec::new();
        if let Some(grpc) = &grpc {
            sections.push(CounterSection::new(
                "receiver",
                ReceiverStats::GAUGES,
                receiver.stats_reader(),
            ));
            sections.push(CounterSection::new(
                "grpc_connections",
                ConnectionStats::GAUGES,
                grpc.stats_reader(),
            ));
        }
        if let Some(tls) = grpc_tls.clone() {
            let gauges = TlsStats::GAUGES;
            sections.push(CounterSection::new("grpc_tls", gauges, move || tls.stats()));
        }
        sections.extend(pipeline.counter_sections());
        let agent_config = following.map(|(name, (client, started))| {
            let hub = AgentConfigHub::default();
            let watch = FlowCollectorWatch::new(
                name,
                client,
                hub.clone(),
                pipeline.processor(),
                processor_args,
                started,
            );
            tokio::spawn(watch.run());
            hub
        });
        if let Some(k) = &kubernetes {
            k.start().await?;
            sections.push(k.section());
        }
        // With a store, batches are answered once in its write-ahead log
        // (replayed first, before any agent is heard).
        let durable = DurableIngest::start(&pipeline, &mut sections).await?;
        // Kafka's consumer joins its group once the log says which offsets
        // the store already has.
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let consuming = match &bus {
            Some(bus) => {
                let stored = durable.iter().flat_map(|d| d.taken());
                let config = BusConsumerConfig {
                    session_timeout: args.kafka_session_timeout,
                    ..BusConsumerConfig::new(&args.kafka_group)
                };
                let consumer = BusConsumer::start(bus, config, stored)
                    .map_err(|e| anyhow::anyhow!("--kafka: {e}"))?;
                sections.push(CounterSection::new(
                    "kafka",
                    BusConsumerStats::GAUGES,
                    consumer.stats_reader(),
                ));
                Some(tokio::spawn(consumer.run(queue.clone(), stopped)))
            }
            None => None,
        };
        drop(queue);
        tokio::spawn(serve_metrics(
            http,
            registry,
            sections,
            pipeline
                .store()
                .map(|store| crate::api::routes(store, query_limits)),
        ));
        // The pipeline works on its own thread, so a busy pipeline never
        // stalls the gRPC and HTTP listeners.
        let working = pipeline.clone();
        let worker = std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || match durable {
                Some(ingest) => Some(ingest.run(batches)),
                None => {
                    // No store: answered once processed (metrics, printing).
                    while let Some(batch) = batches.blocking_recv() {
                        working.ingest(batch.records);
                        batch.answer.ok();
                    }
                    None
                }
            })?;
        tracing::info!(grpc = ?args.grpc_listen, kafka = ?bus.map(|b| b.topic), listen = %args.listen, "collector ready");
        let served = match grpc {
            Some(grpc) => serve(grpc, grpc_tls, receiver, agent_config, stop).await,
            None => {
                drop(receiver);
                stop.await;
                Ok(())
            }
        };
        // Kafka's consumer commits what it handed over and leaves its
        // group; with the receiver gone too, the worker drains the queue
        // and stops.
        let _ = stopping.send(true);
        if let Some(consuming) = consuming {
            let _ = consuming.await;
        }
        let ingest = tokio::task::spawn_blocking(move || worker.join())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        timers.iter().for_each(|t| t.abort());
        pipeline.finish();
        pipeline.finish_exports().await;
        if let Some(ingest) = ingest {
            ingest.close();
        }
        served.context("gRPC listener")
    })
}
