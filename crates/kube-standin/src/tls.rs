//! The stand-in's TLS: a certificate authority made for this server alone,
//! and a server certificate it signs for 127.0.0.1 and localhost. Clients
//! trust the CA from the kubeconfig, as they trust a cluster's.

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

pub struct Credentials {
    /// The CA's certificate, PEM (`certificate-authority-data`).
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

pub fn credentials() -> Result<Credentials> {
    let ca_key = KeyPair::generate().context("the CA's key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "flowlens stand-in API server CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).context("the CA's certificate")?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().context("the server's key")?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "flowlens stand-in API server");
    let cert = leaf
        .signed_by(&key, &issuer)
        .context("the server's certificate")?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .context("the server's TLS configuration")?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Credentials {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    })
}
