//! The TLS flags of the collector's gRPC listener and of the agents'
//! connection to it, with their keys in the FlowCollector file
//! (`spec.processor.advanced` / `spec.agent.ebpf.advanced`; a flag wins),
//! and the rule that a listener off loopback without TLS needs
//! `--insecure`. docs/security.md.

use anyhow::{Result, bail};
use clap::Args;
use flowlens_config::{Advanced, FlowCollectorFile};
use flowlens_tls::{ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// gRPC's application protocol, offered in the TLS handshake.
const H2: &[u8] = b"h2";

/// A TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug, Clone, Default)]
pub struct GrpcTlsArgs {
    /// Serve gRPC over TLS with this certificate (PEM, the leaf first;
    /// re-read when the file changes). File key:
    /// spec.processor.advanced.grpcTLSCert.
    #[arg(long, value_name = "FILE")]
    grpc_tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM). File key:
    /// spec.processor.advanced.grpcTLSKey.
    #[arg(long, value_name = "FILE")]
    grpc_tls_key: Option<PathBuf>,
    /// Require agents to show a certificate this CA signed (mutual TLS):
    /// its name is stamped on their records (AgentName) and records
    /// claiming an address it does not hold are refused. File key:
    /// spec.processor.advanced.grpcClientCA.
    #[arg(long, value_name = "FILE")]
    grpc_client_ca: Option<PathBuf>,
}

/// A flag, else the file's key.
fn flag_or_file(
    flag: &Option<PathBuf>,
    file: Option<&FlowCollectorFile>,
    section: Advanced,
    key: &str,
) -> Result<Option<PathBuf>> {
    if flag.is_some() {
        return Ok(flag.clone());
    }
    Ok(match file {
        Some(file) => file.advanced_file(section, key)?,
        None => None,
    })
}

impl GrpcTlsArgs {
    /// The listener's TLS, read now (an unusable file is an error naming
    /// it); None without a certificate.
    pub fn server(&self, file: Option<&FlowCollectorFile>) -> Result<Option<Arc<ServerTls>>> {
        let section = Advanced::Processor;
        let cert = flag_or_file(&self.grpc_tls_cert, file, section, "grpcTLSCert")?;
        let key = flag_or_file(&self.grpc_tls_key, file, section, "grpcTLSKey")?;
        let client_ca = flag_or_file(&self.grpc_client_ca, file, section, "grpcClientCA")?;
        let (cert, key) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) if client_ca.is_some() => {
                bail!("--grpc-client-ca needs TLS: give --grpc-tls-cert and --grpc-tls-key")
            }
            (None, None) => return Ok(None),
            (Some(_), None) => bail!("--grpc-tls-cert needs its key: give --grpc-tls-key"),
            (None, Some(_)) => bail!("--grpc-tls-key needs its certificate: give --grpc-tls-cert"),
        };
        let files = ServerTlsFiles {
            cert,
            key,
            client_ca,
        };
        let tls = ServerTls::new(files, &[H2], HANDSHAKE_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("gRPC TLS: {e}"))?;
        Ok(Some(Arc::new(tls)))
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct CollectorTlsArgs {
    /// Verify the collector's certificate against this CA (PEM) and talk
    /// TLS to it; an address without a scheme becomes https://. File key:
    /// spec.agent.ebpf.advanced.collectorCA.
    #[arg(long, value_name = "FILE")]
    collector_ca: Option<PathBuf>,
    /// This agent's certificate, for a collector that requires one (its
    /// name and IP addresses are the node's). File key:
    /// spec.agent.ebpf.advanced.collectorCert.
    #[arg(long, value_name = "FILE")]
    collector_cert: Option<PathBuf>,
    /// The agent certificate's private key. File key:
    /// spec.agent.ebpf.advanced.collectorKey.
    #[arg(long, value_name = "FILE")]
    collector_key: Option<PathBuf>,
}

impl CollectorTlsArgs {
    /// TLS towards the collector at `collector`: with a CA or a
    /// certificate given, or an https:// address (the system's CAs).
    pub fn client(
        &self,
        collector: &str,
        file: Option<&FlowCollectorFile>,
    ) -> Result<Option<Arc<ClientTls>>> {
        let section = Advanced::Agent;
        let files = ClientTlsFiles {
            ca: flag_or_file(&self.collector_ca, file, section, "collectorCA")?,
            cert: flag_or_file(&self.collector_cert, file, section, "collectorCert")?,
            key: flag_or_file(&self.collector_key, file, section, "collectorKey")?,
        };
        let wanted =
            files.ca.is_some() || files.cert.is_some() || collector.starts_with("https://");
        if !wanted {
            return Ok(None);
        }
        let tls =
            ClientTls::new(files, &[H2]).map_err(|e| anyhow::anyhow!("collector TLS: {e}"))?;
        Ok(Some(Arc::new(tls)))
    }
}
