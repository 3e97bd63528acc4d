//! Filter errors: where, what was wrong or expected, and the nearest valid
//! name when there is one.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterError {
    /// Character offset (0-based) where the problem starts.
    pub position: usize,
    pub message: String,
    /// The nearest valid field or value, when the input looks like a typo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

impl FilterError {
    pub fn new(position: usize, message: String) -> FilterError {
        FilterError {
            position,
            message,
            suggestion: None,
        }
    }

    pub fn with_suggestion(mut self, suggestion: Option<String>) -> FilterError {
        if let Some(s) = &suggestion {
            self.message.push_str(&format!("; did you mean `{s}`?"));
        }
        self.suggestion = suggestion;
        self
    }

    /// The error with the filter and a caret under the position, for
    /// terminals.
    pub fn render(&self, filter: &str) -> String {
        format!(
            "{}\n  {filter}\n  {}^",
            self,
            " ".repeat(self.position.min(filter.chars().count()))
        )
    }
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "filter error at column {}: {}",
            self.position + 1,
            self.message
        )
    }
}

impl std::error::Error for FilterError {}

/// Levenshtein distance, case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = current;
        }
    }
    row[b.len()]
}

/// Inputs longer than this get no suggestion: no name is this long, and
/// the distance costs the product of both lengths for every candidate.
const MAX_SUGGESTED_LENGTH: usize = 64;

/// The candidate nearest to `input`, if near enough to be a typo.
pub fn nearest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    if input.len() > MAX_SUGGESTED_LENGTH {
        return None;
    }
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (distance(input, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names() {
        assert_eq!(
            nearest("dns.rcod", ["dns.rcode", "dns.name", "drop.cause"]),
            Some("dns.rcode".into())
        );
        assert_eq!(nearest("zzzzzz", ["dns.rcode"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
