//! The in-place decode held to prost's result.

use crate::convert::{DecodeError, decode_records, from_pb, to_pb};
use crate::pbflow;
use flowlens_model::FlowRecord;
use prost::Message;

type Outcome = Result<(Vec<FlowRecord>, Vec<DecodeError>, Option<pbflow::BatchId>), ()>;

/// prost's decode and `from_pb` of each entry: the reference.
fn by_prost(bytes: &[u8]) -> Outcome {
    let message = pbflow::Records::decode_by_prost(bytes).map_err(drop)?;
    let (mut records, mut invalid) = (Vec::new(), Vec::new());
    for entry in message.entries {
        match from_pb(entry) {
            Ok(r) => records.push(r),
            Err(e) => invalid.push(e),
        }
    }
    Ok((records, invalid, message.batch))
}

fn in_place(bytes: &[u8]) -> Outcome {
    let d = decode_records(bytes).map_err(drop)?;
    Ok((d.records, d.invalid, d.batch))
}

/// Whether both decodes agree; the outcome: refused (None), or the
/// numbers of records kept and skipped.
fn same(bytes: &[u8]) -> Option<(usize, usize)> {
    let (ours, reference) = (in_place(bytes), by_prost(bytes));
    // NaN never equals itself: compare the text of the records.
    assert_eq!(
        format!("{ours:?}"),
        format!("{reference:?}"),
        "bytes {bytes:02x?}"
    );
    ours.ok()
        .map(|(kept, skipped, _)| (kept.len(), skipped.len()))
}

fn message(records: &[FlowRecord]) -> Vec<u8> {
    pbflow::Records::to_send(
        records.iter().map(to_pb).collect(),
        Some(pbflow::BatchId {
            agent: "node-a/1f".into(),
            sequence: 7,
        }),
    )
    .encode_to_vec()
}

#[test]
fn every_field_decodes_as_prost_decodes_it() {
    let records = [
        flowlens_model::fixtures::full_record(),
        flowlens_model::fixtures::every_field_record(),
        FlowRecord {
            src_addr: "fd00:198:18::1".into(),
            dst_addr: "fd00:198:18::2".into(),
            ..flowlens_model::fixtures::full_record()
        },
    ];
    let bytes = message(&records);
    assert_eq!(same(&bytes), Some((3, 0)));
    let decoded = decode_records(&bytes).unwrap();
    assert_eq!(decoded.records, records);
    assert_eq!(decoded.batch.unwrap().sequence, 7);
}

/// A message field sent twice is merged, a scalar's last value wins,
/// unknown fields and groups are skipped; a wrong wire type, bad
/// UTF-8, a group that does not end or a truncated field refuse the
/// message — all as prost does.
#[test]
fn protobuf_corners_as_prost() {
    let mut record = to_pb(&flowlens_model::fixtures::full_record());
    record.network_events_metadata.clear();
    let entry = record.encode_to_vec();
    let wrap = |entry: &[u8]| {
        let mut out = vec![0x0a];
        prost::encoding::encode_varint(entry.len() as u64, &mut out);
        out.extend_from_slice(entry);
        out
    };
    let extra: &[&[u8]] = &[
        // network { dscp: 5 } again: merged into the first.
        &[0x32, 0x02, 0x18, 0x05],
        // network { src_addr { ipv6: 4 bytes } }: a bad address.
        &[0x32, 0x08, 0x0a, 0x06, 0x12, 0x04, 1, 2, 3, 4],
        // bytes = 9 again: the last wins.
        &[0x40, 0x09],
        // unknown varint, fixed64, fixed32 and length fields.
        // (number 2000: keys 0x80 | wire type, 0x7d)
        &[
            0x80, 0x7d, 0x01, 0x81, 0x7d, 0, 0, 0, 0, 0, 0, 0, 0, 0x85, 0x7d, 0, 0, 0, 0,
        ],
        &[0x82, 0x7d, 0x01, 0x00],
        // an unknown group holding a varint, then its end.
        &[0x83, 0x7d, 0x08, 0x01, 0x84, 0x7d],
        // a group whose end has another number (2001).
        &[0x83, 0x7d, 0x8c, 0x7d],
        // an end-group with no start.
        &[0x84, 0x7d],
        // bytes (a varint field) as length-delimited.
        &[0x42, 0x01, 0x00],
        // interface of bad UTF-8.
        &[0x52, 0x02, 0xc3, 0x28],
        // a truncated varint, a truncated length.
        &[0x40, 0x80],
        &[0x52, 0x05, 0x61],
        // an 11-byte varint, a 10th byte above 1.
        &[
            0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        &[
            0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ],
        // field number 0; wire types 6 and 7.
        &[0x00, 0x01],
        &[0x0e],
        &[0x0f],
        // transport { src_port: 70000 }: out of range.
        &[0x3a, 0x04, 0x08, 0xf0, 0xa2, 0x04],
        // time_flow_end { seconds: -1 }.
        &[
            0x22, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        // conn_outcome "bogus".
        &[0xea, 0x3e, 0x05, b'b', b'o', b'g', b'u', b's'],
        // a network event { "Action": "drop" } twice, the last "allow".
        &[
            0xda, 0x01, 0x10, 0x0a, 0x0e, 0x0a, 0x06, b'A', b'c', b't', b'i', b'o', b'n', 0x12,
            0x04, b'd', b'r', b'o', b'p',
        ],
    ];
    let outcomes: Vec<_> = extra
        .iter()
        .map(|bytes| {
            let mut e = entry.clone();
            e.extend_from_slice(bytes);
            same(&wrap(&e))
        })
        .collect();
    let expected = [
        Some((1, 0)),
        Some((0, 1)),
        Some((1, 0)),
        Some((1, 0)),
        Some((1, 0)),
        Some((1, 0)),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        Some((0, 1)),
        Some((0, 1)),
        Some((0, 1)),
        Some((1, 0)),
    ];
    assert_eq!(outcomes, expected);
    assert_eq!(same(&[]), Some((0, 0)));
    // An empty entry: a record with no network.
    assert_eq!(same(&wrap(&[])), Some((0, 1)));
    assert_eq!(same(&[0x0a, 0x05, 0x40]), None);
}

/// Deterministic mutations of a real message (bytes flipped, cut,
/// repeated): whatever prost makes of them, the in-place decode makes
/// too. The `pbflow` fuzz target runs the same check on any bytes.
#[test]
fn mutated_messages_decode_as_prost_decodes_them() {
    let base = message(&[
        flowlens_model::fixtures::every_field_record(),
        flowlens_model::fixtures::full_record(),
    ]);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut refused, mut kept, mut skipped) = (0, 0, 0);
    for _ in 0..20_000 {
        let mut bytes = base.clone();
        for _ in 0..1 + next() % 2 {
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[at] = next() as u8,
                1 => bytes[at] ^= 1 << (next() % 8),
                2 => bytes.truncate(at.max(1)),
                _ => {
                    let piece: Vec<u8> = bytes[at..(at + 8).min(bytes.len())].to_vec();
                    bytes.splice(at..at, piece);
                }
            }
        }
        match same(&bytes) {
            None => refused += 1,
            Some((k, s)) => {
                kept += k;
                skipped += s
            }
        }
    }
    // The mutations reach every outcome.
    assert!(
        refused > 1000 && kept > 1000 && skipped > 200,
        "{refused} {kept} {skipped}"
    );
}
