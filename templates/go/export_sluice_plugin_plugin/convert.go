package export_sluice_plugin_plugin

// Conversions between the Go helper's types (package sluice) and the contract's
// generated ones. You rarely need to change this file.

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"

	"sluice"
	types "{{name}}/sluice_plugin_types"
)

func fromStepInput(input types.StepInput) sluice.Input {
	return sluice.Input{
		RunID:    input.RunId,
		Pipeline: input.Pipeline,
		Stage:    input.Stage,
		Step:     input.Step,
		Config:   input.Config,
		Workdir:  input.Workdir,
		Attempt:  input.Attempt,
	}
}

func toRunError(err *sluice.RunError) types.RunError {
	switch err.Kind {
	case sluice.KindInvalidConfig:
		return types.MakeRunErrorInvalidConfig(err.Message)
	case sluice.KindDenied:
		return types.MakeRunErrorDenied(err.Message)
	default:
		return types.MakeRunErrorFailed(err.Message)
	}
}

func toReport(report *sluice.Report) types.Report {
	out := types.Report{
		Status:     types.Status(report.Status),
		Summary:    report.Summary,
		Findings:   []types.Finding{},
		TestCases:  []types.TestCase{},
		Metrics:    []types.Metric{},
		DataPoints: []types.DataPoint{},
		Artifacts:  []types.ArtifactFile{},
		Outputs:    []witTypes.Tuple2[string, string]{},
	}
	for _, finding := range report.Findings {
		out.Findings = append(out.Findings, toFinding(finding))
	}
	for _, metric := range report.Metrics {
		out.Metrics = append(out.Metrics, types.Metric{
			Name:  metric.Name,
			Value: metric.Value,
			Unit:  metric.Unit,
			Tags:  pairs(metric.Tags),
		})
	}
	for _, artifact := range report.Artifacts {
		out.Artifacts = append(out.Artifacts, types.ArtifactFile{
			Path:      artifact.Path,
			MediaType: artifact.MediaType,
			Name:      witTypes.None[string](),
			Version:   witTypes.None[string](),
		})
	}
	for _, output := range report.Outputs {
		out.Outputs = append(out.Outputs, witTypes.Tuple2[string, string]{F0: output.Name, F1: output.Value})
	}
	return out
}

func toFinding(finding *sluice.Finding) types.Finding {
	out := types.Finding{
		RuleId:           finding.RuleID,
		Severity:         types.Severity(finding.Severity),
		Message:          finding.Message,
		Location:         witTypes.None[types.Location](),
		Fingerprint:      finding.Fingerprint,
		SecuritySeverity: witTypes.None[float64](),
		HelpUri:          witTypes.None[string](),
		Properties:       pairs(finding.Properties),
	}
	if location := finding.Location; location != nil {
		out.Location = witTypes.Some(types.Location{
			Path:      location.Path,
			Line:      optional(location.Line),
			Column:    optional(location.Column),
			EndLine:   optional(location.EndLine),
			EndColumn: optional(location.EndColumn),
		})
	}
	if finding.SecuritySeverity != nil {
		out.SecuritySeverity = witTypes.Some(*finding.SecuritySeverity)
	}
	if finding.HelpURI != "" {
		out.HelpUri = witTypes.Some(finding.HelpURI)
	}
	return out
}

// optional is a line or column: 0 means unknown.
func optional(value uint32) witTypes.Option[uint32] {
	if value == 0 {
		return witTypes.None[uint32]()
	}
	return witTypes.Some(value)
}

func pairs(properties []sluice.Property) []witTypes.Tuple2[string, string] {
	out := []witTypes.Tuple2[string, string]{}
	for _, p := range properties {
		out = append(out, witTypes.Tuple2[string, string]{F0: p.Name, F1: p.Value})
	}
	return out
}
