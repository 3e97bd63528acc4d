//! Whole-column aggregation for the common case: no filter, a group key
//! that is one text column, a metric that sums one numeric column (or
//! counts records). It reads the three columns it needs and loops over
//! Arrow arrays directly — no per-row field dispatch — which is what keeps
//! a top-K or a series over millions of flows fast. Anything else takes the
//! general row path.

use crate::files::{DataFile, Table};
use crate::schema::{ColType, column};
use crate::store::Store;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use flowlens_query::FieldDef;
use flowlens_query::fields::Source;

/// A numeric column read as f64.
enum Numbers<'a> {
    U8(&'a arrow_array::PrimitiveArray<UInt8Type>),
    U16(&'a arrow_array::PrimitiveArray<UInt16Type>),
    U32(&'a arrow_array::PrimitiveArray<UInt32Type>),
    U64(&'a arrow_array::PrimitiveArray<UInt64Type>),
    I64(&'a arrow_array::PrimitiveArray<Int64Type>),
    F64(&'a arrow_array::PrimitiveArray<Float64Type>),
}

impl Numbers<'_> {
    fn of(array: &ArrayRef, ty: ColType) -> Option<Numbers<'_>> {
        Some(match ty {
            ColType::U8 => Numbers::U8(array.as_primitive()),
            ColType::U16 => Numbers::U16(array.as_primitive()),
            ColType::U32 => Numbers::U32(array.as_primitive()),
            ColType::U64 => Numbers::U64(array.as_primitive()),
            ColType::I64 => Numbers::I64(array.as_primitive()),
            ColType::F64 => Numbers::F64(array.as_primitive()),
            _ => return None,
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<f64> {
        macro_rules! at {
            ($a:expr) => {
                (!$a.is_null(i)).then(|| $a.value(i) as f64)
            };
        }
        match self {
            Numbers::U8(a) => at!(a),
            Numbers::U16(a) => at!(a),
            Numbers::U32(a) => at!(a),
            Numbers::U64(a) => at!(a),
            Numbers::I64(a) => at!(a),
            Numbers::F64(a) => at!(a),
        }
    }
}

/// The stored column behind a field read straight from one column.
fn plain_column(field: &FieldDef) -> Option<(&'static str, ColType)> {
    match field.source {
        Source::Json(name) => column(name).map(|(_, ty)| (name, ty)),
        _ => None,
    }
}

/// The text column a field is read from, if it can be a whole-column
/// group key.
pub(crate) fn key_column(field: &FieldDef) -> Option<&'static str> {
    plain_column(field)
        .filter(|(_, ty)| *ty == ColType::Text)
        .map(|(name, _)| name)
}

/// The numeric column a field is read from, if it can be summed whole. A
/// derived field (bytes, packets, rtt) reads, on flow records, only its
/// first input: the conversation splits it falls back to are null there.
pub(crate) fn value_column(field: &FieldDef, table: Table) -> Option<&'static str> {
    let plain = match field.source {
        Source::Derived(d) if table == Table::Flows => d
            .inputs()
            .first()
            .and_then(|name| column(name).map(|(_, ty)| (*name, ty))),
        _ => plain_column(field),
    };
    plain
        .filter(|(_, ty)| Numbers::can_read(*ty))
        .map(|(name, _)| name)
}

impl Numbers<'_> {
    fn can_read(ty: ColType) -> bool {
        matches!(
            ty,
            ColType::U8 | ColType::U16 | ColType::U32 | ColType::U64 | ColType::I64 | ColType::F64
        )
    }
}

fn typed<'b>(batch: &'b RecordBatch, name: &str) -> Option<(&'b ArrayRef, ColType)> {
    let (_, ty) = column(name)?;
    let at = batch.schema_ref().index_of(name).ok()?;
    Some((batch.column(at), ty))
}

/// Per group key: sum and count of the measured values, and records.
pub(crate) type KeySums = foldhash::HashMap<String, (f64, u64, u64)>;

impl Store {
    /// Sums `value` (or counts records) per value of text column `key`
    /// (rows of rollup files count as their `weight` column says),
    /// reading the key dictionary-encoded: rows are summed by dictionary
    /// index, and each distinct text is hashed once per batch. None when a
    /// file's columns are not as expected (the caller takes the row path).
    pub(crate) fn sums_by_key(
        &self,
        files: &[DataFile],
        since: i64,
        until: i64,
        key: &str,
        value: Option<&str>,
        weight: Option<&str>,
    ) -> Option<KeySums> {
        let mut names = vec!["TimeFlowEndMs", key];
        names.extend(value);
        names.extend(weight);
        let mut sums = KeySums::default();
        for file in files {
            let Some(batches) = self.read_file(file, Some(&names), Some(key)) else {
                continue;
            };
            for batch in &batches {
                let times = typed(batch, "TimeFlowEndMs")?.0.as_primitive::<Int64Type>();
                let at = batch.schema_ref().index_of(key).ok()?;
                let keys = batch
                    .column(at)
                    .as_dictionary_opt::<arrow_array::types::Int32Type>()?;
                let texts = keys.values().as_string_opt::<i32>()?;
                let numbers = |name: Option<&str>| match name {
                    Some(n) => typed(batch, n)
                        .and_then(|(a, ty)| Numbers::of(a, ty))
                        .map(Some),
                    None => Some(None),
                };
                let (values, weights) = (numbers(value)?, numbers(weight)?);
                // Slot per dictionary entry, and one for rows without a key.
                let mut slots = vec![(0.0f64, 0u64, 0u64); texts.len() + 1];
                let indexes = keys.keys();
                for i in 0..batch.num_rows() {
                    let t = if times.is_null(i) { 0 } else { times.value(i) };
                    if t < since || t >= until {
                        continue;
                    }
                    let slot = if indexes.is_null(i) {
                        texts.len()
                    } else {
                        indexes.value(i) as usize
                    };
                    // A rollup row stands for `weight` records.
                    let w = weights.as_ref().and_then(|w| w.get(i)).unwrap_or(1.0);
                    let s = &mut slots[slot];
                    s.2 += w as u64;
                    let v = match &values {
                        Some(v) => v.get(i),
                        None => Some(w),
                    };
                    if let Some(v) = v {
                        s.0 += v;
                        s.1 += 1;
                    }
                }
                for (slot, (sum, count, records)) in slots.into_iter().enumerate() {
                    if records == 0 {
                        continue;
                    }
                    let text = if slot == texts.len() || texts.is_null(slot) {
                        ""
                    } else {
                        texts.value(slot)
                    };
                    let entry = match sums.get_mut(text) {
                        Some(e) => e,
                        None => sums.entry(text.to_string()).or_default(),
                    };
                    entry.0 += sum;
                    entry.1 += count;
                    entry.2 += records;
                }
            }
        }
        Some(sums)
    }

    /// Calls `visit(end_ms, value)` for every stored record of the range:
    /// the record's value of numeric column `value`, or 1 to count records
    /// (files only; the caller adds what is still buffered). Returns false
    /// if the records could not be read this way.
    pub(crate) fn for_each_column_value(
        &self,
        files: &[DataFile],
        since: i64,
        until: i64,
        value: Option<&str>,
        mut visit: impl FnMut(i64, Option<f64>),
    ) -> bool {
        let mut names = vec!["TimeFlowEndMs"];
        names.extend(value);
        for file in files {
            let Some(batches) = self.read_file(file, Some(&names), None) else {
                continue;
            };
            for batch in &batches {
                let Some((times, _)) = typed(batch, "TimeFlowEndMs") else {
                    continue;
                };
                let times = times.as_primitive::<Int64Type>();
                let values = match value {
                    Some(v) => match typed(batch, v).and_then(|(a, ty)| Numbers::of(a, ty)) {
                        Some(n) => Some(n),
                        None => return false,
                    },
                    None => None,
                };
                for i in 0..batch.num_rows() {
                    let t = if times.is_null(i) { 0 } else { times.value(i) };
                    if t < since || t >= until {
                        continue;
                    }
                    visit(t, values.as_ref().map_or(Some(1.0), |v| v.get(i)));
                }
            }
        }
        true
    }
}
