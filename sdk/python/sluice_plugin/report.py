"""What a step reports, as plain Python: builders with defaults for the report, its
findings and their locations. `sluice_plugin.component` turns them into the contract's
types; natively (in unit tests) they are ordinary dataclasses to assert on."""

from dataclasses import dataclass, field
from enum import Enum


class Status(Enum):
    """Outcome of a step."""

    PASSED = "passed"
    FAILED = "failed"
    #: Passed, with something a person should look at.
    WARNED = "warned"
    #: Did not apply (for example, nothing to scan).
    SKIPPED = "skipped"


class Severity(Enum):
    """How bad a finding is (SARIF: info and low are notes, medium a warning, high and
    critical errors)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Capability(Enum):
    """What a plugin may ask for; the pipeline still grants each."""

    READ_FILES = "read-files"
    WRITE_FILES = "write-files"
    EXEC = "exec"
    NETWORK = "network"
    ENV = "env"


@dataclass
class Location:
    """Where a finding is: a path relative to the pipeline's folder, 1-based lines and
    columns (the end inclusive)."""

    path: str
    line: "int | None" = None
    column: "int | None" = None
    end_line: "int | None" = None
    end_column: "int | None" = None


@dataclass
class Finding:
    """One problem a step found. Leave `fingerprint` empty: the helper computes it when
    the plugin returns (see `sluice_plugin.fingerprint`)."""

    rule_id: str
    message: str
    severity: Severity = Severity.MEDIUM
    location: "Location | None" = None
    fingerprint: str = ""
    security_severity: "float | None" = None
    help_uri: "str | None" = None
    properties: list = field(default_factory=list)

    def at(self, path, line=None, column=None, end_line=None, end_column=None):
        """Place the finding in a file; returns the finding, for chaining."""
        self.location = Location(path, line, column, end_line, end_column)
        return self

    def with_property(self, name, value):
        """Add a `name`, `value` fact (a SARIF property)."""
        self.properties.append((str(name), str(value)))
        return self


@dataclass
class Metric:
    """A measurement, e.g. `latency.p99` = 12.5 `ms`."""

    name: str
    value: float
    unit: str = ""
    tags: list = field(default_factory=list)


@dataclass
class TestCase:
    """One test a step ran."""

    __test__ = False  # not a pytest test class

    suite: str
    name: str
    status: str = "passed"  # passed, failed, skipped, flaky
    duration_ms: int = 0
    message: "str | None" = None
    output: "str | None" = None


@dataclass
class ArtifactFile:
    """A file the step produced (the host computes its digest and size)."""

    path: str
    media_type: str = "application/octet-stream"
    name: "str | None" = None
    version: "str | None" = None


@dataclass
class Report:
    """What a step reports when it ran to the end, whatever its status."""

    status: Status = Status.PASSED
    summary: str = ""
    findings: list = field(default_factory=list)
    test_cases: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    artifacts: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    @classmethod
    def passed(cls, summary):
        return cls(Status.PASSED, summary)

    @classmethod
    def warned(cls, summary):
        return cls(Status.WARNED, summary)

    @classmethod
    def failed(cls, summary):
        return cls(Status.FAILED, summary)

    @classmethod
    def skipped(cls, summary):
        return cls(Status.SKIPPED, summary)

    def with_finding(self, finding):
        self.findings.append(finding)
        return self

    def with_findings(self, findings):
        self.findings.extend(findings)
        return self

    def with_metric(self, metric):
        self.metrics.append(metric)
        return self

    def with_output(self, name, value):
        """A named value for later steps (`value` is turned into text)."""
        self.outputs.append((str(name), str(value)))
        return self

    def output(self, name):
        """The output called `name`, or None."""
        return next((value for key, value in self.outputs if key == name), None)
