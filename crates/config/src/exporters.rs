//! netobserv's `spec.exporters` (IPFIX, OpenTelemetry, Kafka) and its
//! Kafka deployment (`spec.deploymentModel`, `spec.kafka`). Each section is
//! read strictly (an unknown key is an error naming it); what flowlens does
//! not implement is refused at start by the command that reads it, never
//! ignored. flowlens adds `name`, `filter` (the filter language) and
//! `records` to each exporter entry, and `format` to a Kafka section.

use crate::file::{ConfigError, FlowCollectorFile};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ExporterType {
    #[serde(rename = "IPFIX")]
    Ipfix,
    Kafka,
    OpenTelemetry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum IpfixTransport {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpfixSpec {
    pub target_host: String,
    pub target_port: u16,
    /// netobserv's default is TCP.
    pub transport: Option<IpfixTransport>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExporterEntry {
    #[serde(rename = "type")]
    pub kind: ExporterType,
    /// flowlens: the exporter's name in counters and `--export-filter`.
    pub name: Option<String>,
    /// flowlens: only the flows this filter selects are exported.
    pub filter: Option<String>,
    /// flowlens: `Flows` (the default), `Conversations` or `Both`.
    pub records: Option<String>,
    pub ipfix: Option<IpfixSpec>,
    pub kafka: Option<KafkaSpec>,
    pub open_telemetry: Option<OpenTelemetrySpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub enable: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtlpMetricsSpec {
    pub enable: Option<bool>,
    /// How often the metrics are pushed (netobserv's default 20s).
    pub push_time_interval: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenTelemetrySpec {
    pub target_host: String,
    pub target_port: u16,
    /// netobserv's default is grpc.
    pub protocol: Option<OtlpProtocol>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Custom attribute names: refused at start (the default mapping is
    /// netobserv's).
    pub fields_mapping: Option<serde_yaml_ng::Value>,
    pub tls: Option<ClientTlsSpec>,
    pub logs: Option<Toggle>,
    pub metrics: Option<OtlpMetricsSpec>,
}

/// netobserv's reference to a certificate in a ConfigMap or Secret;
/// flowlens reads `certFile` and `certKey` as paths on the host (relative
/// ones from the FlowCollector file's folder).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateReference {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub cert_file: Option<String>,
    pub cert_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientTlsSpec {
    pub enable: Option<bool>,
    pub insecure_skip_verify: Option<bool>,
    pub ca_cert: Option<CertificateReference>,
    pub user_cert: Option<CertificateReference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslType {
    Disabled,
    Plain,
    #[serde(rename = "ScramSHA512")]
    ScramSha512,
}

/// netobserv's reference to one key of a Secret; flowlens reads `file`
/// as a path (as for certificates).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileReference {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SaslSpec {
    #[serde(rename = "type")]
    pub kind: Option<SaslType>,
    pub client_id_reference: Option<FileReference>,
    pub client_secret_reference: Option<FileReference>,
}

/// netobserv's Kafka settings (`spec.kafka` and an exporter's `kafka`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KafkaSpec {
    pub address: String,
    pub topic: String,
    pub tls: Option<ClientTlsSpec>,
    pub sasl: Option<SaslSpec>,
    /// flowlens: `json` (netobserv's record, the default) or `protobuf`.
    pub format: Option<String>,
}

/// `spec.deploymentModel`: agents send to the collector directly, or
/// through Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DeploymentModel {
    Direct,
    Kafka,
    Service,
}

impl FlowCollectorFile {
    /// `spec.kafka`, checked, whatever the deployment model says.
    pub fn kafka_spec(&self) -> Result<Option<KafkaSpec>, ConfigError> {
        let Some(v) = &self.spec.kafka else {
            return Ok(None);
        };
        serde_path_to_error::deserialize(v.clone())
            .map(Some)
            .map_err(|e| {
                let path = e.path().to_string();
                let key = if path == "." {
                    "spec.kafka".to_string()
                } else {
                    format!("spec.kafka.{path}")
                };
                ConfigError::invalid(
                    &key,
                    e.inner().to_string(),
                    "netobserv's Kafka shape (docs/exports.md)",
                )
            })
    }

    /// `spec.deploymentModel` and `spec.kafka`, checked: Kafka's settings
    /// when agents send through Kafka, None when they send directly.
    pub fn kafka_deployment(&self) -> Result<Option<KafkaSpec>, ConfigError> {
        let model: Option<DeploymentModel> = match &self.spec.deployment_model {
            None => None,
            Some(v) => Some(serde_path_to_error::deserialize(v.clone()).map_err(|e| {
                ConfigError::invalid(
                    "spec.deploymentModel",
                    e.inner().to_string(),
                    "Direct, Kafka or Service",
                )
            })?),
        };
        match (model, self.kafka_spec()?) {
            (Some(DeploymentModel::Kafka), Some(k)) => Ok(Some(k)),
            (Some(DeploymentModel::Kafka), None) => Err(ConfigError::invalid(
                "spec.kafka",
                "spec.deploymentModel is Kafka but spec.kafka is missing".into(),
                "address and topic",
            )),
            _ => Ok(None),
        }
    }

    /// `up` runs the agent and the pipeline in one process: a file whose
    /// agents send through Kafka is for `flowlens agent` and `flowlens
    /// collector`, and is refused there rather than run as if it said
    /// Direct.
    pub fn refuse_kafka_deployment(&self) -> Result<(), ConfigError> {
        match self.kafka_deployment()? {
            Some(_) => Err(ConfigError::invalid(
                "spec.deploymentModel",
                "Kafka".into(),
                "Direct: `up` runs agent and collector in one process; run `flowlens agent` and `flowlens collector` for Kafka between them (docs/exports.md)",
            )),
            None => Ok(()),
        }
    }

    /// `spec.exporters`, checked; an error names the entry and key.
    pub fn exporters(&self) -> Result<Vec<ExporterEntry>, ConfigError> {
        let Some(value) = &self.spec.exporters else {
            return Ok(Vec::new());
        };
        serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let key = format!("spec.exporters{}", e.path()).replace("exporters.[", "exporters[");
            ConfigError::invalid(
                &key,
                e.inner().to_string(),
                "netobserv's exporter shape (docs/exports.md)",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::parse_config;

    fn file(exporters: &str) -> crate::FlowCollectorFile {
        parse_config(
            &format!("apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  exporters:\n{exporters}"),
            "test.yaml",
        )
        .unwrap()
    }

    #[test]
    fn ipfix_entries_and_flowlens_keys() {
        let f = file(
            "    - type: IPFIX\n      name: nf\n      filter: 'proto = 17'\n      ipfix:\n        targetHost: 198.18.0.1\n        targetPort: 4739\n        transport: UDP\n",
        );
        let e = f.exporters().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, super::ExporterType::Ipfix);
        let ipfix = e[0].ipfix.as_ref().unwrap();
        assert_eq!(
            (ipfix.target_host.as_str(), ipfix.target_port),
            ("198.18.0.1", 4739)
        );
        assert_eq!(ipfix.transport, Some(super::IpfixTransport::Udp));
    }

    #[test]
    fn bad_entries_name_the_key() {
        let f =
            file("    - type: IPFIX\n      ipfix:\n        targetHost: x\n        targetPrt: 1\n");
        let e = f.exporters().unwrap_err().to_string();
        assert!(
            e.contains("spec.exporters[0].ipfix") && e.contains("targetPrt"),
            "{e}"
        );
        let f = file("    - type: Loki\n");
        let e = f.exporters().unwrap_err().to_string();
        assert!(
            e.contains("spec.exporters[0].type") && e.contains("Loki"),
            "{e}"
        );
    }

    #[test]
    fn kafka_deployment_is_read_and_refused_by_up() {
        let f = crate::parse_config(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  deploymentModel: Kafka\n  kafka:\n    address: b:9092\n    topic: flows\n    sasl:\n      type: ScramSHA512\n",
            "test.yaml",
        )
        .unwrap();
        let k = f.kafka_deployment().unwrap().unwrap();
        assert_eq!((k.address.as_str(), k.topic.as_str()), ("b:9092", "flows"));
        assert_eq!(k.sasl.unwrap().kind, Some(super::SaslType::ScramSha512));
        let e = f.refuse_kafka_deployment().unwrap_err().to_string();
        assert!(
            e.contains("spec.deploymentModel") && e.contains("`up` runs agent and collector"),
            "{e}"
        );
        let f = crate::parse_config(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  deploymentModel: Kafka\n",
            "test.yaml",
        )
        .unwrap();
        assert!(
            f.kafka_deployment()
                .unwrap_err()
                .to_string()
                .contains("spec.kafka")
        );
        let f = crate::parse_config(
            "apiVersion: flows.netobserv.io/v1beta2\nkind: FlowCollector\nspec:\n  kafka:\n    adress: b:9092\n",
            "test.yaml",
        )
        .unwrap();
        let e = f.kafka_deployment().unwrap_err().to_string();
        assert!(e.contains("adress"), "{e}");
    }
}
