"""The check: every stage that reaches production has an approval gate with at least
`min-approvers` approvers. Plain Python over the pipeline model (a dict, see
docs/policy/model.md in Sluice), so the unit tests in tests/ run it natively."""

from sluice_plugin.policy_check import PolicyCheck, Violation, gates_of_kind, production_stages


class {{name_camel}}(PolicyCheck):
    name = "{{name}}"
    version = "0.1.0"
    summary = "Every production stage has an approval gate with enough approvers."
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "min-approvers": {
                "type": "integer",
                "minimum": 1,
                "default": 1,
                "description": "The fewest distinct approvers a production stage's approval gate may ask for.",
            },
        },
        "examples": [{"min-approvers": 2}],
    }

    def check(self, model, config):
        wanted = config.get("min-approvers", 1)
        violations = []
        for stage in production_stages(model):
            approvals = gates_of_kind(stage, "approval")
            if not approvals:
                violations.append(
                    Violation(
                        f"stage `{stage['name']}` reaches production without an approval gate; "
                        f'add [stage.gates.approve] kind = "approval" with required = {wanted}',
                        stage=stage["name"],
                    )
                )
                continue
            most = max(g["settings"].get("required", 1) for g in approvals)
            if most < wanted:
                violations.append(
                    Violation(
                        f"stage `{stage['name']}` asks {most} approver(s) for production; "
                        f"this check wants at least {wanted}",
                        stage=stage["name"],
                    )
                )
        return violations
