//! `flowlens status`: the counters of a running `flowlens up` — what was
//! captured, and every place where something was dropped or lost.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The `flowlens up`, collector or agent (`--listen`) to ask (http://HOST:PORT).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9290")]
    server: String,
    /// Print the raw JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

/// host:port of an `http://host:port[/]` URL.
fn authority(url: &str) -> Result<&str> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--server `{url}`: expected http://HOST:PORT"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("--server `{url}`: expected http://HOST:PORT");
    }
    Ok(authority)
}

/// GET `path` over HTTP/1.1; the body of a 200 answer.
fn get(authority: &str, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(authority)
        .with_context(|| format!("connecting to {authority} (is `flowlens up` running?)"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.contains(" 200 ") {
        bail!("{authority}{path} answered `{status_line}`");
    }
    Ok(body.to_string())
}

pub fn run(args: StatusArgs) -> Result<()> {
    let body = get(authority(&args.server)?, "/status")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            authority("http://127.0.0.1:9290").unwrap(),
            "127.0.0.1:9290"
        );
        assert_eq!(authority("http://[::1]:9290/").unwrap(), "[::1]:9290");
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://x:1/status").is_err());
    }
}
