//! The one schema: every field of flow and conversation records is one
//! entry of `FIELDS` (its JSON name, Rust type, unit, filter name and
//! aliases, which records carry it, its rollup role and vocabulary), and
//! every derived field one entry of `DERIVED`. The filter language, the
//! store's columns and rollups, the wire check, the metrics' labels, the
//! CLI's and the console's tables (through `/api/fields`) read these tables;
//! none lists fields of its own. docs/ARCHITECTURE.md shows how to add one.

mod columns;
mod derived;
mod table;

pub use columns::{CONVERSATION_TABLE, FLOW_TABLE, TableColumn};
pub use derived::{DERIVED, Derivation, DerivedField};
pub use table::FIELDS;

use crate::vocab::Vocabulary;
use serde::Serialize;

/// How a field is stored in records (and in the store's columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Address,
    Mac,
    U8,
    U16,
    U32,
    U64,
    /// Wall-clock milliseconds since the Unix epoch.
    TimestampMs,
    TcpFlags,
    StringList,
    U8List,
    Text,
    F64,
    Bool,
    EventList,
}

/// The unit of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    None,
    Bytes,
    Packets,
    Segments,
    /// A duration in nanoseconds.
    Nanos,
    /// A duration in milliseconds.
    Millis,
    /// Wall-clock milliseconds since the epoch.
    TimestampMs,
}

impl Unit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Bytes => "bytes",
            Unit::Packets => "packets",
            Unit::Segments => "segments",
            Unit::Nanos => "ns",
            Unit::Millis => "ms",
            Unit::TimestampMs => "timestamp_ms",
        }
    }
}

/// What a filter compares a field's values as.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Number(Unit),
    Text,
    /// Names from a closed set: literals must be one of them.
    Enum(&'static Vocabulary),
    Address,
    /// TCP flags, tested with `has`.
    Flags,
    Bool,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Number(_) => "number",
            Kind::Text => "text",
            Kind::Enum(_) => "enum",
            Kind::Address => "address",
            Kind::Flags => "flags",
            Kind::Bool => "bool",
        }
    }

    pub const fn unit(self) -> Unit {
        match self {
            Kind::Number(u) => u,
            _ => Unit::None,
        }
    }
}

/// Which records carry a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    Flows,
    Conversations,
    Both,
}

impl Records {
    pub const fn flows(self) -> bool {
        matches!(self, Records::Flows | Records::Both)
    }

    pub const fn conversations(self) -> bool {
        matches!(self, Records::Conversations | Records::Both)
    }

    pub const fn as_list(self) -> &'static [&'static str] {
        match self {
            Records::Flows => &["flows"],
            Records::Conversations => &["conversations"],
            Records::Both => &["flows", "conversations"],
        }
    }
}

/// A field's part in rollups: a dimension rows are grouped by, a counter
/// they sum, or neither (the field is not in rollup files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollup {
    None,
    Dimension,
    Sum,
}

#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// JSON name (netobserv's where netobserv has the field).
    pub name: &'static str,
    pub ty: FieldType,
    pub unit: Unit,
    pub doc: &'static str,
    /// The filter language's name, empty when filters read the field only
    /// through a derived field (`Bytes` through `bytes`) or not at all.
    pub filter: &'static str,
    /// Further filter names (the JSON name is one unless a derived field
    /// answers to it).
    pub aliases: &'static [&'static str],
    pub vocab: Option<&'static Vocabulary>,
    pub records: Records,
    pub rollup: Rollup,
}

impl FieldSpec {
    /// The filter kind of the field's values.
    pub const fn kind(&self) -> Kind {
        if let Some(v) = self.vocab {
            return Kind::Enum(v);
        }
        match self.ty {
            FieldType::Address => Kind::Address,
            FieldType::Mac | FieldType::Text | FieldType::StringList | FieldType::EventList => {
                Kind::Text
            }
            FieldType::TcpFlags => Kind::Flags,
            FieldType::Bool => Kind::Bool,
            FieldType::U8
            | FieldType::U16
            | FieldType::U32
            | FieldType::U64
            | FieldType::U8List
            | FieldType::F64
            | FieldType::TimestampMs => Kind::Number(self.unit),
        }
    }
}

