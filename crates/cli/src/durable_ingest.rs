//! Acknowledged means durable: batches of flows (from agents over gRPC, or
//! from the agent inside `up`) are appended to the store's write-ahead log
//! and synced — one sync per group of batches that arrived meanwhile —
//! before the pipeline sees them and a sender is answered. At start
//! the log is replayed past what the store's files hold, so every
//! acknowledged record is stored exactly once, whenever the process was
//! killed.
//!
//! Senders number their batches (agent identity + sequence): a batch sent
//! again after a timeout or a restart is answered without being stored a
//! second time. The highest sequence taken per agent is rebuilt from the
//! log at start, and written into the log before old segments go, so
//! removing segments never forgets it.

use crate::metrics::CounterSection;
use crate::pipeline_run::PipelineRun;
use anyhow::{Context, Result};
use flowlens_store::Store;
use flowlens_store::wal::{Wal, WalCounters};
use flowlens_wire::log_entry::{
    LogEntry, decode_entry, decode_records, encode_batch, encode_taken,
};
use flowlens_wire::receiver::{Answer, Batch, BatchId, Status};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Batches taken into one group (one sync) at most.
const GROUP_BATCHES: usize = 256;
/// Agents whose last batch is remembered at most; beyond, the one longest
/// silent is forgotten.
const MAX_AGENTS: usize = 65_536;

/// What the durable ingest took, refused and replayed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestCounters {
    /// Batches and records made durable and handed to the pipeline.
    pub batches_logged: u64,
    pub records_logged: u64,
    /// Batches sent again that were already taken (answered, not stored
    /// twice), and their records.
    pub duplicate_batches: u64,
    pub duplicate_records: u64,
    /// Batches refused because the log could not be written (the sender
    /// retries; nothing was acknowledged).
    pub refused_batches: u64,
    /// At start: batches and records replayed from the log into the store.
    pub replayed_batches: u64,
    pub replayed_records: u64,
    /// Log entries that could not be read back (counted, skipped).
    pub unreadable_entries: u64,
    /// Records of a replayed batch that no longer convert, by reason.
    pub replay_invalid: BTreeMap<String, u64>,
    /// `up`: records the agent handed over while the log's queue was full.
    pub dropped_queue_full: u64,
    /// The log's own counters, at the top level so that its gauges are
    /// gauges in /metrics.
    #[serde(flatten)]
    pub wal: WalCounters,
}

/// The highest sequence taken per agent, and the LSN of its entry (to tell
/// the longest silent agent).
#[derive(Default)]
struct Taken(HashMap<String, (u64, u64)>);

impl Taken {
    fn sequence(&self, agent: &str) -> Option<u64> {
        self.0.get(agent).map(|(s, _)| *s)
    }

    fn note(&mut self, agent: &str, sequence: u64, lsn: u64) {
        let entry = self.0.entry(agent.to_string()).or_insert((0, 0));
        *entry = (entry.0.max(sequence), entry.1.max(lsn));
        if self.0.len() > MAX_AGENTS
            && let Some(oldest) = self
                .0
                .iter()
                .min_by_key(|(_, (_, lsn))| *lsn)
                .map(|(a, _)| a.clone())
        {
            self.0.remove(&oldest);
        }
    }
}

pub struct DurableIngest {
    wal: Wal,
    taken: Taken,
    pipeline: PipelineRun,
    store: Arc<Store>,
    counters: Arc<Mutex<IngestCounters>>,
}

