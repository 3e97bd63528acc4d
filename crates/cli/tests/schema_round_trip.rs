//! The one schema's promise: a flow with every field set survives JSON,
//! protobuf (pbflow) and the store unchanged, and every field of the schema
//! is one that record carries.

use flowlens_model::FlowRecord;
use flowlens_model::fixtures::every_field_record;
use flowlens_model::schema::flow_fields;
use flowlens_store::{Order, RecordQuery, Store, StoreOptions, Table};
use flowlens_wire::convert::{from_pb, to_pb};
use serde_json::Value;

#[test]
fn a_full_record_survives_json_protobuf_and_the_store() {
    let record = every_field_record();
    let json = serde_json::to_value(&record).unwrap();
    for spec in flow_fields() {
        assert!(
            json.get(spec.name).is_some_and(|v| !v.is_null()),
            "the fixture leaves {} unset",
            spec.name
        );
    }

    let from_json: FlowRecord = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(from_json, record, "JSON");
    assert_eq!(from_pb(to_pb(&record)).unwrap(), record, "protobuf");

    let dir = std::env::temp_dir().join(format!("flowlens-schema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(StoreOptions::new(&dir)).unwrap();
    store.append_flows(std::slice::from_ref(&record));
    store.close();
    let store = Store::open(StoreOptions::new(&dir)).unwrap();
    let page = store.records(&RecordQuery {
        table: Table::Flows,
        filter: None,
        since_ms: record.time_flow_end_ms - 1,
        until_ms: record.time_flow_end_ms + 1,
        limit: 10,
        order: Order::Desc,
        after: None,
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(page.records.len(), 1, "the stored record is read back");
    let mut stored = Value::Object(page.records[0].clone());
    stored.as_object_mut().unwrap().remove("_Id");
    assert_eq!(stored, json, "the store");
    let from_store: FlowRecord = serde_json::from_value(stored).unwrap();
    assert_eq!(from_store, record);
}
