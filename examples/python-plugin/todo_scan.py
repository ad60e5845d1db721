"""The scanning logic of the `todo-scan` plugin, free of any WebAssembly binding so that it
runs (and is unit-tested) under plain CPython too. `app.py` wraps it as a component.

It walks the configured paths, finds marker words such as TODO and FIXME, and describes
each hit with a path, a 1-based line and column, and a fingerprint that stays the same
across runs as long as the rule, file and text do.
"""

import os
import re
from dataclasses import dataclass, field

DEFAULT_MARKERS = ["TODO", "FIXME"]
# Larger files are generated or vendored far more often than hand-written.
MAX_FILE_BYTES = 1024 * 1024
SKIPPED_DIRS = {".git", ".hg", ".svn", "node_modules", "target", "__pycache__", "build", ".venv", "venv"}

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Config",
    "description": "The step's `with` table.",
    "type": "object",
    "properties": {
        "paths": {
            "description": "Files or folders to scan, relative to the pipeline's folder.",
            "type": "array",
            "items": {"type": "string"},
            "default": ["."],
        },
        "markers": {
            "description": "Words to look for; each is matched as a whole word.",
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "default": DEFAULT_MARKERS,
        },
        "fail-on": {
            "description": "Fail the step when at least this many markers are found; without it the step only warns.",
            "type": ["integer", "null"],
            "minimum": 1,
        },
    },
    "additionalProperties": False,
}


class ConfigError(Exception):
    """The `with` table makes no sense; the message names the key."""


class AccessError(Exception):
    """A path could not be read; `missing_grant` says whether a grant is the likely cause."""

    def __init__(self, message, missing_grant):
        super().__init__(message)
        self.missing_grant = missing_grant


@dataclass
class Config:
    paths: list = field(default_factory=lambda: ["."])
    markers: list = field(default_factory=lambda: list(DEFAULT_MARKERS))
    fail_on: "int | None" = None


def parse_config(raw: dict) -> Config:
    """Check the decoded `with` table and turn it into a Config."""
    if not isinstance(raw, dict):
        raise ConfigError("the `with` table must be a table")
    unknown = sorted(set(raw) - {"paths", "markers", "fail-on"})
    if unknown:
        raise ConfigError(f"unknown key `{unknown[0]}`; expected `paths`, `markers` or `fail-on`")
    config = Config()
    for key, attribute in (("paths", "paths"), ("markers", "markers")):
        if key in raw:
            value = raw[key]
            if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
                raise ConfigError(f"`{key}` must be a list of non-empty strings")
            if not value:
                raise ConfigError(f"`{key}` is empty")
            setattr(config, attribute, value)
    fail_on = raw.get("fail-on")
    if fail_on is not None:
        if isinstance(fail_on, bool) or not isinstance(fail_on, int) or fail_on < 1:
            raise ConfigError("`fail-on` must be a whole number of at least 1")
        config.fail_on = fail_on
    return config


@dataclass
class Hit:
    marker: str
    path: str
    line: int
    column: int
    text: str

    @property
    def rule_id(self) -> str:
        return f"todo-scan/{self.marker.lower()}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule_id, self.path, self.text)


def fingerprint(rule_id: str, path: str, message: str) -> str:
    """64-bit FNV-1a of rule, path and message: the same function as the Rust SDK's
    `Finding::automatic_fingerprint`, so both languages agree."""
    value = 0xCBF29CE484222325
    for index, part in enumerate((rule_id, path, message)):
        if index:
            value = ((value ^ 0xFF) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        for byte in part.encode("utf-8"):
            value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def marker_pattern(markers):
    words = "|".join(re.escape(marker) for marker in sorted(markers, key=len, reverse=True))
    return re.compile(rf"(?<![\w])({words})(?![\w])")


def files_under(path: str):
    """Every file under `path` (or `path` itself), skipping VCS, build and hidden folders."""
    if os.path.isfile(path):
        yield path
        return
    if not os.path.isdir(path):
        missing_grant = not any(
            os.path.isdir(parent) for parent in _ancestors(os.path.abspath(path)) if parent != "/"
        )
        if missing_grant:
            raise AccessError(
                f"cannot read {path}: the step has no `read` grant covering it "
                "(add it under [stage.step.grants] read)",
                True,
            )
        raise AccessError(f"cannot read {path}: no such file or folder", False)
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.normpath(os.path.join(root, name))


def _ancestors(path):
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return
        yield parent
        path = parent


def scan_file(path: str, pattern):
    """The marker hits in one text file; binary and oversized files are skipped."""
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return []
        with open(path, "rb") as handle:
            data = handle.read()
    except PermissionError as err:
        raise AccessError(f"cannot read {path}: {err.strerror}; is it inside the step's `read` grant?", True)
    if b"\0" in data:
        return []
    hits = []
    text = data.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        for match in pattern.finditer(line):
            hits.append(Hit(match.group(1), path, number, match.start() + 1, note_text(line[match.start():])))
    return hits


def note_text(rest: str) -> str:
    """The note from its marker to the end of the line, without a comment's closing."""
    rest = rest.strip()
    for closer in ("*/", "-->", "#}", "%>"):
        if rest.endswith(closer):
            rest = rest[: -len(closer)].rstrip()
    return rest


@dataclass
class Outcome:
    files: int
    hits: list


def scan(config: Config, progress=lambda done, message: None) -> Outcome:
    pattern = marker_pattern(config.markers)
    files = 0
    hits = []
    seen = set()
    for root in config.paths:
        for path in files_under(root):
            if path in seen:
                continue
            seen.add(path)
            files += 1
            hits.extend(scan_file(path, pattern))
            progress(files, f"scanned {path}")
    return Outcome(files, hits)
