//! Where `up` and `collector` keep records: the data directory and its
//! retention.

use crate::capture_args::duration_arg;
use anyhow::{Context, Result};
use clap::Args;
use flowlens_store::{Store, StoreOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Directory of the flow store (Parquet files by hour).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/flowlens")]
    data_dir: PathBuf,
    /// Records older than this are removed, e.g. 7d, 12h.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, default_value = "7d")]
    retention: Duration,
    /// The store's files (flows, conversations and their rollups) take at
    /// most this much; the oldest go first, e.g. 10GiB, 500MB. They also go
    /// when the filesystem has too little free space for the next file.
    #[arg(long, value_name = "SIZE", value_parser = size_arg, default_value = "10GiB")]
    max_disk: u64,
    /// Store queries run at once at most; beyond, the API answers 503 with
    /// Retry-After (docs/query.md, "Query budgets").
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_concurrent_queries: usize,
    /// A store query still reading after this is stopped (504).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, default_value = "30s")]
    query_timeout: Duration,
    /// No audit log line per query (`audit token=… endpoint=… filter=…
    /// rows=… status=… duration_ms=…`, at info level, target
    /// `flowlens::audit`).
    #[arg(long)]
    no_audit_log: bool,
    /// Keep nothing on disk (no store, no query API).
    #[arg(long, conflicts_with_all = ["data_dir", "retention", "max_disk"])]
    no_store: bool,
}

/// `10GiB`, `500MB`, `1048576` as bytes.
pub fn size_arg(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a size such as 10GiB or 500MB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0f64.powi(3),
        "tib" => 1024.0f64.powi(4),
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    Ok((value * factor) as u64)
}

impl StoreArgs {
    /// What every query of the API runs under.
    pub fn query_limits(&self) -> crate::api::QueryLimits {
        crate::api::QueryLimits {
            max_concurrent: self.max_concurrent_queries.max(1),
            timeout: self.query_timeout,
            audit: !self.no_audit_log,
        }
    }

    /// The store, unless `--no-store`.
    pub fn open(&self) -> Result<Option<Store>> {
        if self.no_store {
            return Ok(None);
        }
        let store = Store::open(StoreOptions {
            retention: Some(self.retention),
            max_disk_bytes: Some(self.max_disk),
            ..StoreOptions::new(&self.data_dir)
        })
        .with_context(|| format!("opening the flow store in {}", self.data_dir.display()))?;
        Ok(Some(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size_arg("10GiB"), Ok(10 * 1024 * 1024 * 1024));
        assert_eq!(size_arg("500MB"), Ok(500_000_000));
        assert_eq!(size_arg("4096"), Ok(4096));
        assert!(size_arg("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(size_arg("GiB").is_err());
    }
}
