//! `flowlens flows`, `flowlens conversations` and `flowlens top`: questions
//! to a running `up` or collector, answered from its store.

use crate::http_client::{ServerArgs, get, path_with};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use flowlens_model::tcp_flags::flag_names;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct RangeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Filter, e.g. 'dns.rcode = NXDomain and src.namespace = shop'.
    #[arg(long, short = 'f', value_name = "FILTER")]
    filter: Option<String>,
    /// Start: a duration ago (15m, 2h, 7d), an RFC 3339 time or epoch ms.
    #[arg(long, value_name = "TIME", default_value = "15m")]
    since: String,
    /// End (default: now), same forms as --since.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

#[derive(Args, Debug)]
pub struct RecordsArgs {
    #[command(flatten)]
    range: RangeArgs,
    /// Records at most (newest first).
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    /// table (fits the terminal), json (one record per line) or csv.
    /// Default: table on a terminal, json otherwise.
    #[arg(long, short = 'o', value_enum)]
    output: Option<Output>,
    /// Keep printing new records as they arrive (every 2 s).
    #[arg(long)]
    follow: bool,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    range: RangeArgs,
    /// Group by this field (any filter field: dst.namespace, src.addr, dns.name, ...).
    #[arg(long, value_name = "FIELD", default_value = "dst.namespace")]
    by: String,
    /// bytes, packets, flows, drops, drop_bytes, retransmits, rtt[_p50|_p90|_p99|_max],
    /// dns_latency[_p50|_p90|_p99|_max].
    #[arg(long, value_name = "METRIC", default_value = "bytes")]
    metric: String,
    /// Groups to show.
    #[arg(long, short = 'k', value_name = "K", default_value_t = 10)]
    k: usize,
    /// Read the flows (default) or the conversations.
    #[arg(long)]
    conversations: bool,
    #[arg(long, short = 'o', value_enum)]
    output: Option<Output>,
}

fn terminal_width() -> usize {
    if let Some(cols) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return cols;
    }
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0 {
            return size.ws_col as usize;
        }
    }
    120
}

fn text(r: &Map<String, Value>, name: &str) -> String {
    match r.get(name) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn endpoint(r: &Map<String, Value>, side: &str) -> String {
    let addr = text(r, &format!("{side}Addr"));
    let port = text(r, &format!("{side}Port"));
    let name = text(r, &format!("{side}K8S_Name"));
    let at = if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr
    };
    let with_port = if port.is_empty() || port == "0" {
        at
    } else {
        format!("{at}:{port}")
    };
    if name.is_empty() {
        with_port
    } else {
        format!("{with_port} ({name})")
    }
}

fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// What went on: DNS outcome, drops, outcome, RTT, retransmits, flags.
fn notes(r: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    if let Some(rcode) = r.get("DnsFlagsResponseCode").and_then(Value::as_str) {
        parts.push(format!("dns {} {}", text(r, "DnsName"), rcode));
    }
    if let Some(drops) = r
        .get("PktDropPackets")
        .and_then(Value::as_u64)
        .filter(|d| *d > 0)
    {
        let cause = text(r, "PktDropLatestDropCause");
        parts.push(format!(
            "dropped {drops} {}",
            cause.trim_start_matches("SKB_DROP_REASON_")
        ));
    }
    for name in ["ConnOutcome", "CloseCause"] {
        if let Some(o) = r.get(name).and_then(Value::as_str) {
            parts.push(o.to_string());
        }
    }
    if let Some(n) = r
        .get("TcpRetransmits")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    {
        parts.push(format!("{n} retransmits"));
    }
    if let Some(ns) = r
        .get("TimeFlowRttNs")
        .or_else(|| r.get("TimeFlowRttAvgNs"))
        .and_then(Value::as_u64)
    {
        parts.push(format!("rtt {:.2}ms", ns as f64 / 1e6));
    }
    if let Some(flags) = r.get("Flags").and_then(Value::as_u64).filter(|f| *f != 0) {
        parts.push(flag_names(flags as u32).join(","));
    }
    parts.join("; ")
}

fn proto(r: &Map<String, Value>) -> String {
    match r.get("Proto").and_then(Value::as_u64) {
        Some(n) => match u8::try_from(n) {
            Ok(n) => flowlens_model::vocab::protocol_label(n).into_owned(),
            Err(_) => n.to_string(),
        },
        None => String::new(),
    }
}

/// (header, cells) of a flow or conversation row.
fn row(r: &Map<String, Value>, conversations: bool) -> Vec<String> {
    let time = clock(r.get("TimeFlowEndMs").and_then(Value::as_i64).unwrap_or(0));
    if conversations {
        vec![
            time,
            text(r, "_RecordType"),
            endpoint(r, "Src"),
            endpoint(r, "Dst"),
            proto(r),
            text(r, "Bytes_AB"),
            text(r, "Bytes_BA"),
            notes(r),
        ]
    } else {
        vec![
            time,
            endpoint(r, "Src"),
            endpoint(r, "Dst"),
            proto(r),
            text(r, "Bytes"),
            text(r, "Packets"),
            notes(r),
        ]
    }
}

