"""Organisation checks (the contract's `policy-check` world, 0.1.6) as Python classes.

A check receives the pipeline model (docs/policy/model.md) as a dict and its `with`
table as a dict, and returns the `Violation`s it finds; an empty list passes. Raise
`CheckError` when the check cannot decide (a model version it does not know, a
missing field): the runner shows it as a check that failed to run, never as a
violation. Any other exception traps the component; the runner reports that too.

```python
from sluice_plugin.policy_check import PolicyCheck, Violation, production_stages

class ApprovalBeforeProduction(PolicyCheck):
    name = "approval-before-production"
    summary = "Every production stage has an approval gate."

    def check(self, model, config):
        return [
            Violation(f"stage `{s['name']}` reaches production without an approval gate", stage=s["name"])
            for s in production_stages(model)
            if not gates_of_kind(s, "approval")
        ]
```

`sluice_plugin.policy_component.export_policy_check` makes such a class the
component's `policy-rule` export; `run_check` runs it natively, for unit tests under
plain CPython, exactly as the component would.
"""

import json
from dataclasses import dataclass
from typing import Optional

#: The model versions this helper knows.
MODEL_VERSIONS = (1,)


@dataclass
class Violation:
    """One way the pipeline breaks the check: a message, at a stage (by name) and a
    step (by id) when there is one."""

    message: str
    stage: Optional[str] = None
    step: Optional[str] = None


class CheckError(Exception):
    """The check could not decide; becomes the contract's `err`."""


class PolicyCheck:
    """Subclass it, set the class attributes, and implement `check(model, config)`."""

    #: Short name, e.g. `approval-before-production`.
    name = ""
    #: Semantic version of the check.
    version = "0.1.0"
    #: One sentence saying what the check requires.
    summary = ""
    #: JSON Schema (draft 2020-12) of the check's `with` table, as a dict. The runner
    #: validates `with` against it before calling `check`.
    config_schema = {"type": "object", "additionalProperties": False}

    def check(self, model, config):
        """Return a list of `Violation` (empty: the pipeline passes)."""
        raise NotImplementedError(f"{type(self).__name__}.check")


def run_check(check, model, config=None):
    """Run `check` on `model` and `config` (dicts, or JSON text as the host passes
    them) as the component does: the model version is checked, `check` is called and
    its answer checked. Returns the violations; raises `CheckError`."""
    if isinstance(model, (str, bytes)):
        model = json.loads(model)
    if config is None:
        config = {}
    elif isinstance(config, (str, bytes)):
        config = json.loads(config)
    version = model.get("model-version") if isinstance(model, dict) else None
    if version not in MODEL_VERSIONS:
        raise CheckError(
            f"model-version {version!r} is not one this check knows ({', '.join(map(str, MODEL_VERSIONS))}); "
            "rebuild it with a newer sluice_plugin"
        )
    found = check.check(model, config)
    if found is None:
        return []
    violations = list(found)
    for v in violations:
        if not isinstance(v, Violation):
            raise CheckError(f"{type(check).__name__}.check returned {v!r}, not a Violation")
        if not isinstance(v.message, str) or not v.message.strip():
            raise CheckError(f"{type(check).__name__}.check returned a Violation without a message")
    return violations


def stages(model):
    """The model's stages, in order."""
    return list(model.get("stages", []))


def production_stages(model):
    """The stages that reach production (protected, or of kind `production`)."""
    return [s for s in stages(model) if s.get("protected") or "production" in s.get("kinds", [])]


def stages_of_kind(model, kind):
    """The stages with `kind` among their kinds (`build`, `test`, `deploy`, ...)."""
    return [s for s in stages(model) if kind in s.get("kinds", [])]


def gates_of_kind(stage, kind):
    """The gates of `stage` of `kind` (`approval`, `window`, `alarms`)."""
    return [g for g in stage.get("gates", []) if g.get("kind") == kind]


def steps(model):
    """Every `(stage, step)` pair of the model, in order."""
    return [(s, step) for s in stages(model) for step in s.get("steps", [])]
