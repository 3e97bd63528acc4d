//! Completion for filter editors: what may come at the cursor — field
//! names, operators, the values of closed sets, `and`/`or` — with the span of
//! the partial word it replaces.

use crate::fields::{FIELD_DEFS, Kind, lookup};
use crate::lexer::{Tok, lex};
use crate::parser::operators;
use flowlens_model::tcp_flags::TCP_FLAG_NAMES;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completion {
    pub text: String,
    /// field, operator, value or keyword.
    pub kind: &'static str,
    pub doc: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completions {
    /// Character span of the text the chosen item replaces.
    pub from: usize,
    pub to: usize,
    pub items: Vec<Completion>,
}

fn item(text: &str, kind: &'static str, doc: &str) -> Completion {
    Completion {
        text: text.to_string(),
        kind,
        doc: doc.to_string(),
    }
}

fn fields() -> Vec<Completion> {
    FIELD_DEFS
        .iter()
        .map(|f| item(f.name, "field", f.doc))
        .collect()
}

fn values_of(field_name: &str) -> Vec<Completion> {
    let Some(field) = lookup(field_name) else {
        return vec![];
    };
    match field.kind {
        Kind::Enum(v) => v
            .terms
            .iter()
            .map(|t| {
                let doc = t.code.map(|n| format!("= {n}")).unwrap_or_default();
                item(t.name, "value", &doc)
            })
            .collect(),
        Kind::Bool => vec![item("true", "value", ""), item("false", "value", "")],
        Kind::Flags => TCP_FLAG_NAMES
            .iter()
            .map(|(_, n)| item(n, "value", ""))
            .collect(),
        _ => vec![],
    }
}

/// Completions at character offset `cursor` of `text`.
pub fn complete(text: &str, cursor: usize) -> Completions {
    let prefix: String = text.chars().take(cursor).collect();
    let cursor = prefix.chars().count();
    let empty = Completions {
        from: cursor,
        to: cursor,
        items: vec![],
    };
    if crate::parser::check_length(&prefix).is_err() {
        return empty;
    }
    let Ok(mut tokens) = lex(&prefix) else {
        return empty;
    };
    // The word being typed, if the cursor touches one.
    let partial = match tokens.last() {
        Some(t) if t.end == cursor && matches!(t.tok, Tok::Word(_)) => tokens.pop(),
        _ => None,
    };
    let (from, typed) = match &partial {
        Some(t) => match &t.tok {
            Tok::Word(w) => (t.start, w.clone()),
            _ => (cursor, String::new()),
        },
        None => (cursor, String::new()),
    };
    let word = |i: usize| match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let n = tokens.len();
    let last = tokens.last().map(|t| t.tok.clone());
    let is_keyword = |w: &str| {
        ["and", "or", "not", "in", "has"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(w))
    };
    let candidates = match last {
        None | Some(Tok::LParen | Tok::AndAnd | Tok::OrOr | Tok::Bang) => {
            // A `(` after `in` or `has` opens a list of values.
            match (n >= 3).then(|| word(n - 2)).flatten() {
                Some(k) if k.eq_ignore_ascii_case("in") || k.eq_ignore_ascii_case("has") => {
                    word(n - 3).map(values_of).unwrap_or_default()
                }
                _ => fields(),
            }
        }
        Some(Tok::Op(_)) => word(n.wrapping_sub(2)).map(values_of).unwrap_or_default(),
        Some(Tok::Comma) => {
            // Inside `field in (a, b, ...`: the field is before `in (`.
            let open = tokens.iter().rposition(|t| t.tok == Tok::LParen);
            open.and_then(|i| i.checked_sub(2))
                .and_then(word)
                .map(values_of)
                .unwrap_or_default()
        }
        Some(Tok::Word(w))
            if ["and", "or", "not"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&w)) =>
        {
            fields()
        }
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in") || w.eq_ignore_ascii_case("has") => {
            word(n.wrapping_sub(2)).map(values_of).unwrap_or_default()
        }
        Some(Tok::Word(w))
            if !is_keyword(&w) && lookup(&w).is_some() && {
                // A field, unless it is the value of a comparison.
                !matches!(
                    n.checked_sub(2).and_then(|i| tokens.get(i)).map(|t| &t.tok),
                    Some(Tok::Op(_))
                )
            } =>
        {
            let field = lookup(&w).expect("checked");
            let mut ops: Vec<Completion> = operators(field)
                .into_iter()
                .map(|op| item(op, "operator", ""))
                .collect();
            if matches!(field.kind, Kind::Bool) {
                ops.extend([item("and", "keyword", ""), item("or", "keyword", "")]);
            }
            ops
        }
        _ => vec![item("and", "keyword", ""), item("or", "keyword", "")],
    };
    let lower = typed.to_lowercase();
    Completions {
        from,
        to: cursor,
        items: candidates
            .into_iter()
            .filter(|c| c.text.to_lowercase().starts_with(&lower))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        complete(text, text.chars().count())
            .items
            .into_iter()
            .map(|c| c.text)
            .collect()
    }

    #[test]
    fn fields_operators_values_keywords() {
        assert!(texts("dns.r").contains(&"dns.rcode".to_string()));
        assert!(texts("").contains(&"src.addr".to_string()));
        assert_eq!(texts("dns.name "), vec!["=", "!=", "=~", "!~", "in"]);
        assert!(texts("dns.rcode = NX").contains(&"NXDomain".to_string()));
        assert!(texts("conn.outcome in (refused, ti").contains(&"timed_out".to_string()));
        assert!(texts("tcp.flags has R").contains(&"RST".to_string()));
        assert_eq!(texts("dns.rcode = NXDomain "), vec!["and", "or"]);
        assert!(texts("dns.rcode = NXDomain and dr").contains(&"drop.cause".to_string()));
        let c = complete("dns.rcode = NX", 14);
        assert_eq!((c.from, c.to), (12, 14));
    }
}
