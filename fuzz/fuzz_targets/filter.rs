//! The filter language: any text is parsed, evaluated on a record with
//! every kind of field set, completed at a cursor, and dropped — an error
//! at most, never a panic or a stack overflow.
#![no_main]

use flowlens_model::FlowRecord;
use flowlens_query::{Filter, complete};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn record() -> &'static FlowRecord {
    static RECORD: OnceLock<FlowRecord> = OnceLock::new();
    RECORD.get_or_init(flowlens_model::fixtures::full_record)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = Filter::parse(text) {
        let _ = filter.matches(record());
    }
    let chars = text.chars().count();
    for cursor in [0, chars / 2, chars, chars + 3] {
        let _ = complete(text, cursor);
    }
});
