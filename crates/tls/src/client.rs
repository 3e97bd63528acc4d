//! The client's side (agents to the collector, the CLI to the API): the
//! server's certificate verified against a CA file (or the system's CAs),
//! optionally a certificate of our own, re-read when the files change.

use crate::failure::HandshakeFailure;
use crate::reloading::Reloading;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, Clone, Default)]
pub struct ClientTlsFiles {
    /// The CA that signed the server's certificate; None: the system's CAs.
    pub ca: Option<PathBuf>,
    /// Our certificate and key, for servers that require one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The system's CA bundle (Debian's ca-certificates).
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct ClientTls {
    files: ClientTlsFiles,
    config: Reloading<Arc<ClientConfig>>,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl ClientTls {
    /// Reads the files now; an error names the file and what is wrong.
    pub fn new(files: ClientTlsFiles, alpn: &[&[u8]]) -> Result<ClientTls, String> {
        if files.cert.is_some() != files.key.is_some() {
            return Err("a client certificate needs its key, and a key its certificate".into());
        }
        let watched = [files.ca.as_ref(), files.cert.as_ref(), files.key.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let building = files.clone();
        let config = Reloading::new("TLS client certificate", watched, move || {
            build(&building, &alpn).map(Arc::new)
        })?;
        Ok(ClientTls {
            files,
            config,
            failures: Mutex::default(),
        })
    }

    /// A handshake with the server reached as `host` (a DNS name or an IP
    /// address, which its certificate must name).
    pub async fn connect<IO>(
        &self,
        io: IO,
        host: &str,
    ) -> Result<tokio_rustls::client::TlsStream<IO>, HandshakeFailure>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let connector = tokio_rustls::TlsConnector::from(self.config.current().as_ref().clone());
        let handshake = connector.connect(server_name(host)?, io);
        let outcome = crate::failure::within(HANDSHAKE_DEADLINE, handshake).await;
        if let Err(failure) = &outcome
            && let Ok(mut f) = self.failures.lock()
        {
            *f.entry(failure.reason().to_string()).or_default() += 1;
        }
        outcome
    }

    /// A handshake on a blocking socket (the CLI's client), with the
    /// server reached as `host`.
    pub fn connect_blocking(
        &self,
        mut tcp: std::net::TcpStream,
        host: &str,
    ) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, HandshakeFailure>
    {
        let config = self.config.current().as_ref().clone();
        let mut connection = rustls::ClientConnection::new(config, server_name(host)?)
            .map_err(|e| HandshakeFailure::of_tls(&e))?;
        while connection.is_handshaking() {
            connection
                .complete_io(&mut tcp)
                .map_err(|e| HandshakeFailure::of_io(&e))?;
        }
        Ok(rustls::StreamOwned::new(connection, tcp))
    }

    /// Handshakes that failed, by reason.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn reload_stats(&self) -> crate::reloading::ReloadStats {
        self.config.stats()
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", &self.files)
            .finish()
    }
}

/// A handshake with the server must finish within this.
const HANDSHAKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The name the server's certificate must hold: a DNS name, or an IP
/// address (an IPv6 one with or without its URL brackets).
fn server_name(host: &str) -> Result<ServerName<'static>, HandshakeFailure> {
    ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
        .map(|n| n.to_owned())
        .map_err(|_| HandshakeFailure::WrongName)
}

fn build(files: &ClientTlsFiles, alpn: &[Vec<u8>]) -> Result<ClientConfig, String> {
    let roots = match &files.ca {
        Some(ca) => crate::pem::roots(ca)?,
        None => crate::pem::roots(std::path::Path::new(SYSTEM_CAS)).map_err(|e| {
            format!("no CA given and the system's cannot be read ({e}): give the CA file")
        })?,
    };
    let builder = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(
                crate::pem::certificates(cert)?,
                crate::pem::private_key(key)?,
            )
            .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?,
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// Runs a closure at most once a second (a log line a hostile peer could
/// otherwise repeat as fast as it connects).
#[derive(Default)]
pub struct OncePerSecond {
    last: AtomicU64,
}

impl OncePerSecond {
    pub fn run(&self, f: impl FnOnce()) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if self.last.swap(now, Ordering::Relaxed) != now {
            f();
        }
    }
}
