#!/usr/bin/env bash
# Tests the check: its unit tests natively (cargo test), then the built
# component with `sluice policy check` on the two sample pipelines in fixtures/: one
# that passes, one that breaks the check. Run ./build.sh first.
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
