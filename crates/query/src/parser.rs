//! Filter text to a typed expression. Precedence, lowest first: `or`,
//! `and`, `not`, comparisons; parentheses group. Every literal is checked
//! against its field's type here, so a filter that parses can be evaluated
//! without errors.

use crate::error::{FilterError, nearest};
use crate::fields::{FieldDef, Kind, all_field_names, lookup};
use crate::lexer::{Op, Tok, Token, lex};
use crate::literal::{Cidr, number};
use flowlens_model::tcp_flags::{TCP_FLAG_NAMES, flag_bit};

/// A checked value to compare a field with.
#[derive(Debug, Clone)]
pub enum Literal {
    Num(f64),
    /// Text compared exactly (a text field) or case-insensitively (a name
    /// of a closed set).
    Text(String),
    Regex(regex::Regex),
    Net(Cidr),
    Bool(bool),
}

#[derive(Debug, Clone)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        field: &'static FieldDef,
        op: Op,
        value: Literal,
    },
    In {
        field: &'static FieldDef,
        values: Vec<Literal>,
    },
    /// `tcp.flags has X` (or several: all of them).
    Has {
        field: &'static FieldDef,
        bits: u32,
    },
    /// An empty filter: everything.
    All,
}

impl Expr {
    /// The record fields (JSON names) evaluating this expression reads.
    pub fn inputs(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        self.collect_inputs(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect_inputs(&self, out: &mut Vec<&'static str>) {
        match self {
            Expr::And(terms) | Expr::Or(terms) => terms.iter().for_each(|t| t.collect_inputs(out)),
            Expr::Not(inner) => inner.collect_inputs(out),
            Expr::Compare { field, .. } | Expr::In { field, .. } | Expr::Has { field, .. } => {
                out.extend(field.inputs())
            }
            Expr::All => {}
        }
    }
}

/// The longest filter accepted, in bytes: far beyond any written by hand,
/// short enough that lexing, parsing and completion stay cheap for every
/// request.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;

/// The deepest nesting of parentheses and `not` accepted. Parsing,
/// evaluation, the store's predicates and dropping an expression all recurse
/// once per level, so this bound is what keeps a hostile filter from
/// overflowing a thread's stack.
pub const MAX_FILTER_DEPTH: usize = 128;

struct Parser<'t> {
    tokens: Vec<Token>,
    at: usize,
    text: &'t str,
    /// Parentheses and `not` open at the current token.
    depth: usize,
}

fn keyword(tok: &Tok, word: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(word))
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// Position of the next token, or the end of the text.
    fn position(&self) -> usize {
        self.peek()
            .map(|t| t.start)
            .unwrap_or_else(|| self.text.chars().count())
    }

    fn error(&self, message: String) -> FilterError {
        FilterError::new(self.position(), message)
    }

    fn next_is(&self, f: impl Fn(&Tok) -> bool) -> bool {
        self.peek().is_some_and(|t| f(&t.tok))
    }

