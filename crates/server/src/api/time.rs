//! The API's times: relative (`15m`, before now), epoch milliseconds, or
//! RFC 3339, all within 1970..9999 so that no sum of times overflows.

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's
/// days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The times the API takes: 1970-01-01 to 9999-12-31 (epoch ms). Bounding
/// them keeps every sum of times and steps far from overflow.
const EARLIEST_MS: i64 = 0;
pub(super) const LATEST_MS: i64 = 253_402_300_799_999;

/// `2026-11-29T17:00:00Z` (optionally with fractions) as epoch ms.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let t = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = t.split_once('T')?;
    // Digits only, at most four: no sign, no overflow.
    let number = |p: &str| {
        (!p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<i64>().ok())
            .flatten()
    };
    let mut d = date.split('-').map(number);
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.split(':').map(number);
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    if d.next().is_some()
        || h.next().is_some()
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || hh > 23
        || mm > 59
        || ss > 60
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Milliseconds: the first three digits, padded (`.5` is 500 ms).
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    Some(((days_from_civil(y, mo, da) * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

/// A point in time: a duration ago (`15m`), an RFC 3339 time, or epoch
/// milliseconds, from 1970 to 9999.
pub fn time_param(text: &str, now: i64) -> Result<i64, String> {
    let ms = if let Ok(ms) = text.parse::<i64>() {
        ms
    } else if let Some(ms) = rfc3339_ms(text) {
        ms
    } else {
        flowlens_config::parse_duration(text)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .and_then(|ago| now.checked_sub(ago))
            .ok_or_else(|| {
                format!("`{text}` is not a time: use a duration ago (15m, 2h, 7d), an RFC 3339 time (2026-11-29T17:00:00Z) or epoch milliseconds")
            })?
    };
    if !(EARLIEST_MS..=LATEST_MS).contains(&ms) {
        return Err(format!(
            "`{text}` is outside the times the store keeps (epoch milliseconds {EARLIEST_MS} to {LATEST_MS}, 1970 to 9999)"
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_764_400_000_000;
        assert_eq!(time_param("15m", now), Ok(now - 900_000));
        assert_eq!(time_param("1764400000000", now), Ok(now));
        assert_eq!(time_param("2025-11-29T07:06:40Z", now), Ok(now));
        assert_eq!(time_param("2025-11-29T07:06:40.5Z", now), Ok(now + 500));
        assert!(
            time_param("yesterday", now)
                .unwrap_err()
                .contains("not a time")
        );
        assert!(time_param("2025-13-29T07:06:40Z", now).is_err());
    }

    #[test]
    fn hostile_times_are_errors_not_panics() {
        let now = 1_764_400_000_000;
        for text in [
            "2025-11-29T07:06:40.\u{e9}\u{e9}Z",
            "2025-11-29T07:06:40.5\u{1F600}Z",
            "\u{1F600}",
            "9223372036854775807",
            "-9223372036854775808",
            "-1",
            "99999999999999999999",
            "999999999-11-29T07:06:40Z",
            "2025-11-29T07:06:40:00Z",
            "100000000000s",
            "999999999999999999999999999d",
        ] {
            assert!(time_param(text, now).is_err(), "{text}");
        }
        assert_eq!(time_param("9999-12-31T23:59:59.999Z", now), Ok(LATEST_MS));
        assert_eq!(time_param("1970-01-01T00:00:00Z", now), Ok(0));
        assert!(time_param("1m", 0).is_err(), "before 1970");
    }
}
