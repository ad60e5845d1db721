#!/usr/bin/env bash
# Builds the plugin into ./{{name}}.wasm, a WebAssembly component:
#   1. `sluice plugin bindgen --lang c` writes the C bindings of the contract (world
#      `step`) into gen/: step.h, step.c and step_component_type.o;
#   2. clang compiles a wasm32-wasip1 *reactor* (a library the host calls, no main)
#      with wasi-libc;
#   3. `sluice plugin componentize` wraps it into a component with the WASI preview1
#      reactor adapter of the runner's wasmtime.
# Needs clang with the wasm32 target and wasm-ld, wasi-libc, compiler-rt for wasm32
# (Debian: apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32), and
# sluice (on PATH, or SLUICE=/path/to/sluice). Elsewhere, wasi-sdk has all of it:
# WASI_CC=/opt/wasi-sdk/bin/clang WASI_SYSROOT=/opt/wasi-sdk/share/wasi-sysroot ./build.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

debian="apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32"
sluice="${SLUICE:-sluice}"
if ! command -v "$sluice" >/dev/null 2>&1; then
    echo "sluice not found: put it on PATH or set SLUICE=/path/to/sluice" >&2
    exit 1
fi
cc="${WASI_CC:-}"
if [ -z "$cc" ]; then
    for candidate in clang-19 clang; do
        if command -v "$candidate" >/dev/null 2>&1; then cc="$candidate"; break; fi
    done
fi
if [ -z "$cc" ] || ! command -v "$cc" >/dev/null 2>&1; then
    echo "no clang found: on Debian, $debian (or set WASI_CC to a clang that targets wasm32, e.g. wasi-sdk's)" >&2
    exit 1
fi
sysroot="${WASI_SYSROOT:-/usr}"
# Debian's wasi-libc (bookworm) installs for the triple wasm32-wasi; wasi-sdk 22+
# sysroots have wasm32-wasip1. Same ABI, two names.
if [ -d "$sysroot/include/wasm32-wasip1" ]; then
    target=wasm32-wasip1
elif [ -d "$sysroot/include/wasm32-wasi" ]; then
    target=wasm32-wasi
else
    echo "no wasi-libc under $sysroot (include/wasm32-wasip1 or include/wasm32-wasi): on Debian, $debian; or set WASI_SYSROOT to wasi-sdk's share/wasi-sysroot" >&2
    exit 1
fi

mkdir -p target gen
"$sluice" plugin bindgen --lang c --world step --out gen >/dev/null
# -mexec-model=reactor: exports _initialize instead of _start; the host calls describe
# and run. --stack-first with 1 MiB: the stack sits below the data, so an overflow
# traps instead of silently overwriting globals (wasm-ld's default is 64 KiB after
# the data).
if ! "$cc" --target="$target" --sysroot="$sysroot" -mexec-model=reactor -O2 \
    -Wl,--stack-first -Wl,-z,stack-size=1048576 \
    -Igen -Isluice_plugin -Wall -Wextra \
    -o target/{{name}}.core.wasm {{name_snake}}.c gen/step.c gen/step_component_type.o; then
    echo "compiling for $target failed; if the linker or libclang_rt.builtins-wasm32.a is missing: $debian" >&2
    exit 1
fi
"$sluice" plugin componentize target/{{name}}.core.wasm -o {{name}}.wasm
