"""Unit tests of the plugin's logic, natively under CPython (no WebAssembly):
`python3 -m pytest` in the project folder (./test.sh runs them)."""

import pytest

import sluice_plugin as sp
from {{name_snake}} import {{name_camel}}, matches


def write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_matches_give_lines_and_character_columns():
    assert list(matches("a TODO\r\nTODO TODO\né TODO\n", "TODO")) == [(1, 3), (2, 1), (2, 6), (3, 3)]


def test_a_folder_is_scanned_in_name_order_without_hidden_entries(tmp_path):
    write(tmp_path, "src/b.txt", "TODO b\n")
    write(tmp_path, "src/a.txt", "x\n// TODO a\n")
    write(tmp_path, "src/.hidden/c.txt", "TODO hidden\n")
    write(tmp_path, "src/.d.txt", "TODO hidden\n")
    report = sp.run_once({{name_camel}}(), {"paths": ["src"]}, workdir=tmp_path)
    places = [(f.location.path, f.location.line, f.location.column) for f in report.findings]
    assert places == [("src/a.txt", 2, 4), ("src/b.txt", 1, 1)]
    assert report.status == sp.Status.WARNED
    assert report.summary == "2 matches of `TODO` in 2 files"
    assert report.output("matches") == "2"
    assert all(f.rule_id == "{{name}}/match" and f.fingerprint for f in report.findings)


def test_no_match_passes(tmp_path):
    write(tmp_path, "notes.md", "nothing to do\n")
    report = sp.run_once({{name_camel}}(), {}, workdir=tmp_path)
    assert report.status == sp.Status.PASSED
    assert report.summary == "no `TODO` in 1 file"


def test_a_path_outside_every_grant_is_denied_naming_the_grant(tmp_path):
    with pytest.raises(sp.Denied) as caught:
        sp.run_once({{name_camel}}(), {"paths": ["elsewhere"]}, workdir=tmp_path, grants=[tmp_path / "granted"])
    assert caught.value.message == (
        "cannot read `elsewhere`: the step has no read grant covering it; "
        'add `read = ["elsewhere"]` to the step\'s grants'
    )


def test_a_missing_path_inside_a_grant_fails(tmp_path):
    with pytest.raises(sp.Failed, match="cannot read `nowhere`: no such file or folder"):
        sp.run_once({{name_camel}}(), {"paths": ["nowhere"]}, workdir=tmp_path, grants=[tmp_path])


def test_an_empty_pattern_is_invalid_config():
    with pytest.raises(sp.InvalidConfig, match="`pattern` is empty"):
        sp.run_once({{name_camel}}(), {"pattern": ""})


def test_the_schema_closes_the_config_and_has_an_example():
    schema = {{name_camel}}.config_schema
    assert schema["additionalProperties"] is False
    assert schema["examples"] == [{"paths": ["."], "pattern": "TODO"}]
