//! The stored columns: every field of the model's schema table, plus the
//! fields of conversation records and the store's own record id. One wide
//! schema serves both tables (flows and conversations); absent values are
//! nulls, which Parquet stores in a few bits.

use arrow_schema::{DataType, Field, Schema};
use flowlens_model::schema::field_spec;
use flowlens_model::{FIELDS, FieldType};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Text,
    U8,
    U16,
    U32,
    U64,
    I64,
    F64,
    Bool,
    TextList,
    U8List,
    /// Nested values kept as JSON text (NetworkEvents).
    Json,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
}

/// The store's id of a record: unique and increasing, the tiebreak of
/// records with the same end time (and the paging cursor's second half).
pub const ID: &str = "_Id";

/// Rows of rollup files: how many flow records a row sums (see `rollup`).
pub const WEIGHT: &str = "_Flows";

fn col_type(ty: FieldType) -> ColType {
    match ty {
        FieldType::Address | FieldType::Mac | FieldType::Text => ColType::Text,
        FieldType::U8 => ColType::U8,
        FieldType::U16 => ColType::U16,
        FieldType::U32 | FieldType::TcpFlags => ColType::U32,
        FieldType::U64 => ColType::U64,
        FieldType::TimestampMs => ColType::I64,
        FieldType::StringList => ColType::TextList,
        FieldType::U8List => ColType::U8List,
        FieldType::F64 => ColType::F64,
        FieldType::Bool => ColType::Bool,
        FieldType::EventList => ColType::Json,
    }
}

pub fn columns() -> &'static [Column] {
    static COLUMNS: OnceLock<Vec<Column>> = OnceLock::new();
    COLUMNS.get_or_init(|| {
        let mut columns = vec![Column {
            name: ID,
            ty: ColType::U64,
        }];
        columns.extend(FIELDS.iter().map(|f| Column {
            name: f.name,
            ty: col_type(f.ty),
        }));
        columns.push(Column {
            name: WEIGHT,
            ty: ColType::U64,
        });
        columns
    })
}

/// The columns a record of `table` can have, in schema order: the id and
/// the model's fields, and for conversations their own fields too (an
/// export's CSV header, fixed before any record is read).
pub fn table_columns(table: crate::Table) -> Vec<&'static str> {
    let conversation_only = |name: &str| field_spec(name).is_some_and(|f| !f.records.flows());
    columns()
        .iter()
        .map(|c| c.name)
        .filter(|name| *name != WEIGHT)
        .filter(|name| table == crate::Table::Conversations || !conversation_only(name))
        .collect()
}

/// Position and type of column `name` in the full schema.
pub fn column(name: &str) -> Option<(usize, ColType)> {
    static INDEX: OnceLock<foldhash::HashMap<&'static str, (usize, ColType)>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            columns()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name, (i, c.ty)))
                .collect()
        })
        .get(name)
        .copied()
}

pub(crate) fn data_type(ty: ColType) -> DataType {
    match ty {
        ColType::Text | ColType::Json => DataType::Utf8,
        ColType::U8 => DataType::UInt8,
        ColType::U16 => DataType::UInt16,
        ColType::U32 => DataType::UInt32,
        ColType::U64 => DataType::UInt64,
        ColType::I64 => DataType::Int64,
        ColType::F64 => DataType::Float64,
        ColType::Bool => DataType::Boolean,
        ColType::TextList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        ColType::U8List => DataType::List(Arc::new(Field::new("item", DataType::UInt8, true))),
    }
}

pub fn arrow_schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(
                columns()
                    .iter()
                    .map(|c| Field::new(c.name, data_type(c.ty), true))
                    .collect::<Vec<_>>(),
            ))
        })
        .clone()
}
