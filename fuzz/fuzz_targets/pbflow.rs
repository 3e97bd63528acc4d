//! What agents send: bytes as a gRPC `Records` message, checked on the
//! wire first as the collector's codec does, then decoded and converted
//! record by record; and bytes as a write-ahead log entry. The in-place
//! decode (`decode_records`) must make of any bytes what prost's decode
//! and `from_pb` make of them.
#![no_main]

use flowlens_wire::codec::DecodeBudget;
use flowlens_wire::convert::{decode_records as decode_in_place, from_pb};
use flowlens_wire::log_entry::{LogEntry, decode_entry, decode_records};
use flowlens_wire::pbflow::Records;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if Records::check_budget(data).is_ok() {
        let by_prost = Records::decode_by_prost(data).map(|message| {
            let converted: Vec<_> = message.entries.into_iter().map(from_pb).collect();
            (converted, message.batch)
        });
        let in_place = decode_in_place(data);
        match (by_prost, in_place) {
            (Err(_), Err(_)) => {}
            (Ok((converted, batch)), Ok(decoded)) => {
                let kept: Vec<_> = converted.iter().filter_map(|r| r.as_ref().ok()).collect();
                let skipped: Vec<_> = converted.iter().filter_map(|r| r.as_ref().err()).collect();
                // Debug text: a NaN never equals itself.
                assert_eq!(
                    format!("{kept:?}"),
                    format!("{:?}", decoded.records.iter().collect::<Vec<_>>())
                );
                assert_eq!(skipped, decoded.invalid.iter().collect::<Vec<_>>());
                assert_eq!(batch, decoded.batch);
            }
            (by_prost, in_place) => panic!(
                "prost {} the message, the in-place decode {}",
                if by_prost.is_ok() { "took" } else { "refused" },
                if in_place.is_ok() {
                    "took it"
                } else {
                    "refused it"
                },
            ),
        }
    }
    if let Ok(LogEntry::Batch { records, .. }) = decode_entry(data) {
        let _ = decode_records(records, &mut Default::default());
    }
});