    /// Enters one level of nesting, refusing to go deeper than the limit.
    fn descend(&mut self) -> Result<(), FilterError> {
        if self.depth >= MAX_FILTER_DEPTH {
            return Err(self.error(format!(
                "the filter nests deeper than the limit of {MAX_FILTER_DEPTH} levels of parentheses and `not`"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    /// `or` of `and`s of (`not`s of) comparisons or parenthesized groups.
    /// A loop over an explicit stack of open groups, not recursion: a
    /// debug build spends kilobytes of stack per recursive level, and the
    /// depth limit should be the only bound a hostile filter meets.
    fn expression(&mut self) -> Result<Expr, FilterError> {
        let mut enclosing: Vec<Group> = Vec::new();
        let mut group = Group::new(None);
        'operand: loop {
            // Prefixes of the next operand: `not`s and opening parentheses.
            loop {
                if self.next_is(|t| keyword(t, "not") || *t == Tok::Bang) {
                    self.descend()?;
                    self.at += 1;
                    group.nots += 1;
                } else if self.next_is(|t| *t == Tok::LParen) {
                    self.descend()?;
                    let open = self.position();
                    self.at += 1;
                    enclosing.push(std::mem::replace(&mut group, Group::new(Some(open))));
                } else {
                    break;
                }
            }
            let mut operand = self.comparison()?;
            // What follows the operand: more terms, or the end of groups.
            loop {
                self.depth -= group.nots;
                group.push(operand);
                if self.next_is(|t| keyword(t, "and") || *t == Tok::AndAnd) {
                    self.at += 1;
                    continue 'operand;
                }
                if self.next_is(|t| keyword(t, "or") || *t == Tok::OrOr) {
                    self.at += 1;
                    group.end_and();
                    continue 'operand;
                }
                let Some(open) = group.open else {
                    return Ok(group.finish());
                };
                if !self.next_is(|t| *t == Tok::RParen) {
                    return Err(self.error(format!(
                        "expected `)` to close the `(` at column {}",
                        open + 1
                    )));
                }
                self.at += 1;
                self.depth -= 1;
                operand = group.finish();
                group = enclosing
                    .pop()
                    .expect("a parenthesized group has an enclosing one");
            }
        }
    }

    fn field(&mut self) -> Result<(&'static FieldDef, String), FilterError> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.error("expected a field name, found the end of the filter".into()));
        };
        let Tok::Word(name) = &token.tok else {
            return Err(self.error(format!(
                "expected a field name, found {}",
                describe(&token.tok)
            )));
        };
        match lookup(name) {
            Some(def) => {
                self.at += 1;
                Ok((def, name.clone()))
            }
            None => Err(
                FilterError::new(token.start, format!("unknown field `{name}`"))
                    .with_suggestion(nearest(name, all_field_names())),
            ),
        }
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let (field, written) = self.field()?;
        let Some(token) = self.peek().cloned() else {
            return match field.kind {
                Kind::Bool => Ok(bool_true(field)),
                _ => Err(self.error(format!(
                    "expected an operator after `{written}` ({})",
                    operators(field).join(", ")
                ))),
            };
        };
        match &token.tok {
            Tok::Op(op) => {
                let op = *op;
                self.check_operator(field, &written, op, token.start)?;
                self.at += 1;
                let value = self.literal(field, &written, op)?;
                Ok(Expr::Compare { field, op, value })
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("in") => {
                self.at += 1;
                let values = self.list(field, &written)?;
                Ok(Expr::In { field, values })
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                // `field not in (...)`
                self.at += 1;
                if !self.next_is(|t| keyword(t, "in")) {
                    return Err(self.error("expected `in` after `not`".into()));
                }
                self.at += 1;
                let values = self.list(field, &written)?;
                Ok(Expr::Not(Box::new(Expr::In { field, values })))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("has") => {
                if !matches!(field.kind, Kind::Flags) {
                    return Err(FilterError::new(
                        token.start,
                        format!("`has` applies to tcp.flags, not to `{written}`"),
                    ));
                }
                self.at += 1;
                let names = if self.next_is(|t| *t == Tok::LParen) {
                    self.words_in_parentheses()?
                } else {
                    vec![self.word("a TCP flag name (SYN, ACK, RST, FIN, ...)")?]
                };
                let mut bits = 0;
                for (name, at) in names {
                    bits |= flag_bit(&name).ok_or_else(|| {
                        FilterError::new(at, format!("`{name}` is not a TCP flag"))
                            .with_suggestion(nearest(&name, TCP_FLAG_NAMES.iter().map(|(_, n)| *n)))
                    })?;
                }
                Ok(Expr::Has { field, bits })
            }
            _ if matches!(field.kind, Kind::Bool) => Ok(bool_true(field)),
            other => Err(FilterError::new(
                token.start,
                format!(
                    "expected an operator after `{written}` ({}), found {}",
                    operators(field).join(", "),
                    describe(other)
                ),
            )),
        }
    }

    fn word(&mut self, what: &str) -> Result<(String, usize), FilterError> {
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Word(w) | Tok::Str(w),
                start,
                ..
            }) => {
                self.at += 1;
                Ok((w, start))
            }
            Some(t) => Err(self.error(format!("expected {what}, found {}", describe(&t.tok)))),
            None => Err(self.error(format!("expected {what}, found the end of the filter"))),
        }
    }

    fn words_in_parentheses(&mut self) -> Result<Vec<(String, usize)>, FilterError> {
        self.at += 1; // (
        let mut words = vec![self.word("a value")?];
        loop {
            match self.peek().map(|t| t.tok.clone()) {
                Some(Tok::Comma) => {
                    self.at += 1;
                    words.push(self.word("a value")?);
                }
                Some(Tok::RParen) => {
                    self.at += 1;
                    return Ok(words);
                }
                Some(other) => {
                    return Err(
                        self.error(format!("expected `,` or `)`, found {}", describe(&other)))
                    );
                }
                None => return Err(self.error("expected `)` to close the list".into())),
            }
        }
    }

    /// `in` values: one value, or a parenthesized list.
    fn list(
        &mut self,
        field: &'static FieldDef,
        written: &str,
    ) -> Result<Vec<Literal>, FilterError> {
        if matches!(field.kind, Kind::Flags) {
            return Err(self.error("use `has` with tcp.flags".into()));
        }
        let words = if self.next_is(|t| *t == Tok::LParen) {
            self.words_in_parentheses()?
        } else {
            vec![self.word("a value or a list in parentheses")?]
        };
        words
            .into_iter()
            .map(|(w, at)| value_of(field, written, Op::Eq, &w, at))
            .collect()
    }

    fn literal(
        &mut self,
        field: &'static FieldDef,
        written: &str,
        op: Op,
    ) -> Result<Literal, FilterError> {
        let (text, at) = self.word(&format!("a value after `{}`", op.text()))?;
        value_of(field, written, op, &text, at)
    }

    fn check_operator(
        &self,
        field: &FieldDef,
        written: &str,
        op: Op,
        at: usize,
    ) -> Result<(), FilterError> {
        if operators(field).contains(&op.text()) {
            Ok(())
        } else {
            Err(FilterError::new(
                at,
                format!(
                    "`{}` does not apply to `{written}`; use {}",
                    op.text(),
                    operators(field).join(", ")
                ),
            ))
        }
    }
}

/// A group being parsed: the whole filter, or what is inside parentheses.
struct Group {
    /// Where its `(` is; `None` for the whole filter.
    open: Option<usize>,
    /// Terms joined by `or`, each an `and` of operands.
    or_terms: Vec<Expr>,
    and_terms: Vec<Expr>,
    /// `not`s read before the operand being parsed.
    nots: usize,
}

impl Group {
    fn new(open: Option<usize>) -> Group {
        Group {
            open,
            or_terms: Vec::new(),
            and_terms: Vec::new(),
            nots: 0,
        }
    }

    /// Adds an operand to the current `and`, under the `not`s before it.
    fn push(&mut self, mut operand: Expr) {
        for _ in 0..std::mem::take(&mut self.nots) {
            operand = Expr::Not(Box::new(operand));
        }
        self.and_terms.push(operand);
    }

    /// Closes the current `and` at an `or`.
    fn end_and(&mut self) {
        let terms = std::mem::take(&mut self.and_terms);
        self.or_terms.push(one_or_all(terms, Expr::And));
    }

    fn finish(mut self) -> Expr {
        self.end_and();
        one_or_all(self.or_terms, Expr::Or)
    }
}

/// A single term as it is, several joined.
fn one_or_all(mut terms: Vec<Expr>, join: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.remove(0)
    } else {
        join(terms)
    }
}

fn bool_true(field: &'static FieldDef) -> Expr {
    Expr::Compare {
        field,
        op: Op::Eq,
        value: Literal::Bool(true),
    }
}

/// The operators a field takes (`in` and `has` aside).
pub fn operators(field: &FieldDef) -> Vec<&'static str> {
    match field.kind {
        Kind::Number(_) => vec!["=", "!=", "<", "<=", ">", ">=", "in"],
        Kind::Enum(v) if v.numbered() => {
            vec!["=", "!=", "<", "<=", ">", ">=", "in"]
        }
        Kind::Enum(_) | Kind::Bool => vec!["=", "!=", "in"],
        Kind::Text => vec!["=", "!=", "=~", "!~", "in"],
        Kind::Address => vec!["=", "!=", "in"],
        Kind::Flags => vec!["has", "=", "!="],
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Op(op) => format!("`{}`", op.text()),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Bang => "`!`".into(),
        Tok::AndAnd => "`&&`".into(),
        Tok::OrOr => "`||`".into(),
    }
}

