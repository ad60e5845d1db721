"""The component's entry point: `componentize-py -w policy-check componentize app`
(./build.sh) builds this module. It only hands the check to the helper, which exports
it as the contract's `policy-rule` interface; the check itself is in {{name_snake}}.py."""

from sluice_plugin.policy_component import export_policy_check

from {{name_snake}} import {{name_camel}}

PolicyRule, WitWorld = export_policy_check({{name_camel}})
