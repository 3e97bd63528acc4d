//! Records (JSON objects with netobserv's names) to Arrow column batches
//! and back, and a batch row as a filter's `RecordView`.

use crate::schema::{ColType, arrow_schema, columns};
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, UInt8Builder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use flowlens_query::{RecordView, Scalar};
use serde_json::{Map, Value};
use std::sync::Arc;

fn u64_of(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

/// The records as one batch of the store's schema; fields the schema does
/// not know are left out.
pub fn to_batch(records: &[Map<String, Value>]) -> RecordBatch {
    let arrays: Vec<ArrayRef> = columns()
        .iter()
        .map(|c| {
            let get = |r: &'_ Map<String, Value>| r.get(c.name).filter(|v| !v.is_null()).cloned();
            let array: ArrayRef = match c.ty {
                ColType::Text => {
                    let mut b = StringBuilder::new();
                    for r in records {
                        b.append_option(r.get(c.name).and_then(Value::as_str));
                    }
                    Arc::new(b.finish())
                }
                ColType::Json => {
                    let mut b = StringBuilder::new();
                    for r in records {
                        b.append_option(get(r).map(|v| v.to_string()));
                    }
                    Arc::new(b.finish())
                }
                ColType::U8 => {
                    let mut b = UInt8Builder::new();
                    for r in records {
                        b.append_option(u64_of(r.get(c.name)).and_then(|v| u8::try_from(v).ok()));
                    }
                    Arc::new(b.finish())
                }
                ColType::U16 => {
                    let mut b = UInt16Builder::new();
                    for r in records {
                        b.append_option(u64_of(r.get(c.name)).and_then(|v| u16::try_from(v).ok()));
                    }
                    Arc::new(b.finish())
                }
                ColType::U32 => {
                    let mut b = UInt32Builder::new();
                    for r in records {
                        b.append_option(u64_of(r.get(c.name)).and_then(|v| u32::try_from(v).ok()));
                    }
                    Arc::new(b.finish())
                }
                ColType::U64 => {
                    let mut b = UInt64Builder::new();
                    for r in records {
                        b.append_option(u64_of(r.get(c.name)));
                    }
                    Arc::new(b.finish())
                }
                ColType::I64 => {
                    let mut b = Int64Builder::new();
                    for r in records {
                        b.append_option(r.get(c.name).and_then(Value::as_i64));
                    }
                    Arc::new(b.finish())
                }
                ColType::F64 => {
                    let mut b = Float64Builder::new();
                    for r in records {
                        b.append_option(r.get(c.name).and_then(Value::as_f64));
                    }
                    Arc::new(b.finish())
                }
                ColType::Bool => {
                    let mut b = BooleanBuilder::new();
                    for r in records {
                        b.append_option(r.get(c.name).and_then(Value::as_bool));
                    }
                    Arc::new(b.finish())
                }
                ColType::TextList => {
                    let mut b = ListBuilder::new(StringBuilder::new());
                    for r in records {
                        match r.get(c.name).and_then(Value::as_array) {
                            Some(items) => {
                                for item in items {
                                    b.values().append_option(item.as_str());
                                }
                                b.append(true);
                            }
                            None => b.append(false),
                        }
                    }
                    Arc::new(b.finish())
                }
                ColType::U8List => {
                    let mut b = ListBuilder::new(UInt8Builder::new());
                    for r in records {
                        match r.get(c.name).and_then(Value::as_array) {
                            Some(items) => {
                                for item in items {
                                    b.values().append_option(
                                        item.as_u64().and_then(|v| u8::try_from(v).ok()),
                                    );
                                }
                                b.append(true);
                            }
                            None => b.append(false),
                        }
                    }
                    Arc::new(b.finish())
                }
            };
            array
        })
        .collect();
    RecordBatch::try_new(arrow_schema(), arrays).expect("arrays follow the schema")
}

/// One row of a batch read through the store's schema.
pub struct Row<'a> {
    pub batch: &'a RecordBatch,
    pub row: usize,
}

impl Row<'_> {
    fn column(&self, name: &str) -> Option<(&ArrayRef, ColType)> {
        let index = self.batch.schema().index_of(name).ok()?;
        let ty = columns().iter().find(|c| c.name == name)?.ty;
        Some((self.batch.column(index), ty))
    }

    /// The row as a JSON object (nulls left out).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for c in columns() {
            let Ok(index) = self.batch.schema().index_of(c.name) else {
                continue;
            };
            if let Some(v) = value_at(self.batch.column(index), c.ty, self.row) {
                out.insert(c.name.to_string(), v);
            }
        }
        out
    }
}

