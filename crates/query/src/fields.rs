//! The fields a filter can name, as the model's schema defines them: each
//! record field with a filter name (its JSON name an alias) and each
//! derived field, with its kind, unit and vocabulary.

use flowlens_model::schema::{DERIVED, Derivation, FIELDS};
pub use flowlens_model::schema::{Kind, Unit};
pub use flowlens_model::vocab::Vocabulary;
pub use flowlens_model::{RecordView, Scalar};
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// One record field (its JSON name).
    Json(&'static str),
    /// Computed from record fields.
    Derived(&'static Derivation),
}

#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    /// The record field's JSON name, when the filter field is one.
    pub json_name: Option<&'static str>,
    /// Other names: the spellings users already write
    /// (`dns.response_code`, `flow.tcp_retransmits`).
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub source: Source,
    pub doc: &'static str,
}

impl FieldDef {
    /// The values of this field in `record`.
    pub fn values<'a>(&self, record: &'a dyn RecordView) -> Vec<Scalar<'a>> {
        match self.source {
            Source::Json(name) => {
                let mut out = Vec::new();
                record.values(name, &mut out);
                out
            }
            Source::Derived(d) => d.values(record),
        }
    }

    /// The values a record is grouped by (top-K, topology): every end of an
    /// either-end field, but one value of another derived field, whose
    /// further values are other spellings or lesser readings of the first
    /// (a drop cause with and without `SKB_DROP_REASON_`), so no record
    /// counts twice.
    pub fn group_values<'a>(&self, record: &'a dyn RecordView) -> Vec<Scalar<'a>> {
        let mut values = self.values(record);
        if let Source::Derived(d) = self.source
            && !d.values_are_distinct()
        {
            values.truncate(1);
        }
        values
    }

    /// The unit of a bare number compared with this field when it was
    /// named `as_written`: netobserv's names keep their stored unit
    /// (`TimeFlowRttNs > 50000` is in ns), dotted names take ms.
    pub fn bare_unit(&self, as_written: &str) -> Unit {
        let netobserv_name = as_written.starts_with(|c: char| c.is_ascii_uppercase());
        match self.kind {
            Kind::Number(Unit::Nanos) if !netobserv_name => Unit::Millis,
            Kind::Number(u) => u,
            _ => Unit::None,
        }
    }

    /// The record fields (JSON names) this field is read from.
    pub fn inputs(&self) -> Vec<&'static str> {
        match self.source {
            Source::Json(name) => vec![name],
            Source::Derived(d) => d.inputs(),
        }
    }

    /// Every name the field answers to.
    pub fn all_names(&self) -> impl Iterator<Item = &'static str> {
        let json = self
            .json_name
            .filter(|json| !json.eq_ignore_ascii_case(self.name));
        std::iter::once(self.name)
            .chain(json)
            .chain(self.aliases.iter().copied())
    }
}

/// Every filter field: the schema's record fields that have a filter name,
/// then its derived fields.
pub static FIELD_DEFS: LazyLock<Vec<FieldDef>> = LazyLock::new(|| {
    let plain = FIELDS
        .iter()
        .filter(|f| !f.filter.is_empty())
        .map(|f| FieldDef {
            name: f.filter,
            json_name: Some(f.name),
            aliases: f.aliases,
            kind: f.kind(),
            source: Source::Json(f.name),
            doc: f.doc,
        });
    let derived = DERIVED.iter().map(|d| FieldDef {
        name: d.filter,
        json_name: None,
        aliases: d.aliases,
        kind: d.kind,
        source: Source::Derived(&d.derivation),
        doc: d.doc,
    });
    plain.chain(derived).collect()
});

/// The field named `name` (canonical or alias, case-insensitive).
pub fn lookup(name: &str) -> Option<&'static FieldDef> {
    FIELD_DEFS
        .iter()
        .find(|f| f.all_names().any(|n| n.eq_ignore_ascii_case(name)))
}

/// The field name nearest to `name`, if it looks like a typo of one.
pub fn nearest_field(name: &str) -> Option<String> {
    crate::error::nearest(name, all_field_names())
}

/// Every name a filter may use, for suggestions and completion.
pub fn all_field_names() -> impl Iterator<Item = &'static str> {
    FIELD_DEFS.iter().flat_map(|f| f.all_names())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are matched case-insensitively, so `Proto` is `proto`.
    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for name in all_field_names() {
            assert!(seen.insert(name.to_lowercase()), "{name} twice");
        }
    }

    #[test]
    fn every_json_name_of_the_model_that_filters_can_use_resolves() {
        for spec in flowlens_model::FIELDS {
            if matches!(spec.name, "IfDirections" | "NetworkEvents" | "_IsFirst") {
                continue; // read through flow.direction and flow.status
            }
            assert!(
                lookup(spec.name).is_some(),
                "{} has no filter field",
                spec.name
            );
        }
    }
}
