//! Every documented bound of Sluice in one place: what a pipeline file may ask for
//! (checked by [`crate::config`]), how large a component file may be (checked where
//! plugins are opened), and how much of a plugin's report the runner keeps
//! ([`cap_report`], applied by the executor to every report it receives).
//!
//! The bounds exist so that a value that passes `sluice validate` is one the run can
//! hold: no timeout that overflows a clock, no id too long to be a file name, no
//! report that makes the runner hold or write hundreds of megabytes.

use std::time::Duration;

use crate::host::bindings::types;

/// Longest `timeout` a step may have: 7 days.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Longest `retry-delay` a step may have: 1 hour (it doubles on each further retry).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60 * 60);

/// Most retries a step may ask for.
pub const MAX_RETRIES: u32 = 10;

/// Smallest `memory` a step may have: 1 MiB.
pub const MIN_MEMORY: u64 = 1 << 20;

/// Largest `memory` a step may have: 256 GiB.
pub const MAX_MEMORY: u64 = 256 << 30;

/// Fewest `processes` (processes and threads of the step's native programs at once).
pub const MIN_PROCESSES: i64 = 1;

/// Most `processes` a step may allow.
pub const MAX_PROCESSES: i64 = 65_536;

/// Smallest `tmpdir-size` (the private TMPDIR of the step's native programs): 1 MiB.
pub const MIN_TMPDIR_SIZE: u64 = 1 << 20;

/// Largest `tmpdir-size`: 64 GiB.
pub const MAX_TMPDIR_SIZE: u64 = 64 << 30;

/// Longest step id, stage name and pipeline name, in characters. Step ids and stage
/// names become file names in the run's folder.
pub const MAX_NAME_CHARS: usize = 64;

/// Largest component file (`uses = "path.wasm"`) the runner reads: 512 MiB. The
/// Python example, the largest component we know of, is about 40 MiB.
pub const MAX_COMPONENT_BYTES: u64 = 512 << 20;

/// Largest compiled component the cache reads back: four times the largest source.
pub const MAX_COMPILED_BYTES: u64 = 4 * MAX_COMPONENT_BYTES;

/// Longest report summary kept: 4 KiB.
pub const MAX_SUMMARY_BYTES: usize = 4 << 10;

/// Longest finding message, test message and test output kept (also those of a flaky
/// test's failed attempts): 64 KiB each.
pub const MAX_MESSAGE_BYTES: usize = 64 << 10;

/// Longest output value (`outputs` of a report) kept: 1 MiB each.
pub const MAX_OUTPUT_VALUE_BYTES: usize = 1 << 20;

/// Most findings kept from one report.
pub const MAX_FINDINGS: usize = 100_000;

/// Most test cases kept from one report.
pub const MAX_TEST_CASES: usize = 100_000;

/// Why a size string is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("is not a size; write e.g. \"512MiB\" or \"2GiB\"")]
    NotASize,
    #[error("is too large to be a size")]
    Overflow,
}

/// Parse a size such as `512MiB`, `2GiB` or `1.5 GB`. A size that does not fit in 64
/// bits is an error, not a wrapped or saturated number.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u64>().is_err()
    {
        return Err(SizeError::Overflow);
    }
    let size = text
        .parse::<bytesize::ByteSize>()
        .map_err(|_| SizeError::NotASize)?
        .as_u64();
    // bytesize saturates on overflow; u64::MAX bytes is never a size anyone means.
    if size == u64::MAX && text != u64::MAX.to_string() {
        return Err(SizeError::Overflow);
    }
    Ok(size)
}

/// A size for messages, in the unit the user most likely wrote: `256GiB`, `1MiB`.
pub fn show_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Cut `s` to at most `max` bytes (at a char boundary) and append a marker saying how
/// many bytes were cut. Returns whether it cut anything.
pub fn truncate(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let removed = s.len() - cut;
    s.truncate(cut);
    s.shrink_to_fit();
    s.push_str(&format!(" … [truncated {removed} bytes]"));
    true
}

