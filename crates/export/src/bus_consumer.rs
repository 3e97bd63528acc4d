//! The collector's side of the Kafka bus: a member of a consumer group
//! that hands each partition's new records to the collector's durable
//! ingest as one batch, and commits the partition's offset only once the
//! batch is answered (durable in the store's write-ahead log). A batch's
//! identity in that log is its partition and last offset, so after a
//! crash the offsets the log already holds are skipped, not stored twice,
//! and committed at once.

use crate::kafka_bus::KafkaBus;
use flowlens_wire::convert::from_raw;
use flowlens_wire::exporter::jittered;
use flowlens_wire::raw::RawRecord;
use flowlens_wire::receiver::{Answer, Batch, BatchId};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message, Offset, Statistics, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often librdkafka reports its statistics (the consumer lag is read
/// from them: asking the brokers for watermarks on the consuming task
/// stalled it for as long as they took to answer).
const STATISTICS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct BusConsumerConfig {
    /// The consumer group: collectors of one group share the partitions.
    pub group: String,
    /// Records handed over in one batch at most.
    pub max_batch_records: usize,
    /// A collector silent this long leaves the group, its partitions going
    /// to the others.
    pub session_timeout: Duration,
}

impl BusConsumerConfig {
    pub fn new(group: &str) -> BusConsumerConfig {
        BusConsumerConfig {
            group: group.to_string(),
            max_batch_records: 10_000,
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// What the consumer read, handed over, skipped and committed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BusConsumerStats {
    pub messages_received: u64,
    /// Records decoded and handed to the store.
    pub records_received: u64,
    /// Messages that are not a pbflow record, by reason (skipped: no retry
    /// makes them readable).
    pub records_invalid: BTreeMap<String, u64>,
    /// Messages the write-ahead log already held (read again after a
    /// restart), skipped.
    pub messages_already_stored: u64,
    pub batches_taken: u64,
    /// Batches the store could not log; their partition is read again.
    pub batches_refused: u64,
    pub commits: u64,
    pub commit_errors: u64,
    pub consumer_errors: u64,
    pub rebalances: u64,
    /// Partitions this collector holds now.
    pub assigned_partitions: u64,
    /// Messages of those partitions not read yet (the consumer lag: each
    /// one's high watermark less the position), from librdkafka's
    /// statistics of every 2 s.
    pub lag_messages: u64,
}

impl BusConsumerStats {
    pub const GAUGES: &'static [&'static str] = &["assigned_partitions", "lag_messages"];
}

/// Counts the group's rebalances and the partitions held, and reads the
/// lag from librdkafka's statistics.
struct Group {
    topic: String,
    stats: Arc<Mutex<BusConsumerStats>>,
}

/// The messages of the held partitions not read yet: from the position
/// (else the committed offset, else the oldest retained) to the high
/// watermark, as librdkafka last heard them from the brokers.
fn lag_of(statistics: &Statistics, topic: &str) -> u64 {
    let Some(topic) = statistics.topics.get(topic) else {
        return 0;
    };
    topic
        .partitions
        .values()
        // -1 is librdkafka's own placeholder partition.
        .filter(|p| p.partition >= 0 && p.desired && p.hi_offset >= 0)
        .map(|p| {
            let from = [p.app_offset, p.committed_offset, p.lo_offset]
                .into_iter()
                .find(|o| *o >= 0)
                .unwrap_or(0);
            (p.hi_offset - from).max(0) as u64
        })
        .sum()
}

impl ClientContext for Group {
    fn stats(&self, statistics: Statistics) {
        let lag = lag_of(&statistics, &self.topic);
        if let Ok(mut s) = self.stats.lock() {
            s.lag_messages = lag;
        }
    }
}

impl ConsumerContext for Group {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let held = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if let Ok(mut s) = self.stats.lock() {
            s.rebalances += 1;
            s.assigned_partitions = held as u64;
        }
        tracing::info!(partitions = held, "Kafka group rebalanced: {rebalance:?}");
    }
}

/// One partition's share of a cycle.
#[derive(Default)]
struct Part {
    records: Vec<flowlens_model::FlowRecord>,
    /// First and last new offset (None: every message was already stored).
    first: Option<i64>,
    last: i64,
}

pub struct BusConsumer {
    consumer: StreamConsumer<Group>,
    bus: KafkaBus,
    config: BusConsumerConfig,
    /// Per partition, the last offset the store has.
    stored: HashMap<i32, i64>,
    stats: Arc<Mutex<BusConsumerStats>>,
}

impl BusConsumer {
    /// Joins the group; `stored` are the batch identities (partition id,
    /// last offset) the write-ahead log holds.
    pub fn start<'a>(
        bus: &KafkaBus,
        config: BusConsumerConfig,
        stored: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<BusConsumer, String> {
        if config.group.is_empty() {
            return Err("--kafka-group: the consumer group needs a name".into());
        }
        let mut c = bus.client_config()?;
        c.set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A new group reads what the topic retains: records produced
            // before the first collector started are not lost.
            .set("auto.offset.reset", "earliest")
            .set(
                "statistics.interval.ms",
                STATISTICS_EVERY.as_millis().to_string(),
            )
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (config.session_timeout.as_millis() / 4)
                    .max(100)
                    .to_string(),
            );
        let stats = Arc::new(Mutex::new(BusConsumerStats::default()));
        let consumer: StreamConsumer<Group> = c
            .create_with_context(Group {
                topic: bus.topic.clone(),
                stats: stats.clone(),
            })
            .map_err(|e| format!("Kafka consumer for {}: {e}", bus.brokers))?;
        consumer
            .subscribe(&[bus.topic.as_str()])
            .map_err(|e| format!("Kafka topic {}: {e}", bus.topic))?;
        let stored = stored
            .into_iter()
            .filter_map(|(id, offset)| Some((bus.partition_of(id)?, offset as i64)))
            .collect();
        Ok(BusConsumer {
            consumer,
            bus: bus.clone(),
            config,
            stored,
            stats,
        })
    }

    pub fn stats_reader(&self) -> impl Fn() -> BusConsumerStats + Send + Sync + 'static {
        let stats = self.stats.clone();
        move || stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut BusConsumerStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    /// Reads, hands over and commits until `stop`; then leaves the group
    /// (everything handed over is committed by then).
    pub async fn run(mut self, queue: mpsc::Sender<Batch>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let first = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                m = self.consumer.recv() => m,
            };
            let mut parts: BTreeMap<i32, Part> = BTreeMap::new();
            let mut read = 0usize;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Ok(m) => {
                        self.take(&m, &mut parts);
                        read += 1;
                    }
                    Err(e) => {
                        self.update(|s| s.consumer_errors += 1);
                        tracing::warn!("Kafka {}: {e}", self.bus.topic);
                        if read == 0 {
                            tokio::time::sleep(jittered(backoff)).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                        break;
                    }
                }
                if read >= self.config.max_batch_records {
                    break;
                }
                // What librdkafka already fetched joins this batch; a
                // zero timeout polls once.
                next = tokio::time::timeout(Duration::ZERO, self.consumer.recv())
                    .await
                    .ok();
            }
            if read > 0 {
                backoff = Duration::from_millis(100);
            }
            if !self.hand_over(parts, &queue).await {
                break;
            }
        }
    }

    /// Decodes a message into its partition's part, unless the store has
    /// it already.
    fn take(&self, m: &BorrowedMessage<'_>, parts: &mut BTreeMap<i32, Part>) {
        let (partition, offset) = (m.partition(), m.offset());
        let part = parts.entry(partition).or_default();
        if let Some(stored) = self
            .stored
            .get(&partition)
            .copied()
            .filter(|s| offset <= *s)
        {
            part.last = part.last.max(stored);
            self.update(|s| {
                s.messages_received += 1;
                s.messages_already_stored += 1;
            });
            return;
        }
        part.first.get_or_insert(offset);
        part.last = offset;
        let decoded = RawRecord::parse(m.payload().unwrap_or_default())
            .map_err(|_| "not_protobuf".to_string())
            .and_then(|raw| from_raw(&raw).map_err(|e| e.reason().to_string()));
        match decoded {
            Ok(record) => part.records.push(record),
            Err(reason) => self.update(|s| *s.records_invalid.entry(reason).or_default() += 1),
        }
        self.update(|s| s.messages_received += 1);
    }

    /// Hands each partition's new records over as one batch, waits for the
    /// answers, and commits what is durable; a refused batch's partition is
    /// read again from its first offset. False once the ingest is gone.
    async fn hand_over(&mut self, parts: BTreeMap<i32, Part>, queue: &mpsc::Sender<Batch>) -> bool {
        let topic = self.bus.topic.clone();
        let mut commit = TopicPartitionList::new();
        let mut waiting = Vec::new();
        for (partition, part) in parts {
            let Some(first) = part.first else {
                // Only messages already stored: their offsets are committed
                // now, so that the next owner does not read them again.
                let _ =
                    commit.add_partition_offset(&topic, partition, Offset::Offset(part.last + 1));
                continue;
            };
            let (answer, answered) = Answer::waiting();
            let records = part.records.len() as u64;
            let batch = Batch {
                records: part.records,
                id: Some(BatchId {
                    agent: self.bus.partition_id(partition),
                    sequence: part.last as u64,
                }),
                answer,
            };
            if queue.send(batch).await.is_err() {
                return false;
            }
            waiting.push((partition, first, part.last, records, answered));
        }
        let mut refused = false;
        for (partition, first, last, records, answered) in waiting {
            if let Ok(Ok(())) = answered.await {
                self.stored.insert(partition, last);
                let _ = commit.add_partition_offset(&topic, partition, Offset::Offset(last + 1));
                self.update(|s| {
                    s.batches_taken += 1;
                    s.records_received += records;
                });
            } else {
                refused = true;
                self.update(|s| s.batches_refused += 1);
                if let Err(e) = self.consumer.seek(
                    &topic,
                    partition,
                    Offset::Offset(first),
                    Duration::from_secs(5),
                ) {
                    tracing::warn!("Kafka {topic}/{partition}: reading again from {first}: {e}");
                }
            }
        }
        if commit.count() > 0 {
            // Synchronous: committed before the next poll, which is where a
            // rebalance may hand the partitions to another collector.
            let committed =
                tokio::task::block_in_place(|| self.consumer.commit(&commit, CommitMode::Sync));
            match committed {
                Ok(()) => self.update(|s| s.commits += 1),
                Err(e) => {
                    self.update(|s| s.commit_errors += 1);
                    tracing::warn!("Kafka {topic}: committing offsets: {e}");
                }
            }
        }
        if refused {
            tokio::time::sleep(jittered(Duration::from_secs(1))).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::statistics::{Partition, Topic};

    fn partition(id: i32, app: i64, committed: i64, lo: i64, hi: i64) -> Partition {
        Partition {
            partition: id,
            desired: true,
            app_offset: app,
            committed_offset: committed,
            lo_offset: lo,
            hi_offset: hi,
            ..Default::default()
        }
    }

    #[test]
    fn the_lag_counts_from_the_position_else_the_commit_else_the_oldest() {
        let mut topic = Topic::default();
        for p in [
            partition(0, 90, 80, 0, 100),  // read up to 90: 10 left
            partition(1, -1, 40, 0, 100),  // nothing read yet, committed 40: 60
            partition(2, -1, -1, 30, 100), // a new group from the oldest: 70
            partition(3, 10, -1, 0, -1),   // watermark not heard yet: not counted
            partition(-1, -1, -1, 0, 500), // librdkafka's placeholder partition
        ] {
            topic.partitions.insert(p.partition, p);
        }
        let mut released = partition(4, 0, 0, 0, 1000);
        released.desired = false; // another collector's now
        topic.partitions.insert(4, released);
        let mut statistics = Statistics::default();
        statistics.topics.insert("flows".into(), topic);
        assert_eq!(lag_of(&statistics, "flows"), 140);
        assert_eq!(lag_of(&statistics, "other"), 0);
    }
}
