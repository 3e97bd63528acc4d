//! netobserv's `spec.exporters` entries as export targets: IPFIX,
//! OpenTelemetry and Kafka, with their TLS and SASL settings; a key
//! flowlens does not implement is refused, naming it.

use anyhow::{Result, bail};
use flowlens_config::FlowCollectorFile;
use flowlens_config::exporters::{
    ClientTlsSpec, ExporterEntry, ExporterType, IpfixTransport, KafkaSpec, OtlpProtocol, SaslType,
};
use flowlens_config::parse_duration;
use flowlens_export::kafka_bus::KafkaBus;
use flowlens_export::target::{
    KafkaOptions, KafkaSasl, PeerTls, SaslMechanism, brokers_and_topic, check_topic,
};
use flowlens_export::{ExportTarget, KafkaFormat, Protocol, RecordKinds};

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// TLS settings: certificate files read as paths on the host.
pub fn peer_tls(tls: Option<&ClientTlsSpec>, at: &str) -> Result<Option<PeerTls>> {
    let Some(tls) = tls.filter(|t| t.enable == Some(true)) else {
        return Ok(None);
    };
    let mut out = PeerTls {
        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
        ..PeerTls::default()
    };
    if let Some(ca) = &tls.ca_cert {
        out.ca_file = Some(
            ca.cert_file
                .as_deref()
                .filter(|f| !f.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("{at}.tls.caCert.certFile: the CA's file path is missing")
                })?
                .into(),
        );
    }
    if let Some(user) = &tls.user_cert {
        let (Some(cert), Some(key)) = (user.cert_file.as_deref(), user.cert_key.as_deref()) else {
            bail!("{at}.tls.userCert: certFile and certKey are both needed");
        };
        out.cert_file = Some(cert.into());
        out.key_file = Some(key.into());
    }
    Ok(Some(out))
}

/// A `kafka` section (an exporter's or `spec.kafka`) as options.
pub fn kafka_options(k: &KafkaSpec, at: &str) -> Result<KafkaOptions> {
    check_topic(&k.topic).map_err(|e| anyhow::anyhow!("{at}.topic: {e}"))?;
    let format = match k.format.as_deref() {
        None | Some("json") => KafkaFormat::Json,
        Some("protobuf") => KafkaFormat::Protobuf,
        Some(other) => bail!("{at}.format: `{other}` is not json or protobuf"),
    };
    let sasl = match &k.sasl {
        Some(s) if s.kind.is_some_and(|k| k != SaslType::Disabled) => {
            let file = |r: &Option<flowlens_config::exporters::FileReference>, key: &str| {
                r.as_ref()
                    .and_then(|r| r.file.clone())
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!("{at}.sasl.{key}.file: the file path is missing")
                    })
            };
            Some(KafkaSasl {
                mechanism: match s.kind {
                    Some(SaslType::ScramSha512) => SaslMechanism::ScramSha512,
                    _ => SaslMechanism::Plain,
                },
                id_file: file(&s.client_id_reference, "clientIDReference")?.into(),
                secret_file: file(&s.client_secret_reference, "clientSecretReference")?.into(),
            })
        }
        _ => None,
    };
    Ok(KafkaOptions {
        format,
        tls: peer_tls(k.tls.as_ref(), at)?,
        sasl,
    })
}

