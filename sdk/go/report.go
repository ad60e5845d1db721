package sluice

import "fmt"

// Status is the outcome of a step that ran to the end.
type Status int

const (
	// StatusPassed: nothing to report.
	StatusPassed Status = iota
	// StatusFailed: the step failed (the pipeline stops, unless told otherwise).
	StatusFailed
	// StatusWarned: passed, with something a person should look at.
	StatusWarned
	// StatusSkipped: did not apply (for example, nothing to scan).
	StatusSkipped
)

// String is the contract's name of the status.
func (s Status) String() string {
	switch s {
	case StatusPassed:
		return "passed"
	case StatusFailed:
		return "failed"
	case StatusWarned:
		return "warned"
	case StatusSkipped:
		return "skipped"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Severity says how bad a finding is (info and low become SARIF `note`, medium
// `warning`, high and critical `error`).
type Severity int

const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

// String is the contract's name of the severity.
func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityLow:
		return "low"
	case SeverityMedium:
		return "medium"
	case SeverityHigh:
		return "high"
	case SeverityCritical:
		return "critical"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// Location is where a finding is: a path relative to the pipeline's folder and
// 1-based lines and columns; 0 means "not known". The end is inclusive.
type Location struct {
	Path      string
	Line      uint32
	Column    uint32
	EndLine   uint32
	EndColumn uint32
}

// Property is one of a finding's further facts (`aliases`, `purl`...).
type Property struct {
	Name, Value string
}

// Finding is one problem a step found. Build it with NewFinding and its With*
// methods; leave Fingerprint empty to get the contract's automatic one.
type Finding struct {
	RuleID   string
	Severity Severity
	Message  string
	// Location is nil when the finding is not about a place in a file.
	Location *Location
	// Fingerprint: empty means "compute it" (Run does, with the contract's algorithm).
	Fingerprint string
	// SecuritySeverity is a CVSS base score (0.0 to 10.0), nil when unknown.
	SecuritySeverity *float64
	// HelpURI is empty when there is none.
	HelpURI    string
	Properties []Property
}

// NewFinding is a finding of rule ruleID with no location.
func NewFinding(ruleID string, severity Severity, message string) *Finding {
	return &Finding{RuleID: ruleID, Severity: severity, Message: message}
}

// At places the finding at 1-based line and column of path (0: unknown).
func (f *Finding) At(path string, line, column uint32) *Finding {
	f.Location = &Location{Path: path, Line: line, Column: column}
	return f
}

// InFile places the finding in path, without a line.
func (f *Finding) InFile(path string) *Finding {
	f.Location = &Location{Path: path}
	return f
}

// WithEnd sets the inclusive end of the finding's location (At first).
func (f *Finding) WithEnd(line, column uint32) *Finding {
	if f.Location == nil {
		f.Location = &Location{}
	}
	f.Location.EndLine, f.Location.EndColumn = line, column
	return f
}

// WithFingerprint sets a fingerprint of the plugin's own (a scanner's id), kept as is.
func (f *Finding) WithFingerprint(fingerprint string) *Finding {
	f.Fingerprint = fingerprint
	return f
}

// WithSecuritySeverity sets the CVSS base score.
func (f *Finding) WithSecuritySeverity(score float64) *Finding {
	f.SecuritySeverity = &score
	return f
}

// WithHelpURI links the rule's documentation.
func (f *Finding) WithHelpURI(uri string) *Finding {
	f.HelpURI = uri
	return f
}

// WithProperty adds a fact to the finding's SARIF property bag.
func (f *Finding) WithProperty(name, value string) *Finding {
	f.Properties = append(f.Properties, Property{name, value})
	return f
}

// Metric is a measurement, e.g. `latency.p99` = 12.5 `ms`.
type Metric struct {
	Name  string
	Value float64
	Unit  string
	Tags  []Property
}

// ArtifactFile is a file the step produced (the host computes its digest and size).
type ArtifactFile struct {
	Path      string
	MediaType string
}

// Output is a named value for later steps.
type Output struct {
	Name, Value string
}

// Report is what a step reports when it ran to the end, whatever its status. Build
// it with Passed, Warned, Failed or Skipped and the With* methods.
type Report struct {
	Status    Status
	Summary   string
	Findings  []*Finding
	Metrics   []Metric
	Artifacts []ArtifactFile
	Outputs   []Output
}

// NewReport is an empty report with status and summary.
func NewReport(status Status, summary string) *Report {
	return &Report{Status: status, Summary: summary}
}

// Passed is a passing report.
func Passed(summary string) *Report { return NewReport(StatusPassed, summary) }

// Warned is a report that passed with something to look at.
func Warned(summary string) *Report { return NewReport(StatusWarned, summary) }

// Failed is a failing report (the step ran, and what it checked is not right).
func Failed(summary string) *Report { return NewReport(StatusFailed, summary) }

// Skipped is a report of a step that did not apply.
func Skipped(summary string) *Report { return NewReport(StatusSkipped, summary) }

// WithFinding adds findings.
func (r *Report) WithFinding(findings ...*Finding) *Report {
	r.Findings = append(r.Findings, findings...)
	return r
}

// WithMetric adds a measurement.
func (r *Report) WithMetric(name string, value float64, unit string) *Report {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Unit: unit})
	return r
}

// WithArtifact adds a file the step produced.
func (r *Report) WithArtifact(path, mediaType string) *Report {
	r.Artifacts = append(r.Artifacts, ArtifactFile{Path: path, MediaType: mediaType})
	return r
}

// WithOutput publishes a named value for later steps.
func (r *Report) WithOutput(name string, value any) *Report {
	r.Outputs = append(r.Outputs, Output{Name: name, Value: fmt.Sprint(value)})
	return r
}
