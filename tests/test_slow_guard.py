"""The slow-test guard (tests/slow_guard.py) on an inner pytest run with a lowered limit."""

from __future__ import annotations

import pytest

INNER = """
import time

import pytest


def test_unmarked_and_slow():
    time.sleep(0.12)


@pytest.mark.slow
def test_marked_and_slow():
    time.sleep(0.12)


def test_unmarked_and_quick():
    pass


def test_unmarked_slow_failure_keeps_its_own_error():
    time.sleep(0.12)
    assert False, "its own assertion"
"""


#: The inner run goes in-process: no cache files, and not pytest-playwright, whose per-test
#: assertion scope is already open for the outer test and cannot nest.
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:playwright")


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest("from slow_guard import pytest_configure, pytest_runtest_makereport  # noqa: F401\n")
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    pytester.makepyfile(test_inner=INNER)
    return pytester


def test_unmarked_test_past_the_limit_fails_and_a_marked_one_passes(inner, monkeypatch) -> None:
    monkeypatch.setenv("GARVID_SLOW_TEST_SECONDS", "0.05")
    result = inner.runpytest(*INNER_ARGS)
    result.assert_outcomes(passed=2, failed=2)
    outcomes = {r.nodeid.split("::")[-1]: r.outcome for r in result.reprec.getreports("pytest_runtest_logreport") if r.when == "call"}
    assert outcomes == {
        "test_unmarked_and_slow": "failed",
        "test_marked_and_slow": "passed",
        "test_unmarked_and_quick": "passed",
        "test_unmarked_slow_failure_keeps_its_own_error": "failed",
    }
    result.stdout.re_match_lines([r".*test_unmarked_and_slow took 0\.\d s \(limit 0\.05 s, GARVID_SLOW_TEST_SECONDS\): mark it @pytest\.mark\.slow"])
    result.stdout.fnmatch_lines(["*its own assertion*"])


@pytest.mark.parametrize("value", ["0", None])
def test_zero_turns_the_guard_off_and_the_default_is_30_seconds(inner, monkeypatch, value) -> None:
    if value is None:
        monkeypatch.delenv("GARVID_SLOW_TEST_SECONDS", raising=False)
    else:
        monkeypatch.setenv("GARVID_SLOW_TEST_SECONDS", value)
    inner.runpytest(*INNER_ARGS).assert_outcomes(passed=3, failed=1)  # only its own assertion fails


def test_a_bad_limit_is_a_usage_error(inner, monkeypatch) -> None:
    monkeypatch.setenv("GARVID_SLOW_TEST_SECONDS", "ten")
    result = inner.runpytest(*INNER_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*GARVID_SLOW_TEST_SECONDS must be a number of seconds (0: no limit), not 'ten'*"])
