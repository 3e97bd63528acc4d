//! `/api/fields`: the schema as clients read it — every filter field with
//! its kind, unit, vocabulary, the records that carry it, how a derived
//! field is computed, and the table columns that show it — so the console
//! lists no field of its own.

use flowlens_model::schema::{
    CONVERSATION_TABLE, DERIVED, FIELDS, FLOW_TABLE, Kind, Records, TableColumn, field_spec,
};
use flowlens_model::tcp_flags::TCP_FLAG_NAMES;
use flowlens_query::fields::Source;
use flowlens_query::{FIELD_DEFS, FieldDef};
use serde_json::{Value, json};

fn records_of(field: &FieldDef) -> Records {
    match field.source {
        Source::Json(name) => field_spec(name).map_or(Records::Both, |f| f.records),
        Source::Derived(_) => DERIVED
            .iter()
            .find(|d| d.filter == field.name)
            .map_or(Records::Both, |d| d.records),
    }
}

fn vocabulary(kind: Kind) -> Value {
    match kind {
        Kind::Enum(v) => json!(v.terms),
        Kind::Flags => Value::Array(
            TCP_FLAG_NAMES
                .iter()
                .map(|(bit, name)| json!({"name": name, "code": bit, "label": name}))
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn derivation(field: &FieldDef) -> Value {
    match field.source {
        Source::Json(_) => Value::Null,
        Source::Derived(d) => json!({
            "op": d.op(),
            "inputs": d.inputs(),
            "prefix": d.prefix(),
        }),
    }
}

fn column_of(table: &[TableColumn], field: &FieldDef) -> Value {
    table
        .iter()
        .position(|c| c.field == field.name)
        .map_or(Value::Null, |position| {
            let c = &table[position];
            json!({"id": c.id, "header": c.header, "default": c.default, "position": position})
        })
}

/// Every field as `/api/fields` lists it: the filter language's fields,
/// then the record fields filters read only through a derived field
/// (`Bytes` through `bytes`) or not at all, so clients can explain and
/// show every field of a record.
pub fn all() -> Vec<Value> {
    let mut list: Vec<Value> = FIELD_DEFS.iter().map(describe).collect();
    list.extend(FIELDS.iter().filter(|f| f.filter.is_empty()).map(|f| {
        json!({
            "name": f.name,
            "json": f.name,
            "filterable": false,
            "aliases": [],
            "doc": f.doc,
            "kind": f.kind().as_str(),
            "unit": f.kind().unit(),
            "vocabulary": vocabulary(f.kind()),
            "records": f.records.as_list(),
            "derived": null,
            "columns": {"flows": null, "conversations": null},
        })
    }));
    list
}

/// One filter field as `/api/fields` lists it.
pub fn describe(field: &FieldDef) -> Value {
    json!({
        "name": field.name,
        "filterable": true,
        "json": field.json_name,
        "aliases": field.aliases,
        "doc": field.doc,
        "kind": field.kind.as_str(),
        "unit": field.kind.unit(),
        "vocabulary": vocabulary(field.kind),
        "records": records_of(field).as_list(),
        "derived": derivation(field),
        "columns": {
            "flows": column_of(FLOW_TABLE, field),
            "conversations": column_of(CONVERSATION_TABLE, field),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlens_query::fields::lookup;

    #[test]
    fn fields_carry_kind_unit_vocabulary_and_columns() {
        let bytes = describe(lookup("bytes").unwrap());
        assert_eq!(bytes["kind"], "number");
        assert_eq!(bytes["unit"], "bytes");
        assert_eq!(bytes["derived"]["op"], "total");
        assert_eq!(bytes["columns"]["flows"]["header"], "Bytes");
        let proto = describe(lookup("proto").unwrap());
        assert_eq!(proto["json"], "Proto");
        assert_eq!(proto["vocabulary"][2]["name"], "tcp");
        assert_eq!(proto["vocabulary"][2]["code"], 6);
        assert_eq!(proto["vocabulary"][2]["label"], "TCP");
        let close = describe(lookup("conn.close_cause").unwrap());
        assert_eq!(close["records"], json!(["conversations"]));
        let category = describe(lookup("drop.category").unwrap());
        let names: Vec<&str> = category["vocabulary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"policy_denied") && !names.contains(&"filtered"));
        let listed: Vec<Value> = all();
        for spec in FIELDS {
            assert!(
                listed.iter().any(|f| f["json"] == spec.name),
                "{} is not listed",
                spec.name
            );
        }
    }
}
