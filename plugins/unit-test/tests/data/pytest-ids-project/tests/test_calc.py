import os
import tempfile

import pytest


def add(a, b):
    return a + b


def test_adds():
    assert add(2, 2) == 4


def test_fails():
    print("about to compare")
    assert add(2, 2) == 5, "math is broken"


@pytest.mark.skip(reason="needs a database")
def test_needs_db():
    pass


@pytest.mark.parametrize(
    "a,b,total",
    [(1, 2, 3), (2, 2, 5), pytest.param(0, 0, 1, id="zero::sum/x [y]")],
)
def test_param(a, b, total):
    assert add(a, b) == total


class TestOuter:
    def test_method(self):
        pass

    class TestInner:
        @pytest.mark.parametrize("word", ["ok", "b\u00e4d"])
        def test_nested(self, word):
            assert word == "ok"


def test_flaky_once():
    marker = os.path.join(tempfile.gettempdir(), "sluice-py-ids-flaky-marker")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise AssertionError("first run fails")
