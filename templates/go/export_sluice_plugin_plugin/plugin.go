// Package export_sluice_plugin_plugin is the component's `plugin` export: the
// generated bindings (wit_exports) call Describe and Run here. It hands the step to
// package {{name_snake}} through the Go helper (package sluice) and converts the
// result into the contract's types (convert.go). The package's name and the two
// functions' signatures are fixed by wit-bindgen-go.
package export_sluice_plugin_plugin

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"

	"sluice"
	"{{name}}/sluice_plugin_grants"
	types "{{name}}/sluice_plugin_types"
	"{{name}}/{{name_snake}}"
)

// Describe says who the plugin is and what configuration it takes.
func Describe() types.Descriptor {
	return types.Descriptor{
		Name:         {{name_snake}}.Name,
		Version:      {{name_snake}}.Version,
		Summary:      {{name_snake}}.Summary,
		ConfigSchema: {{name_snake}}.ConfigSchema,
		Capabilities: []types.Capability{types.CapabilityReadFiles},
	}
}

// Run runs one step.
func Run(input types.StepInput) witTypes.Result[types.Report, types.RunError] {
	granted := sluice_plugin_grants.Current()
	grants := &sluice.Grants{
		Read:    granted.Read,
		Write:   granted.Write,
		Exec:    granted.Exec,
		Net:     granted.Net,
		Env:     granted.Env,
		Secrets: granted.Secrets,
		Targets: granted.Targets,
	}
	report, err := sluice.Run(fromStepInput(input), grants, {{name_snake}}.Run)
	if err != nil {
		return witTypes.Err[types.Report](toRunError(err))
	}
	return witTypes.Ok[types.Report, types.RunError](toReport(report))
}
