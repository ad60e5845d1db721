//! Builders on the contract's report types: [`Report`], [`Finding`], [`TestCase`],
//! [`Metric`], [`DataPoint`] and [`RunError`], so that a plugin can say
//! `Report::failed("2 files over budget").with_finding(...)` instead of spelling out
//! every field of the generated records.

use std::fmt::Display;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{
    ArtifactFile, DataPoint, Finding, Location, Metric, Report, RunError, Severity, Status,
    TestAttempt, TestCase, TestStatus,
};

impl Status {
    /// The worse of two statuses, ranking `skipped` < `passed` < `warned` < `failed`.
    /// Handy to escalate a report as problems turn up:
    /// `status = status.worse(Status::Warned)`.
    pub fn worse(self, other: Status) -> Status {
        fn rank(status: Status) -> u8 {
            match status {
                Status::Skipped => 0,
                Status::Passed => 1,
                Status::Warned => 2,
                Status::Failed => 3,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl Severity {
    /// Rank from `info` (0) to `critical` (4), for sorting and thresholds:
    /// `finding.severity.rank() >= fail_on.rank()`.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High => 3,
            Severity::Critical => 4,
        }
    }
}

impl Report {
    /// An empty report with the given status and one-line summary.
    pub fn new(status: Status, summary: impl Into<String>) -> Self {
        Report {
            status,
            summary: summary.into(),
            findings: Vec::new(),
            test_cases: Vec::new(),
            metrics: Vec::new(),
            data_points: Vec::new(),
            artifacts: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// The step passed.
    pub fn passed(summary: impl Into<String>) -> Self {
        Self::new(Status::Passed, summary)
    }

    /// The step ran to the end and found the change unacceptable.
    pub fn failed(summary: impl Into<String>) -> Self {
        Self::new(Status::Failed, summary)
    }

    /// The step passed, with something a person should look at.
    pub fn warned(summary: impl Into<String>) -> Self {
        Self::new(Status::Warned, summary)
    }

    /// The step did not apply (for example, nothing to scan).
    pub fn skipped(summary: impl Into<String>) -> Self {
        Self::new(Status::Skipped, summary)
    }

    /// Replace the status.
    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// Replace the summary.
    pub fn with_summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = summary.into();
        self
    }

    /// Add a finding.
    pub fn with_finding(mut self, finding: Finding) -> Self {
        self.findings.push(finding);
        self
    }

    /// Add several findings.
    pub fn with_findings(mut self, findings: impl IntoIterator<Item = Finding>) -> Self {
        self.findings.extend(findings);
        self
    }

    /// Add a test case.
    pub fn with_test_case(mut self, test_case: TestCase) -> Self {
        self.test_cases.push(test_case);
        self
    }

    /// Add several test cases.
    pub fn with_test_cases(mut self, test_cases: impl IntoIterator<Item = TestCase>) -> Self {
        self.test_cases.extend(test_cases);
        self
    }

    /// Add a metric.
    pub fn with_metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// Add several metrics.
    pub fn with_metrics(mut self, metrics: impl IntoIterator<Item = Metric>) -> Self {
        self.metrics.extend(metrics);
        self
    }

    /// Add a data point.
    pub fn with_data_point(mut self, data_point: DataPoint) -> Self {
        self.data_points.push(data_point);
        self
    }

    /// Add several data points.
    pub fn with_data_points(mut self, data_points: impl IntoIterator<Item = DataPoint>) -> Self {
        self.data_points.extend(data_points);
        self
    }

    /// Declare a file the step produced, relative to the pipeline's folder (or absolute
    /// inside a write grant), e.g. `with_artifact("sbom.json", "application/vnd.cyclonedx+json")`.
    /// The host computes its digest and size, and rejects paths outside the grants.
    pub fn with_artifact(mut self, path: impl Into<String>, media_type: impl Into<String>) -> Self {
        self.artifacts.push(ArtifactFile {
            path: path.into(),
            media_type: media_type.into(),
            name: None,
            version: None,
        });
        self
    }

    /// Declare a deliverable the step produced (a binary, a package) with its name and
    /// version. The first one with a version in a run becomes the run's artifact under
    /// test, which later steps see in [`StepContext::artifact`](crate::StepContext::artifact).
    pub fn with_deliverable(
        mut self,
        path: impl Into<String>,
        media_type: impl Into<String>,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        self.artifacts.push(ArtifactFile {
            path: path.into(),
            media_type: media_type.into(),
            name: Some(name.into()),
            version: Some(version.into()),
        });
        self
    }

    /// Publish a named value for later steps. Publishing the same name again replaces
    /// the earlier value.
    pub fn with_output(mut self, name: impl Into<String>, value: impl Display) -> Self {
        let name = name.into();
        let value = value.to_string();
        match self
            .outputs
            .iter_mut()
            .find(|(existing, _)| *existing == name)
        {
            Some(slot) => slot.1 = value,
            None => self.outputs.push((name, value)),
        }
        self
    }

    /// The value published as `name`, if any.
    pub fn output(&self, name: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.as_str())
    }

    /// Give every finding without a fingerprint of its own its automatic one, reading
    /// the lines the findings point at from `workdir` (the pipeline's folder): see
    /// [`crate::fingerprint`]. [`run_plugin`](crate::run_plugin) calls it once the
    /// plugin returns.
    pub fn assign_fingerprints(&mut self, workdir: &std::path::Path) {
        crate::fingerprint::assign(&mut self.findings, workdir);
    }
}

impl Location {
    /// A whole file, relative to the pipeline's folder.
    pub fn file(path: impl Into<String>) -> Self {
        Location {
            path: path.into(),
            line: None,
            column: None,
            end_line: None,
            end_column: None,
        }
    }
}

impl Finding {
    /// The first `limit` of `findings`, worst first (then by file, line and column),
    /// one a line as `file:line:col severity rule message`, and "and N more": what a
    /// failed analysis step's summary shows on the console instead of a tool's raw
    /// output.
    pub fn listing(findings: &[Finding], limit: usize) -> String {
        let names = ["info", "low", "medium", "high", "critical"];
        let position = |f: &Finding| {
            f.location.as_ref().map_or((String::new(), 0, 0), |l| {
                (l.path.clone(), l.line.unwrap_or(0), l.column.unwrap_or(0))
            })
        };
        let mut sorted: Vec<&Finding> = findings.iter().collect();
        sorted.sort_by(|a, b| {
            b.severity
                .rank()
                .cmp(&a.severity.rank())
                .then_with(|| position(a).cmp(&position(b)))
        });
        let mut lines: Vec<String> = sorted
            .iter()
            .take(limit)
            .map(|finding| {
                let place = match &finding.location {
                    None => String::from("-"),
                    Some(location) => {
                        let mut place = location.path.clone();
                        for number in [location.line, location.column].into_iter().flatten() {
                            place.push_str(&format!(":{number}"));
                        }
                        place
                    }
                };
                let message = finding.message.lines().next().unwrap_or_default();
                format!(
                    "{place} {} {} {message}",
                    names[finding.severity.rank() as usize],
                    finding.rule_id
                )
            })
            .collect();
        if findings.len() > limit {
            lines.push(format!("and {} more", findings.len() - limit));
        }
        lines.join("\n")
    }

    /// A finding of rule `rule_id` (e.g. `clippy::needless_return`), without a location.
    /// Unless [`with_fingerprint`](Self::with_fingerprint) sets one, it gets its automatic
    /// fingerprint when the plugin returns (from the rule, the path and the text of the
    /// finding's line, plus an occurrence index: see [`crate::fingerprint`]); until
    /// then it carries a provisional one.
    pub fn new(rule_id: impl Into<String>, severity: Severity, message: impl Into<String>) -> Self {
        let rule_id = rule_id.into();
        let message = message.into();
        let fingerprint = Self::automatic_fingerprint(&rule_id, None, &message);
        Finding {
            rule_id,
            severity,
            message,
            location: None,
            fingerprint,
            security_severity: None,
            help_uri: None,
            properties: Vec::new(),
        }
    }

    /// Place the finding in a file (relative to the pipeline's folder), optionally at a
    /// 1-based line and column: `.at("src/lib.rs", 12, 5)` or `.at("Cargo.lock", None, None)`.
    pub fn at(
        mut self,
        path: impl Into<String>,
        line: impl Into<Option<u32>>,
        column: impl Into<Option<u32>>,
    ) -> Self {
        let automatic = self.has_automatic_fingerprint();
        let end = self
            .location
            .take()
            .map(|old| (old.end_line, old.end_column))
            .unwrap_or_default();
        self.location = Some(Location {
            path: path.into(),
            line: line.into(),
            column: column.into(),
            end_line: end.0,
            end_column: end.1,
        });
        if automatic {
            self.refresh_automatic_fingerprint();
        }
        self
    }

    /// Set where the finding ends (1-based, inclusive), after [`at`](Self::at).
    pub fn with_end(
        mut self,
        end_line: impl Into<Option<u32>>,
        end_column: impl Into<Option<u32>>,
    ) -> Self {
        if let Some(location) = &mut self.location {
            location.end_line = end_line.into();
            location.end_column = end_column.into();
        }
        self
    }

    /// Use this fingerprint instead of the automatic one, e.g. a scanner's own stable id.
    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = fingerprint.into();
        self
    }

    /// CVSS base score (0.0 to 10.0), for security findings.
    pub fn with_security_severity(mut self, score: f64) -> Self {
        self.security_severity = Some(score.clamp(0.0, 10.0));
        self
    }

    /// A page that explains the rule and how to fix it.
    pub fn with_help_uri(mut self, uri: impl Into<String>) -> Self {
        self.help_uri = Some(uri.into());
        self
    }

    /// Attach a further fact (e.g. `aliases`, `fixed-versions`, `purl`); it becomes part
    /// of the SARIF result's property bag. Setting a name again replaces its value.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        let value = value.into();
        match self.properties.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.properties.push((name, value)),
        }
        self
    }

    /// 64-bit FNV-1a of the rule id, the path and `identity`, as 16 hex digits: a stable
    /// id for a finding whose identity is not a place in a file (e.g. an advisory for a
    /// package: `automatic_fingerprint(id, Some("Cargo.lock"), purl)`), to pass to
    /// [`with_fingerprint`](Self::with_fingerprint). With the message as `identity` it
    /// is the provisional fingerprint [`Finding::new`] gives.
    pub fn automatic_fingerprint(rule_id: &str, path: Option<&str>, identity: &str) -> String {
        crate::fingerprint::fnv1a(&[
            rule_id.as_bytes(),
            path.unwrap_or("").as_bytes(),
            identity.as_bytes(),
        ])
    }

    /// The fingerprint [`Finding::new`] gives until the automatic one replaces it.
    pub(crate) fn provisional_fingerprint(&self) -> String {
        Self::automatic_fingerprint(
            &self.rule_id,
            self.location
                .as_ref()
                .map(|location| location.path.as_str()),
            &self.message,
        )
    }

    fn has_automatic_fingerprint(&self) -> bool {
        self.fingerprint.is_empty() || self.fingerprint == self.provisional_fingerprint()
    }

    fn refresh_automatic_fingerprint(&mut self) {
        self.fingerprint = self.provisional_fingerprint();
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl TestCase {
    /// A test case with the given status and no details.
    pub fn new(suite: impl Into<String>, name: impl Into<String>, status: TestStatus) -> Self {
        TestCase {
            suite: suite.into(),
            name: name.into(),
            status,
            duration_ms: 0,
            message: None,
            output: None,
            flaky_attempts: Vec::new(),
        }
    }

    /// A test that passed.
    pub fn passed(suite: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(suite, name, TestStatus::Passed)
    }

    /// A test that failed; say why with [`with_message`](Self::with_message).
    pub fn failed(suite: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(suite, name, TestStatus::Failed)
    }

    /// A test that did not run; say why with [`with_message`](Self::with_message).
    pub fn skipped(suite: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(suite, name, TestStatus::Skipped)
    }

    /// A test that failed at least once and then passed on a retry; add the failed
    /// attempts with [`with_flaky_attempt`](Self::with_flaky_attempt).
    pub fn flaky(suite: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(suite, name, TestStatus::Flaky)
    }

    /// How long the (last) attempt took.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration_ms = millis(duration);
        self
    }

    /// The failure or skip reason.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The test's captured output.
    pub fn with_output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }

    /// Record a failed attempt of a flaky test (oldest first).
    pub fn with_flaky_attempt(mut self, attempt: TestAttempt) -> Self {
        self.flaky_attempts.push(attempt);
        self
    }
}

