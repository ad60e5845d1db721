"""Finding fingerprints: the one algorithm of the contract (`wit/plugin.wit`,
`finding.fingerprint`), the same as the host's and the Rust SDK's, so that one finding
has one identity whatever language its plugin is written in.

A fingerprint is `<hash>:<occurrence>`. `hash` is 64-bit FNV-1a, as 16 lowercase hex
digits, over UTF-8 parts joined by one 0xff byte:
- `line`, rule id, path, and the finding's line with every White_Space character
  removed, when the finding has a path and a line of 1 or more and that line of the
  file can be read;
- otherwise `message`, rule id, path (empty without a location) and message.
`occurrence` counts from 1 among the findings sharing a hash, in (line, column) order.
"""

import os

_OFFSET_BASIS = 0xCBF29CE484222325
_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF
# Files larger than this are not read for a line: the message stands in for it.
MAX_FILE_BYTES = 64 * 1024 * 1024

# Unicode's White_Space property (not Python's `str.isspace`, which also takes
# U+001C..U+001F): what the contract says is removed from a line.
WHITE_SPACE = frozenset(
    [chr(c) for c in range(0x09, 0x0E)]
    + ["\u0020", "\u0085", "\u00a0", "\u1680"]
    + [chr(c) for c in range(0x2000, 0x200B)]
    + ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
)


def fnv1a(parts):
    """64-bit FNV-1a of `parts` (strings, as UTF-8), joined by one 0xff byte."""
    value = _OFFSET_BASIS
    for index, part in enumerate(parts):
        if index:
            value = ((value ^ 0xFF) * _PRIME) & _MASK
        data = part.encode("utf-8") if isinstance(part, str) else bytes(part)
        for byte in data:
            value = ((value ^ byte) * _PRIME) & _MASK
    return f"{value:016x}"


def normalize_line(line):
    """`line` with every White_Space character removed."""
    return "".join(c for c in line if c not in WHITE_SPACE)


def line_hash(rule_id, path, line_text):
    """The hash of a finding whose line could be read."""
    return fnv1a(["line", rule_id, path, normalize_line(line_text)])


def message_hash(rule_id, path, message):
    """The hash of a finding without a readable line."""
    return fnv1a(["message", rule_id, path or "", message])


def split_lines(data):
    """A file's bytes as the contract's lines: split at `\\n`, a trailing `\\r` dropped,
    invalid UTF-8 replaced by U+FFFD."""
    text = data.decode("utf-8", errors="replace")
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _read_file(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError):
        return None
    if len(data) > MAX_FILE_BYTES:
        return None
    return data


def assign(findings, workdir, read_file=None):
    """Give every finding whose `fingerprint` is empty its fingerprint, in place.

    Relative paths are read from `workdir`. `read_file(path) -> bytes | None` replaces
    how a file is read (tests use it); by default a file that cannot be read, or is
    larger than 64 MiB, has no lines.
    """
    read_file = read_file or (lambda path: _read_file(os.path.join(workdir, path)))
    lines_of = {}
    pending = []
    for index, finding in enumerate(findings):
        if finding.fingerprint:
            continue
        location = finding.location
        line_text = None
        if location is not None and location.path and location.line is not None and location.line >= 1:
            if location.path not in lines_of:
                data = read_file(location.path)
                lines_of[location.path] = None if data is None else split_lines(data)
            lines = lines_of[location.path]
            if lines is not None and location.line <= len(lines):
                line_text = lines[location.line - 1]
        if line_text is not None:
            digest = line_hash(finding.rule_id, location.path, line_text)
        else:
            digest = message_hash(finding.rule_id, location.path if location else "", finding.message)
        position = (
            (location.line or 0) if location else 0,
            (location.column or 0) if location else 0,
        )
        pending.append((position, index, digest))
    # Stable: equal positions keep report order.
    pending.sort(key=lambda item: item[0])
    counts = {}
    for _, index, digest in pending:
        counts[digest] = counts.get(digest, 0) + 1
        findings[index].fingerprint = f"{digest}:{counts[digest]}"
    return findings
