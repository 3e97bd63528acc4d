//! How a batch of flows is kept in the write-ahead log: the sender's batch
//! id first (read at start without decoding the records, to rebuild which
//! batches were already taken), then the records as pbflow. A second kind of
//! entry keeps the table of taken batches itself, so that removing old log
//! segments never forgets them.
//!
//! `0 | agent length: u16 LE | agent | sequence: u64 LE | pbflow Records`
//! `1 | count: u32 LE | (agent length: u16 LE | agent | sequence: u64 LE)*`

use crate::convert::to_pb;
use crate::pbflow;
use flowlens_model::FlowRecord;
use prost::Message;

const BATCH: u8 = 0;
const TAKEN: u8 = 1;

/// A log entry, decoded.
pub enum LogEntry<'a> {
    /// A batch; `records` decodes its flows.
    Batch {
        id: Option<(&'a str, u64)>,
        records: &'a [u8],
    },
    /// The highest sequence taken per agent.
    Taken(Vec<(&'a str, u64)>),
}

fn put_id(out: &mut Vec<u8>, agent: &str, sequence: u64) {
    let agent = &agent.as_bytes()[..agent.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(agent.len() as u16).to_le_bytes());
    out.extend_from_slice(agent);
    out.extend_from_slice(&sequence.to_le_bytes());
}

/// A batch as a log entry (an empty agent means no id).
pub fn encode_batch(records: &[FlowRecord], id: Option<(&str, u64)>) -> Vec<u8> {
    let message = pbflow::Records {
        entries: records.iter().map(to_pb).collect(),
        batch: None,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(message.encoded_len() + 64);
    out.push(BATCH);
    let (agent, sequence) = id.unwrap_or(("", 0));
    put_id(&mut out, agent, sequence);
    message.encode(&mut out).expect("a Vec grows");
    out
}

/// The table of taken batches as a log entry.
pub fn encode_taken<'a>(taken: impl ExactSizeIterator<Item = (&'a str, u64)>) -> Vec<u8> {
    let mut out = vec![TAKEN];
    out.extend_from_slice(&(taken.len() as u32).to_le_bytes());
    for (agent, sequence) in taken {
        put_id(&mut out, agent, sequence);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "an entry cut short ({} bytes left, {n} needed)",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn id(&mut self) -> Result<(&'a str, u64), String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        let agent = std::str::from_utf8(self.take(len)?).map_err(|e| format!("agent name: {e}"))?;
        let sequence = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        Ok((agent, sequence))
    }
}

/// Reads an entry's kind and ids (cheap: the records stay encoded).
pub fn decode_entry(bytes: &[u8]) -> Result<LogEntry<'_>, String> {
    let mut r = Reader(bytes);
    match r.take(1)?[0] {
        BATCH => {
            let (agent, sequence) = r.id()?;
            Ok(LogEntry::Batch {
                id: (!agent.is_empty()).then_some((agent, sequence)),
                records: r.0,
            })
        }
        TAKEN => {
            let count = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes")) as usize;
            // Each id takes at least 10 bytes: a count beyond that is a lie.
            if count > r.0.len() / 10 {
                return Err(format!("a table of {count} agents in {} bytes", r.0.len()));
            }
            (0..count)
                .map(|_| r.id())
                .collect::<Result<_, _>>()
                .map(LogEntry::Taken)
        }
        kind => Err(format!("unknown entry kind {kind}")),
    }
}

/// A batch entry's flows; records that do not convert are counted by
/// reason in `invalid` (they were valid when logged, so only a changed
/// conversion makes any).
pub fn decode_records(
    bytes: &[u8],
    invalid: &mut std::collections::BTreeMap<&'static str, u64>,
) -> Result<Vec<FlowRecord>, String> {
    let decoded = crate::convert::decode_records(bytes).map_err(|e| format!("records: {e}"))?;
    for e in decoded.invalid {
        *invalid.entry(e.reason()).or_default() += 1;
    }
    Ok(decoded.records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_tables_come_back() {
        let flows = vec![flowlens_model::fixtures::full_record()];
        let bytes = encode_batch(&flows, Some(("node-a/1f", 7)));
        let LogEntry::Batch { id, records } = decode_entry(&bytes).unwrap() else {
            panic!("a batch")
        };
        assert_eq!(id, Some(("node-a/1f", 7)));
        let back = decode_records(records, &mut Default::default()).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].bytes, flows[0].bytes);
        let bytes = encode_batch(&flows, None);
        assert!(matches!(
            decode_entry(&bytes).unwrap(),
            LogEntry::Batch { id: None, .. }
        ));
        let table = [("a", 1u64), ("b", 2)];
        let bytes = encode_taken(table.iter().copied());
        let LogEntry::Taken(back) = decode_entry(&bytes).unwrap() else {
            panic!("a table")
        };
        assert_eq!(back, table);
        for cut in 0..bytes.len() {
            let _ = decode_entry(&bytes[..cut]);
        }
        assert!(decode_entry(&[1, 255, 255, 255, 255]).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Log entries are read back from disk: any bytes, and any change
        /// to a real entry, are an error or a value, never a panic.
        #[test]
        fn any_bytes_decode_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            flip in proptest::prelude::any::<(usize, u8)>(),
        ) {
            let mut invalid = Default::default();
            if let Ok(LogEntry::Batch { records, .. }) = decode_entry(&bytes) {
                let _ = decode_records(records, &mut invalid);
            }
            let flows = vec![flowlens_model::fixtures::full_record()];
            let mut real = encode_batch(&flows, Some(("node", 1)));
            let at = flip.0 % real.len();
            real[at] ^= flip.1;
            if let Ok(LogEntry::Batch { records, .. }) = decode_entry(&real) {
                let _ = decode_records(records, &mut invalid);
            }
        }
    }
}
