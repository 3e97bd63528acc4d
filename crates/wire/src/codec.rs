//! The gRPC codec of the Collector service: prost's, with one more step.
//! Before a request is decoded, its elements are counted on the wire: an
//! 8 MiB message of empty records is four million records, and decoding it
//! would allocate gigabytes before any check on the decoded message could
//! run. A message with more records than a call may carry (or more nested
//! entries than records can have) is refused as OUT_OF_RANGE, having cost
//! one pass over its bytes.

use prost::Message;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Records a call may carry, the largest of this process's receivers (the
/// codec is made by generated code, which passes no settings); each
/// receiver still checks its own limit on the decoded message.
static MAX_RECORDS: AtomicUsize = AtomicUsize::new(0);

/// Before any receiver says otherwise.
const DEFAULT_MAX_RECORDS: usize = 20_000;

/// Nested entries (interfaces seen, network events) a record has on
/// average at most, over a message.
const NESTED_PER_RECORD: usize = 4;

/// Raises the bound to at least `records` per call.
pub fn allow_records_per_call(records: usize) {
    MAX_RECORDS.fetch_max(records, Ordering::Relaxed);
}

fn max_records() -> usize {
    match MAX_RECORDS.load(Ordering::Relaxed) {
        0 => DEFAULT_MAX_RECORDS,
        n => n,
    }
}

/// What a message type checks of its wire bytes before it is decoded.
pub trait DecodeBudget {
    fn check_budget(_bytes: &[u8]) -> Result<(), Status> {
        Ok(())
    }
}

impl DecodeBudget for crate::pbflow::CollectorReply {}

impl DecodeBudget for crate::pbflow::Records {
    fn check_budget(bytes: &[u8]) -> Result<(), Status> {
        let (records, nested) = count_elements(bytes);
        let most = max_records();
        if records > most {
            return Err(Status::out_of_range(format!(
                "a call carries at most {most} records; this one has {records} (refused before decoding)"
            )));
        }
        if nested > most.saturating_mul(NESTED_PER_RECORD) {
            return Err(Status::out_of_range(format!(
                "{nested} nested entries (interfaces, network events) in {records} records is more than {NESTED_PER_RECORD} per record (refused before decoding)"
            )));
        }
        Ok(())
    }
}

/// A protobuf varint at the start of `bytes`: its value and length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The top-level fields of a message: (number, wire type, payload of a
/// length-delimited field). Stops at the first malformed byte (prost's
/// decode then says what is wrong).
fn fields(mut bytes: &[u8]) -> impl Iterator<Item = (u64, u64, &[u8])> {
    std::iter::from_fn(move || {
        let (key, n) = varint(bytes)?;
        bytes = &bytes[n..];
        let (number, wire_type) = (key >> 3, key & 7);
        let skip = match wire_type {
            0 => varint(bytes)?.1,
            1 => 8,
            2 => {
                let (len, n) = varint(bytes)?;
                let len = usize::try_from(len).ok()?;
                let end = n.checked_add(len).filter(|end| *end <= bytes.len())?;
                let payload = &bytes[n..end];
                bytes = &bytes[end..];
                return Some((number, wire_type, payload));
            }
            5 => 4,
            _ => return None,
        };
        bytes = bytes.get(skip..)?;
        Some((number, wire_type, &[][..]))
    })
}

/// Records.entries (field 1), and their dup_list (26) and
/// network_events_metadata (27) entries, of a Records message.
fn count_elements(bytes: &[u8]) -> (usize, usize) {
    let (mut records, mut nested) = (0, 0);
    for (number, wire_type, record) in fields(bytes) {
        if number == 1 && wire_type == 2 {
            records += 1;
            nested += fields(record)
                .filter(|(n, w, _)| (*n == 26 || *n == 27) && *w == 2)
                .count();
        }
    }
    (records, nested)
}

/// prost's codec, with the budget checked before decoding.
#[derive(Debug, Clone)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        BoundedCodec(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + DecodeBudget + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(PhantomData)
    }
}

#[derive(Debug, Clone)]
pub struct BoundedDecoder<U>(PhantomData<U>);

impl<U: Message + Default + DecodeBudget> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use bytes::Buf;
        // The message is one contiguous buffer; check it whole.
        if buf.chunk().len() == buf.remaining() {
            U::check_budget(buf.chunk())?;
        } else {
            let whole = buf.copy_to_bytes(buf.remaining());
            U::check_budget(&whole)?;
            return U::decode(whole)
                .map(Some)
                .map_err(|e| Status::internal(e.to_string()));
        }
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbflow::{DupMapEntry, Record, Records};

    #[test]
    fn counts_records_and_their_nested_entries_on_the_wire() {
        let record = Record {
            dup_list: vec![DupMapEntry::default(); 3],
            ..Default::default()
        };
        let message = Records {
            entries: vec![record; 5],
            batch: None,
            ..Default::default()
        };
        assert_eq!(count_elements(&message.encode_to_vec()), (5, 15));
    }

    #[test]
    fn a_message_of_millions_of_empty_records_is_refused_before_decoding() {
        // 4 Mi empty records: two bytes each on the wire.
        let bytes = [0x0a, 0x00].repeat(4 << 20);
        let refused = Records::check_budget(&bytes).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::OutOfRange);
        assert!(
            refused.message().contains("4194304"),
            "{}",
            refused.message()
        );
        // Nested entries: one record with a million empty interfaces.
        let mut record = vec![0x0a];
        let inner = [0xd2, 0x01, 0x00].repeat(1 << 20); // field 26, empty
        prost::encoding::encode_varint(inner.len() as u64, &mut record);
        record.extend(inner);
        let refused = Records::check_budget(&record).unwrap_err();
        assert!(
            refused.message().contains("nested"),
            "{}",
            refused.message()
        );
    }

    #[test]
    fn malformed_bytes_are_left_to_the_decoder() {
        for bytes in [&[0x0a, 0xff][..], &[0xff; 11], &[0x0b], &[]] {
            assert!(Records::check_budget(bytes).is_ok());
        }
    }
}