/// One entry of `spec.exporters` (its place `i`) as a target.
pub fn entry_target(entry: &ExporterEntry, i: usize) -> Result<ExportTarget> {
    let at = format!("spec.exporters[{i}]");
    let mut target = match entry.kind {
        ExporterType::Ipfix => {
            let Some(ipfix) = &entry.ipfix else {
                bail!("{at}: type IPFIX needs its ipfix section")
            };
            let protocol = match ipfix.transport {
                Some(IpfixTransport::Udp) => Protocol::IpfixUdp,
                Some(IpfixTransport::Tcp) | None => Protocol::IpfixTcp,
            };
            ExportTarget::new(
                format!("ipfix-{}", i + 1),
                protocol,
                host_port(&ipfix.target_host, ipfix.target_port),
            )
        }
        ExporterType::OpenTelemetry => {
            let Some(otel) = &entry.open_telemetry else {
                bail!("{at}: type OpenTelemetry needs its openTelemetry section")
            };
            if otel.fields_mapping.is_some() {
                bail!(
                    "{at}.openTelemetry.fieldsMapping: custom attribute names are not implemented (flowlens sends netobserv's default names, docs/exports.md); remove it"
                );
            }
            let protocol = match otel.protocol {
                Some(OtlpProtocol::Http) => Protocol::OtlpHttp,
                Some(OtlpProtocol::Grpc) | None => Protocol::OtlpGrpc,
            };
            let mut t = ExportTarget::new(
                format!("otlp-{}", i + 1),
                protocol,
                host_port(&otel.target_host, otel.target_port),
            );
            let at_otel = format!("{at}.openTelemetry");
            t.otlp.tls = peer_tls(otel.tls.as_ref(), &at_otel)?;
            if t.otlp
                .tls
                .as_ref()
                .is_some_and(|tls| tls.insecure_skip_verify)
            {
                bail!(
                    "{at_otel}.tls.insecureSkipVerify: not offered for OpenTelemetry (a collector whose certificate is not checked can be anyone); give its CA in caCert"
                );
            }
            t.otlp.logs = otel.logs.as_ref().and_then(|l| l.enable).unwrap_or(true);
            if let Some(m) = &otel.metrics {
                t.otlp.metrics = m.enable.unwrap_or(true);
                if let Some(interval) = &m.push_time_interval {
                    t.otlp.push_interval = parse_duration(interval)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            anyhow::anyhow!("{at}.openTelemetry.metrics.pushTimeInterval: `{interval}` is not a duration such as 20s")
                        })?;
                }
            }
            t.otlp.headers = otel
                .headers
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            t
        }
        ExporterType::Kafka => {
            let Some(k) = &entry.kafka else {
                bail!("{at}: type Kafka needs its kafka section")
            };
            let mut t = ExportTarget::new(
                format!("kafka-{}", i + 1),
                Protocol::Kafka,
                k.address.clone(),
            );
            t.topic = Some(k.topic.clone());
            t.kafka = kafka_options(k, &format!("{at}.kafka"))?;
            t
        }
    };
    if let Some(name) = &entry.name {
        target.name = name.clone();
    }
    if let Some(filter) = &entry.filter {
        target.filter = Some(
            flowlens_query::Filter::parse(filter)
                .map_err(|e| anyhow::anyhow!("{at}.filter: {}", e.render(filter)))?,
        );
    }
    if let Some(records) = &entry.records {
        target.records =
            RecordKinds::parse(records).map_err(|e| anyhow::anyhow!("{at}.records: {e}"))?;
    }
    target.check().map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
    Ok(target)
}

/// The Kafka bus between agents and collectors: `--kafka` if given, else
/// `spec.kafka` of a file whose `spec.deploymentModel` is Kafka; TLS and
/// SASL come from `spec.kafka` either way. None: agents send directly.
pub fn kafka_bus(flag: Option<&str>, file: Option<&FlowCollectorFile>) -> Result<Option<KafkaBus>> {
    let (spec, deployed) = match file {
        Some(f) => (f.kafka_spec()?, f.kafka_deployment()?.is_some()),
        None => (None, false),
    };
    let mut bus = match (flag, &spec) {
        (Some(text), _) => KafkaBus::parse(text).map_err(anyhow::Error::msg)?,
        (None, Some(k)) if deployed => {
            let (brokers, topic) = brokers_and_topic(&format!("{}/{}", k.address, k.topic))
                .map_err(|e| anyhow::anyhow!("spec.kafka: {e}"))?;
            KafkaBus {
                brokers,
                topic,
                ..KafkaBus::default()
            }
        }
        _ => return Ok(None),
    };
    if let Some(k) = &spec {
        if k.format.as_deref().is_some_and(|f| f != "protobuf") {
            bail!(
                "spec.kafka.format: agents and collectors exchange pbflow protobuf over Kafka (what netobserv's agent writes); remove the key or write protobuf"
            );
        }
        let options = kafka_options(k, "spec.kafka")?;
        bus.tls = options.tls;
        bus.sasl = options.sasl;
    }
    Ok(Some(bus))
}
