#!/bin/sh
# ApplicationStop: stop the running `hello` by its pid file (run with the PREVIOUS
# revision's scripts, so it stops what that revision started). No pid file: nothing runs.
set -eu
pid_file="$SLUICE_TARGET_ROOT/run/hello.pid"
if [ ! -f "$pid_file" ]; then
    echo "hello is not running on $SLUICE_TARGET"
    exit 0
fi
pid=$(cat "$pid_file")
if kill "$pid" 2>/dev/null; then
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 50 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped hello (pid $pid) on $SLUICE_TARGET"
else
    echo "hello (pid $pid) had already stopped on $SLUICE_TARGET"
fi
rm -f "$pid_file"
