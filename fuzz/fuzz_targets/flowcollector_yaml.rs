//! The FlowCollector file: any text is parsed as one (its exporters and
//! its Kafka bus too),
//! an error naming what is wrong at most.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(file) = flowlens_config::parse_config(text, "fuzz.yaml") {
            // Each exporter entry as the exporter it asks for (type, target,
            // filter, records, TLS and SASL settings; no file is read).
            if let Ok(entries) = file.exporters() {
                for (i, entry) in entries.iter().enumerate() {
                    let _ = flowlens::export_config::entry_target(entry, i);
                }
            }
            let _ = file.kafka_deployment();
            // spec.kafka as the bus between agents and collectors (address,
            // topic, TLS and SASL checked; no file is read).
            let _ = flowlens::export_config::kafka_bus(None, Some(&file));
        }
    }
});
