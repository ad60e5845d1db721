"""Structured log lines, shown live by the runner and kept in the step log. Natively
(no host) they go to stderr."""

import sys

try:  # inside a component built by componentize-py
    from wit_world.imports import log as _host_log
except ImportError:  # natively: unit tests
    _host_log = None

_LEVELS = ("trace", "debug", "info", "warn", "error")


def write(level, message, **fields):
    """One log line at `level` (`trace`, `debug`, `info`, `warn`, `error`) with
    `key=value` fields."""
    pairs = [(str(key), str(value)) for key, value in fields.items()]
    if _host_log is not None:
        _host_log.write(getattr(_host_log.Level, level.upper()), message, pairs)
    else:
        extra = "".join(f" {key}={value}" for key, value in pairs)
        print(f"{level}: {message}{extra}", file=sys.stderr)


def trace(message, **fields):
    write("trace", message, **fields)


def debug(message, **fields):
    write("debug", message, **fields)


def info(message, **fields):
    write("info", message, **fields)


def warn(message, **fields):
    write("warn", message, **fields)


def error(message, **fields):
    write("error", message, **fields)


def progress(done, total=None, message=""):
    """How far the step has come: `done` of `total` units."""
    if _host_log is not None:
        _host_log.progress(done, total, message)
