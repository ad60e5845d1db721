"""`{{name}}`: a Sluice plugin that finds the lines matching a pattern in the files under
`paths`, one finding per match (rule `{{name}}/match`).

Plain Python over the `sluice_plugin` helper: it runs, and is unit-tested
(tests/test_{{name_snake}}.py), under CPython as well as inside the component.
"""

import os

import sluice_plugin as sp

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
        "pattern": {
            "description": "The text to look for: a literal, not a regular expression.",
            "type": "string",
            "minLength": 1,
            "default": "TODO",
        },
    },
    "additionalProperties": False,
    "examples": [{"paths": ["."], "pattern": "TODO"}],
}


class {{name_camel}}(sp.Plugin):
    name = "{{name}}"
    version = "0.1.0"
    summary = "Finds the lines matching a pattern in the files under `paths`."
    config_schema = CONFIG_SCHEMA
    capabilities = [sp.Capability.READ_FILES]

    def parse_config(self, raw):
        """The `with` table, checked; a ValueError here is `run-error::invalid-config`."""
        paths = raw.get("paths", ["."])
        pattern = raw.get("pattern", "TODO")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError("`paths` must be a list of strings")
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("`pattern` is empty: give the text to look for")
        return {"paths": paths, "pattern": pattern}

    def run(self, config, ctx):
        return scan(config["paths"], config["pattern"], ctx)


def scan(paths, pattern, ctx):
    """Scan `paths` (relative to the pipeline's folder) for `pattern`."""
    files = []
    for path in paths:
        absolute = ctx.require_read(path)  # Denied, naming the grant, outside every grant
        if os.path.isdir(absolute):
            files.extend(walk(absolute))
        elif os.path.isfile(absolute):
            files.append(absolute)
        else:
            raise sp.Failed(f"cannot read `{path}`: no such file or folder")
    findings = []
    for file in files:
        with open(file, "rb") as handle:
            text = handle.read().decode("utf-8", errors="replace")
        shown = ctx.relative(file)
        for line, column in matches(text, pattern):
            findings.append(sp.Finding(f"{{name}}/match", f"`{pattern}` found", sp.Severity.INFO).at(shown, line, column))
    in_files = plural(len(files), "file", "files")
    if findings:
        report = sp.Report.warned(f"{plural(len(findings), 'match', 'matches')} of `{pattern}` in {in_files}")
    else:
        report = sp.Report.passed(f"no `{pattern}` in {in_files}")
    return report.with_findings(findings).with_output("matches", len(findings))


def walk(folder):
    """Every file under `folder`, entries in byte order of their names, skipping names
    that start with `.`."""
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            yield from walk(path)
        else:
            yield path


def matches(text, pattern):
    """`(line, column)` of every non-overlapping occurrence of `pattern`, both 1-based,
    the column in characters. Lines end at `\\n`; a trailing `\\r` is not part of it."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        at = line.find(pattern)
        while at != -1:
            yield number, at + 1
            at = line.find(pattern, at + len(pattern))


def plural(count, one, many):
    return f"{count} {one if count == 1 else many}"
