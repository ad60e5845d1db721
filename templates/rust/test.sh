#!/usr/bin/env bash
# Tests the plugin: its unit tests natively (cargo test), then the built component with
# the runner's conformance checks and the cases under cases/. Run ./build.sh first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

sluice="${SLUICE:-sluice}"
if ! command -v "$sluice" >/dev/null 2>&1; then
    echo "sluice not found: put it on PATH or set SLUICE=/path/to/sluice" >&2
    exit 1
fi
if [ ! -f {{name}}.wasm ]; then
    echo "{{name}}.wasm is missing: run ./build.sh first" >&2
    exit 1
fi

cargo test --quiet
# The example runs scan fixtures/ (the schema's example is `paths = ["."]`).
"$sluice" plugin check ./{{name}}.wasm --workdir fixtures --grant read=fixtures
"$sluice" plugin test ./{{name}}.wasm --case cases
