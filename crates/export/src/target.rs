//! What `--export` names: `[NAME=]SCHEME://ADDRESS[?OPTION=VALUE&...]`,
//! and which records go there. An exporter without a name is called after
//! its kind and its place (`ipfix-1`, `otlp-2`, `kafka-3`);
//! `--export-filter NAME=FILTER` gives it a filter in the filter language
//! and `--export-records NAME=flows|conversations|both` its records.

use crate::record::RecordKinds;
use flowlens_query::Filter;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IPFIX over UDP (RFC 7011 §10.3), templates sent again periodically.
    IpfixUdp,
    /// IPFIX over TCP (RFC 7011 §10.4), templates once per connection.
    IpfixTcp,
    /// OTLP over gRPC (the collector's port 4317).
    OtlpGrpc,
    /// OTLP over HTTP with protobuf bodies (port 4318, `/v1/logs`).
    OtlpHttp,
    /// Kafka: `BROKER[,BROKER]/TOPIC`.
    Kafka,
}

impl Protocol {
    fn parse(scheme: &str) -> Option<Protocol> {
        match scheme {
            "ipfix+udp" | "ipfix" => Some(Protocol::IpfixUdp),
            "ipfix+tcp" => Some(Protocol::IpfixTcp),
            "otlp+grpc" | "otlp" => Some(Protocol::OtlpGrpc),
            "otlp+http" => Some(Protocol::OtlpHttp),
            "kafka" => Some(Protocol::Kafka),
            _ => None,
        }
    }

    pub fn family(self) -> &'static str {
        match self {
            Protocol::IpfixUdp | Protocol::IpfixTcp => "ipfix",
            Protocol::OtlpGrpc | Protocol::OtlpHttp => "otlp",
            Protocol::Kafka => "kafka",
        }
    }
}

const SCHEMES: &str = "ipfix+udp, ipfix+tcp, otlp+grpc, otlp+http, kafka";

/// What an OTLP exporter sends.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpOptions {
    /// Records as log records.
    pub logs: bool,
    /// The flow metrics as OTLP metrics, pushed every `push_interval`.
    pub metrics: bool,
    pub push_interval: Duration,
    /// Sent with every request (gRPC metadata or HTTP headers).
    pub headers: Vec<(String, String)>,
    /// None: plaintext.
    pub tls: Option<PeerTls>,
}

impl Default for OtlpOptions {
    fn default() -> OtlpOptions {
        OtlpOptions {
            logs: true,
            metrics: true,
            push_interval: Duration::from_secs(20),
            headers: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KafkaFormat {
    /// netobserv's JSON record, as flowlogs-pipeline writes it.
    #[default]
    Json,
    /// pbflow, the agents' protobuf record.
    Protobuf,
}

/// TLS to a peer (an OpenTelemetry collector, Kafka's brokers): the CA
/// that signed its certificate (None: the system's CAs), our certificate
/// and key for a peer that asks for one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeerTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha512,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSasl {
    pub mechanism: SaslMechanism,
    /// Files holding the client id and secret (as netobserv's references
    /// to a Secret's keys, mounted).
    pub id_file: PathBuf,
    pub secret_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct KafkaOptions {
    pub format: KafkaFormat,
    pub tls: Option<PeerTls>,
    pub sasl: Option<KafkaSasl>,
}

#[derive(Debug, Clone)]
pub struct ExportTarget {
    pub name: String,
    pub protocol: Protocol,
    /// `HOST:PORT` as given (a name is resolved at each connection); for
    /// Kafka the bootstrap brokers, `HOST:PORT[,HOST:PORT]`.
    pub address: String,
    /// Kafka's topic.
    pub topic: Option<String>,
    /// Only the records this filter selects are exported.
    pub filter: Option<Filter>,
    pub records: RecordKinds,
    pub otlp: OtlpOptions,
    pub kafka: KafkaOptions,
}

fn host_port_ok(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

fn flag(spec: &str, key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "--export `{spec}`: {key}=`{value}` is not true or false"
        )),
    }
}

impl ExportTarget {
    /// A target with default options.
    pub fn new(name: String, protocol: Protocol, address: String) -> ExportTarget {
        ExportTarget {
            name,
            protocol,
            address,
            topic: None,
            filter: None,
            records: RecordKinds::Flows,
            otlp: OtlpOptions::default(),
            kafka: KafkaOptions::default(),
        }
    }

