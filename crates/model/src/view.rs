//! A record as filters, groupings and tables read it: fields by their JSON
//! (netobserv) names. A JSON object is one view; the store's column batches
//! are another, so one filter runs on both.

use serde_json::{Map, Value};

/// A value of a field in one record. Fields can have several (an address
/// of either side, the statuses of a flow); a record without the field has
/// none, and every comparison on it is false.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Num(f64),
    Text(&'a str),
    Owned(String),
    Bool(bool),
}

impl Scalar<'_> {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Scalar::Text(t) => Some(t),
            Scalar::Owned(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_num(&self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(*n),
            _ => None,
        }
    }
}

pub trait RecordView {
    /// The values of field `name`: one, several for a list, none if absent.
    fn values<'a>(&'a self, name: &str, out: &mut Vec<Scalar<'a>>);

    /// Whether a policy event of the record dropped it (NetworkEvents).
    fn has_drop_event(&self) -> bool;

    /// The first value of field `name`.
    fn first<'a>(&'a self, name: &str) -> Option<Scalar<'a>> {
        let mut out = Vec::new();
        self.values(name, &mut out);
        out.into_iter().next()
    }
}

fn json_scalar(value: &Value) -> Option<Scalar<'_>> {
    match value {
        Value::Number(n) => n.as_f64().map(Scalar::Num),
        Value::String(s) => Some(Scalar::Text(s)),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

impl RecordView for Map<String, Value> {
    fn values<'a>(&'a self, name: &str, out: &mut Vec<Scalar<'a>>) {
        match self.get(name) {
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(json_scalar)),
            Some(v) => out.extend(json_scalar(v)),
            None => {}
        }
    }

    fn has_drop_event(&self) -> bool {
        self.get("NetworkEvents")
            .and_then(Value::as_array)
            .is_some_and(|events| events.iter().any(|e| e["Action"] == "drop"))
    }
}
