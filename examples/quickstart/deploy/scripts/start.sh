#!/bin/sh
# ApplicationStart: start `hello` detached (its own session, output to a log file, a pid
# file), so that this hook returns while the service keeps running. PORT comes from the
# target's `vars`.
set -eu
root=$SLUICE_TARGET_ROOT
mkdir -p "$root/run" "$root/log"
rm -f "$root/run/hello.pid"
setsid nohup "$root/opt/hello/hello" serve --port "$PORT" \
    --pid-file "$root/run/hello.pid" --fail-health-if "$root/fail-health" \
    >>"$root/log/hello.log" 2>&1 </dev/null &
# The service writes its pid file once it listens.
tries=0
while [ "$tries" -lt 100 ]; do
    if [ -s "$root/run/hello.pid" ]; then
        echo "started hello $(cat "$root/opt/hello/VERSION") on port $PORT (pid $(cat "$root/run/hello.pid"))"
        exit 0
    fi
    sleep 0.05
    tries=$((tries + 1))
done
echo "hello did not start listening on port $PORT within 5 s; its log says:" >&2
tail -n 20 "$root/log/hello.log" >&2
exit 1