    /// Parses `[NAME=]SCHEME://ADDRESS[?OPTIONS]`; `place` numbers unnamed
    /// ones.
    pub fn parse(spec: &str, place: usize) -> Result<ExportTarget, String> {
        let (name, url) = match spec.split_once('=') {
            Some((name, url)) if !name.contains("://") => (Some(name.trim()), url.trim()),
            _ => (None, spec.trim()),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("--export `{spec}`: expected [NAME=]SCHEME://HOST:PORT, e.g. ipfix+udp://collector:4739")
        })?;
        let protocol = Protocol::parse(scheme)
            .ok_or_else(|| format!("--export `{spec}`: unknown scheme `{scheme}` ({SCHEMES})"))?;
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let name = match name {
            Some("") => return Err(format!("--export `{spec}`: the name before `=` is empty")),
            Some(n) => n.to_string(),
            None => format!("{}-{place}", protocol.family()),
        };
        let mut target = ExportTarget::new(name, protocol, String::new());
        if protocol == Protocol::Kafka {
            let (brokers, topic) =
                brokers_and_topic(address).map_err(|e| format!("--export `{spec}`: {e}"))?;
            target.address = brokers;
            target.topic = Some(topic);
        } else {
            let address = address.trim_end_matches('/');
            if !host_port_ok(address) {
                return Err(format!(
                    "--export `{spec}`: expected HOST:PORT after {scheme}://, got `{address}`"
                ));
            }
            target.address = address.to_string();
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            target.option(spec, key, value)?;
        }
        target
            .check()
            .map_err(|e| format!("--export `{spec}`: {e}"))?;
        Ok(target)
    }

    /// One `?KEY=VALUE` of a target's URL.
    fn option(&mut self, spec: &str, key: &str, value: &str) -> Result<(), String> {
        let family = self.protocol.family();
        match (family, key) {
            (_, "records") => {
                self.records =
                    RecordKinds::parse(value).map_err(|e| format!("--export `{spec}`: {e}"))?
            }
            ("otlp", "logs") => self.otlp.logs = flag(spec, key, value)?,
            ("otlp", "metrics") => self.otlp.metrics = flag(spec, key, value)?,
            ("otlp", "interval") => {
                self.otlp.push_interval = flowlens_config::parse_duration(value)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        format!(
                            "--export `{spec}`: interval=`{value}` is not a duration such as 20s"
                        )
                    })?
            }
            ("otlp" | "kafka", "tls") => {
                if flag(spec, key, value)? {
                    self.tls_mut().get_or_insert_default();
                } else {
                    *self.tls_mut() = None;
                }
            }
            ("otlp" | "kafka", "ca" | "cert" | "key") => {
                if value.is_empty() {
                    return Err(format!("--export `{spec}`: {key}= needs a file path"));
                }
                let tls = self.tls_mut().get_or_insert_default();
                let file = match key {
                    "ca" => &mut tls.ca_file,
                    "cert" => &mut tls.cert_file,
                    _ => &mut tls.key_file,
                };
                *file = Some(PathBuf::from(value));
            }
            ("kafka", "format") => {
                self.kafka.format = match value {
                    "json" => KafkaFormat::Json,
                    "protobuf" | "pbflow" => KafkaFormat::Protobuf,
                    _ => {
                        return Err(format!(
                            "--export `{spec}`: format=`{value}` is not json or protobuf"
                        ));
                    }
                }
            }
            _ => {
                let known = match family {
                    "otlp" => "records, logs, metrics, interval, tls, ca, cert, key",
                    "kafka" => "records, format, tls, ca, cert, key",
                    _ => "records",
                };
                return Err(format!(
                    "--export `{spec}`: unknown option `{key}` for {family} ({known})"
                ));
            }
        }
        Ok(())
    }

    /// The TLS settings of an OTLP or Kafka target.
    fn tls_mut(&mut self) -> &mut Option<PeerTls> {
        match self.protocol.family() {
            "kafka" => &mut self.kafka.tls,
            _ => &mut self.otlp.tls,
        }
    }

    fn tls(&self) -> Option<&PeerTls> {
        match self.protocol.family() {
            "kafka" => self.kafka.tls.as_ref(),
            _ => self.otlp.tls.as_ref(),
        }
    }

    /// What holds across options, whatever set them.
    pub fn check(&self) -> Result<(), String> {
        if let Some(tls) = self.tls()
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return Err("a client certificate needs its key (cert= and key= together)".into());
        }
        if self.protocol.family() == "ipfix" && self.records.conversations() {
            return Err(
                "IPFIX exports flows only (records=flows); export conversations with otlp or kafka"
                    .into(),
            );
        }
        if self.protocol == Protocol::Kafka
            && self.kafka.format == KafkaFormat::Protobuf
            && self.records.conversations()
        {
            return Err(
                "pbflow has no conversation message: export conversations to Kafka as json".into(),
            );
        }
        if self.protocol.family() == "otlp" && !self.otlp.logs && !self.otlp.metrics {
            return Err("an OTLP exporter with neither logs nor metrics sends nothing".into());
        }
        Ok(())
    }

    /// The file's targets, then every `--export`, with `--export-filter
    /// NAME=FILTER` and `--export-records NAME=KINDS`; a filter or choice
    /// naming no exporter is an error, as two exporters of one name are.
    pub fn parse_all(
        mut targets: Vec<ExportTarget>,
        exports: &[String],
        filters: &[String],
        records: &[String],
    ) -> Result<Vec<ExportTarget>, String> {
        let from_file = targets.len();
        for (i, spec) in exports.iter().enumerate() {
            targets.push(ExportTarget::parse(spec, from_file + i + 1)?);
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.name == t.name) {
                return Err(format!("--export: two exporters are named `{}`", t.name));
            }
        }
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let find =
            |targets: &mut [ExportTarget], flag: &str, spec: &str| -> Result<usize, String> {
                let name = spec
                    .split_once('=')
                    .map(|(n, _)| n.trim())
                    .ok_or_else(|| format!("{flag} `{spec}`: expected NAME=VALUE"))?;
                targets.iter().position(|t| t.name == name).ok_or_else(|| {
                    format!(
                        "{flag} `{spec}`: no exporter is named `{name}` (exporters: {})",
                        names.join(", ")
                    )
                })
            };
        for spec in filters {
            let at = find(&mut targets, "--export-filter", spec)?;
            let (name, text) = spec.split_once('=').expect("checked by find");
            let filter = Filter::parse(text)
                .map_err(|e| format!("--export-filter {name}: {}", e.render(text)))?;
            targets[at].filter = Some(filter);
        }
        for spec in records {
            let at = find(&mut targets, "--export-records", spec)?;
            let (name, text) = spec.split_once('=').expect("checked by find");
            targets[at].records = RecordKinds::parse(text.trim())
                .map_err(|e| format!("--export-records {name}: {e}"))?;
            targets[at]
                .check()
                .map_err(|e| format!("--export-records {name}: {e}"))?;
        }
        Ok(targets)
    }
}