impl TestAttempt {
    /// A failed attempt: its failure message, captured output and duration.
    pub fn new(message: impl Into<String>, output: impl Into<String>, duration: Duration) -> Self {
        TestAttempt {
            message: message.into(),
            output: output.into(),
            duration_ms: millis(duration),
        }
    }
}

impl Metric {
    /// A measurement, e.g. `Metric::new("latency.p99", 12.5, "ms")`.
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: unit.into(),
            tags: Vec::new(),
        }
    }

    /// Add a `key`, `value` tag, e.g. `.tag("path", "target/app.wasm")`.
    pub fn tag(mut self, key: impl Into<String>, value: impl Display) -> Self {
        self.tags.push((key.into(), value.to_string()));
        self
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

impl DataPoint {
    /// A good observation (e.g. a synthetic request that succeeded), stamped now.
    pub fn positive(name: impl Into<String>, detail: impl Into<String>) -> Self {
        DataPoint {
            name: name.into(),
            positive: true,
            timestamp_ms: now_unix_ms(),
            detail: detail.into(),
        }
    }

    /// A bad observation (e.g. a synthetic request that failed), stamped now.
    pub fn negative(name: impl Into<String>, detail: impl Into<String>) -> Self {
        DataPoint {
            name: name.into(),
            positive: false,
            timestamp_ms: now_unix_ms(),
            detail: detail.into(),
        }
    }

    /// Stamp the observation with another time than now.
    pub fn at_time(mut self, time: SystemTime) -> Self {
        self.timestamp_ms = time.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0);
        self
    }
}

