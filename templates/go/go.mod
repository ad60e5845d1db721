module {{name}}

// Go 1.24 added //go:wasmexport; the bindings' runtime package asks for 1.25.
go 1.25

require (
	go.bytecodealliance.org/pkg v0.2.3
	sluice v0.0.0
)

// Both come with the project, so that building needs no module proxy: go-pkg/ is the
// runtime of the generated bindings (written by `sluice plugin bindgen`), sluice/ the
// Go helper (written by `sluice plugin new`).
replace (
	go.bytecodealliance.org/pkg => ./go-pkg
	sluice => ./sluice
)
