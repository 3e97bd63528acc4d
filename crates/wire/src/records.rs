//! The Collector service's `Records` message, written by hand instead of
//! generated (build.rs maps `.pbflow.Records` here): it is sent as prost
//! would send it, but a received one is decoded in place (`raw`) straight
//! into flow records, so the collector builds no prost `Record` per flow.
//! The bytes on the wire are those of flow.proto either way.

use crate::convert::{DecodeError, DecodedRecords, decode_records};
use crate::pbflow;
use flowlens_model::FlowRecord;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType, message};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    /// Records to send (or merged in by prost's `merge`).
    pub entries: Vec<pbflow::Record>,
    pub batch: Option<pbflow::BatchId>,
    /// What `decode` read in place: the usable records, in order, and why
    /// each other one was skipped. Encoding sends `entries` only (a
    /// received message is not sent on; its records are).
    pub received: Vec<FlowRecord>,
    pub invalid: Vec<DecodeError>,
}

impl Records {
    /// Records to send.
    pub fn to_send(entries: Vec<pbflow::Record>, batch: Option<pbflow::BatchId>) -> Records {
        Records {
            entries,
            batch,
            ..Records::default()
        }
    }

    /// Every record of a received message: those read in place and any
    /// merged in as prost records (converted here).
    pub fn into_flows(self) -> DecodedRecords {
        let mut flows = DecodedRecords {
            records: self.received,
            invalid: self.invalid,
            batch: self.batch,
        };
        for entry in self.entries {
            flows.take(crate::convert::from_pb(entry));
        }
        flows
    }

    /// prost's own decode of a message (each entry a prost `Record`): the
    /// reference the in-place decode is held to, and the benchmarks'
    /// baseline.
    pub fn decode_by_prost(bytes: impl Buf) -> Result<Records, prost::DecodeError> {
        let mut message = Records::default();
        prost::Message::merge(&mut message, bytes)?;
        Ok(message)
    }

    /// How many records the message carries.
    pub fn len(&self) -> usize {
        self.entries.len() + self.received.len() + self.invalid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl prost::Message for Records {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for entry in &self.entries {
            message::encode(1, entry, buf);
        }
        if let Some(batch) = &self.batch {
            message::encode(1000, batch, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => message::merge_repeated(wire_type, &mut self.entries, buf, ctx),
            1000 => message::merge(
                wire_type,
                self.batch.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        message::encoded_len_repeated(1, &self.entries)
            + self
                .batch
                .as_ref()
                .map_or(0, |batch| message::encoded_len(1000, batch))
    }

    fn clear(&mut self) {
        *self = Records::default();
    }

    /// Decodes in place. Bytes the in-place reader refuses, prost refuses
    /// too (tests and the `pbflow` fuzz target hold them to it): prost's
    /// decode then says why, in its words.
    fn decode(mut buf: impl Buf) -> Result<Records, prost::DecodeError> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        match decode_records(&bytes) {
            Ok(DecodedRecords {
                records,
                invalid,
                batch,
            }) => Ok(Records {
                entries: Vec::new(),
                batch,
                received: records,
                invalid,
            }),
            Err(_) => Records::decode_by_prost(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::to_pb;
    use prost::Message;

    #[test]
    fn sent_as_prost_sends_it_and_received_in_place() {
        let flows = vec![
            flowlens_model::fixtures::full_record(),
            flowlens_model::fixtures::every_field_record(),
        ];
        let mut bad = to_pb(&flows[0]);
        bad.network = None;
        let mut entries: Vec<_> = flows.iter().map(to_pb).collect();
        entries.push(bad);
        let batch = Some(pbflow::BatchId {
            agent: "node-a/1f".into(),
            sequence: 9,
        });
        let message = Records::to_send(entries, batch.clone());
        let bytes = message.encode_to_vec();
        assert_eq!(bytes.len(), message.encoded_len());
        let received = Records::decode(bytes.as_slice()).unwrap();
        assert!(received.entries.is_empty(), "read in place");
        assert_eq!(received.len(), 3);
        let got = received.into_flows();
        assert_eq!(got.records, flows);
        assert_eq!(got.invalid, [DecodeError::Missing("network")]);
        assert_eq!(got.batch, batch);
        // Bytes that are no message: prost's error.
        let refused = Records::decode(&[0x0a, 0x05, 0x40][..]).unwrap_err();
        assert!(
            refused.to_string().contains("buffer underflow"),
            "{refused}"
        );
    }
}