impl RunError {
    /// The configuration made no sense, even though it matched the schema.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        RunError::InvalidConfig(message.into())
    }

    /// The step needed access it was not granted; say which grant is missing.
    pub fn denied(message: impl Into<String>) -> Self {
        RunError::Denied(message.into())
    }

    /// Anything else that kept the step from producing a report.
    pub fn failed(message: impl Into<String>) -> Self {
        RunError::Failed(message.into())
    }

    /// The error's text, without the variant.
    pub fn message(&self) -> &str {
        match self {
            RunError::InvalidConfig(message)
            | RunError::Denied(message)
            | RunError::Failed(message) => message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisional_fingerprint_is_stable_and_follows_the_path() {
        let bare = Finding::new("rule", Severity::Low, "msg");
        assert_eq!(
            bare.fingerprint,
            Finding::automatic_fingerprint("rule", None, "msg")
        );
        let placed = bare.clone().at("src/lib.rs", 3, 4);
        assert_ne!(placed.fingerprint, bare.fingerprint);
        // The line is not part of it.
        assert_eq!(
            placed.fingerprint,
            bare.clone().at("src/lib.rs", 99, None).fingerprint
        );
        // Known value, so that a change to the hash shows up here.
        assert_eq!(placed.fingerprint, "41065994df997621");
        assert_ne!(
            Finding::automatic_fingerprint("ab", None, "c"),
            Finding::automatic_fingerprint("a", None, "bc")
        );
    }

    #[test]
    fn explicit_fingerprint_survives_relocation() {
        let finding = Finding::new("rule", Severity::High, "msg")
            .with_fingerprint("abc")
            .at("x", None, None);
        assert_eq!(finding.fingerprint, "abc");
    }

    #[test]
    fn end_position_is_kept_when_moving() {
        let finding = Finding::new("r", Severity::Info, "m")
            .at("a", 1, 1)
            .with_end(2, 5)
            .at("b", 1, 1);
        let location = finding.location.unwrap();
        assert_eq!(
            (
                location.path.as_str(),
                location.end_line,
                location.end_column
            ),
            ("b", Some(2), Some(5))
        );
    }

    #[test]
    fn outputs_replace_earlier_values() {
        let report = Report::passed("ok")
            .with_output("n", 1)
            .with_output("m", "x")
            .with_output("n", 2);
        assert_eq!(
            report.outputs,
            vec![("n".into(), "2".into()), ("m".into(), "x".into())]
        );
        assert_eq!(report.output("n"), Some("2"));
    }

    #[test]
    fn status_escalates() {
        assert_eq!(Status::Passed.worse(Status::Warned), Status::Warned);
        assert_eq!(Status::Failed.worse(Status::Warned), Status::Failed);
        assert_eq!(Status::Skipped.worse(Status::Passed), Status::Passed);
    }

    #[test]
    fn builders_fill_the_records() {
        let test = TestCase::failed("unit", "adds")
            .with_message("1 != 2")
            .with_duration(Duration::from_millis(1500));
        assert_eq!(
            (test.status, test.duration_ms, test.message.as_deref()),
            (TestStatus::Failed, 1500, Some("1 != 2"))
        );
        let metric = Metric::new("file.size", 10.0, "bytes").tag("path", "a");
        assert_eq!(metric.tags, vec![("path".into(), "a".into())]);
        let point = DataPoint::negative("probe", "timeout");
        assert!(!point.positive && point.timestamp_ms > 1_600_000_000_000);
    }
}
