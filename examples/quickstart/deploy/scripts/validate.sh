#!/bin/sh
# ValidateService: the service answers 200 on /health, probed with its own binary
# (nothing else needed on the host), a few attempts over about 2 s.
set -eu
exec "$SLUICE_TARGET_ROOT/opt/hello/hello" probe "127.0.0.1:$PORT" /health --attempts 10
