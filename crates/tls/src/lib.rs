//! TLS for flowlens's listeners (gRPC from agents, HTTP) and clients
//! (agents, the CLI), with rustls and ring — no OpenSSL.
//!
//! - `pem`: certificates, keys and CA bundles read from PEM files, with
//!   errors naming the file and what is wrong in it;
//! - `reloading`: a configuration rebuilt when its files change (Kubernetes
//!   rotates a secret by swapping its files), the old one kept when the new
//!   files are bad; connections already up keep the session they have;
//! - `server` and `client`: handshakes within a deadline, failures sorted
//!   by reason and counted;
//! - `identity`: what a peer's certificate says it is (names, addresses).

pub mod client;
pub mod failure;
pub mod identity;
pub mod pem;
pub mod reloading;
pub mod server;
#[cfg(feature = "test-pki")]
pub mod test_pki;

pub use client::{ClientTls, ClientTlsFiles};
pub use failure::HandshakeFailure;
pub use identity::PeerIdentity;
pub use server::{ServerTls, ServerTlsFiles, TlsStats};

/// A listener on `addr` without TLS: refused off loopback unless the user
/// said `--insecure` (`tls_flags` names the flags that would secure it).
pub fn plaintext_allowed(
    addr: std::net::SocketAddr,
    insecure: bool,
    what: &str,
    tls_flags: &str,
) -> Result<(), String> {
    if addr.ip().is_loopback() || insecure {
        return Ok(());
    }
    Err(format!(
        "{what} on {addr} without TLS would carry flow records in clear to anyone on the network: give {tls_flags}, bind a loopback address, or say --insecure"
    ))
}

/// The cryptography every configuration uses (ring).
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
