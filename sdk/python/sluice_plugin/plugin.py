"""A plugin as a Python class, and the one function that runs it: `run_plugin` parses
the configuration, calls `Plugin.run`, maps exceptions to the contract's `run-error`
and gives findings their fingerprints. The component export
(`sluice_plugin.component`) and native unit tests (`run_once`) both go through it, so
a test sees exactly what the runner would."""

import json
import sys
import traceback

from . import fingerprint
from .context import Grants, StepContext
from .errors import Denied, Failed, InvalidConfig, RunError
from .report import Report


class Plugin:
    """Subclass it, set the class attributes, and implement `run`:

    ```python
    class TodoScan(sluice_plugin.Plugin):
        name = "todo-scan"
        summary = "Finds TODO in files."
        config_schema = {"type": "object", "additionalProperties": False, ...}
        capabilities = [sluice_plugin.Capability.READ_FILES]

        def run(self, config, ctx):
            return sluice_plugin.Report.passed("nothing to do")
    ```
    """

    #: Short name, e.g. `todo-scan`.
    name = ""
    #: Semantic version of the plugin.
    version = "0.1.0"
    #: One sentence saying what the plugin does.
    summary = ""
    #: JSON Schema (draft 2020-12) of the step's `with` table, as a dict. Close every
    #: object (`"additionalProperties": False`) and give `examples`.
    config_schema = {"type": "object", "additionalProperties": False}
    #: `Capability` values the plugin may use (the pipeline still grants each).
    capabilities = []

    def parse_config(self, raw):
        """Turn the decoded `with` table into what `run` takes. A `ValueError`,
        `TypeError` or `KeyError` here becomes `run-error::invalid-config`. By default
        the dict itself."""
        return raw

    def run(self, config, ctx):
        """Run one step; return a `Report` (whatever its status), or raise a `RunError`."""
        raise NotImplementedError(f"{type(self).__name__}.run")


def exception_line(error):
    """`ValueError: boom (at scan.py:12)`: the exception and where it was raised."""
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
    return text


def run_plugin(plugin, config_json, ctx):
    """Run `plugin` on a `with` table (JSON text) in `ctx`: the report, with every empty
    fingerprint filled in, or a `RunError` raised.

    - invalid JSON, or a ValueError/TypeError/KeyError from `parse_config`:
      `InvalidConfig`;
    - a `RunError` raised by the plugin: itself;
    - an OSError on a path outside every grant: `Denied`, naming the grant;
    - a PermissionError: `Denied`;
    - any other exception: `Failed`, with the exception's line (its traceback goes to
      stderr, which is the step log).
    """
    try:
        raw = json.loads(config_json) if config_json and config_json.strip() else {}
    except ValueError as error:
        raise InvalidConfig(f"the `with` table is not JSON: {error}") from error
    try:
        config = plugin.parse_config(raw)
    except RunError:
        raise
    except (ValueError, TypeError, KeyError) as error:
        raise InvalidConfig(f"invalid `with` table: {error}") from error
    try:
        report = plugin.run(config, ctx)
    except RunError:
        raise
    except OSError as error:
        traceback.print_exc(file=sys.stderr)
        denial = ctx.denial_for(error)
        if denial is not None:
            raise denial from error
        if isinstance(error, PermissionError):
            raise Denied(exception_line(error)) from error
        raise Failed(exception_line(error)) from error
    except Exception as error:  # noqa: BLE001 - every exception becomes run-error::failed
        traceback.print_exc(file=sys.stderr)
        raise Failed(exception_line(error)) from error
    if not isinstance(report, Report):
        raise Failed(f"{type(plugin).__name__}.run returned {type(report).__name__}, not a sluice_plugin.Report")
    fingerprint.assign(report.findings, ctx.workdir)
    return report


def run_once(plugin, config=None, workdir=".", grants=None):
    """Run `plugin` natively, as the runner would (for unit tests): `config` is the
    `with` table as a dict, `grants` a `Grants` (or a list of readable folders), None to
    refuse nothing. Returns the report or raises a `RunError`."""
    import os

    if isinstance(grants, (list, tuple)):
        grants = Grants(read=[os.path.abspath(g) for g in grants])
    ctx = StepContext(workdir=os.path.abspath(workdir), grants=grants, run_id="local", step="test")
    return run_plugin(plugin, json.dumps(config or {}), ctx)
