//! Evaluating a filter on a record (a flow or a conversation as JSON with
//! netobserv's names). A comparison on a field the record does not have is
//! false, whatever the operator: a flow without DNS is not a DNS error, so
//! `dns.rcode != NoError` selects DNS errors only. `not` negates a whole
//! condition (`not dns.rcode = NXDomain` includes flows without DNS).

use crate::fields::{FieldDef, Kind, RecordView, Scalar};
use crate::lexer::Op;
use crate::parser::{Expr, Literal};

/// The number a value stands for: numbers as they are, names of a numbered
/// set (NXDomain, TCP_SYN_SENT, tcp) as their number.
fn numeric(field: &FieldDef, value: &Scalar) -> Option<f64> {
    match value {
        Scalar::Num(n) => Some(*n),
        Scalar::Bool(_) => None,
        _ => {
            let text = value.as_text()?;
            match field.kind {
                Kind::Enum(v) => v.find(text).and_then(|t| t.code).map(|n| n as f64),
                _ => text.parse().ok(),
            }
        }
    }
}

/// Whether one value satisfies `op literal`, for the positive operators.
fn holds(field: &FieldDef, value: &Scalar, op: Op, literal: &Literal) -> bool {
    match literal {
        Literal::Num(want) => match numeric(field, value) {
            Some(v) => match op {
                Op::Eq => v == *want,
                Op::Lt => v < *want,
                Op::Le => v <= *want,
                Op::Gt => v > *want,
                Op::Ge => v >= *want,
                _ => false,
            },
            None => false,
        },
        Literal::Text(want) => value.as_text().is_some_and(|v| match field.kind {
            Kind::Enum(_) => v.eq_ignore_ascii_case(want),
            _ => v == want,
        }),
        Literal::Regex(re) => value.as_text().is_some_and(|v| re.is_match(v)),
        Literal::Net(net) => value
            .as_text()
            .and_then(|v| v.parse().ok())
            .is_some_and(|ip| net.contains(ip)),
        Literal::Bool(want) => matches!(value, Scalar::Bool(b) if b == want),
    }
}

fn compare(field: &FieldDef, values: &[Scalar], op: Op, literal: &Literal) -> bool {
    let (positive, negated) = match op {
        Op::Ne => (Op::Eq, true),
        Op::NotMatch => (Op::Match, true),
        other => (other, false),
    };
    if values.is_empty() {
        return false;
    }
    let any = values.iter().any(|v| holds(field, v, positive, literal));
    any != negated
}

impl Expr {
    pub fn matches(&self, record: &dyn RecordView) -> bool {
        match self {
            Expr::All => true,
            Expr::And(terms) => terms.iter().all(|t| t.matches(record)),
            Expr::Or(terms) => terms.iter().any(|t| t.matches(record)),
            Expr::Not(inner) => !inner.matches(record),
            Expr::Compare { field, op, value } => compare(field, &field.values(record), *op, value),
            Expr::In { field, values } => {
                let have = field.values(record);
                values.iter().any(|v| compare(field, &have, Op::Eq, v))
            }
            Expr::Has { field, bits } => field
                .values(record)
                .iter()
                .filter_map(|v| numeric(field, v))
                .any(|flags| (flags as u64 as u32) & bits == *bits),
        }
    }
}
