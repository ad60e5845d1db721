// Package sluice helps write Sluice plugins in Go: builders for the report, findings
// and locations, the contract's fingerprint, paths resolved against the pipeline's
// folder with errors that name the missing grant, and panics turned into a failed
// step instead of a bare trap.
//
// It needs only the standard library and knows nothing of the generated bindings, so
// the plugin's logic can be unit-tested natively with `go test`; the project's
// `plugin.go` converts between these types and the bindings of `wit/plugin.wit`.
//
// A plugin's run function:
//
//	func Run(step *sluice.Step) (*sluice.Report, error) {
//		var config Config
//		if err := step.DecodeConfig(&config); err != nil {
//			return nil, err // run-error invalid-config, naming the key
//		}
//		data, err := step.ReadFile("src/main.go") // relative to the pipeline's folder
//		if err != nil {
//			return nil, err // run-error denied naming the grant, or failed
//		}
//		...
//		return sluice.Warned("1 match").WithFinding(
//			sluice.NewFinding("todo-scan/match", sluice.SeverityLow, "TODO: fix").At("src/main.go", 3, 5),
//		), nil
//	}
package sluice
