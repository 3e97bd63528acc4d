//! What a peer's certificate says it is: its name (the first DNS name of
//! its subjectAltName, else its subject's common name) and the IP
//! addresses its subjectAltName lists. rustls has checked the chain and
//! the dates before this is read.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The node's name, when the certificate gives one.
    pub name: Option<String>,
    /// Every DNS name of the subjectAltName.
    pub dns_names: Vec<String>,
    /// Every IP address of the subjectAltName.
    pub addresses: Vec<IpAddr>,
}

impl PeerIdentity {
    /// The identity in a DER certificate; None if it does not parse (rustls
    /// parsed it already, so it always does).
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut dns_names = Vec::new();
        let mut addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => dns_names.push(n.to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = address(bytes) {
                            addresses.push(ip)
                        }
                    }
                    _ => {}
                }
            }
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Some(PeerIdentity {
            name: dns_names.first().cloned().or(common_name),
            dns_names,
            addresses,
        })
    }

    /// The identity of a finished handshake's peer, if it showed a
    /// certificate.
    pub fn of_peer(certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> Option<Self> {
        PeerIdentity::from_der(certificates?.first()?)
    }

    /// Whether the certificate lists `ip` (an IPv4 address written as
    /// IPv4-mapped IPv6 is the same address).
    pub fn holds(&self, ip: IpAddr) -> bool {
        self.addresses
            .iter()
            .any(|a| a.to_canonical() == ip.to_canonical())
    }
}

/// When a certificate expires (seconds since 1970).
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_come_from_the_subject_alt_name() {
        let mut params = rcgen::CertificateParams::new(vec!["node-1.lab".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("198.18.0.1".parse().unwrap()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ignored-cn");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = PeerIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.name.as_deref(), Some("node-1.lab"));
        assert!(id.holds("198.18.0.1".parse().unwrap()));
        assert!(id.holds("::ffff:198.18.0.1".parse().unwrap()));
        assert!(!id.holds("198.18.0.2".parse().unwrap()));
    }

    #[test]
    fn without_a_dns_name_the_common_name_names_the_peer() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "node-2");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = PeerIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.name.as_deref(), Some("node-2"));
        assert!(id.addresses.is_empty());
    }
}
