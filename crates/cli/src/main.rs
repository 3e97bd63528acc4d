//! `flowlens`: one binary, one subcommand per job.

use flowlens::{agent_cmd, allocator, collector_cmd, demo, query_cmd, status_cmd, up_cmd};

use clap::{Parser, Subcommand};

// The pipeline allocates per flow (records own their strings); glibc's
// malloc spent about 40 % of its time allocating and freeing, mimalloc a
// fraction of that (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flowlens",
    version,
    about = "Network flow observability for Linux and Kubernetes"
)]
struct Cli {
    /// Log level for messages on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "info", env = "FLOWLENS_LOG")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture flows with eBPF on this host's interfaces and print them (root).
    Agent(agent_cmd::AgentArgs),
    /// Run everything on this host: agent, conversation tracking, /metrics (root).
    Up(up_cmd::UpArgs),
    /// Receive flows from agents over gRPC and run the pipeline on them.
    Collector(collector_cmd::CollectorArgs),
    /// Flows from a running up/collector's store, filtered.
    Flows(query_cmd::RecordsArgs),
    /// Conversations from a running up/collector's store, filtered.
    Conversations(query_cmd::RecordsArgs),
    /// The top groups by a metric (bytes, drops, RTT, ...).
    Top(query_cmd::TopArgs),
    /// A lab of namespaces with traffic and failures, `up` watching it and
    /// the console: every feature in a minute (root).
    Demo(demo::DemoArgs),
    /// Show the counters of a running `flowlens up`, collector or agent
    /// (received, sent, dropped and why).
    Status(status_cmd::StatusArgs),
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Agent(args) => agent_cmd::run(args),
        Command::Up(args) => up_cmd::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Collector(args) => collector_cmd::run(args),
        Command::Status(args) => status_cmd::run(args),
        Command::Flows(args) => query_cmd::run_records(args, false),
        Command::Conversations(args) => query_cmd::run_records(args, true),
        Command::Top(args) => query_cmd::run_top(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
