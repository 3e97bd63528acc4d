//! PEM files: a certificate chain, a private key, a bundle of CAs. Errors
//! name the file and what is wrong, so a user who mounted the wrong secret
//! sees which.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// The certificates of `path`, leaf first; at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {}", path.display(), describe(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {}", path.display(), describe(e)))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate (a PEM block `BEGIN CERTIFICATE`) in the file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of `path` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{}: no private key (a PEM block `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`) in the file",
            path.display()
        ),
        e => format!("{}: {}", path.display(), describe(e)),
    })
}

/// The CAs of `path`, as trust anchors.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

fn describe(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "nothing usable in the file".into(),
        e => format!("not valid PEM: {e:?}"),
    }
}
