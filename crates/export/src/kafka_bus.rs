//! Kafka between agents and collectors (`spec.deploymentModel: Kafka`,
//! `--kafka BROKERS/TOPIC`): where the bus is and how to reach it. Agents
//! produce one pbflow record per message (what netobserv's agent writes and
//! flowlogs-pipeline reads), keyed by connection so that both directions
//! meet in one partition, hence in one collector; the agent's side is
//! bus_producer.rs, the collector's bus_consumer.rs.

use crate::kafka::client_config;
use crate::target::{KafkaSasl, PeerTls, brokers_and_topic};
use rdkafka::ClientConfig;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct KafkaBus {
    /// Bootstrap brokers, `HOST:PORT[,HOST:PORT]`.
    pub brokers: String,
    pub topic: String,
    pub tls: Option<PeerTls>,
    pub sasl: Option<KafkaSasl>,
}

impl KafkaBus {
    /// `BROKER:PORT[,BROKER:PORT]/TOPIC`, with or without `kafka://`.
    pub fn parse(text: &str) -> Result<KafkaBus, String> {
        let address = text.trim();
        let address = address.strip_prefix("kafka://").unwrap_or(address);
        let (brokers, topic) =
            brokers_and_topic(address).map_err(|e| format!("--kafka `{text}`: {e}"))?;
        Ok(KafkaBus {
            brokers,
            topic,
            ..KafkaBus::default()
        })
    }

    /// librdkafka's settings for this bus's brokers, TLS and SASL.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        client_config(&self.brokers, self.tls.as_ref(), self.sasl.as_ref())
    }

    /// The batch identity of a partition's records in the collector's
    /// write-ahead log (the sequence is the offset).
    pub fn partition_id(&self, partition: i32) -> String {
        format!("kafka/{}/{partition}", self.topic)
    }

    /// The partition of a batch identity of this bus, if it is one.
    pub fn partition_of(&self, id: &str) -> Option<i32> {
        id.strip_prefix("kafka/")?
            .strip_prefix(self.topic.as_str())?
            .strip_prefix('/')?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_addresses() {
        let bus = KafkaBus::parse("kafka://b1:9092,b2:9092/flows").unwrap();
        assert_eq!(bus.brokers, "b1:9092,b2:9092");
        assert_eq!(bus.topic, "flows");
        assert_eq!(KafkaBus::parse("b:9092/flows").unwrap().topic, "flows");
        for (bad, says) in [
            ("b:9092", "is not a Kafka topic"),
            ("b/flows", "expected BROKER:PORT"),
            ("b:9092/f l", "is not a Kafka topic"),
        ] {
            let e = KafkaBus::parse(bad).unwrap_err();
            assert!(e.contains(says) && e.contains("--kafka"), "{bad}: {e}");
        }
    }

    #[test]
    fn partition_ids_round_trip() {
        let bus = KafkaBus::parse("b:1/flows").unwrap();
        assert_eq!(bus.partition_of(&bus.partition_id(7)), Some(7));
        assert_eq!(bus.partition_of("kafka/flows2/7"), None);
        assert_eq!(bus.partition_of("host-1234"), None);
    }
}
