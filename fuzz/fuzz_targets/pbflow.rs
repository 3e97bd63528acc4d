//! What agents send: bytes as a gRPC `Records` message, checked on the
//! wire first as the collector's codec does, then decoded and converted
//! record by record; and bytes as a write-ahead log entry.
#![no_main]

use flowlens_wire::codec::DecodeBudget;
use flowlens_wire::convert::from_pb;
use flowlens_wire::log_entry::{LogEntry, decode_entry, decode_records};
use flowlens_wire::pbflow::Records;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if Records::check_budget(data).is_ok()
        && let Ok(message) = Records::decode(data)
    {
        for entry in message.entries {
            let _ = from_pb(entry);
        }
    }
    if let Ok(LogEntry::Batch { records, .. }) = decode_entry(data) {
        let _ = decode_records(records, &mut Default::default());
    }
});