impl DurableIngest {
    /// Opens the log under the store's data directory and replays into the
    /// pipeline what the store's files do not hold yet.
    pub fn open(pipeline: PipelineRun, store: Arc<Store>) -> Result<DurableIngest> {
        let durable = store.durable_wal_lsn();
        let dir = store.dir().join("wal");
        let mut taken = Taken::default();
        let mut counters = IngestCounters::default();
        let wal = Wal::open(&dir, durable, |lsn, payload| match decode_entry(&payload) {
            Ok(LogEntry::Taken(agents)) => {
                for (agent, sequence) in agents {
                    taken.note(agent, sequence, lsn);
                }
            }
            Ok(LogEntry::Batch { id, records }) => {
                if let Some((agent, sequence)) = id {
                    taken.note(agent, sequence, lsn);
                }
                if lsn <= durable {
                    return;
                }
                let mut invalid = BTreeMap::new();
                match decode_records(records, &mut invalid) {
                    Ok(flows) => {
                        counters.replayed_batches += 1;
                        counters.replayed_records += flows.len() as u64;
                        pipeline.ingest_logged(flows, lsn);
                    }
                    Err(e) => {
                        tracing::error!("write-ahead log entry {lsn}: {e}; skipped");
                        counters.unreadable_entries += 1;
                    }
                }
                for (reason, n) in invalid {
                    *counters
                        .replay_invalid
                        .entry(reason.to_string())
                        .or_default() += n;
                }
            }
            Err(e) => {
                tracing::error!("write-ahead log entry {lsn}: {e}; skipped");
                counters.unreadable_entries += 1;
            }
        })
        .with_context(|| format!("opening the write-ahead log in {}", dir.display()))?;
        if counters.replayed_batches > 0 {
            tracing::info!(
                batches = counters.replayed_batches,
                records = counters.replayed_records,
                "replayed the write-ahead log past what the store's files hold"
            );
        }
        counters.wal = wal.counters.clone();
        Ok(DurableIngest {
            wal,
            taken,
            pipeline,
            store,
            counters: Arc::new(Mutex::new(counters)),
        })
    }

    /// The log of a pipeline that has a store, opened and replayed off
    /// the event loop, its counters added to `sections`; None without a
    /// store.
    pub async fn start(
        pipeline: &PipelineRun,
        sections: &mut Vec<CounterSection>,
    ) -> Result<Option<DurableIngest>> {
        let Some(store) = pipeline.store() else {
            return Ok(None);
        };
        let opening = pipeline.clone();
        let ingest =
            tokio::task::spawn_blocking(move || DurableIngest::open(opening, store)).await??;
        sections.push(ingest.counter_section());
        Ok(Some(ingest))
    }

    /// The batch identities the log holds: each sender's (an agent, or a
    /// Kafka partition) highest sequence taken.
    pub fn taken(&self) -> impl ExactSizeIterator<Item = (&str, u64)> {
        self.taken.0.iter().map(|(a, (s, _))| (a.as_str(), *s))
    }

    /// The counters, for /metrics and /status.
    pub fn counter_section(&self) -> CounterSection {
        let counters = self.counters.clone();
        CounterSection::new("ingest", WalCounters::GAUGES, move || {
            counters.lock().map(|c| c.clone()).unwrap_or_default()
        })
    }

    /// Counts records `up`'s agent could not queue.
    pub fn drop_counter(&self) -> impl Fn(u64) + Send + Sync + 'static {
        let counters = self.counters.clone();
        move |n| {
            if let Ok(mut c) = counters.lock() {
                c.dropped_queue_full += n;
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut IngestCounters)) {
        if let Ok(mut c) = self.counters.lock() {
            f(&mut c);
            c.wal = self.wal.counters.clone();
        }
    }

    /// Takes batches until the queue closes: each group is logged and
    /// synced, handed to the pipeline in log order, and answered.
    pub fn run(mut self, mut queue: tokio::sync::mpsc::Receiver<Batch>) -> DurableIngest {
        while let Some(first) = queue.blocking_recv() {
            let mut group = vec![first];
            while group.len() < GROUP_BATCHES {
                match queue.try_recv() {
                    Ok(batch) => group.push(batch),
                    Err(_) => break,
                }
            }
            self.take_group(group);
        }
        self
    }

