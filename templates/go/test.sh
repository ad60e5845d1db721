#!/usr/bin/env bash
# Tests the plugin: the Go helper's and the plugin's unit tests natively (go test),
# then the built component with the runner's conformance checks (sluice plugin check)
# and the cases under cases/ (sluice plugin test). Run ./build.sh first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

sluice="${SLUICE:-sluice}"
if ! command -v "$sluice" >/dev/null 2>&1; then
    echo "sluice not found: put it on PATH or set SLUICE=/path/to/sluice" >&2
    exit 1
fi
go="${GO:-go}"
if ! command -v "$go" >/dev/null 2>&1; then
    echo "go not found: set GO=/path/to/go (Go 1.25 or newer), as for ./build.sh" >&2
    exit 1
fi
if [ ! -f {{name}}.wasm ]; then
    echo "{{name}}.wasm is missing: run ./build.sh first" >&2
    exit 1
fi

export GOTOOLCHAIN=local GOPROXY=off
(cd sluice && "$go" test ./...)
"$go" test ./{{name_snake}}/...
"$sluice" plugin check ./{{name}}.wasm
"$sluice" plugin test ./{{name}}.wasm --case cases
