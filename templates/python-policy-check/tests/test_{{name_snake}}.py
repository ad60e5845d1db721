"""Unit tests of the check's logic, natively under CPython (no WebAssembly):
`python3 -m pytest` in the project folder (./test.sh runs them)."""

import pytest

from sluice_plugin.policy_check import CheckError, Violation, run_check
from {{name_snake}} import {{name_camel}}


def model(*stages):
    """A pipeline model (model-version 1) with these stages, the rest left empty."""
    return {
        "model-version": 1,
        "pipeline": {"name": "shop", "file": "sluice.toml"},
        "policy": None,
        "stages": [
            {
                "name": name,
                "index": i,
                "kinds": ["production"] if protected else [],
                "protected": protected,
                "line": 1,
                "gates": gates,
                "bake": None,
                "steps": [],
            }
            for i, (name, protected, gates) in enumerate(stages)
        ],
        "monitors": [],
        "targets": [],
        "denylists": [],
    }


def approval(required):
    return {"id": "approve", "kind": "approval", "settings": {"required": required}}


def test_a_production_stage_without_an_approval_gate_is_a_violation():
    found = run_check({{name_camel}}(), model(("test", False, []), ("prod", True, [])))
    assert [(v.stage, v.step) for v in found] == [("prod", None)]
    assert "without an approval gate" in found[0].message


def test_stages_that_do_not_reach_production_need_no_approval():
    assert run_check({{name_camel}}(), model(("test", False, []), ("prod", True, [approval(1)]))) == []


def test_min_approvers_counts_the_gates_required_approvers():
    m = model(("prod", True, [approval(1)]))
    assert run_check({{name_camel}}(), m, {"min-approvers": 1}) == []
    found = run_check({{name_camel}}(), m, {"min-approvers": 2})
    assert found == [Violation("stage `prod` asks 1 approver(s) for production; this check wants at least 2", stage="prod")]


def test_the_model_arrives_as_json_text_like_the_host_sends_it():
    import json

    text = json.dumps(model(("prod", True, [])))
    assert len(run_check({{name_camel}}(), text, "{}")) == 1


def test_an_unknown_model_version_is_an_error_not_a_pass():
    with pytest.raises(CheckError):
        run_check({{name_camel}}(), {"model-version": 99, "stages": []})