/// A field of the table (all start as flow fields without filter name).
const fn field(name: &'static str, ty: FieldType, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        unit: if matches!(ty, FieldType::TimestampMs) {
            Unit::TimestampMs
        } else {
            Unit::None
        },
        doc,
        filter: "",
        aliases: &[],
        vocab: None,
        records: Records::Flows,
        rollup: Rollup::None,
    }
}

impl FieldSpec {
    const fn filter(mut self, name: &'static str, aliases: &'static [&'static str]) -> Self {
        self.filter = name;
        self.aliases = aliases;
        self
    }
    const fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }
    const fn vocab(mut self, vocab: &'static Vocabulary) -> Self {
        self.vocab = Some(vocab);
        self
    }
    /// Carried by conversations too.
    const fn both(mut self) -> Self {
        self.records = Records::Both;
        self
    }
    const fn conversations_only(mut self) -> Self {
        self.records = Records::Conversations;
        self
    }
    const fn dimension(mut self) -> Self {
        self.rollup = Rollup::Dimension;
        self
    }
    const fn sum(mut self) -> Self {
        self.rollup = Rollup::Sum;
        self
    }
}

/// The field named `name` (JSON name, case-sensitive).
pub fn field_spec(name: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The fields of flow records, in schema order.
pub fn flow_fields() -> impl Iterator<Item = &'static FieldSpec> {
    FIELDS.iter().filter(|f| f.records.flows())
}

const fn count(role: Rollup) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < FIELDS.len() {
        if FIELDS[i].rollup as u8 == role as u8 {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn names<const N: usize>(role: Rollup) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < FIELDS.len() {
        if FIELDS[i].rollup as u8 == role as u8 {
            out[n] = FIELDS[i].name;
            n += 1;
        }
        i += 1;
    }
    out
}

/// The fields rollup rows are grouped by, in schema order.
pub const ROLLUP_DIMENSIONS: [&str; count(Rollup::Dimension)] = names(Rollup::Dimension);

/// The counters rollup rows sum, in schema order.
pub const ROLLUP_SUMS: [&str; count(Rollup::Sum)] = names(Rollup::Sum);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_record_json() {
        let record = crate::fixtures::every_field_record();
        let json = serde_json::to_value(&record).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        for key in &keys {
            assert!(
                field_spec(key).is_some(),
                "{key} is not in the schema table"
            );
        }
        for spec in flow_fields() {
            assert!(
                json.get(spec.name).is_some(),
                "{} is not in FlowRecord",
                spec.name
            );
        }
    }

    /// Every filter name of a field or a derived field, and every JSON
    /// name used as an alias, once (filters match names in any case).
    #[test]
    fn filter_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        let mut names: Vec<&str> = Vec::new();
        for f in FIELDS.iter().filter(|f| !f.filter.is_empty()) {
            names.push(f.filter);
            names.extend(f.aliases);
        }
        for d in DERIVED {
            names.push(d.filter);
            names.extend(d.aliases);
        }
        for name in names {
            assert!(seen.insert(name.to_lowercase()), "{name} twice");
        }
    }

    #[test]
    fn derived_fields_and_columns_name_fields_of_the_schema() {
        for d in DERIVED {
            for input in d.derivation.inputs() {
                assert!(field_spec(input).is_some(), "{}: {input}", d.filter);
            }
        }
        let filter_names: Vec<&str> = FIELDS
            .iter()
            .map(|f| f.filter)
            .chain(DERIVED.iter().map(|d| d.filter))
            .collect();
        for c in FLOW_TABLE.iter().chain(CONVERSATION_TABLE) {
            assert!(filter_names.contains(&c.field), "column {}", c.id);
        }
    }
}
