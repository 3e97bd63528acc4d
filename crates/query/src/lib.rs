//! The flowlens filter language: one parser for the API, the CLI, the
//! console, agent-side filtering and metric selection.
//!
//! ```text
//! src.namespace = "shop" and dns.rcode != NoError
//! drop.cause = NETFILTER_DROP or drop.category = policy_denied
//! tcp.retransmits > 0 and rtt > 50ms
//! dst.port in (53, 5353) and not src.addr in 198.18.0.0/15
//! dns.name =~ "\.cluster\.local$"
//! ```

mod complete;
mod error;
mod eval;
pub mod fields;
mod lexer;
mod literal;
mod parser;

pub use complete::{Completion, Completions, complete};
pub use error::FilterError;
pub use fields::{FIELD_DEFS, FieldDef, RecordView, Scalar};
pub use parser::{Expr, Literal, MAX_FILTER_BYTES, MAX_FILTER_DEPTH, check_length};

use flowlens_model::FlowRecord;
use serde_json::{Map, Value};

/// A parsed, type-checked filter.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
    text: String,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        Ok(Filter {
            expr: parser::parse(text)?,
            text: text.to_string(),
        })
    }

    /// Records both filters select (a token's scope and a user's filter).
    pub fn and(&self, other: &Filter) -> Filter {
        Filter {
            expr: Expr::And(vec![self.expr.clone(), other.expr.clone()]),
            text: format!("({}) and ({})", self.text, other.text),
        }
    }

    /// The filter as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether a record (JSON object with netobserv's names) matches.
    pub fn matches_json(&self, record: &Map<String, Value>) -> bool {
        self.expr.matches(record)
    }

    /// Whether a record seen through any view matches.
    pub fn matches_view(&self, record: &dyn RecordView) -> bool {
        self.expr.matches(record)
    }

    /// Whether a flow record matches (read in place, not as JSON).
    pub fn matches(&self, record: &FlowRecord) -> bool {
        self.expr.matches(record)
    }
}
