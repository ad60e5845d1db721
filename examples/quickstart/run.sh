#!/usr/bin/env bash
# The release demo, both passes, from an empty fleet:
#
#   1. sluice.toml: build `hello` 1.0.0 from source, test it, scan it, bundle it, deploy
#      it to five local hosts in waves (box-1, then zone-a, then the rest) with a health
#      check and a short bake between waves, then promote it;
#   2. release-1.1.toml: release 1.1.0, whose ValidateService fails on box-1; box-1 is
#      rolled back to 1.0.0 and the fleet keeps serving 1.0.0.
#
# Then it shows what each host serves and what Sluice recorded (`sluice status`, the
# run; `sluice targets`, every host's current and last good revision), and stops the fleet
# (unless --keep). Usage: examples/quickstart/run.sh [--keep]
# It builds sluice with cargo first, unless SLUICE names a sluice binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
keep=false
case "${1:-}" in
    --keep) keep=true ;;
    "") ;;
    *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

if [[ -n ${SLUICE:-} ]]; then
    sluice=$SLUICE
else
    repo=$(cd "$here/../.." && pwd)
    echo "== building sluice (the first build takes several minutes)"
    cargo build --release --manifest-path "$repo/Cargo.toml" -p sluice
    sluice=$repo/target/release/sluice
fi

# The bakes between waves last 2 s; let the runner look at their evidence every 250 ms
# rather than every 10 s.
export SLUICE_GATE_POLL_MS=${SLUICE_GATE_POLL_MS:-250}

# Stop every service the deploy hooks started on the hosts, by their pid files.
stop_fleet() {
    local pid_file pid
    for pid_file in "$here"/.fleet/*/run/hello.pid; do
        [[ -f $pid_file ]] || continue
        pid=$(<"$pid_file")
        kill "$pid" 2>/dev/null && echo "stopped hello (pid $pid) on $(basename "$(dirname "$(dirname "$pid_file")")")"
        rm -f "$pid_file"
    done
}

# What each host answers on / (its version), probed with the service's own binary.
show_fleet() {
    local port box=0
    for port in $(grep -o 'PORT = "[0-9]*"' "$here/sluice.toml" | grep -o '[0-9]\+'); do
        box=$((box + 1))
        printf '  box-%s (port %s): ' "$box" "$port"
        "$here/service/target/release/hello" probe "127.0.0.1:$port" / 2>&1 | sed 's/^hello: //'
    done
}

# Anything but --keep leaves no service running, also when a pass fails.
if ! $keep; then
    trap stop_fleet EXIT
fi

echo "== starting from an empty fleet (.fleet/) and an empty state store (.sluice/)"
stop_fleet
rm -rf "$here/.fleet" "$here/.sluice" "$here/dist"
start=$(date +%s)

echo
echo "== pass 1: hello 1.0.0, built, tested, scanned, deployed in waves and promoted"
"$sluice" run "$here/sluice.toml"
echo
echo "every host serves 1.0.0:"
show_fleet

echo
echo "== pass 2: hello 1.1.0, whose ValidateService fails on box-1 (this run fails, on purpose)"
if "$sluice" run "$here/release-1.1.toml"; then
    echo "release 1.1.0 was expected to fail its ValidateService and be rolled back" >&2
    exit 1
fi
echo
echo "box-1 is back on 1.0.0 and the fleet kept serving 1.0.0:"
show_fleet

echo
echo "== what Sluice recorded"
"$sluice" status -f "$here/release-1.1.toml"
echo
"$sluice" targets "$here/release-1.1.toml"
echo
echo "== done in $(($(date +%s) - start)) s"
if $keep; then
    echo "the fleet keeps running (--keep); stop it with: kill \$(cat $here/.fleet/*/run/hello.pid)"
fi
