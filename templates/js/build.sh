#!/usr/bin/env bash
# Builds the plugin into ./{{name}}.wasm, a WebAssembly component, with componentize-js
# (pinned in package.json; `npm install` runs first when node_modules is missing).
# Needs Node.js 20 or newer and npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$tool not found: install Node.js 20 or newer (Debian: apt-get install nodejs npm), then run ./build.sh again" >&2
        exit 1
    fi
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    echo "node $(node --version) is too old: componentize-js needs Node.js 20 or newer" >&2
    exit 1
fi
if [ ! -x node_modules/.bin/componentize-js ]; then
    echo "installing componentize-js into node_modules (npm install)" >&2
    npm install --no-audit --no-fund
fi

# TypeScript declarations of the world's imports and exports, for editors (types/).
node_modules/.bin/jco guest-types wit --world-name step-js -o types >/dev/null

# `-d fetch-event`: no `wasi:http/incoming-handler` export; the host never calls one.
# `http` (fetch) cannot be disabled: the contract's world imports
# wasi:http/outgoing-handler, which the host provides under the step's `net` grant.
node_modules/.bin/componentize-js src/plugin.js \
    --wit wit --world-name step-js \
    --disable fetch-event \
    -o {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm ($(wc -c <{{name}}.wasm) bytes)"
