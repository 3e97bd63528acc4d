//! Durations written as Go writes them (netobserv's `cacheActiveTimeout: 5s`):
//! a sequence of decimal numbers with units, e.g. `200ms`, `1m30s`, `1.5h`.

use std::time::Duration;

const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
];

/// Why a duration text was refused, phrased to follow "invalid duration `x`: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{text}`: {reason} (examples: 5s, 200ms, 1m30s; units: ns, us, ms, s, m, h, d)"
)]
pub struct DurationError {
    pub text: String,
    pub reason: &'static str,
}

pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        text: text.to_string(),
        reason,
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err("it is empty"));
    }
    let mut seconds = 0.0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..number_len]
            .parse()
            .map_err(|_| err("malformed number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(err("a number needs a unit"));
        }
        let factor = UNITS
            .iter()
            .find(|(name, _)| *name == &rest[..unit_len])
            .map(|(_, f)| *f)
            .ok_or_else(|| err("unknown unit"))?;
        seconds += value * factor;
        rest = &rest[unit_len..];
    }
    if !seconds.is_finite() || seconds > 1e12 {
        return Err(err("too large"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Serde adapter for an optional Go-style duration field.
/// `parse_duration` as a command-line value parser (clap's shape).
pub fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

pub mod serde_opt {
    use serde::{Deserialize, Deserializer, de::Error};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text)
            .map(Some)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
    }

    #[test]
    fn refuses_bad_durations_with_reason() {
        assert_eq!(
            parse_duration("5").unwrap_err().reason,
            "a number needs a unit"
        );
        assert_eq!(
            parse_duration("5 parsecs").unwrap_err().reason,
            "unknown unit"
        );
        assert_eq!(
            parse_duration("fast").unwrap_err().reason,
            "expected a number"
        );
        assert_eq!(parse_duration("").unwrap_err().reason, "it is empty");
        let msg = parse_duration("5x").unwrap_err().to_string();
        assert!(msg.contains("`5x`") && msg.contains("units:"), "{msg}");
    }
}