fn value_at(array: &ArrayRef, ty: ColType, row: usize) -> Option<Value> {
    if array.is_null(row) {
        return None;
    }
    Some(match ty {
        ColType::Text => Value::from(array.as_string::<i32>().value(row)),
        ColType::Json => serde_json::from_str(array.as_string::<i32>().value(row)).ok()?,
        ColType::U8 => Value::from(array.as_primitive::<UInt8Type>().value(row)),
        ColType::U16 => Value::from(array.as_primitive::<UInt16Type>().value(row)),
        ColType::U32 => Value::from(array.as_primitive::<UInt32Type>().value(row)),
        ColType::U64 => Value::from(array.as_primitive::<UInt64Type>().value(row)),
        ColType::I64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
        ColType::F64 => Value::from(array.as_primitive::<Float64Type>().value(row)),
        ColType::Bool => Value::from(array.as_boolean().value(row)),
        ColType::TextList => {
            let list = array.as_list::<i32>().value(row);
            let items = list.as_string::<i32>();
            Value::Array(
                (0..items.len())
                    .filter(|i| !items.is_null(*i))
                    .map(|i| Value::from(items.value(i)))
                    .collect(),
            )
        }
        ColType::U8List => {
            let list = array.as_list::<i32>().value(row);
            let items = list.as_primitive::<UInt8Type>();
            Value::Array(
                (0..items.len())
                    .filter(|i| !items.is_null(*i))
                    .map(|i| Value::from(items.value(i)))
                    .collect(),
            )
        }
    })
}

impl RecordView for Row<'_> {
    fn values<'a>(&'a self, name: &str, out: &mut Vec<Scalar<'a>>) {
        let Some((array, ty)) = self.column(name) else {
            return;
        };
        let row = self.row;
        if array.is_null(row) {
            return;
        }
        let num = |v: f64| Scalar::Num(v);
        out.push(match ty {
            ColType::Text | ColType::Json => Scalar::Text(array.as_string::<i32>().value(row)),
            ColType::U8 => num(array.as_primitive::<UInt8Type>().value(row) as f64),
            ColType::U16 => num(array.as_primitive::<UInt16Type>().value(row) as f64),
            ColType::U32 => num(array.as_primitive::<UInt32Type>().value(row) as f64),
            ColType::U64 => num(array.as_primitive::<UInt64Type>().value(row) as f64),
            ColType::I64 => num(array.as_primitive::<Int64Type>().value(row) as f64),
            ColType::F64 => num(array.as_primitive::<Float64Type>().value(row)),
            ColType::Bool => Scalar::Bool(array.as_boolean().value(row)),
            ColType::TextList => {
                let list = array.as_list::<i32>();
                let (start, end) = (
                    list.value_offsets()[row] as usize,
                    list.value_offsets()[row + 1] as usize,
                );
                let items = list.values().as_string::<i32>();
                for i in start..end {
                    if !items.is_null(i) {
                        out.push(Scalar::Text(items.value(i)));
                    }
                }
                return;
            }
            ColType::U8List => {
                let list = array.as_list::<i32>();
                let (start, end) = (
                    list.value_offsets()[row] as usize,
                    list.value_offsets()[row + 1] as usize,
                );
                let items = list.values().as_primitive::<UInt8Type>();
                for i in start..end {
                    out.push(Scalar::Num(items.value(i) as f64));
                }
                return;
            }
        });
    }

    fn has_drop_event(&self) -> bool {
        let mut v = Vec::new();
        self.values("NetworkEvents", &mut v);
        v.first()
            .and_then(Scalar::as_text)
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|events| events.as_array().cloned())
            .is_some_and(|events| events.iter().any(|e| e["Action"] == "drop"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_survive_the_batch_and_filters_see_the_same() {
        let records: Vec<Map<String, Value>> = [
            json!({"_Id": 1, "SrcAddr": "198.18.0.1", "SrcPort": 53, "Proto": 17, "Bytes": 120,
                   "Interfaces": ["a", "b"], "IfDirections": [0, 1], "DnsLatencyMs": 0.5,
                   "DnsFlagsResponseCode": "NXDomain", "TimeFlowEndMs": 1_764_400_000_000i64,
                   "NetworkEvents": [{"Action": "drop", "Name": "deny", "Direction": "ingress", "Group": 2}],
                   "DnsUnanswered": false}),
            json!({"_Id": 2, "_RecordType": "endConnection", "Bytes_AB": 5, "CloseCause": "refused"}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let batch = to_batch(&records);
        assert_eq!(batch.num_rows(), 2);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                &Row {
                    batch: &batch,
                    row: i
                }
                .to_json(),
                r
            );
        }
        for text in [
            "dns.rcode = NXDomain",
            "interface = b",
            "flow.status = dropped",
            "bytes = 5",
            "conn.close_cause = refused",
            "flow.status = ok",
            "dns.latency < 1ms",
        ] {
            let filter = flowlens_query::Filter::parse(text).unwrap();
            for (i, r) in records.iter().enumerate() {
                assert_eq!(
                    filter.matches_view(&Row {
                        batch: &batch,
                        row: i
                    }),
                    filter.matches_json(r),
                    "{text} on record {i}"
                );
            }
        }
    }
}
