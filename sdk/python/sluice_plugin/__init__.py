"""sluice_plugin: write a Sluice pipeline step in Python.

A small helper over the bindings componentize-py generates from `wit/plugin.wit`:

- `Plugin`: subclass it (name, summary, config schema, `run`); `component.export`
  makes it the component's `plugin` export;
- `Report`, `Finding`, `Location`, `Metric`, ...: builders with defaults;
- `StepContext`: the step's folder and grants; `resolve`, `relative`, and
  `require_read`/`require_write`, which raise `Denied` naming the grant to add;
- `InvalidConfig`, `Denied`, `Failed`: the contract's `run-error`; other exceptions
  are mapped (see `run_plugin`);
- `fingerprint`: the contract's fingerprint algorithm, applied when `run` returns;
- `log`: structured log lines;
- `run_once`: run a plugin natively, for unit tests under plain CPython.

Nothing here but `sluice_plugin.component` imports the generated bindings.
"""

from . import fingerprint, log
from .context import Grants, StepContext
from .errors import Denied, Failed, InvalidConfig, RunError
from .plugin import Plugin, exception_line, run_once, run_plugin
from .report import ArtifactFile, Capability, Finding, Location, Metric, Report, Severity, Status, TestCase

__all__ = [
    "ArtifactFile",
    "Capability",
    "Denied",
    "Failed",
    "Finding",
    "Grants",
    "InvalidConfig",
    "Location",
    "Metric",
    "Plugin",
    "Report",
    "RunError",
    "Severity",
    "Status",
    "StepContext",
    "TestCase",
    "exception_line",
    "fingerprint",
    "log",
    "run_once",
    "run_plugin",
]

__version__ = "0.1.7"
