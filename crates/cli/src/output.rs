//! Writing flow records to stdout: JSON lines or a readable table.

use flowlens_model::FlowRecord;
use flowlens_model::tcp_flags::flag_names;
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Table,
}

impl OutputFormat {
    pub fn default_for_stdout() -> OutputFormat {
        if std::io::stdout().is_terminal() {
            OutputFormat::Table
        } else {
            OutputFormat::Json
        }
    }
}

/// Standard output that stops quietly once it is closed (e.g. piped to
/// `head`); other write errors are logged once.
#[derive(Default)]
struct Stdout {
    closed: bool,
}

impl Stdout {
    /// Runs `f` on a buffer in front of stdout: stdout is line-buffered, and
    /// serde writes a record in dozens of small pieces, each of which it
    /// would scan for a newline (a tenth of the agent's CPU).
    fn write(&mut self, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
        if self.closed {
            return;
        }
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        if let Err(e) = f(&mut out).and_then(|()| out.flush()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                tracing::error!("writing records: {e}");
            }
            self.closed = true;
        }
    }
}

fn json_lines<T: serde::Serialize>(out: &mut dyn Write, records: &[T]) -> std::io::Result<()> {
    for record in records {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Flow records as JSON lines or a table.
pub struct RecordWriter {
    format: OutputFormat,
    header_written: bool,
    stdout: Stdout,
}

impl RecordWriter {
    pub fn new(format: OutputFormat) -> RecordWriter {
        RecordWriter {
            format,
            header_written: false,
            stdout: Stdout::default(),
        }
    }

    pub fn write(&mut self, records: &[FlowRecord]) {
        let (format, header_written) = (self.format, &mut self.header_written);
        self.stdout.write(|out| match format {
            OutputFormat::Json => json_lines(out, records),
            OutputFormat::Table => {
                for record in records {
                    if !*header_written {
                        writeln!(out, "{}", table_header())?;
                        *header_written = true;
                    }
                    writeln!(out, "{}", table_row(record))?;
                }
                Ok(())
            }
        });
    }
}

const COLUMNS: [(&str, usize); 8] = [
    ("END", 12),
    ("SRC", 40),
    ("DST", 40),
    ("PROTO", 6),
    ("BYTES", 12),
    ("PKTS", 8),
    ("FLAGS", 22),
    ("INTERFACES", 0),
];

fn table_header() -> String {
    COLUMNS
        .iter()
        .map(|(name, width)| format!("{name:<width$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn endpoint(addr: &str, port: u16, with_port: bool) -> String {
    match (with_port, addr.contains(':')) {
        (false, _) => addr.to_string(),
        (true, true) => format!("[{addr}]:{port}"),
        (true, false) => format!("{addr}:{port}"),
    }
}

fn proto_name(record: &FlowRecord) -> String {
    match record.proto {
        _ if record.etype == 0x0806 => "ARP".into(),
        0 if record.etype != 0x0800 && record.etype != 0x86DD => format!("0x{:04x}", record.etype),
        other => flowlens_model::vocab::protocol_label(other).into_owned(),
    }
}

fn table_row(r: &FlowRecord) -> String {
    let has_ports = matches!(r.proto, 6 | 17 | 132);
    let time = {
        let secs = r.time_flow_end_ms.div_euclid(1000);
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        format!(
            "{h:02}:{m:02}:{s:02}.{:03}",
            r.time_flow_end_ms.rem_euclid(1000)
        )
    };
    let flags = if r.proto == 6 {
        flag_names(r.flags).join(",")
    } else {
        String::new()
    };
    let icmp = match (r.icmp_type, r.icmp_code) {
        (Some(t), Some(c)) => format!(" type {t} code {c}"),
        _ => String::new(),
    };
    let interfaces = r
        .interfaces
        .iter()
        .zip(&r.if_directions)
        .map(|(name, dir)| format!("{name}({})", if *dir == 0 { "in" } else { "out" }))
        .collect::<Vec<_>>()
        .join(",");
    let cells = [
        time,
        endpoint(&r.src_addr.to_string(), r.src_port, has_ports),
        endpoint(&r.dst_addr.to_string(), r.dst_port, has_ports),
        proto_name(r),
        r.bytes.to_string(),
        r.packets.to_string(),
        format!("{flags}{icmp}"),
        interfaces,
    ];
    cells
        .iter()
        .zip(COLUMNS)
        .map(|(cell, (_, width))| format!("{cell:<width$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// JSON lines of already-built records (conversation records, flow logs).
#[derive(Default)]
pub struct JsonLineWriter {
    stdout: Stdout,
}

impl JsonLineWriter {
    pub fn write<T: serde::Serialize>(&mut self, records: &[&T]) {
        if !records.is_empty() {
            self.stdout.write(|out| json_lines(out, records));
        }
    }
}

/// `name value` lines of a component's counters, for humans: nested maps
/// (counts by reason) indent under their name.
pub fn counters_text(counters: &impl serde::Serialize) -> String {
    fn lines(out: &mut String, value: &serde_json::Value, indent: usize) {
        for (name, v) in value.as_object().into_iter().flatten() {
            let width = 28usize.saturating_sub(indent);
            match v {
                serde_json::Value::Object(_) => {
                    out.push_str(&format!("{:indent$}{name}:\n", ""));
                    lines(out, v, indent + 2);
                }
                serde_json::Value::String(s) => {
                    out.push_str(&format!("{:indent$}{name:<width$} {s}\n", ""))
                }
                other => out.push_str(&format!("{:indent$}{name:<width$} {other}\n", "")),
            }
        }
    }
    let mut out = String::new();
    lines(
        &mut out,
        &serde_json::to_value(counters).unwrap_or_default(),
        0,
    );
    out
}
