//! `flowlens agent`: the flow agent in the foreground. Records go to stdout,
//! with `--collector` to a `flowlens collector` (or any receiver of
//! netobserv's pbflow gRPC) in batches, or with `--kafka` to a Kafka topic
//! that collectors consume.

use crate::agent_reload::{Next, Reloader};
use crate::capture_args::{CaptureArgs, duration_arg};
use crate::http_server::{HttpArgs, HttpListener};
use crate::metrics::{CounterSection, serve_metrics};
use crate::output::{OutputFormat, RecordWriter};
use crate::shutdown::shutdown_signal;
use crate::tls_args::CollectorTlsArgs;
use crate::up_cmd::agent_section;
use anyhow::{Context, Result};
use clap::Args;
use flowlens_agent::FlowAgent;
use flowlens_config::AgentSettings;
use flowlens_export::bus_producer::{BusProducer, BusProducerConfig, BusProducerStats};
use flowlens_model::FlowRecord;
use flowlens_query::Filter;
use flowlens_wire::agent_config::AgentConfigSource;
use flowlens_wire::exporter::{Exporter, ExporterConfig, ExporterStats};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct AgentArgs {
    #[command(flatten)]
    capture: CaptureArgs,
    /// Record format on stdout: json (one per line) or table. Default:
    /// table on a terminal, json otherwise.
    #[arg(long, value_enum)]
    output: Option<OutputFormat>,
    /// Send records to this collector (HOST:PORT, gRPC, netobserv's pbflow)
    /// instead of printing them.
    #[arg(long, value_name = "ADDR")]
    collector: Option<String>,
    /// Produce records to Kafka instead (BROKER:PORT[,BROKER:PORT]/TOPIC):
    /// one pbflow message per flow, keyed by connection, acks=all, for
    /// collectors started with the same --kafka. TLS and SASL come from
    /// the file's spec.kafka; a file with spec.deploymentModel: Kafka
    /// needs no flag. docs/exports.md.
    #[arg(long, value_name = "BROKERS/TOPIC", conflicts_with = "collector")]
    kafka: Option<String>,
    /// Records waiting for the Kafka brokers at most; newer ones beyond are
    /// dropped and counted.
    #[arg(long, value_name = "N", default_value_t = BusProducerConfig::default().buffer_records)]
    kafka_buffer: usize,
    /// A record the brokers have not acknowledged this long after it was
    /// produced is given up and counted.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, default_value = "2m")]
    kafka_delivery_timeout: Duration,
    /// Records per message to the collector at most.
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "collector")]
    collector_batch_size: usize,
    /// Records kept while the collector is away; newer ones beyond are
    /// dropped and counted.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        requires = "collector"
    )]
    collector_buffer: usize,
    /// Longest wait between reconnection attempts (they start at 100ms and
    /// double).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, default_value = "5s", requires = "collector")]
    collector_max_backoff: Duration,
    /// Keep only the flows this filter selects (the filter language of
    /// docs/query.md), e.g. 'not dst.port in (22, 443)'. The rest are
    /// counted and dropped here, before printing or sending.
    #[arg(long, value_name = "FILTER")]
    filter: Option<String>,
    /// Serve the agent's counters on this address (/metrics, /status), for
    /// Prometheus and `flowlens status`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    http: HttpArgs,
    /// Print the agent's counters to stderr on exit.
    #[arg(long)]
    stats: bool,
    /// The address naming this node in records (AgentIP): in a cluster,
    /// the node's InternalIP (`status.hostIP` through the downward API), by
    /// which the collector knows which node reported a flow. Default: the
    /// first IPv4 address of an interface that is up.
    #[arg(long, value_name = "ADDR", env = "FLOWLENS_AGENT_IP")]
    agent_ip: Option<std::net::IpAddr>,
    /// Take the capture settings (spec.agent.ebpf of the cluster's
    /// FlowCollector) from the collector, and apply their changes without
    /// restarting; flags still win. docs/kubernetes.md.
    #[arg(long, requires = "collector")]
    config_from_collector: bool,
    #[command(flatten)]
    collector_tls: CollectorTlsArgs,
}

/// What agent-side filtering let through.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct FilterCounters {
    records_in: u64,
    records_kept: u64,
    records_filtered_out: u64,
}

/// The records `filter` keeps (all, uncopied, without one), counted.
fn keep<'a>(
    filter: Option<&Filter>,
    counters: &Mutex<FilterCounters>,
    records: &'a [FlowRecord],
) -> Cow<'a, [FlowRecord]> {
    let kept: Cow<[FlowRecord]> = match filter {
        Some(f) => records.iter().filter(|r| f.matches(r)).cloned().collect(),
        None => Cow::Borrowed(records),
    };
    if let Ok(mut c) = counters.lock() {
        c.records_in += records.len() as u64;
        c.records_kept += kept.len() as u64;
        c.records_filtered_out += (records.len() - kept.len()) as u64;
    }
    kept
}

