"""The bridge of an organisation check to the component: `export_policy_check(MyCheck)`
returns the two classes componentize-py looks for in the app module of a
`policy-check` world build (`PolicyRule`, the `policy-rule` export, and `WitWorld`).
Only this module imports the generated bindings of that world.

```python
# app.py, the module `componentize-py -w policy-check componentize app` builds
from sluice_plugin.policy_component import export_policy_check
from no_yolo import NoYolo

PolicyRule, WitWorld = export_policy_check(NoYolo)
```
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import policy_rule as _rule

from .policy_check import CheckError, run_check


def export_policy_check(check_class):
    """`(PolicyRule, WitWorld)` for the app module, checking with `check_class()`."""
    check = check_class()

    class PolicyRule(exports.PolicyRule):
        def describe(self):
            return _rule.CheckDescriptor(
                name=check.name,
                version=check.version,
                summary=check.summary,
                config_schema=json.dumps(check.config_schema),
            )

        def check(self, model, config):
            try:
                found = run_check(check, model, config)
            except CheckError as error:
                raise Err(str(error))
            return [_rule.Violation(message=v.message, stage=v.stage, step=v.step) for v in found]

    class WitWorld(wit_world.WitWorld):
        """The world exports nothing of its own; componentize-py still looks for it."""

    return PolicyRule, WitWorld
