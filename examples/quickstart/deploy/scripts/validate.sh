#!/usr/bin/env bash
# ValidateService: the service answers 200 on /health, probed with its own binary
# (no curl needed on the host), a few attempts over about 2 s.
set -euo pipefail
exec "$SLUICE_TARGET_ROOT/opt/hello/hello" probe "127.0.0.1:$PORT" /health --attempts 10