pub fn run(args: AgentArgs) -> Result<()> {
    let filter = match args.filter.as_deref() {
        Some(text) => {
            Some(Filter::parse(text).map_err(|e| anyhow::anyhow!("--filter: {}", e.render(text)))?)
        }
        None => None,
    };
    let filtered = Arc::new(Mutex::new(FilterCounters::default()));
    let overrides = args.capture.overrides();
    let (settings, file) = args.capture.resolve(false)?;
    let collector_tls = match &args.collector {
        Some(collector) => args.collector_tls.client(collector, file.as_ref())?,
        None => None,
    };
    let bus = crate::export_config::kafka_bus(args.kafka.as_deref(), file.as_ref())?;
    if bus.is_some() && args.collector.is_some() {
        anyhow::bail!(
            "--collector: the file's spec.deploymentModel is Kafka; give one place for the records (--collector or Kafka)"
        );
    }
    let filtered_seen = filtered.clone();
    let format = args.output.unwrap_or_else(OutputFormat::default_for_stdout);
    let sending = args.collector.is_some() || bus.is_some();
    let runtime = crate::shutdown::runtime(if sending { 2 } else { 1 })?;
    let (stats, exported, produced) = runtime.block_on(async move {
        let stop = shutdown_signal();
        let listener = match args.listen {
            Some(addr) => Some(
                HttpListener::new(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("listening on {addr}"))?,
                    &args.http,
                    Duration::ZERO,
                )
                .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let agent_ip = args.agent_ip;
        let build = move |settings: &AgentSettings| -> Result<FlowAgent> {
            let agent = FlowAgent::new(settings.clone())?
                .after_each_eviction(crate::allocator::return_free_memory);
            Ok(match agent_ip {
                Some(ip) => agent.with_agent_ip(ip),
                None => agent,
            })
        };
        let mut agent = build(&settings)?;
        // Attached, listening: what it no longer needs goes.
        agent.attach();
        crate::privileges::drop_unneeded(
            &settings.features,
            crate::privileges::StillNeeded {
                reloads: args.config_from_collector,
                enters_namespaces: false,
            },
        );
        // One connection's settings for the flows and the settings stream.
        let collector = args.collector.as_deref().map(|collector| ExporterConfig {
            batch_size: args.collector_batch_size,
            buffer_records: args.collector_buffer,
            backoff_max: args.collector_max_backoff,
            tls: collector_tls,
            ..ExporterConfig::new(collector)
        });
        let exporter = match &collector {
            Some(config) => Some(
                Exporter::start(config.clone()).map_err(|e| anyhow::anyhow!("--collector: {e}"))?,
            ),
            None => None,
        };
        let producer = match &bus {
            Some(bus) => Some(Arc::new(
                BusProducer::start(
                    bus,
                    BusProducerConfig {
                        buffer_records: args.kafka_buffer,
                        delivery_timeout: args.kafka_delivery_timeout,
                        ..BusProducerConfig::default()
                    },
                )
                .map_err(|e| anyhow::anyhow!("--kafka: {e}"))?,
            )),
            None => None,
        };
        let mut reloader = match (&collector, args.config_from_collector) {
            (Some(config), true) => Some(Reloader::start(
                AgentConfigSource {
                    uri: config.uri(),
                    node: agent.agent_ip().to_string(),
                    tls: config.tls.clone(),
                },
                overrides,
                args.collector_max_backoff,
            )),
            _ => None,
        };
        if let Some(listener) = listener {
            let mut sections = vec![agent_section(&agent)];
            if filter.is_some() {
                let counters = filtered.clone();
                sections.push(CounterSection::new("filter", &[], move || {
                    counters.lock().map(|c| c.clone()).unwrap_or_default()
                }));
            }
            if let Some(r) = &reloader {
                let stats = r.stats();
                sections.push(CounterSection::new("config", &["generation"], move || {
                    stats.lock().map(|s| s.clone()).unwrap_or_default()
                }));
            }
            if let Some(e) = &exporter {
                sections.push(CounterSection::new(
                    "exporter",
                    ExporterStats::GAUGES,
                    e.stats_reader(),
                ));
            }
            if let Some(p) = &producer {
                sections.push(CounterSection::new(
                    "kafka",
                    BusProducerStats::GAUGES,
                    p.stats_reader(),
                ));
            }
            tokio::spawn(serve_metrics(listener, Registry::default(), sections, None));
        }
        let (stopped_tx, mut stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = stopped_tx.send(true);
        });
        let mut writer =
            (exporter.is_none() && producer.is_none()).then(|| RecordWriter::new(format));
        let mut sink = |records: &[FlowRecord]| {
            let kept = keep(filter.as_ref(), &filtered, records);
            if let Some(exporter) = &exporter {
                exporter.enqueue(&kept);
            }
            if let Some(producer) = &producer {
                producer.enqueue(&kept);
            }
            if let Some(writer) = &mut writer {
                writer.write(&kept);
            }
        };
        let handle = agent.stats_handle();
        let stats = loop {
            let mut next = Next::Stop;
            let waiting = async {
                next = match &mut reloader {
                    Some(r) => r.next(&mut stopped, &build).await,
                    None => {
                        let _ = stopped.wait_for(|s| *s).await;
                        Next::Stop
                    }
                };
            };
            let stats = agent.run(&mut sink, waiting).await?;
            let (Next::Apply(built, generation), Some(r)) = (next, reloader.as_mut()) else {
                break stats;
            };
            // The old programs detached and evicted every flow: the new
            // ones, loaded meanwhile, attach at once.
            agent = built.with_stats_handle(handle.clone());
            agent.attach();
            r.applied(generation).await;
        };
        let exported = match exporter {
            Some(e) => Some(e.finish().await),
            None => None,
        };
        let produced = match producer {
            Some(p) => Some(tokio::task::spawn_blocking(move || p.finish()).await?),
            None => None,
        };
        anyhow::Ok((stats, exported, produced))
    })?;
    if args.stats {
        eprint!(
            "flowlens agent stats:\n{}",
            crate::output::counters_text(&stats)
        );
        if let Some(e) = exported {
            eprint!("exporter:\n{}", crate::output::counters_text(&e));
        }
        if let Some(p) = produced {
            eprint!("kafka:\n{}", crate::output::counters_text(&p));
        }
        if args.filter.is_some()
            && let Ok(c) = filtered_seen.lock()
        {
            eprint!("filter:\n{}", crate::output::counters_text(&*c));
        }
    }
    Ok(())
}
