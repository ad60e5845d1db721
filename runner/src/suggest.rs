//! "Did you mean" for names a person typed: the closest of the accepted names, when
//! one is close enough to be the likely intent (Jaro similarity above 0.7, clap's rule
//! for mistyped subcommands), and the serde "unknown field" messages completed with it.

/// How similar (Jaro, 0..=1) a candidate must be to be suggested.
const THRESHOLD: f64 = 0.7;

/// The candidate `typed` most likely meant, if any is close enough.
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed_lower = typed.to_ascii_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        if candidate == typed {
            continue;
        }
        let score = strsim::jaro(&typed_lower, &candidate.to_ascii_lowercase());
        if score > THRESHOLD && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// A serde "unknown field `x`, expected one of `a`, `b`" (or "unknown variant")
/// message with "; did you mean `a`?" added when one of the expected names is close.
/// Any other message comes back unchanged.
pub fn complete_unknown_name(message: &str) -> String {
    let Some((typed, expected)) = unknown_name(message) else {
        return message.to_string();
    };
    match closest(typed, expected.iter().copied()) {
        Some(meant) => format!("{message}; did you mean `{meant}`?"),
        None => message.to_string(),
    }
}

/// The typed name and the expected names of a serde unknown-field/variant message.
fn unknown_name(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (typed, rest) = rest.split_once('`')?;
    let list = rest
        .strip_prefix(", expected one of ")
        .or_else(|| rest.strip_prefix(", expected "))?;
    // The list is the rest of the first line: `a`, `b`, `c` (or `a` or `b`).
    let list = list.lines().next().unwrap_or("");
    let expected: Vec<&str> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty())
        .collect();
    (!expected.is_empty()).then_some((typed, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let keys = ["timeout", "retries", "retry-delay", "memory"];
        assert_eq!(closest("retrys", keys), Some("retries"));
        assert_eq!(closest("timout", keys), Some("timeout"));
        assert_eq!(closest("Memory", keys), Some("memory"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("timeout", ["timeout"]), None);
    }

    #[test]
    fn serde_unknown_field_messages_gain_a_suggestion() {
        assert_eq!(
            complete_unknown_name(
                "unknown field `retrys`, expected one of `id`, `uses`, `retries`, `retry-delay`"
            ),
            "unknown field `retrys`, expected one of `id`, `uses`, `retries`, `retry-delay`; \
             did you mean `retries`?"
        );
        assert_eq!(
            complete_unknown_name("unknown variant `nod`, expected `node` or `go`"),
            "unknown variant `nod`, expected `node` or `go`; did you mean `node`?"
        );
        let far = "unknown field `zzz`, expected one of `id`, `uses`";
        assert_eq!(complete_unknown_name(far), far);
        assert_eq!(
            complete_unknown_name("invalid type: string"),
            "invalid type: string"
        );
    }
}