/// `BROKER:PORT[,BROKER:PORT]/TOPIC`, checked: the bootstrap brokers and
/// the topic.
pub fn brokers_and_topic(address: &str) -> Result<(String, String), String> {
    let (brokers, topic) = address.split_once('/').unwrap_or((address, ""));
    let topic = topic.trim_end_matches('/');
    if brokers.is_empty() || !brokers.split(',').all(host_port_ok) {
        return Err(format!(
            "expected BROKER:PORT[,BROKER:PORT]/TOPIC, got brokers `{brokers}`"
        ));
    }
    check_topic(topic)?;
    Ok((brokers.to_string(), topic.to_string()))
}

/// Kafka's rule for topic names: 1-249 of `[a-zA-Z0-9._-]`.
pub fn check_topic(topic: &str) -> Result<(), String> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && topic != "."
        && topic != "..";
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{topic}` is not a Kafka topic (1 to 249 of letters, digits, `.`, `_`, `-`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse_all(
        exports: &[&str],
        filters: &[&str],
        records: &[&str],
    ) -> Result<Vec<ExportTarget>, String> {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ExportTarget::parse_all(Vec::new(), &s(exports), &s(filters), &s(records))
    }

    #[test]
    fn targets_names_and_filters() {
        let t = parse_all(
            &[
                "ipfix+udp://198.18.0.1:4739",
                "siem=ipfix+tcp://[fd00:198:18::1]:4739",
                "otlp+grpc://otel:4317?metrics=false",
                "bus=kafka://b1:9092,b2:9092/flows",
                "pb=kafka://b1:9092/flows?format=protobuf",
            ],
            &["siem=dst.port = 53"],
            &["bus=both"],
        )
        .unwrap();
        assert_eq!(t[0].name, "ipfix-1");
        assert_eq!(t[0].protocol, Protocol::IpfixUdp);
        assert_eq!(t[1].name, "siem");
        assert_eq!(t[1].address, "[fd00:198:18::1]:4739");
        assert!(t[1].filter.is_some() && t[0].filter.is_none());
        assert_eq!(t[2].name, "otlp-3");
        assert!(t[2].otlp.logs && !t[2].otlp.metrics);
        assert_eq!(t[3].address, "b1:9092,b2:9092");
        assert_eq!(t[3].topic.as_deref(), Some("flows"));
        assert_eq!(t[3].kafka.format, KafkaFormat::Json);
        assert_eq!(t[3].records, RecordKinds::Both);
        assert_eq!(t[4].kafka.format, KafkaFormat::Protobuf);
        assert!(t[2].otlp.tls.is_none() && t[3].kafka.tls.is_none());
    }

    #[test]
    fn tls_options_name_the_files() {
        let t = ExportTarget::parse(
            "otlp+http://otel:4318?ca=/etc/otel/ca.pem&cert=/etc/flowlens/node.pem&key=/etc/flowlens/node.key",
            1,
        )
        .unwrap();
        let tls = t.otlp.tls.unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/etc/otel/ca.pem")));
        assert_eq!(
            tls.cert_file.as_deref(),
            Some(Path::new("/etc/flowlens/node.pem"))
        );
        assert_eq!(
            tls.key_file.as_deref(),
            Some(Path::new("/etc/flowlens/node.key"))
        );
        // tls=true alone: the system's CAs.
        let t = ExportTarget::parse("otlp+grpc://otel:4317?tls=true", 1).unwrap();
        assert_eq!(t.otlp.tls, Some(PeerTls::default()));
        let t = ExportTarget::parse("kafka://b:9093/flows?ca=/ca.pem", 1).unwrap();
        assert_eq!(
            t.kafka.tls.unwrap().ca_file.as_deref(),
            Some(Path::new("/ca.pem"))
        );
        for (spec, expected) in [
            ("otlp+grpc://x:1?cert=/c.pem", "needs its key"),
            ("otlp+grpc://x:1?ca=", "ca= needs a file path"),
            ("otlp+grpc://x:1?tls=maybe", "not true or false"),
            (
                "ipfix+tcp://x:1?ca=/ca.pem",
                "unknown option `ca` for ipfix",
            ),
        ] {
            let e = ExportTarget::parse(spec, 1).unwrap_err();
            assert!(e.contains(expected), "{spec}: {e}");
        }
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (spec, expected) in [
            ("collector:4739", "expected [NAME=]SCHEME://HOST:PORT"),
            ("gopher://x:1", "unknown scheme `gopher`"),
            ("kafka://b:9092", "is not a Kafka topic"),
            ("kafka://b/flows", "expected BROKER:PORT"),
            ("kafka://b:1/fl ows", "is not a Kafka topic"),
            ("kafka://b:1/flows?format=xml", "format=`xml`"),
            ("ipfix+udp://x", "expected HOST:PORT"),
            ("ipfix+udp://x:0", "expected HOST:PORT"),
            ("ipfix+udp://x:1?records=both", "IPFIX exports flows only"),
            (
                "ipfix+udp://x:1?logs=true",
                "unknown option `logs` for ipfix",
            ),
            ("otlp+http://x:1?logs=false&metrics=false", "sends nothing"),
            ("otlp+http://x:1?logs=maybe", "not true or false"),
            ("otlp+http://x:1?interval=0s", "interval=`0s`"),
            ("=ipfix+udp://x:1", "the name before `=` is empty"),
        ] {
            let e = ExportTarget::parse(spec, 1).unwrap_err();
            assert!(e.contains(expected), "{spec}: {e}");
        }
        let e = parse_all(&["ipfix+udp://x:1"], &["nope=proto = 6"], &[]).unwrap_err();
        assert!(
            e.contains("no exporter is named `nope`") && e.contains("ipfix-1"),
            "{e}"
        );
        let e = parse_all(&["ipfix+udp://x:1"], &["ipfix-1=proto =="], &[]).unwrap_err();
        assert!(e.contains("--export-filter ipfix-1"), "{e}");
        let e = parse_all(&["ipfix+udp://x:1"], &[], &["ipfix-1=conversations"]).unwrap_err();
        assert!(e.contains("IPFIX exports flows only"), "{e}");
        let e = parse_all(&["a=otlp://x:1", "a=otlp://y:1"], &[], &[]).unwrap_err();
        assert!(e.contains("two exporters are named `a`"), "{e}");
    }
}
