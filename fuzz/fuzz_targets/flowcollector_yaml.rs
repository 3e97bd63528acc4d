//! The FlowCollector file: any text is parsed as one (its exporters too),
//! an error naming what is wrong at most.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(file) = flowlens_config::parse_config(text, "fuzz.yaml") {
            let _ = file.exporters();
            let _ = file.kafka_deployment();
        }
    }
});