/// `text` as a value of `field`.
fn value_of(
    field: &FieldDef,
    written: &str,
    op: Op,
    text: &str,
    at: usize,
) -> Result<Literal, FilterError> {
    let fail = |message: String| FilterError::new(at, message);
    if matches!(op, Op::Match | Op::NotMatch) {
        return regex::RegexBuilder::new(text)
            .size_limit(1 << 20)
            .build()
            .map(Literal::Regex)
            .map_err(|e| fail(format!("invalid regular expression: {e}")));
    }
    match field.kind {
        Kind::Number(unit) => number(text, unit, field.bare_unit(written))
            .map(Literal::Num)
            .map_err(fail),
        Kind::Text => Ok(Literal::Text(text.to_string())),
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Literal::Bool(true)),
            "false" | "no" | "0" => Ok(Literal::Bool(false)),
            _ => Err(fail(format!("`{written}` is true or false, not `{text}`"))),
        },
        Kind::Address => Cidr::parse(text)
            .map(Literal::Net)
            .ok_or_else(|| fail(format!("`{text}` is not an IP address or CIDR block"))),
        Kind::Flags => match flag_bit(text) {
            Some(bit) => Ok(Literal::Num(bit as f64)),
            None => text
                .parse::<f64>()
                .map(Literal::Num)
                .map_err(|_| fail(format!("`{text}` is not a TCP flag or a number"))),
        },
        Kind::Enum(vocabulary) => {
            let numbered = vocabulary.numbered();
            if let Some(term) = vocabulary.terms.iter().find(|t| {
                t.name.eq_ignore_ascii_case(text)
                    || t.name
                        .strip_prefix("TCP_")
                        .is_some_and(|short| short.eq_ignore_ascii_case(text))
            }) {
                return Ok(match term.code {
                    Some(n) => Literal::Num(n as f64),
                    None => Literal::Text(term.name.to_string()),
                });
            }
            if numbered && let Ok(n) = text.parse::<f64>() {
                return Ok(Literal::Num(n));
            }
            let valid: Vec<&str> = vocabulary.names().collect();
            Err(fail(format!(
                "`{text}` is not a value of `{written}` (valid: {}{})",
                valid.join(", "),
                if numbered { ", or a number" } else { "" }
            ))
            .with_suggestion(nearest(text, valid.iter().copied())))
        }
    }
}

pub fn parse(text: &str) -> Result<Expr, FilterError> {
    check_length(text)?;
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Ok(Expr::All);
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        text,
        depth: 0,
    };
    let expr = parser.expression()?;
    if let Some(extra) = parser.peek() {
        return Err(FilterError::new(
            extra.start,
            format!(
                "expected `and`, `or` or the end of the filter, found {}",
                describe(&extra.tok)
            ),
        ));
    }
    Ok(expr)
}

/// Refuses a filter longer than [`MAX_FILTER_BYTES`], naming the column
/// where the limit falls.
pub fn check_length(text: &str) -> Result<(), FilterError> {
    if text.len() <= MAX_FILTER_BYTES {
        return Ok(());
    }
    let column = text
        .char_indices()
        .take_while(|(i, _)| *i < MAX_FILTER_BYTES)
        .count();
    Err(FilterError::new(
        column,
        format!(
            "the filter is {} bytes long; the limit is {MAX_FILTER_BYTES} bytes",
            text.len()
        ),
    ))
}
