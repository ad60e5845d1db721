#!/usr/bin/env bash
# ApplicationStop: stop the running `hello` by its pid file (run with the PREVIOUS
# revision's scripts, so it stops what that revision started). No pid file: nothing runs.
set -euo pipefail
pid_file="$SLUICE_TARGET_ROOT/run/hello.pid"
if [[ ! -f $pid_file ]]; then
    echo "hello is not running on $SLUICE_TARGET"
    exit 0
fi
pid=$(<"$pid_file")
if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped hello (pid $pid) on $SLUICE_TARGET"
else
    echo "hello (pid $pid) had already stopped on $SLUICE_TARGET"
fi
rm -f "$pid_file"
