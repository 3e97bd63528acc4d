//! Kafka: records as netobserv's JSON or as pbflow protobuf, produced with
//! acks=all by librdkafka's idempotent producer. Each record is keyed by
//! its connection with the two ends in a fixed order, so both directions
//! of a connection (and its conversation records) land in one partition
//! (librdkafka's murmur2 partitioner: the partition a Java client picks).

use crate::record::ExportRecord;
use crate::sink::{Deliver, Delivered};
use crate::target::{ExportTarget, KafkaFormat, KafkaSasl, PeerTls, SaslMechanism};
use flowlens_model::{Address, FlowRecord};
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::Duration;

/// How long librdkafka keeps trying one message: below the sink's send
/// timeout, so every batch's outcome is known before the sink gives up.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(8);

/// The connection's key: protocol, then the lower end, then the higher.
pub fn connection_key(proto: u8, a: (&Address, u16), b: (&Address, u16)) -> String {
    let (lo, hi) = if (a.0, a.1) <= (b.0, b.1) {
        (a, b)
    } else {
        (b, a)
    };
    format!("{proto}|{}|{}|{}|{}", lo.0, lo.1, hi.0, hi.1)
}

/// A flow's key: its connection's.
pub fn flow_key(f: &FlowRecord) -> String {
    connection_key(
        f.proto,
        (&f.src_addr, f.src_port),
        (&f.dst_addr, f.dst_port),
    )
}

pub fn record_key(record: &ExportRecord) -> String {
    match record {
        ExportRecord::Flow(f) => flow_key(f),
        ExportRecord::Conversation(c) => connection_key(
            c.proto,
            (&c.src_addr, c.src_port),
            (&c.dst_addr, c.dst_port),
        ),
    }
}

pub fn record_value(record: &ExportRecord, format: KafkaFormat) -> Vec<u8> {
    match (format, record) {
        (KafkaFormat::Protobuf, ExportRecord::Flow(f)) => {
            flowlens_wire::convert::to_pb(f).encode_to_vec()
        }
        // Conversations have no pbflow message (refused at start).
        (_, ExportRecord::Flow(f)) => serde_json::to_vec(f).unwrap_or_default(),
        (_, ExportRecord::Conversation(c)) => serde_json::to_vec(c).unwrap_or_default(),
    }
}

fn read_secret(path: &std::path::Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// librdkafka's settings for brokers, TLS and SASL, shared by the
/// exporter, the agent's producer and the collector's consumer.
pub fn client_config(
    brokers: &str,
    tls: Option<&PeerTls>,
    sasl: Option<&KafkaSasl>,
) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        // A broker's own address in metadata may be a name only the
        // cluster knows; fail fast rather than hang.
        .set("socket.timeout.ms", "10000")
        .set("log_level", "4");
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    if let Some(tls) = tls {
        for (key, path) in [
            ("ssl.ca.location", &tls.ca_file),
            ("ssl.certificate.location", &tls.cert_file),
            ("ssl.key.location", &tls.key_file),
        ] {
            if let Some(path) = path {
                c.set(key, path.to_string_lossy());
            }
        }
        if tls.insecure_skip_verify {
            c.set("enable.ssl.certificate.verification", "false");
        }
    }
    if let Some(sasl) = sasl {
        c.set(
            "sasl.mechanism",
            match sasl.mechanism {
                SaslMechanism::Plain => "PLAIN",
                SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            },
        );
        c.set(
            "sasl.username",
            read_secret(&sasl.id_file, "SASL client id")?,
        );
        c.set(
            "sasl.password",
            read_secret(&sasl.secret_file, "SASL client secret")?,
        );
    }
    Ok(c)
}

/// An idempotent producer's settings with acks=all: a message is
/// acknowledged only when every in-sync replica has it, and retries never
/// duplicate it; librdkafka gives a message up after `message_timeout`.
pub fn producer_config(config: &ClientConfig, message_timeout: Duration) -> ClientConfig {
    let mut c = config.clone();
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            message_timeout.as_millis().max(1).to_string(),
        );
    c
}

