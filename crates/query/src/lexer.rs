//! Tokens of a filter with their positions. Field names, enum names,
//! numbers with units and addresses are all "words"; the parser reads a word
//! by the type of the field it is compared with.

use crate::error::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A run of letters, digits and `_ . : / - + µ`: a field, a keyword, a
    /// number with its unit, an address, a CIDR or a bare enum name.
    Word(String),
    /// A double-quoted string (`\"` and `\\` escaped).
    Str(String),
    Op(Op),
    LParen,
    RParen,
    Comma,
    /// `!` alone (not).
    Bang,
    AndAnd,
    OrOr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    NotMatch,
}

impl Op {
    pub fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Match => "=~",
            Op::NotMatch => "!~",
        }
    }
}

/// A token and where it starts and ends (character offsets).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-' | '+' | '*')
}

pub fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let next = chars.get(i + 1).copied();
        let (tok, len) = match (c, next) {
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            (',', _) => (Tok::Comma, 1),
            ('=', Some('~')) => (Tok::Op(Op::Match), 2),
            ('=', Some('=')) => (Tok::Op(Op::Eq), 2),
            ('=', _) => (Tok::Op(Op::Eq), 1),
            ('!', Some('=')) => (Tok::Op(Op::Ne), 2),
            ('!', Some('~')) => (Tok::Op(Op::NotMatch), 2),
            ('!', _) => (Tok::Bang, 1),
            ('<', Some('=')) => (Tok::Op(Op::Le), 2),
            ('<', Some('>')) => (Tok::Op(Op::Ne), 2),
            ('<', _) => (Tok::Op(Op::Lt), 1),
            ('>', Some('=')) => (Tok::Op(Op::Ge), 2),
            ('>', _) => (Tok::Op(Op::Gt), 1),
            ('&', Some('&')) => (Tok::AndAnd, 2),
            ('|', Some('|')) => (Tok::OrOr, 2),
            ('"', _) | ('\'', _) => {
                let quote = c;
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(FilterError::new(
                                start,
                                "unterminated string: a closing quote is missing".into(),
                            ));
                        }
                        Some('\\') if matches!(chars.get(j + 1), Some(&q) if q == quote || q == '\\') =>
                        {
                            value.push(chars[j + 1]);
                            j += 2;
                        }
                        Some(&q) if q == quote => break,
                        Some(&other) => {
                            value.push(other);
                            j += 1;
                        }
                    }
                }
                (Tok::Str(value), j + 1 - i)
            }
            _ if word_char(c) => {
                let len = chars[i..].iter().take_while(|c| word_char(**c)).count();
                (Tok::Word(chars[i..i + len].iter().collect()), len)
            }
            _ => {
                return Err(FilterError::new(
                    start,
                    format!("unexpected character `{c}`"),
                ));
            }
        };
        i += len;
        tokens.push(Token { tok, start, end: i });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        lex(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_operators_and_strings() {
        assert_eq!(
            toks(r#"dns.rcode != NoError and src.addr in (198.18.0.0/15, fd00::1) or x=~"a\"b""#),
            vec![
                Tok::Word("dns.rcode".into()),
                Tok::Op(Op::Ne),
                Tok::Word("NoError".into()),
                Tok::Word("and".into()),
                Tok::Word("src.addr".into()),
                Tok::Word("in".into()),
                Tok::LParen,
                Tok::Word("198.18.0.0/15".into()),
                Tok::Comma,
                Tok::Word("fd00::1".into()),
                Tok::RParen,
                Tok::Word("or".into()),
                Tok::Word("x".into()),
                Tok::Op(Op::Match),
                Tok::Str("a\"b".into()),
            ]
        );
        assert_eq!(
            toks("rtt>50ms&&!x"),
            vec![
                Tok::Word("rtt".into()),
                Tok::Op(Op::Gt),
                Tok::Word("50ms".into()),
                Tok::AndAnd,
                Tok::Bang,
                Tok::Word("x".into()),
            ]
        );
    }

    #[test]
    fn bad_input_says_where() {
        let e = lex("dns.name = \"abc").unwrap_err();
        assert_eq!(e.position, 11);
        assert!(e.message.contains("unterminated"));
        let e = lex("a # b").unwrap_err();
        assert_eq!(e.position, 2);
    }
}
