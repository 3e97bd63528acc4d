//! netobserv's `spec.exporters`: where flows go on to. Each entry is read
//! strictly (an unknown key is an error naming it); the types flowlens does
//! not export to yet are refused at start by the command that reads them,
//! never ignored. flowlens adds `name` and `filter` (the filter language)
//! to each entry.

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
    pub ipfix: Option<IpfixSpec>,
    pub kafka: Option<serde_yaml_ng::Value>,
    pub open_telemetry: Option<serde_yaml_ng::Value>,
}

impl FlowCollectorFile {
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
}