fn producer(config: &ClientConfig) -> Result<FutureProducer, String> {
    producer_config(config, MESSAGE_TIMEOUT)
        .create()
        .map_err(|e| format!("Kafka producer: {e}"))
}

pub struct KafkaExport {
    producer: FutureProducer,
    topic: String,
    format: KafkaFormat,
}

impl KafkaExport {
    pub fn new(target: &ExportTarget) -> Result<KafkaExport, String> {
        let config = client_config(
            &target.address,
            target.kafka.tls.as_ref(),
            target.kafka.sasl.as_ref(),
        )
        .map_err(|e| format!("exporter {}: {e}", target.name))?;
        Ok(KafkaExport {
            producer: producer(&config).map_err(|e| format!("exporter {}: {e}", target.name))?,
            topic: target.topic.clone().unwrap_or_default(),
            format: target.kafka.format,
        })
    }
}

/// Produces every record of `batch` and waits for each acknowledgement;
/// the bytes of keys and values.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    messages: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Result<u64, String> {
    let mut waiting = Vec::new();
    let mut bytes = 0u64;
    for (key, value) in messages {
        bytes += (key.len() + value.len()) as u64;
        let record = FutureRecord::to(topic).key(&key).payload(&value);
        match producer.send_result(record) {
            Ok(delivery) => waiting.push(delivery),
            Err((e, _)) => return Err(format!("Kafka {topic}: {e}")),
        }
    }
    let mut failed = None;
    for delivery in waiting {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => failed = Some(format!("Kafka {topic}: {e}")),
            Err(_) => failed = Some(format!("Kafka {topic}: the producer went away")),
        }
    }
    match failed {
        None => Ok(bytes),
        Some(e) => Err(e),
    }
}

impl Deliver for KafkaExport {
    async fn deliver(&mut self, batch: &[ExportRecord]) -> Result<Delivered, String> {
        let format = self.format;
        let messages = batch
            .iter()
            .map(|r| (record_key(r), record_value(r, format)));
        let bytes = produce_all(&self.producer, &self.topic, messages).await?;
        Ok(Delivered { bytes, rejected: 0 })
    }
}

impl Drop for KafkaExport {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlens_model::FlowRecord;

    #[test]
    fn both_directions_share_a_key() {
        let a: Address = "198.18.0.1".parse().unwrap();
        let b: Address = "198.18.0.2".parse().unwrap();
        let there = FlowRecord {
            src_addr: a,
            dst_addr: b,
            src_port: 40000,
            dst_port: 80,
            proto: 6,
            ..Default::default()
        };
        let back = FlowRecord {
            src_addr: b,
            dst_addr: a,
            src_port: 80,
            dst_port: 40000,
            proto: 6,
            ..Default::default()
        };
        assert_eq!(
            record_key(&ExportRecord::Flow(there.clone())),
            record_key(&ExportRecord::Flow(back))
        );
        assert_eq!(
            record_key(&ExportRecord::Flow(there)),
            "6|198.18.0.1|40000|198.18.0.2|80"
        );
    }

    #[test]
    fn values_are_netobserv_json_or_pbflow() {
        let flow = FlowRecord {
            bytes: 99,
            proto: 17,
            ..Default::default()
        };
        let json: serde_json::Value = serde_json::from_slice(&record_value(
            &ExportRecord::Flow(flow.clone()),
            KafkaFormat::Json,
        ))
        .unwrap();
        assert_eq!(json["Bytes"], 99);
        let pb = flowlens_wire::pbflow::Record::decode(
            &record_value(&ExportRecord::Flow(flow), KafkaFormat::Protobuf)[..],
        )
        .unwrap();
        assert_eq!(pb.bytes, 99);
    }
}