fn header(conversations: bool) -> Vec<String> {
    let names: &[&str] = if conversations {
        &[
            "END",
            "TYPE",
            "A",
            "B",
            "PROTO",
            "BYTES A>B",
            "BYTES B>A",
            "NOTES",
        ]
    } else {
        &["END", "SRC", "DST", "PROTO", "BYTES", "PKTS", "NOTES"]
    };
    names.iter().map(|s| s.to_string()).collect()
}

/// Rows padded to their columns' widths and cut to the terminal's.
fn print_table(rows: &[Vec<String>], out: &mut impl Write) -> std::io::Result<()> {
    let width = terminal_width();
    let columns = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
                .min(48)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let cell: String = cell.chars().take(widths[c]).collect();
            if c + 1 == columns {
                line.push_str(&cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        let line: String = line.trim_end().chars().take(width).collect();
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn output_of(choice: Option<Output>) -> Output {
    choice.unwrap_or(if std::io::stdout().is_terminal() {
        Output::Table
    } else {
        Output::Json
    })
}

fn fetch(
    args: &RecordsArgs,
    path: &str,
    since: &str,
    order: &str,
) -> Result<Vec<Map<String, Value>>> {
    let r = &args.range;
    let body = get(
        &r.server,
        &path_with(
            path,
            &[
                ("filter", r.filter.clone()),
                ("since", Some(since.to_string())),
                ("until", r.until.clone()),
                ("limit", Some(args.limit.to_string())),
                ("order", Some(order.to_string())),
            ],
        ),
    )?;
    let page: Value = serde_json::from_str(&body).context("the answer is not JSON")?;
    Ok(page["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_object().cloned())
        .collect())
}

fn print_records(
    records: &[Map<String, Value>],
    output: Output,
    conversations: bool,
    with_header: bool,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let result = match output {
        Output::Json => records
            .iter()
            .try_for_each(|r| writeln!(out, "{}", Value::Object(r.clone()))),
        Output::Csv => write!(out, "{}", crate::api::to_csv(records)),
        Output::Table => {
            let mut rows = Vec::new();
            if with_header {
                rows.push(header(conversations));
            }
            rows.extend(records.iter().map(|r| row(r, conversations)));
            print_table(&rows, &mut out)
        }
    };
    match result.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

pub fn run_records(args: RecordsArgs, conversations: bool) -> Result<()> {
    let path = if conversations {
        "/api/conversations"
    } else {
        "/api/flows"
    };
    let output = output_of(args.output);
    let mut records = fetch(&args, path, &args.range.since, "desc")?;
    records.reverse(); // oldest first on screen, the newest at the bottom
    print_records(&records, output, conversations, true)?;
    if !args.follow {
        return Ok(());
    }
    // Follow: ask again for what ended since the newest record seen.
    let mut seen: HashSet<u64> = records.iter().filter_map(|r| r["_Id"].as_u64()).collect();
    let mut newest = records
        .iter()
        .filter_map(|r| r["TimeFlowEndMs"].as_i64())
        .max()
        .unwrap_or(0);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let since = if newest > 0 {
            newest.to_string()
        } else {
            args.range.since.clone()
        };
        let fresh: Vec<_> = fetch(&args, path, &since, "asc")?
            .into_iter()
            .filter(|r| r["_Id"].as_u64().is_some_and(|id| seen.insert(id)))
            .collect();
        if let Some(t) = fresh
            .iter()
            .filter_map(|r| r["TimeFlowEndMs"].as_i64())
            .max()
        {
            newest = newest.max(t);
        }
        if !fresh.is_empty() {
            print_records(&fresh, output, conversations, false)?;
        }
    }
}

pub fn run_top(args: TopArgs) -> Result<()> {
    let r = &args.range;
    let body = get(
        &r.server,
        &path_with(
            "/api/top",
            &[
                ("filter", r.filter.clone()),
                ("since", Some(r.since.clone())),
                ("until", r.until.clone()),
                ("by", Some(args.by.clone())),
                ("metric", Some(args.metric.clone())),
                ("k", Some(args.k.to_string())),
                (
                    "table",
                    Some(
                        if args.conversations {
                            "conversations"
                        } else {
                            "flows"
                        }
                        .into(),
                    ),
                ),
            ],
        ),
    )?;
    let answer: Value = serde_json::from_str(&body).context("the answer is not JSON")?;
    let entries = answer["entries"].as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match output_of(args.output) {
        Output::Json => {
            for e in &entries {
                writeln!(out, "{e}")?;
            }
        }
        Output::Csv => {
            writeln!(out, "{},{},records", args.by, args.metric)?;
            for e in &entries {
                writeln!(
                    out,
                    "{},{},{}",
                    e["key"].as_str().unwrap_or(""),
                    e["value"],
                    e["records"]
                )?;
            }
        }
        Output::Table => {
            let mut rows = vec![vec![
                args.by.to_uppercase(),
                args.metric.to_uppercase(),
                "RECORDS".into(),
            ]];
            for e in &entries {
                let key = e["key"].as_str().unwrap_or("").to_string();
                let value = e["value"].as_f64().unwrap_or(0.0);
                let shown = if value.fract() == 0.0 {
                    format!("{value:.0}")
                } else {
                    format!("{value:.3}")
                };
                rows.push(vec![
                    if key.is_empty() { "(none)".into() } else { key },
                    shown,
                    e["records"].to_string(),
                ]);
            }
            print_table(&rows, &mut out)?;
        }
    }
    Ok(())
}