/// Apply the report caps to a plugin's report: cut the summary, messages, test
/// output and output values to their caps, and drop findings and test cases past
/// theirs. Returns one note per kind of cut, for the step's log.
pub fn cap_report(report: &mut types::Report) -> Vec<String> {
    let mut notes = Vec::new();
    let summary_len = report.summary.len();
    if truncate(&mut report.summary, MAX_SUMMARY_BYTES) {
        notes.push(format!(
            "the report's summary ({summary_len} bytes) was cut to {}",
            show_size(MAX_SUMMARY_BYTES as u64)
        ));
    }
    if report.findings.len() > MAX_FINDINGS {
        notes.push(format!(
            "the report has {} findings; only the first {MAX_FINDINGS} are kept",
            report.findings.len()
        ));
        report.findings.truncate(MAX_FINDINGS);
        report.findings.shrink_to_fit();
    }
    let mut cut = 0;
    for f in &mut report.findings {
        cut += usize::from(truncate(&mut f.message, MAX_MESSAGE_BYTES));
    }
    if cut > 0 {
        notes.push(format!(
            "finding messages cut to {}: {cut}",
            show_size(MAX_MESSAGE_BYTES as u64)
        ));
    }
    if report.test_cases.len() > MAX_TEST_CASES {
        notes.push(format!(
            "the report has {} test cases; only the first {MAX_TEST_CASES} are kept",
            report.test_cases.len()
        ));
        report.test_cases.truncate(MAX_TEST_CASES);
        report.test_cases.shrink_to_fit();
    }
    let mut cut = 0;
    for t in &mut report.test_cases {
        for text in [&mut t.message, &mut t.output].into_iter().flatten() {
            cut += usize::from(truncate(text, MAX_MESSAGE_BYTES));
        }
        for a in &mut t.flaky_attempts {
            cut += usize::from(truncate(&mut a.message, MAX_MESSAGE_BYTES));
            cut += usize::from(truncate(&mut a.output, MAX_MESSAGE_BYTES));
        }
    }
    if cut > 0 {
        notes.push(format!(
            "test messages and outputs cut to {}: {cut}",
            show_size(MAX_MESSAGE_BYTES as u64)
        ));
    }
    for (name, value) in &mut report.outputs {
        let len = value.len();
        if truncate(value, MAX_OUTPUT_VALUE_BYTES) {
            notes.push(format!(
                "output `{name}` ({len} bytes) was cut to {}",
                show_size(MAX_OUTPUT_VALUE_BYTES as u64)
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_overflow_is_an_error() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("99999999TiB"), Err(SizeError::Overflow));
        assert_eq!(parse_size("99999999999999999999"), Err(SizeError::Overflow));
        assert_eq!(parse_size("lots"), Err(SizeError::NotASize));
    }

    #[test]
    fn truncation_cuts_at_a_char_boundary() {
        let mut s = "ééé".to_string();
        assert!(truncate(&mut s, 3));
        assert_eq!(s, "é … [truncated 4 bytes]");
        let mut short = "abc".to_string();
        assert!(!truncate(&mut short, 3));
        assert_eq!(short, "abc");
    }

    fn report() -> types::Report {
        types::Report {
            status: types::Status::Passed,
            summary: "ok".into(),
            findings: vec![],
            test_cases: vec![],
            metrics: vec![],
            data_points: vec![],
            artifacts: vec![],
            outputs: vec![],
        }
    }

    #[test]
    fn a_report_within_the_caps_is_untouched() {
        let mut r = report();
        r.outputs
            .push(("v".into(), "x".repeat(MAX_OUTPUT_VALUE_BYTES)));
        assert!(cap_report(&mut r).is_empty());
        assert_eq!(r.outputs[0].1.len(), MAX_OUTPUT_VALUE_BYTES);
    }

    #[test]
    fn every_cap_applies() {
        let finding = types::Finding {
            rule_id: "r".into(),
            severity: types::Severity::Low,
            message: "m".into(),
            location: None,
            fingerprint: "f".into(),
            security_severity: None,
            help_uri: None,
            properties: vec![],
        };
        let case = types::TestCase {
            suite: "s".into(),
            name: "t".into(),
            status: types::TestStatus::Flaky,
            duration_ms: 1,
            message: Some("m".into()),
            output: Some("o".into()),
            flaky_attempts: vec![types::TestAttempt {
                message: "a".into(),
                output: "o".into(),
                duration_ms: 1,
            }],
        };
        let mut r = report();
        r.summary = "s".repeat(MAX_SUMMARY_BYTES + 10);
        r.findings = vec![finding; MAX_FINDINGS + 3];
        r.test_cases = vec![case; MAX_TEST_CASES + 2];
        // Long texts only where they are kept (the first entries): clones are cheap.
        r.findings[1].message = "m".repeat(MAX_MESSAGE_BYTES + 1);
        r.test_cases[0].message = Some("m".repeat(MAX_MESSAGE_BYTES + 5));
        r.test_cases[2].flaky_attempts[0].output = "o".repeat(MAX_MESSAGE_BYTES + 1);
        r.test_cases[MAX_TEST_CASES + 1].output = Some("o".repeat(MAX_MESSAGE_BYTES + 1));
        r.outputs
            .push(("big".into(), "x".repeat(MAX_OUTPUT_VALUE_BYTES + 7)));
        let notes = cap_report(&mut r);
        assert_eq!(
            notes,
            [
                "the report's summary (4106 bytes) was cut to 4KiB",
                "the report has 100003 findings; only the first 100000 are kept",
                "finding messages cut to 64KiB: 1",
                "the report has 100002 test cases; only the first 100000 are kept",
                "test messages and outputs cut to 64KiB: 2",
                "output `big` (1048583 bytes) was cut to 1MiB",
            ]
        );
        assert_eq!(
            r.summary,
            format!("{} … [truncated 10 bytes]", "s".repeat(MAX_SUMMARY_BYTES))
        );
        assert_eq!(r.findings.len(), MAX_FINDINGS);
        assert_eq!(r.test_cases.len(), MAX_TEST_CASES);
        assert!(
            r.test_cases[0]
                .message
                .as_ref()
                .unwrap()
                .ends_with("[truncated 5 bytes]")
        );
        assert_eq!(r.test_cases[0].output.as_deref(), Some("o"));
        assert!(r.outputs[0].1.ends_with("[truncated 7 bytes]"));
    }

    #[test]
    fn sizes_show_in_their_unit() {
        assert_eq!(show_size(MAX_MEMORY), "256GiB");
        assert_eq!(show_size(MIN_MEMORY), "1MiB");
        assert_eq!(show_size(4 << 10), "4KiB");
        assert_eq!(show_size(1000), "1000B");
    }
}
