//! Durations as a pipeline writes them: `"30s"`, `"1m30s"`, `"500ms"`, `"2h"`, `"1.5s"`.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{key}: \"{text}\" is not a duration: {problem}; write e.g. \"30s\", \"1m30s\", \"500ms\" (units: ms, s, m, h)"
)]
pub struct DurationError {
    /// The configuration key the text came from.
    pub key: String,
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Reads a duration written as one or more `<number><unit>` parts (`ms`, `s`, `m`, `h`).
pub fn parse_duration(key: &str, text: &str) -> Result<Duration, DurationError> {
    let fail = |problem: &str| DurationError {
        key: key.to_string(),
        text: text.to_string(),
        problem: problem.to_string(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| fail("the last number has no unit"))?;
        if number_len == 0 {
            return Err(fail("a unit has no number before it"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| fail("a number is malformed"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(fail(&format!("unknown unit \"{other}\""))),
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    if !total.is_finite() || total > 366.0 * 24.0 * 3600.0 {
        return Err(fail("it is longer than a year"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units_and_compounds() {
        assert_eq!(parse_duration("d", "30s").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_duration("d", "1m30s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration("d", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_duration("d", "1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration("d", "2h").unwrap(),
            Duration::from_secs(7200)
        );
        assert_eq!(parse_duration("d", "0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn errors_name_the_key_and_the_fault() {
        let e = parse_duration("warm-up", "30").unwrap_err().to_string();
        assert!(e.contains("warm-up") && e.contains("no unit"), "{e}");
        let e = parse_duration("duration", "3 days")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown unit"), "{e}");
        assert!(parse_duration("d", "s").is_err());
        assert!(parse_duration("d", "").is_err());
    }
}
