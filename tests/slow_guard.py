"""The slow-test guard: an unmarked test whose call phase runs past a limit fails.

``pytest -m "not slow"`` is the fast loop (under 5 minutes on 2 cores); it stays fast only if
every slow test carries ``@pytest.mark.slow``. This plugin (loaded by tests/conftest.py) turns a
passed test that is not marked slow into a failure when its call phase took longer than
``GARVID_SLOW_TEST_SECONDS`` (default 30 s).

What is timed: the call phase only (pytest's ``report.duration`` of ``when == "call"``), not the
setup: module and session fixtures that build a tiny model or cut a clip once are paid by
whichever test comes first, and depend on which tests ran, so timing them would flake.

Why 30 s: tests are marked slow when they take about 8 s on a 2-core machine, so an unmarked
test normally stays well under that; 30 s leaves more than 3x headroom for a busy CI runner
(the first test in a run also pays for imports and lazy loading) while still catching a test
that would visibly slow the fast loop. ``GARVID_SLOW_TEST_SECONDS=0`` turns the guard off (a
debugger session, say); a lower value finds the slowest unmarked tests.
"""

from __future__ import annotations

import os

import pytest

ENV = "GARVID_SLOW_TEST_SECONDS"
DEFAULT_SECONDS = 30.0
_limit_key = pytest.StashKey[float]()


def slow_test_seconds() -> float:
    """The limit from ``GARVID_SLOW_TEST_SECONDS`` (default 30); 0 means no limit."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise pytest.UsageError(f"{ENV} must be a number of seconds (0: no limit), not {text!r}")
    return seconds


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_limit_key] = slow_test_seconds()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    limit = item.config.stash.get(_limit_key, DEFAULT_SECONDS)
    if (
        report.when == "call"
        and report.passed
        and not hasattr(report, "wasxfail")
        and limit
        and report.duration > limit
        and item.get_closest_marker("slow") is None
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} took {report.duration:.1f} s (limit {limit:g} s, {ENV}): "
            "mark it @pytest.mark.slow"
        )
    return report
