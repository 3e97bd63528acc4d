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

/// A builder for one column, fed JSON values.
enum Builder {
    Text(StringBuilder),
    Json(StringBuilder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    TextList(ListBuilder<StringBuilder>),
    U8List(ListBuilder<UInt8Builder>),
}

impl Builder {
    fn new(ty: ColType) -> Builder {
        match ty {
            ColType::Text => Builder::Text(StringBuilder::new()),
            ColType::Json => Builder::Json(StringBuilder::new()),
            ColType::U8 => Builder::U8(UInt8Builder::new()),
            ColType::U16 => Builder::U16(UInt16Builder::new()),
            ColType::U32 => Builder::U32(UInt32Builder::new()),
            ColType::U64 => Builder::U64(UInt64Builder::new()),
            ColType::I64 => Builder::I64(Int64Builder::new()),
            ColType::F64 => Builder::F64(Float64Builder::new()),
            ColType::Bool => Builder::Bool(BooleanBuilder::new()),
            ColType::TextList => Builder::TextList(ListBuilder::new(StringBuilder::new())),
            ColType::U8List => Builder::U8List(ListBuilder::new(UInt8Builder::new())),
        }
    }

    /// Appends `v`, or a null when it does not fit the column's type.
    fn append(&mut self, v: &Value) {
        let u = v.as_u64();
        match self {
            Builder::Text(b) => b.append_option(v.as_str()),
            Builder::Json(b) => b.append_option((!v.is_null()).then(|| v.to_string())),
            Builder::U8(b) => b.append_option(u.and_then(|u| u8::try_from(u).ok())),
            Builder::U16(b) => b.append_option(u.and_then(|u| u16::try_from(u).ok())),
            Builder::U32(b) => b.append_option(u.and_then(|u| u32::try_from(u).ok())),
            Builder::U64(b) => b.append_option(u),
            Builder::I64(b) => b.append_option(v.as_i64()),
            Builder::F64(b) => b.append_option(v.as_f64()),
            Builder::Bool(b) => b.append_option(v.as_bool()),
            Builder::TextList(b) => match v.as_array() {
                Some(items) => {
                    for item in items {
                        b.values().append_option(item.as_str());
                    }
                    b.append(true);
                }
                None => b.append(false),
            },
            Builder::U8List(b) => match v.as_array() {
                Some(items) => {
                    for item in items {
                        b.values()
                            .append_option(item.as_u64().and_then(|v| u8::try_from(v).ok()));
                    }
                    b.append(true);
                }
                None => b.append(false),
            },
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Text(mut b) | Builder::Json(mut b) => Arc::new(b.finish()),
            Builder::U8(mut b) => Arc::new(b.finish()),
            Builder::U16(mut b) => Arc::new(b.finish()),
            Builder::U32(mut b) => Arc::new(b.finish()),
            Builder::U64(mut b) => Arc::new(b.finish()),
            Builder::I64(mut b) => Arc::new(b.finish()),
            Builder::F64(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::TextList(mut b) => Arc::new(b.finish()),
            Builder::U8List(mut b) => Arc::new(b.finish()),
        }
    }
}

/// The records as one batch of the store's schema; fields the schema does
/// not know are left out. Each record's entries are visited once and sent
/// to their column (looking every column up in every record was most of
/// the ingest time).
pub fn to_batch(records: &[Map<String, Value>]) -> RecordBatch {
    let columns = columns();
    let mut builders: Vec<Builder> = columns.iter().map(|c| Builder::new(c.ty)).collect();
    let mut filled = vec![false; columns.len()];
    for record in records {
        filled.iter_mut().for_each(|f| *f = false);
        for (name, value) in record {
            if let Some((i, _)) = crate::schema::column(name)
                && !value.is_null()
            {
                builders[i].append(value);
                filled[i] = true;
            }
        }
        for (i, done) in filled.iter().enumerate() {
            if !done {
                builders[i].append(&Value::Null);
            }
        }
    }
    let arrays: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
    RecordBatch::try_new(arrow_schema(), arrays).expect("arrays follow the schema")
}

/// Where each column of the full schema is in a (possibly projected)
/// batch: resolved once per batch, not per value.
pub struct Columns<'a> {
    batch: &'a RecordBatch,
    at: Vec<Option<usize>>,
}

impl<'a> Columns<'a> {
    pub fn of(batch: &'a RecordBatch) -> Columns<'a> {
        let schema = batch.schema_ref();
        let at = columns()
            .iter()
            .map(|c| schema.index_of(c.name).ok())
            .collect();
        Columns { batch, at }
    }

    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn get(&self, name: &str) -> Option<(&'a ArrayRef, ColType)> {
        let (index, ty) = crate::schema::column(name)?;
        let at = (*self.at.get(index)?)?;
        Some((self.batch.column(at), ty))
    }
}

/// One row of a batch read through the store's schema.
pub struct Row<'a> {
    pub columns: &'a Columns<'a>,
    pub row: usize,
}

impl Row<'_> {
    fn column(&self, name: &str) -> Option<(&ArrayRef, ColType)> {
        self.columns.get(name)
    }

    /// The row's value of an unsigned count column (1 when it has none).
    pub fn count(&self, name: &str) -> u64 {
        match self.column(name) {
            Some((array, ColType::U64)) => {
                let counts = array.as_primitive::<UInt64Type>();
                if counts.is_null(self.row) {
                    1
                } else {
                    counts.value(self.row)
                }
            }
            _ => 1,
        }
    }

    /// The row's end time, if it has one.
    pub fn end_ms(&self) -> Option<i64> {
        let (time, _) = self.column("TimeFlowEndMs")?;
        let time = time.as_primitive::<Int64Type>();
        (!time.is_null(self.row)).then(|| time.value(self.row))
    }

    /// (end time, id) of the row, read straight from the columns.
    pub fn end_and_id(&self) -> Option<(i64, u64)> {
        let (time, _) = self.column("TimeFlowEndMs")?;
        let (id, _) = self.column(crate::ID)?;
        let id = id.as_primitive::<UInt64Type>();
        if id.is_null(self.row) {
            return None;
        }
        let time = time.as_primitive::<Int64Type>();
        let t = if time.is_null(self.row) {
            0
        } else {
            time.value(self.row)
        };
        Some((t, id.value(self.row)))
    }

    /// The row as a JSON object (nulls left out).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for c in columns() {
            if let Some((array, ty)) = self.columns.get(c.name)
                && let Some(v) = value_at(array, ty, self.row)
            {
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
        let columns = Columns::of(&batch);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                &Row {
                    columns: &columns,
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
                        columns: &columns,
                        row: i
                    }),
                    filter.matches_json(r),
                    "{text} on record {i}"
                );
            }
        }
    }
}
