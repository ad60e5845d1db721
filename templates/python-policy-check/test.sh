#!/usr/bin/env bash
# Tests the check: its unit tests natively (pytest under CPython), then the built
# component with `sluice policy check` on the two sample pipelines in fixtures/: one
# that passes, one that breaks the check. Run ./build.sh first. pytest is installed
# into the tools folder when python3 lacks it.
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

pytest_tools="${SLUICE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-tools}/pytest"
if python3 -m pytest --version >/dev/null 2>&1; then
    python3 -m pytest -q
else
    if [ ! -d "$pytest_tools/pytest" ]; then
        echo "installing pytest into $pytest_tools" >&2
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --target "$pytest_tools" pytest
    fi
    PYTHONPATH="$pytest_tools" python3 -m pytest -q
fi

# The component itself, on real pipelines: the passing one has no finding...
"$sluice" policy check --policy fixtures/policy.toml fixtures/passing/sluice.toml
# ...and the failing one is reported with the check's violation at its stage.
set +e
failing=$("$sluice" policy check --policy fixtures/policy.toml fixtures/failing/sluice.toml 2>&1)
set -e
echo "$failing"
if ! grep -q "stage \`prod\` reaches production without an approval gate" <<<"$failing"; then
    echo "test.sh: the check did not report the failing pipeline's stage \`prod\`" >&2
    exit 1
fi
echo "{{name}}: the check passes fixtures/passing and reports fixtures/failing"
