//! The agent's side of the Kafka bus: every flow record becomes one pbflow
//! message, keyed by its connection, produced by librdkafka's idempotent
//! producer with acks=all. A record counts as sent only when the brokers
//! acknowledged it (every in-sync replica has it); librdkafka's queue is
//! the agent's buffer while the brokers are away, and every record given up
//! is counted by reason.

use crate::kafka::{flow_key, producer_config};
use crate::kafka_bus::KafkaBus;
use flowlens_model::FlowRecord;
use prost::Message;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct BusProducerConfig {
    /// Records waiting for the brokers at most; beyond, new ones are
    /// dropped and counted.
    pub buffer_records: usize,
    /// A record the brokers have not acknowledged this long after it was
    /// produced is given up (counted).
    pub delivery_timeout: Duration,
    /// At shutdown, how long waiting records may still take to leave.
    pub shutdown_grace: Duration,
}

impl Default for BusProducerConfig {
    fn default() -> BusProducerConfig {
        BusProducerConfig {
            buffer_records: 100_000,
            delivery_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What the producer received, had acknowledged and gave up.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BusProducerStats {
    pub records_received: u64,
    /// Acknowledged by the brokers (acks=all).
    pub records_sent: u64,
    pub bytes_sent: u64,
    /// Dropped because the buffer was full (brokers away too long).
    pub records_dropped_buffer_full: u64,
    /// Not acknowledged within the delivery timeout, or refused by the
    /// brokers, by librdkafka's error name.
    pub records_dropped_undelivered: BTreeMap<String, u64>,
    /// Still waiting when the agent stopped and the grace period ran out.
    pub records_dropped_shutdown: u64,
    /// Records waiting for the brokers now.
    pub buffered_records: u64,
}

impl BusProducerStats {
    pub const GAUGES: &'static [&'static str] = &["buffered_records"];
}

/// librdkafka's name of why a record was given up.
fn reason(e: &KafkaError) -> String {
    e.rdkafka_error_code()
        .map(|c| format!("{c:?}"))
        .unwrap_or_else(|| "other".into())
}

/// Counts each delivery report as it comes (librdkafka's thread).
struct Reports {
    stats: Arc<Mutex<BusProducerStats>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    /// The message's size in bytes (key and value).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, bytes: usize) {
        let Ok(mut s) = self.stats.lock() else {
            return;
        };
        match result {
            Ok(_) => {
                s.records_sent += 1;
                s.bytes_sent += bytes as u64;
            }
            Err((
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                ),
                _,
            )) => s.records_dropped_shutdown += 1,
            Err((e, _)) => *s.records_dropped_undelivered.entry(reason(e)).or_default() += 1,
        }
    }
}

pub struct BusProducer {
    producer: ThreadedProducer<Reports>,
    topic: String,
    stats: Arc<Mutex<BusProducerStats>>,
    config: BusProducerConfig,
}

impl BusProducer {
    pub fn start(bus: &KafkaBus, config: BusProducerConfig) -> Result<BusProducer, String> {
        if config.buffer_records == 0 {
            return Err("the Kafka buffer holds at least one record".into());
        }
        let mut c = producer_config(&bus.client_config()?, config.delivery_timeout);
        c.set(
            "queue.buffering.max.messages",
            config.buffer_records.min(i32::MAX as usize).to_string(),
        );
        let stats = Arc::new(Mutex::new(BusProducerStats::default()));
        let producer = c
            .create_with_context(Reports {
                stats: stats.clone(),
            })
            .map_err(|e| format!("Kafka producer for {}: {e}", bus.brokers))?;
        Ok(BusProducer {
            producer,
            topic: bus.topic.clone(),
            stats,
            config,
        })
    }

    /// Hands the records to librdkafka; never waits.
    pub fn enqueue(&self, records: &[FlowRecord]) {
        let mut full = 0u64;
        for record in records {
            let key = flow_key(record);
            let value = flowlens_wire::convert::to_pb(record).encode_to_vec();
            let message = BaseRecord::with_opaque_to(&self.topic, key.len() + value.len())
                .key(&key)
                .payload(&value);
            if let Err((e, _)) = self.producer.send(message) {
                match e.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::QueueFull) => full += 1,
                    _ => {
                        if let Ok(mut s) = self.stats.lock() {
                            *s.records_dropped_undelivered.entry(reason(&e)).or_default() += 1;
                        }
                    }
                }
            }
        }
        if let Ok(mut s) = self.stats.lock() {
            s.records_received += records.len() as u64;
            s.records_dropped_buffer_full += full;
        }
    }

    pub fn stats(&self) -> BusProducerStats {
        let mut s = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        s.buffered_records = self.producer.in_flight_count().max(0) as u64;
        s
    }

    pub fn stats_reader(self: &Arc<Self>) -> impl Fn() -> BusProducerStats + Send + Sync + 'static {
        let me = self.clone();
        move || me.stats()
    }

    /// Waits up to the grace period for the waiting records, then gives the
    /// rest up (counted); the final counters.
    pub fn finish(&self) -> BusProducerStats {
        let _ = self.producer.flush(self.config.shutdown_grace);
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        // The purged records' reports, counted before the counters are read.
        let _ = self.producer.flush(Duration::from_secs(1));
        self.stats()
    }
}
