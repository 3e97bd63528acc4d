//! What `--export` names: `[NAME=]SCHEME://HOST:PORT`, and which records
//! go there. An exporter without a name is called after its scheme and
//! its place (`ipfix-1`, `ipfix-2`); `--export-filter NAME=FILTER` gives
//! it a filter in the filter language.

use flowlens_query::Filter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IPFIX over UDP (RFC 7011 §10.3), templates sent again periodically.
    IpfixUdp,
    /// IPFIX over TCP (RFC 7011 §10.4), templates once per connection.
    IpfixTcp,
}

impl Protocol {
    fn parse(scheme: &str) -> Option<Protocol> {
        match scheme {
            "ipfix+udp" | "ipfix" => Some(Protocol::IpfixUdp),
            "ipfix+tcp" => Some(Protocol::IpfixTcp),
            _ => None,
        }
    }

    pub fn family(self) -> &'static str {
        match self {
            Protocol::IpfixUdp | Protocol::IpfixTcp => "ipfix",
        }
    }
}

/// Schemes flowlens knows but does not export to yet.
const NOT_YET: &[&str] = &["otlp+grpc", "otlp+http", "kafka"];

#[derive(Debug, Clone)]
pub struct ExportTarget {
    pub name: String,
    pub protocol: Protocol,
    /// `HOST:PORT` as given (a name is resolved at each connection).
    pub address: String,
    /// Only the flows this filter selects are exported.
    pub filter: Option<Filter>,
}

impl ExportTarget {
    /// Parses `[NAME=]SCHEME://HOST:PORT`; `place` numbers unnamed ones.
    pub fn parse(spec: &str, place: usize) -> Result<ExportTarget, String> {
        let (name, url) = match spec.split_once('=') {
            Some((name, url)) if !name.contains("://") => (Some(name.trim()), url.trim()),
            _ => (None, spec.trim()),
        };
        let (scheme, address) = url.split_once("://").ok_or_else(|| {
            format!("--export `{spec}`: expected [NAME=]SCHEME://HOST:PORT, e.g. ipfix+udp://collector:4739")
        })?;
        let protocol = match Protocol::parse(scheme) {
            Some(p) => p,
            None if NOT_YET.contains(&scheme) => {
                return Err(format!(
                    "--export `{spec}`: {scheme} is not implemented yet (ipfix+udp and ipfix+tcp are)"
                ));
            }
            None => {
                return Err(format!(
                    "--export `{spec}`: unknown scheme `{scheme}` (ipfix+udp, ipfix+tcp)"
                ));
            }
        };
        let address = address.trim_end_matches('/');
        let port_ok = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            return Err(format!(
                "--export `{spec}`: expected HOST:PORT after {scheme}://, got `{address}`"
            ));
        }
        let name = match name {
            Some("") => return Err(format!("--export `{spec}`: the name before `=` is empty")),
            Some(n) => n.to_string(),
            None => format!("{}-{place}", protocol.family()),
        };
        Ok(ExportTarget {
            name,
            protocol,
            address: address.to_string(),
            filter: None,
        })
    }

    /// Every `--export` with its `--export-filter NAME=FILTER`; a filter
    /// naming no exporter is an error.
    pub fn parse_all(exports: &[String], filters: &[String]) -> Result<Vec<ExportTarget>, String> {
        let mut targets = Vec::new();
        for (i, spec) in exports.iter().enumerate() {
            let target = ExportTarget::parse(spec, i + 1)?;
            if targets.iter().any(|t: &ExportTarget| t.name == target.name) {
                return Err(format!(
                    "--export: two exporters are named `{}`",
                    target.name
                ));
            }
            targets.push(target);
        }
        for spec in filters {
            let (name, text) = spec
                .split_once('=')
                .ok_or_else(|| format!("--export-filter `{spec}`: expected NAME=FILTER"))?;
            let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
            let target = targets
                .iter_mut()
                .find(|t| t.name == name.trim())
                .ok_or_else(|| {
                    format!(
                        "--export-filter `{spec}`: no exporter is named `{name}` (exporters: {})",
                        names.join(", ")
                    )
                })?;
            let filter = Filter::parse(text)
                .map_err(|e| format!("--export-filter {name}: {}", e.render(text)))?;
            target.filter = Some(filter);
        }
        Ok(targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_names_and_filters() {
        let t = ExportTarget::parse_all(
            &[
                "ipfix+udp://198.18.0.1:4739".into(),
                "siem=ipfix+tcp://[fd00:198:18::1]:4739".into(),
            ],
            &["siem=dst.port = 53".into()],
        )
        .unwrap();
        assert_eq!(t[0].name, "ipfix-1");
        assert_eq!(t[0].protocol, Protocol::IpfixUdp);
        assert_eq!(t[1].name, "siem");
        assert_eq!(t[1].address, "[fd00:198:18::1]:4739");
        assert!(t[1].filter.is_some() && t[0].filter.is_none());
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (spec, expected) in [
            ("collector:4739", "expected [NAME=]SCHEME://HOST:PORT"),
            ("gopher://x:1", "unknown scheme `gopher`"),
            ("kafka://b:9092/flows", "not implemented yet"),
            ("ipfix+udp://x", "expected HOST:PORT"),
            ("ipfix+udp://x:0", "expected HOST:PORT"),
            ("=ipfix+udp://x:1", "the name before `=` is empty"),
        ] {
            let e = ExportTarget::parse(spec, 1).unwrap_err();
            assert!(e.contains(expected), "{spec}: {e}");
        }
        let e = ExportTarget::parse_all(&["ipfix+udp://x:1".into()], &["nope=proto = 6".into()])
            .unwrap_err();
        assert!(
            e.contains("no exporter is named `nope`") && e.contains("ipfix-1"),
            "{e}"
        );
        let e = ExportTarget::parse_all(&["ipfix+udp://x:1".into()], &["ipfix-1=proto ==".into()])
            .unwrap_err();
        assert!(e.contains("--export-filter ipfix-1"), "{e}");
    }
}
