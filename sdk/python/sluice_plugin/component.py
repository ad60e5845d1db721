"""The bridge to the component: `export(MyPlugin)` returns the two classes
componentize-py looks for in the app module (`Plugin`, the `plugin` export, and
`WitWorld`). Only this module imports the generated bindings (`wit_world`), so the rest
of the helper, and the plugin's own logic, run under plain CPython too.

```python
# app.py, the module `componentize-py componentize app` builds
from sluice_plugin.component import export
from todo_scan import TodoScan

Plugin, WitWorld = export(TodoScan)
```
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import grants as _grants

# The world also imports `wasi:http/types`, so componentize-py names the contract's own
# `types` after its package.
try:
    from wit_world.imports import sluice_plugin_types as types
except ImportError:  # a world without another `types`
    from wit_world.imports import types

from .context import Grants, StepContext
from .errors import RunError
from .plugin import run_plugin
from .report import Report, Status

_ERRORS = {
    "invalid-config": types.RunError_InvalidConfig,
    "denied": types.RunError_Denied,
    "failed": types.RunError_Failed,
}


def export(plugin_class):
    """`(Plugin, WitWorld)` for the app module, running `plugin_class()`."""
    plugin = plugin_class()

    class Plugin(exports.Plugin):
        def describe(self):
            return descriptor(plugin)

        def run(self, input):
            ctx = step_context(input)
            try:
                report = run_plugin(plugin, input.config, ctx)
            except RunError as error:
                raise Err(_ERRORS[error.kind](error.message))
            return to_wit_report(report)

    class WitWorld(wit_world.WitWorld):
        """The world exports nothing of its own; componentize-py still looks for it."""

    return Plugin, WitWorld


def descriptor(plugin):
    """The contract's `descriptor` for `plugin`."""
    return types.Descriptor(
        name=plugin.name,
        version=plugin.version,
        summary=plugin.summary,
        config_schema=json.dumps(plugin.config_schema),
        capabilities=[_enum(types.Capability, c) for c in plugin.capabilities],
    )


def step_context(input):
    """A `StepContext` from the contract's `step-input` and the `grants` import."""
    granted = _grants.current()
    return StepContext(
        workdir=input.workdir,
        grants=Grants(
            read=list(granted.read),
            write=list(granted.write),
            exec=list(granted.exec),
            net=list(granted.net),
            env=list(granted.env),
            secrets=list(granted.secrets),
            targets=list(granted.targets),
        ),
        run_id=input.run_id,
        pipeline=input.pipeline,
        stage=input.stage,
        step=input.step,
        attempt=input.attempt,
        outputs=[(o.step, o.name, o.value) for o in input.outputs],
    )


def _enum(wit_enum, value):
    """The member of generated enum `wit_enum` for one of the helper's enums (or its
    contract name: `read-files`)."""
    name = getattr(value, "value", value)
    return getattr(wit_enum, str(name).upper().replace("-", "_"))


def to_wit_report(report: Report):
    """The contract's `report` for a helper `Report`."""
    return types.Report(
        status=_enum(types.Status, report.status if isinstance(report.status, Status) else Status(report.status)),
        summary=report.summary,
        findings=[
            types.Finding(
                rule_id=f.rule_id,
                severity=_enum(types.Severity, f.severity),
                message=f.message,
                location=None
                if f.location is None
                else types.Location(
                    path=f.location.path,
                    line=f.location.line,
                    column=f.location.column,
                    end_line=f.location.end_line,
                    end_column=f.location.end_column,
                ),
                fingerprint=f.fingerprint,
                security_severity=f.security_severity,
                help_uri=f.help_uri,
                properties=[(str(k), str(v)) for k, v in f.properties],
            )
            for f in report.findings
        ],
        test_cases=[
            types.TestCase(
                suite=t.suite,
                name=t.name,
                status=_enum(types.TestStatus, t.status),
                duration_ms=int(t.duration_ms),
                message=t.message,
                output=t.output,
                flaky_attempts=[],
            )
            for t in report.test_cases
        ],
        metrics=[
            types.Metric(name=m.name, value=float(m.value), unit=m.unit, tags=[(str(k), str(v)) for k, v in m.tags])
            for m in report.metrics
        ],
        data_points=[],
        artifacts=[
            types.ArtifactFile(path=a.path, media_type=a.media_type, name=a.name, version=a.version)
            for a in report.artifacts
        ],
        outputs=[(str(k), str(v)) for k, v in report.outputs],
    )
