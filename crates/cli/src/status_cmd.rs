//! `flowlens status`: the counters of a running `flowlens up` — what was
//! captured, and every place where something was dropped or lost.

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    server: crate::http_client::ServerArgs,
    /// Print the raw JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatusArgs) -> Result<()> {
    let body = crate::http_client::get(&args.server, "/status")?;
    let doc: serde_json::Value =
        serde_json::from_str(&body).context("the /status answer is not JSON")?;
    if args.json {
        println!("{doc}");
        return Ok(());
    }
    for (section, value) in doc.as_object().into_iter().flatten() {
        println!("{section}:");
        for line in crate::output::counters_text(value).lines() {
            println!("  {line}");
        }
    }
    Ok(())
}
