//! Durations written the way pipeline files write them (`250ms`, `30s`, `5m`, `1h30m`):
//! [`parse_duration`] and [`HumanDuration`], a `Duration` that configuration structs
//! can deserialize, describe in their JSON Schema, and print back compactly.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Parse `250ms`, `30s`, `1.5s`, `5m`, `2h` or a sequence such as `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration `{text}`: write a number followed by ms, s, m or h, e.g. `30s`, `5m` or `1h30m`"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| invalid())?;
        rest = after;
    }
    Ok(total)
}

/// A [`Duration`] that deserializes from text such as `"30s"` and prints the same way.
///
/// ```
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Config {
///     /// Give up after this long, e.g. `30s` or `5m`.
///     timeout: Option<sluice_sdk::HumanDuration>,
/// }
/// let config: Config = serde_json::from_str(r#"{"timeout":"1m30s"}"#).unwrap();
/// assert_eq!(config.timeout.unwrap().0, std::time::Duration::from_secs(90));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl From<HumanDuration> for Duration {
    fn from(duration: HumanDuration) -> Self {
        duration.0
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_duration(text).map(HumanDuration)
    }
}

/// Compact form: `350ms`, `1.2s`, `45s`, `1m30s`, `2h5m`.
impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis < 1000 {
            return write!(f, "{millis}ms");
        }
        if millis < 60_000 {
            let tenths = (millis + 50) / 100;
            return if tenths.is_multiple_of(10) {
                write!(f, "{}s", tenths / 10)
            } else {
                write!(f, "{}.{}s", tenths / 10, tenths % 10)
            };
        }
        let seconds = self.0.as_secs();
        let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
        match (hours, minutes, seconds) {
            (0, m, 0) => write!(f, "{m}m"),
            (0, m, s) => write!(f, "{m}m{s}s"),
            (h, 0, _) => write!(f, "{h}h"),
            (h, m, _) => write!(f, "{h}h{m}m"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h))+\s*$",
            "description": "A duration: a number followed by ms, s, m or h, e.g. `30s`, `5m` or `1h30m`.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sequences() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "30", "5 minutes", "s", "1d", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn prints_compactly() {
        let show = |ms| HumanDuration(Duration::from_millis(ms)).to_string();
        assert_eq!(show(350), "350ms");
        assert_eq!(show(1200), "1.2s");
        assert_eq!(show(45_000), "45s");
        assert_eq!(show(90_000), "1m30s");
        assert_eq!(show(300_000), "5m");
        assert_eq!(show(7_500_000), "2h5m");
    }
}
