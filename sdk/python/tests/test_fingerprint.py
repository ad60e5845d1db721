"""The helper's fingerprints against the host's test vectors
(crates/fingerprint/tests/vectors.json): one finding, one identity, in every language."""

import json
import os
import pathlib

import pytest

from sluice_plugin import Finding, fingerprint

VECTORS = pathlib.Path(
    os.environ.get(
        "SLUICE_FINGERPRINT_VECTORS",
        pathlib.Path(__file__).resolve().parents[3] / "crates" / "fingerprint" / "tests" / "vectors.json",
    )
)


def vectors():
    if not VECTORS.is_file():
        pytest.fail(f"the fingerprint test vectors are missing: {VECTORS} (set SLUICE_FINGERPRINT_VECTORS)")
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def test_hashes():
    for vector in vectors()["hashes"]:
        assert fingerprint.fnv1a(vector["parts"]) == vector["hash"], vector


def test_normalize():
    for vector in vectors()["normalize"]:
        assert fingerprint.normalize_line(vector["line"]) == vector["normalized"], vector


@pytest.mark.parametrize("case", vectors()["cases"], ids=lambda case: case["name"])
def test_cases(case):
    files = {
        path: content["text"].encode("utf-8") if "text" in content else bytes.fromhex(content["hex"])
        for path, content in case["files"].items()
    }
    findings = []
    for raw in case["findings"]:
        finding = Finding(raw["rule_id"], raw["message"])
        if "path" in raw:
            finding.at(raw["path"], raw.get("line"), raw.get("column"))
        findings.append(finding)
    fingerprint.assign(findings, "/nowhere", read_file=files.get)
    assert [f.fingerprint for f in findings] == case["fingerprints"]


def test_a_fingerprint_the_plugin_set_is_kept():
    findings = [Finding("r", "m", fingerprint="mine"), Finding("r", "m")]
    fingerprint.assign(findings, "/nowhere", read_file=lambda path: None)
    assert findings[0].fingerprint == "mine"
    assert findings[1].fingerprint.endswith(":1")


def test_files_are_read_relative_to_the_workdir(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lib.rs").write_text("fn a() -> i32 {\n    return 1;\n}\n")
    findings = [Finding("clippy::needless_return", "unneeded `return` statement").at("src/lib.rs", 2, 5)]
    fingerprint.assign(findings, str(tmp_path))
    # The first vector: the same finding on the same line text.
    assert findings[0].fingerprint == "312788fa6dd92812:1"
