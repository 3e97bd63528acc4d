//! The listener's side: a certificate and key, optionally a CA that client
//! certificates must chain to (mutual TLS), re-read when the files change.
//! A handshake has a deadline; every failure is counted by reason.

use crate::failure::HandshakeFailure;
use crate::identity::PeerIdentity;
use crate::reloading::Reloading;
use rustls::ServerConfig;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With it, clients must show a certificate this CA signed.
    pub client_ca: Option<PathBuf>,
}

/// What the TLS side of a listener did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TlsStats {
    /// Handshakes that finished.
    pub handshakes: u64,
    /// Handshakes that failed, by reason (unknown_ca, expired_certificate,
    /// no_client_certificate, not_tls, timeout, ...).
    pub handshake_failures: BTreeMap<String, u64>,
    /// The certificate files were re-read after they changed.
    pub reloads: u64,
    /// Changed files that could not be used (the previous ones stayed).
    pub reload_errors: u64,
    /// When the certificate in use expires (seconds since 1970).
    pub certificate_not_after: i64,
    /// 1 when clients must show a certificate.
    pub mutual: u64,
}

impl TlsStats {
    pub const GAUGES: &'static [&'static str] = &["certificate_not_after", "mutual"];
}

struct Built {
    config: Arc<ServerConfig>,
    not_after: i64,
}

pub struct ServerTls {
    config: Reloading<Built>,
    mutual: bool,
    handshake_timeout: Duration,
    counts: Mutex<TlsStats>,
    log: crate::client::OncePerSecond,
}

impl ServerTls {
    /// Reads the files now: an error names the file and what is wrong.
    /// `alpn`: the application protocols offered (`h2` for gRPC).
    pub fn new(
        files: ServerTlsFiles,
        alpn: &[&[u8]],
        handshake_timeout: Duration,
    ) -> Result<ServerTls, String> {
        let watched = [
            Some(&files.cert),
            Some(&files.key),
            files.client_ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let mutual = files.client_ca.is_some();
        let config = Reloading::new("TLS certificate", watched, move || build(&files, &alpn))?;
        Ok(ServerTls {
            config,
            mutual,
            handshake_timeout,
            counts: Mutex::default(),
            log: Default::default(),
        })
    }

    /// Whether clients must show a certificate.
    pub fn mutual(&self) -> bool {
        self.mutual
    }

    /// The server's side of a handshake on `io`, with the client's identity
    /// when it showed a certificate.
    pub async fn accept<IO>(
        &self,
        io: IO,
    ) -> Result<(tokio_rustls::server::TlsStream<IO>, Option<PeerIdentity>), HandshakeFailure>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.current().config.clone());
        match crate::failure::within(self.handshake_timeout, acceptor.accept(io)).await {
            Ok(stream) => {
                self.count(|s| s.handshakes += 1);
                let identity = PeerIdentity::of_peer(stream.get_ref().1.peer_certificates());
                Ok((stream, identity))
            }
            Err(failure) => {
                self.count(|s| {
                    *s.handshake_failures
                        .entry(failure.reason().to_string())
                        .or_default() += 1
                });
                self.log.run(|| {
                    tracing::info!(reason = failure.reason(), "refused a TLS client: {failure}")
                });
                Err(failure)
            }
        }
    }

    fn count(&self, f: impl FnOnce(&mut TlsStats)) {
        if let Ok(mut s) = self.counts.lock() {
            f(&mut s);
        }
    }

    pub fn stats(&self) -> TlsStats {
        let mut s = self.counts.lock().map(|s| s.clone()).unwrap_or_default();
        let reload = self.config.stats();
        s.reloads = reload.reloads;
        s.reload_errors = reload.reload_errors;
        s.certificate_not_after = self.config.current().not_after;
        s.mutual = u64::from(self.mutual);
        s
    }
}

fn build(files: &ServerTlsFiles, alpn: &[Vec<u8>]) -> Result<Built, String> {
    let certs = crate::pem::certificates(&files.cert)?;
    let key = crate::pem::private_key(&files.key)?;
    let not_after = crate::identity::not_after(&certs[0]).unwrap_or(0);
    let builder = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(crate::pem::roots(ca)?);
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots,
                crate::provider(),
            )
            .build()
            .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(Built {
        config: Arc::new(config),
        not_after,
    })
}
