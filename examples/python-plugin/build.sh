#!/usr/bin/env bash
# Builds the todo-scan plugin into build/todo_scan.wasm with componentize-py, generating
# the Python bindings from the workspace's WIT contract (wit/plugin.wit, world `step`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit"
version="0.25.1"

if ! command -v componentize-py >/dev/null 2>&1; then
    echo "componentize-py not found; installing componentize-py==$version with pip" >&2
    python3 -m pip install --quiet "componentize-py==$version"
fi

mkdir -p "$here/build"
cd "$here"
componentize-py -d "$wit" -w step componentize app -o build/todo_scan.wasm
echo "built $here/build/todo_scan.wasm ($(wc -c <build/todo_scan.wasm) bytes)"
