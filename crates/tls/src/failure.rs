//! Why a TLS handshake failed, sorted into the reasons flowlens counts and
//! told in words a user can act on.

use rustls::{AlertDescription, CertificateError, Error};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HandshakeFailure {
    /// The peer's certificate is not signed by a trusted CA.
    UnknownCa,
    /// The peer's certificate is past its notAfter.
    ExpiredCertificate,
    /// The peer's certificate is not valid yet (notBefore in the future).
    NotYetValidCertificate,
    /// The certificate does not name the host it was reached by.
    WrongName,
    /// Any other certificate fault (bad encoding, wrong usage, revoked).
    BadCertificate,
    /// Client certificates are required and the client showed none.
    NoClientCertificate,
    /// The peer refused our certificate (it sent an alert).
    PeerRefusedCertificate,
    /// The peer does not speak TLS (plaintext HTTP/2 to a TLS listener, or
    /// the reverse).
    NotTls,
    /// No protocol version, cipher or ALPN protocol in common.
    Incompatible,
    /// The handshake did not finish within its deadline.
    Timeout,
    /// The connection closed or failed during the handshake.
    ConnectionLost,
    Other,
}

/// A handshake that must finish within `deadline`: its stream, or why not.
pub async fn within<T>(
    deadline: std::time::Duration,
    handshake: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, HandshakeFailure> {
    match tokio::time::timeout(deadline, handshake).await {
        Err(_) => Err(HandshakeFailure::Timeout),
        Ok(Err(e)) => Err(HandshakeFailure::of_io(&e)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

impl HandshakeFailure {
    /// The reason's name in counters.
    pub fn reason(self) -> &'static str {
        match self {
            HandshakeFailure::UnknownCa => "unknown_ca",
            HandshakeFailure::ExpiredCertificate => "expired_certificate",
            HandshakeFailure::NotYetValidCertificate => "not_yet_valid_certificate",
            HandshakeFailure::WrongName => "wrong_name",
            HandshakeFailure::BadCertificate => "bad_certificate",
            HandshakeFailure::NoClientCertificate => "no_client_certificate",
            HandshakeFailure::PeerRefusedCertificate => "peer_refused_certificate",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::ConnectionLost => "connection_lost",
            HandshakeFailure::Other => "other",
        }
    }

    /// Sorts the error of a handshake (tokio-rustls hands rustls's error
    /// inside an io::Error).
    pub fn of_io(e: &std::io::Error) -> HandshakeFailure {
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            return HandshakeFailure::of_tls(tls);
        }
        match e.kind() {
            std::io::ErrorKind::TimedOut => HandshakeFailure::Timeout,
            // rustls reads a record that is not TLS as corrupt data.
            std::io::ErrorKind::InvalidData => HandshakeFailure::NotTls,
            _ => HandshakeFailure::ConnectionLost,
        }
    }

    pub fn of_tls(e: &Error) -> HandshakeFailure {
        match e {
            Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    HandshakeFailure::UnknownCa
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    HandshakeFailure::ExpiredCertificate
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    HandshakeFailure::NotYetValidCertificate
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => HandshakeFailure::WrongName,
                _ => HandshakeFailure::BadCertificate,
            },
            Error::NoCertificatesPresented => HandshakeFailure::NoClientCertificate,
            Error::AlertReceived(alert) => match alert {
                AlertDescription::CertificateRequired => HandshakeFailure::NoClientCertificate,
                AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied
                | AlertDescription::DecryptError => HandshakeFailure::PeerRefusedCertificate,
                AlertDescription::ProtocolVersion
                | AlertDescription::HandshakeFailure
                | AlertDescription::NoApplicationProtocol => HandshakeFailure::Incompatible,
                _ => HandshakeFailure::Other,
            },
            Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
                HandshakeFailure::NotTls
            }
            Error::PeerIncompatible(_) | Error::NoApplicationProtocol => {
                HandshakeFailure::Incompatible
            }
            _ => HandshakeFailure::Other,
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeFailure::UnknownCa => "the certificate is not signed by a trusted CA",
            HandshakeFailure::ExpiredCertificate => "the certificate has expired",
            HandshakeFailure::NotYetValidCertificate => "the certificate is not valid yet",
            HandshakeFailure::WrongName => {
                "the certificate does not name the host it was reached by"
            }
            HandshakeFailure::BadCertificate => "the certificate is not usable",
            HandshakeFailure::NoClientCertificate => {
                "a client certificate is required and none was shown"
            }
            HandshakeFailure::PeerRefusedCertificate => "the peer refused our certificate",
            HandshakeFailure::NotTls => "the peer does not speak TLS (plaintext on one side?)",
            HandshakeFailure::Incompatible => "no TLS version, cipher or protocol in common",
            HandshakeFailure::Timeout => "the TLS handshake took too long",
            HandshakeFailure::ConnectionLost => "the connection closed during the TLS handshake",
            HandshakeFailure::Other => "the TLS handshake failed",
        })
    }
}

impl std::error::Error for HandshakeFailure {}
