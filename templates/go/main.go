// The component's entry: the generated package wit_exports holds the functions the
// host calls (`//go:wasmexport`). Built with `-buildmode=c-shared` (a wasip1 reactor),
// main never runs.
package main

import _ "{{name}}/wit_exports"

func main() {}
