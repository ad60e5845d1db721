#!/usr/bin/env bash
# Builds the check into ./{{name}}.wasm, a WebAssembly component (wasm32-wasip2).
# Needs rustup's Rust (1.95 or newer); the wasm32-wasip2 target is added when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs), then run ./build.sh again" >&2
    exit 1
fi
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2" ]; then
    if ! command -v rustup >/dev/null 2>&1; then
        echo "the Rust target wasm32-wasip2 is missing and rustup is not on PATH to add it" >&2
        exit 1
    fi
    echo "adding the Rust target wasm32-wasip2 (rustup target add wasm32-wasip2)" >&2
    rustup target add wasm32-wasip2
fi

cargo build --release --target wasm32-wasip2
target_dir="${CARGO_TARGET_DIR:-target}"
cp "$target_dir/wasm32-wasip2/release/{{name_snake}}.wasm" {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm ($(wc -c <{{name}}.wasm) bytes)"
