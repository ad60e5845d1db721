"""The helper's plugin runner: exceptions mapped to run-error, grants turned into
`Denied` naming the grant, paths resolved against the workdir."""

import pytest

import sluice_plugin as sp


class Echo(sp.Plugin):
    name = "echo"
    summary = "Says what it is told."

    def parse_config(self, raw):
        if "fail" in raw and not isinstance(raw["fail"], str):
            raise ValueError("`fail` must be a string")
        return raw

    def run(self, config, ctx):
        what = config.get("fail")
        if what == "value":
            raise ValueError("boom")
        if what == "denied":
            ctx.require_read("elsewhere/x.txt")
        if what == "open":
            open(ctx.resolve("elsewhere/x.txt")).close()
        if what == "none":
            return None
        return sp.Report.warned("said").with_finding(sp.Finding("echo/said", "said it").at("said.txt", 1, 1))


def test_value_error_from_config_is_invalid_config():
    with pytest.raises(sp.InvalidConfig, match="invalid `with` table: `fail` must be a string"):
        sp.run_once(Echo(), {"fail": 3})


def test_other_exceptions_fail_with_their_line():
    with pytest.raises(sp.Failed) as caught:
        sp.run_once(Echo(), {"fail": "value"})
    assert caught.value.message.startswith("ValueError: boom (at test_helper.py:")


def test_a_path_outside_every_grant_is_denied_naming_the_grant(tmp_path):
    with pytest.raises(sp.Denied) as caught:
        sp.run_once(Echo(), {"fail": "denied"}, workdir=tmp_path, grants=[tmp_path / "granted"])
    assert caught.value.message == (
        "cannot read `elsewhere/x.txt`: the step has no read grant covering it; "
        'add `read = ["elsewhere/x.txt"]` to the step\'s grants'
    )


def test_an_os_error_outside_every_grant_is_denied(tmp_path):
    with pytest.raises(sp.Denied, match="no read grant covering it"):
        sp.run_once(Echo(), {"fail": "open"}, workdir=tmp_path, grants=[tmp_path / "granted"])


def test_an_os_error_inside_a_grant_fails(tmp_path):
    with pytest.raises(sp.Failed, match="FileNotFoundError"):
        sp.run_once(Echo(), {"fail": "open"}, workdir=tmp_path, grants=[tmp_path])


def test_run_must_return_a_report():
    with pytest.raises(sp.Failed, match="Echo.run returned NoneType"):
        sp.run_once(Echo(), {"fail": "none"})


def test_findings_get_fingerprints(tmp_path):
    (tmp_path / "said.txt").write_text("hello\n")
    report = sp.run_once(Echo(), {}, workdir=tmp_path)
    assert report.status == sp.Status.WARNED
    assert report.findings[0].fingerprint == sp.fingerprint.line_hash("echo/said", "said.txt", "hello") + ":1"


def test_paths_resolve_against_the_workdir():
    ctx = sp.StepContext(workdir="/work/p")
    assert ctx.resolve("src/../a.txt") == "/work/p/a.txt"
    assert ctx.relative("src/a.txt") == "src/a.txt"
    assert ctx.relative("/elsewhere/a.txt") == "/elsewhere/a.txt"
    grants = sp.Grants(read=["/work/p/src"], write=["/work/p/out"])
    assert grants.covers("/work/p/src/a.txt")
    assert not grants.covers("/work/p/srcx")
    assert grants.covers("/work/p/out/x", write=True)
    assert not grants.covers("/work/p/src/a.txt", write=True)