    fn take_group(&mut self, group: Vec<Batch>) {
        // Sequences taken by this group, applied once it is durable.
        let mut pending: HashMap<String, u64> = HashMap::new();
        let mut logged: Vec<(Vec<flowlens_model::FlowRecord>, Answer, u64)> = Vec::new();
        let mut duplicates: Vec<(Answer, BatchId, usize)> = Vec::new();
        let mut failed: Vec<Answer> = Vec::new();
        let mut notes: Vec<(BatchId, u64)> = Vec::new();
        let mut error = None;
        for batch in group {
            let Batch {
                records,
                id,
                answer,
            } = batch;
            if let Some(id) = &id {
                let seen = self
                    .taken
                    .sequence(&id.agent)
                    .max(pending.get(&id.agent).copied());
                if seen.is_some_and(|s| id.sequence <= s) {
                    duplicates.push((answer, id.clone(), records.len()));
                    continue;
                }
            }
            if error.is_some() {
                failed.push(answer);
                continue;
            }
            let entry = encode_batch(
                &records,
                id.as_ref().map(|i| (i.agent.as_str(), i.sequence)),
            );
            match self.wal.append(&entry) {
                Ok(lsn) => {
                    if let Some(id) = id {
                        pending.insert(id.agent.clone(), id.sequence);
                        notes.push((id, lsn));
                    }
                    logged.push((records, answer, lsn));
                }
                Err(e) => {
                    error = Some(e);
                    failed.push(answer);
                }
            }
        }
        let synced = match error {
            Some(e) => Err(e),
            None => self.wal.sync(),
        };
        if let Err(e) = synced {
            tracing::error!("writing the write-ahead log: {e}; the senders will retry");
            let refused = logged.len() + failed.len();
            let status = || Status::unavailable(format!("the collector cannot write its log: {e}"));
            for (_, answer, _) in logged {
                answer.fail(status());
            }
            for answer in failed {
                answer.fail(status());
            }
            self.answer_duplicates(duplicates);
            self.update(|c| c.refused_batches += refused as u64);
            return;
        }
        for (id, lsn) in notes {
            self.taken.note(&id.agent, id.sequence, lsn);
        }
        self.answer_duplicates(duplicates);
        let (batches, records) = (
            logged.len() as u64,
            logged.iter().map(|(r, _, _)| r.len() as u64).sum::<u64>(),
        );
        // Answered once in the pipeline too, so that a query made after the
        // answer sees the records (the store's buffer answers queries).
        for (flows, answer, lsn) in logged {
            self.pipeline.ingest_logged(flows, lsn);
            answer.ok();
        }
        self.update(|c| {
            c.batches_logged += batches;
            c.records_logged += records;
        });
        self.release();
    }

    /// Answers batches sent again, once this group's fate is known: taken
    /// when their original is durable (an earlier group, or this one), and
    /// refused when the original was in this group and its sync failed.
    fn answer_duplicates(&self, duplicates: Vec<(Answer, BatchId, usize)>) {
        let mut records = 0;
        let n = duplicates.len() as u64;
        for (answer, id, len) in duplicates {
            let durable = self
                .taken
                .sequence(&id.agent)
                .is_some_and(|s| id.sequence <= s);
            if durable {
                answer.ok();
            } else {
                answer.fail(Status::unavailable("the collector cannot write its log"));
            }
            records += len as u64;
        }
        if n > 0 {
            self.update(|c| {
                c.duplicate_batches += n;
                c.duplicate_records += records;
            });
        }
    }

    /// Removes log segments the store's files cover, after logging the
    /// table of taken batches so that it outlives them.
    fn release(&mut self) {
        let durable = self.store.durable_wal_lsn();
        if !self.wal.would_release(durable) {
            return;
        }
        let table = encode_taken(self.taken());
        if self
            .wal
            .append(&table)
            .and_then(|_| self.wal.sync())
            .is_ok()
        {
            self.wal.release(durable);
        }
        self.update(|_| {});
    }

    /// After the pipeline wrote everything out: the log keeps only what
    /// the files do not hold.
    pub fn close(mut self) {
        self.release();
    }
}
