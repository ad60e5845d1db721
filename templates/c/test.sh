#!/usr/bin/env bash
# Tests the plugin: the C helper's own unit tests natively (the contract's fingerprint
# vectors, UTF-8, JSON, paths) with the machine's C compiler, then the built component
# with the runner's conformance checks and the cases under cases/. Run ./build.sh first.
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
host_cc="${CC:-cc}"
if ! command -v "$host_cc" >/dev/null 2>&1; then
    echo "no native C compiler ($host_cc) for the helper's unit tests: apt-get install gcc (or set CC)" >&2
    exit 1
fi

mkdir -p target
"$host_cc" -std=c11 -Wall -Wextra -Werror -Isluice_plugin \
    -o target/test_sluice_plugin sluice_plugin/test/test_sluice_plugin.c
target/test_sluice_plugin
# The example runs scan fixtures/ (the schema's example is `paths = ["."]`).
"$sluice" plugin check ./{{name}}.wasm --workdir fixtures --grant read=fixtures
"$sluice" plugin test ./{{name}}.wasm --case cases
