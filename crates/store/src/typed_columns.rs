//! Columns of the store's schema made from typed records, one column at a
//! time: the pieces `flow_batch` and `conversation_batch` build their
//! batches from. A column that no record has a value for is left out
//! (None), and becomes a null array of its type.

use crate::schema::{ID, arrow_schema, columns, data_type};
use arrow_array::types::{ArrowPrimitiveType, UInt64Type};
use arrow_array::{
    ArrayRef, BooleanArray, PrimitiveArray, RecordBatch, StringArray, new_null_array,
};
use flowlens_model::{Address, Side, SideLabels};
use std::sync::Arc;

/// A batch of `rows` records of the store's schema: `column_of(name)`
/// makes each column (None: all nulls); the ids run from `first_id`.
pub fn batch_of(
    rows: usize,
    first_id: u64,
    column_of: impl Fn(&str) -> Option<ArrayRef>,
) -> RecordBatch {
    let arrays: Vec<ArrayRef> = columns()
        .iter()
        .map(|c| {
            let made = if c.name == ID {
                let ids = first_id..first_id + rows as u64;
                Some(Arc::new(PrimitiveArray::<UInt64Type>::from_iter_values(ids)) as ArrayRef)
            } else {
                column_of(c.name)
            };
            debug_assert!(
                made.as_ref()
                    .is_none_or(|a| *a.data_type() == data_type(c.ty)),
                "column {} of another type",
                c.name
            );
            made.unwrap_or_else(|| new_null_array(&data_type(c.ty), rows))
        })
        .collect();
    RecordBatch::try_new(arrow_schema(), arrays).expect("typed columns follow the schema")
}

/// A field every record has: no validity bitmap to build.
pub fn all_numbers<P: ArrowPrimitiveType, T>(
    rows: &[T],
    get: impl Fn(&T) -> P::Native,
) -> ArrayRef {
    Arc::new(PrimitiveArray::<P>::from_iter_values(rows.iter().map(get)))
}

pub fn numbers<P: ArrowPrimitiveType, T>(
    rows: &[T],
    get: impl Fn(&T) -> Option<P::Native>,
) -> Option<ArrayRef> {
    if rows.iter().all(|r| get(r).is_none()) {
        return None;
    }
    Some(Arc::new(
        rows.iter().map(get).collect::<PrimitiveArray<P>>(),
    ))
}

pub fn texts<'a, T, S: AsRef<str>>(
    rows: &'a [T],
    get: impl Fn(&'a T) -> Option<S>,
) -> Option<ArrayRef> {
    if rows.iter().all(|r| get(r).is_none()) {
        return None;
    }
    Some(Arc::new(rows.iter().map(get).collect::<StringArray>()))
}

/// The column of an end's label (`SrcK8S_Namespace`, ...) when `name` is
/// one: Some(None) when no record has it.
pub fn label_column<'a, T>(
    rows: &'a [T],
    name: &str,
    labels: impl Fn(&'a T, Side) -> &'a SideLabels,
) -> Option<Option<ArrayRef>> {
    let side = Side::of_label(name)?;
    let at = side.label_names().iter().position(|n| *n == name)?;
    Some(texts(rows, |r| labels(r, side).fields()[at].as_deref()))
}

pub fn bools<T>(rows: &[T], get: impl Fn(&T) -> Option<bool>) -> Option<ArrayRef> {
    if rows.iter().all(|r| get(r).is_none()) {
        return None;
    }
    Some(Arc::new(rows.iter().map(get).collect::<BooleanArray>()))
}

/// Addresses as text, formatted on the stack (no string per record).
pub fn addresses<T>(rows: &[T], get: impl Fn(&T) -> Address) -> ArrayRef {
    let mut column =
        arrow_array::builder::StringBuilder::with_capacity(rows.len(), rows.len() * 15);
    for r in rows {
        column.append_value(get(r).text().as_str());
    }
    Arc::new(column.finish())
}

/// Checks that a typed batch of `records` is the batch their JSON makes
/// (`to_batch`), column by column: both ways into the store write the
/// same files.
#[cfg(test)]
pub fn assert_as_from_json<T: serde::Serialize>(records: &[T], first_id: u64, typed: &RecordBatch) {
    let maps: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut m = serde_json::to_value(r)
                .unwrap()
                .as_object()
                .unwrap()
                .clone();
            m.insert(ID.into(), (first_id + i as u64).into());
            m
        })
        .collect();
    let via_json = crate::batch::to_batch(&maps);
    for (i, c) in columns().iter().enumerate() {
        assert_eq!(
            typed.column(i).as_ref(),
            via_json.column(i).as_ref(),
            "column {}",
            c.name
        );
    }
}
