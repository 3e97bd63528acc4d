//! Certificates for tests (feature `test-pki`, never in a release build):
//! a CA, and leaves it signs with the names, addresses and dates a test
//! needs — expired ones included — written as PEM files.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate, PEM.
    pub pem: String,
}

/// A leaf certificate to issue.
#[derive(Debug, Clone, Default)]
pub struct Leaf {
    pub dns_names: Vec<String>,
    pub addresses: Vec<IpAddr>,
    pub common_name: Option<String>,
    /// Valid from 2020 to 2021 only.
    pub expired: bool,
    /// Valid until the first of January of this year (default: rcgen's).
    pub valid_until_year: Option<i32>,
}

impl Leaf {
    /// A certificate for `name` at `addresses`.
    pub fn named(name: &str, addresses: &[&str]) -> Leaf {
        Leaf {
            dns_names: vec![name.to_string()],
            addresses: addresses
                .iter()
                .map(|a| a.parse().expect("an IP address"))
                .collect(),
            ..Leaf::default()
        }
    }

    pub fn expired(mut self) -> Leaf {
        self.expired = true;
        self
    }
}

/// PEM files of an issued certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("the CA's certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA's certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).expect("writing the CA");
        path.to_path_buf()
    }

    /// Issues `leaf` and writes it as `dir/NAME.crt` and `dir/NAME.key`
    /// (replacing files there: a rotation).
    pub fn issue(&self, leaf: &Leaf, dir: &Path, name: &str) -> Issued {
        let key = KeyPair::generate().expect("a leaf key");
        let mut params = CertificateParams::new(leaf.dns_names.clone()).expect("leaf params");
        params
            .subject_alt_names
            .extend(leaf.addresses.iter().map(|a| SanType::IpAddress(*a)));
        if let Some(cn) = &leaf.common_name {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        if let Some(year) = leaf.valid_until_year {
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
        }
        if leaf.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("signing");
        let issued = Issued {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        // Written beside and renamed into place, as a secret volume swaps
        // its files: a reader never sees half a file.
        for (path, text) in [
            (&issued.key, key.serialize_pem()),
            (&issued.cert, cert.pem()),
        ] {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, text).expect("writing a certificate");
            std::fs::rename(&partial, path).expect("renaming a certificate");
        }
        issued
    }
}
