#!/usr/bin/env bash
# Builds the plugin into ./{{name}}.wasm with componentize-py, from app.py and the
# contract in wit/ (world `policy-check`). Needs python3 (3.10 or newer) with pip.
#
# componentize-py is taken from $COMPONENTIZE_PY, else from the tools folder
# ($SLUICE_TOOLS, default ~/.cache/sluice-tools), else from PATH when it is the pinned version,
# else installed from PyPI into the tools folder (never into the system's Python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

version="0.25.1"
tools="${SLUICE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-tools}/componentize-py-$version"

componentize_py() {
    if [ -n "${COMPONENTIZE_PY:-}" ]; then
        "$COMPONENTIZE_PY" "$@"
    elif [ -d "$tools/componentize_py" ]; then
        PYTHONPATH="$tools" python3 -c 'import componentize_py; componentize_py.script()' "$@"
    else
        componentize-py "$@"
    fi
}

if [ -z "${COMPONENTIZE_PY:-}" ] && [ ! -d "$tools/componentize_py" ] \
    && [ "$(componentize-py --version 2>/dev/null)" != "componentize-py $version" ]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "python3 has no pip to install componentize-py with: apt-get install python3-pip" >&2
        exit 1
    fi
    echo "installing componentize-py $version into $tools" >&2
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --target "$tools" "componentize-py==$version"
fi

componentize_py -d wit -w policy-check componentize app -o {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm ($(wc -c <{{name}}.wasm) bytes)"
