//! `flowlens agent`: the flow agent in the foreground, records on stdout.

use crate::capture_args::CaptureArgs;
use crate::output::{OutputFormat, RecordWriter};
use crate::shutdown::shutdown_signal;
use anyhow::Result;
use clap::Args;
use flowlens_agent::FlowAgent;

#[derive(Args, Debug)]
pub struct AgentArgs {
    #[command(flatten)]
    capture: CaptureArgs,
    /// Record format: json (one per line) or table. Default: table on a
    /// terminal, json otherwise.
    #[arg(long, value_enum)]
    output: Option<OutputFormat>,
    /// Print the agent's counters to stderr on exit.
    #[arg(long)]
    stats: bool,
}

pub fn run(args: AgentArgs) -> Result<()> {
    let (settings, _) = args.capture.resolve(false)?;
    let format = args.output.unwrap_or_else(OutputFormat::default_for_stdout);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let stats = runtime.block_on(async move {
        let agent = FlowAgent::new(settings)?;
        let mut writer = RecordWriter::new(format);
        agent
            .run(|records| writer.write(records), shutdown_signal())
            .await
    })?;
    if args.stats {
        eprint!("flowlens agent stats:\n{}", stats.to_text());
    }
    Ok(())
}
