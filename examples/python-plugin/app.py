"""`todo-scan`: an example Sluice plugin in Python, built into a component with
componentize-py from the same WIT contract (`wit/plugin.wit`) as the Rust plugins.

It reports a finding per TODO/FIXME marker (with path, line and column), a count metric
per marker, and warns when any is found (or fails past `fail-on`). The scanning itself
lives in `todo_scan.py`; this module translates between it and the contract's types.
"""

import json
import os

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log
# The world imports `wasi:http/types` too (contract 0.1.2), so componentize-py names
# the contract's own `types` after its package.
from wit_world.imports import sluice_plugin_types as types

import todo_scan

SEVERITY_BY_MARKER = {"FIXME": types.Severity.LOW, "XXX": types.Severity.LOW, "BUG": types.Severity.MEDIUM}


def info(message: str, **fields) -> None:
    log.write(log.Level.INFO, message, [(key, str(value)) for key, value in fields.items()])


class Plugin(exports.Plugin):
    """The exported `plugin` interface; componentize-py finds it by its name."""

    def describe(self) -> types.Descriptor:
        return types.Descriptor(
            name="todo-scan",
            version="0.1.0",
            summary="Reports TODO and FIXME markers in source files, warning (or failing) when there are any.",
            config_schema=json.dumps(todo_scan.CONFIG_SCHEMA),
            capabilities=[types.Capability.READ_FILES],
        )

    def run(self, input: types.StepInput) -> types.Report:
        try:
            config = todo_scan.parse_config(json.loads(input.config or "{}"))
        except (ValueError, todo_scan.ConfigError) as err:
            raise Err(types.RunError_InvalidConfig(f"invalid `with` table: {err}"))

        # WASI has no working directory of its own: start in the pipeline's folder, as the
        # contract promises, so that relative paths resolve against it.
        try:
            os.chdir(input.workdir)
        except OSError as err:
            info("relative paths stay unresolved", workdir=input.workdir, error=err)

        try:
            outcome = todo_scan.scan(config, lambda done, message: log.progress(done, None, message))
        except todo_scan.AccessError as err:
            if err.missing_grant:
                raise Err(types.RunError_Denied(str(err)))
            raise Err(types.RunError_Failed(str(err)))
        info("scan finished", files=outcome.files, markers=len(outcome.hits))
        return report(config, outcome)


def report(config: todo_scan.Config, outcome: todo_scan.Outcome) -> types.Report:
    findings = [
        types.Finding(
            rule_id=hit.rule_id,
            severity=SEVERITY_BY_MARKER.get(hit.marker.upper(), types.Severity.INFO),
            message=hit.text,
            location=types.Location(path=hit.path, line=hit.line, column=hit.column, end_line=None, end_column=None),
            fingerprint=hit.fingerprint,
            security_severity=None,
            help_uri=None,
            properties=[("marker", hit.marker)],
        )
        for hit in outcome.hits
    ]
    metrics = [
        types.Metric(
            name="todo.count",
            value=float(sum(1 for hit in outcome.hits if hit.marker == marker)),
            unit="count",
            tags=[("marker", marker)],
        )
        for marker in config.markers
    ]
    total = len(outcome.hits)
    where = ", ".join(f"{hit.path}:{hit.line}" for hit in outcome.hits[:3]) + (", ..." if total > 3 else "")
    if outcome.files == 0:
        status, summary = types.Status.SKIPPED, "no files to scan"
    elif total == 0:
        status, summary = types.Status.PASSED, f"no {'/'.join(config.markers)} markers in {outcome.files} files"
    elif config.fail_on is not None and total >= config.fail_on:
        status, summary = types.Status.FAILED, f"{total} markers in {outcome.files} files (fail-on: {config.fail_on}): {where}"
    else:
        status, summary = types.Status.WARNED, f"{total} markers in {outcome.files} files: {where}"
    return types.Report(
        status=status,
        summary=summary,
        findings=findings,
        test_cases=[],
        metrics=metrics,
        data_points=[],
        artifacts=[],
        outputs=[("count", str(total)), ("files", str(outcome.files))],
    )


class WitWorld(wit_world.WitWorld):
    """The world itself exports no functions of its own; componentize-py still looks for it."""
