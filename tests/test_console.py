"""Terminal plumbing shared by the commands: Ctrl-C handling and warnings."""

from __future__ import annotations

import os
import signal

import pytest
from garvid_cli.console import EXIT_INTERRUPTED, StopOnInterrupt, WarningReporter


def test_first_ctrl_c_asks_to_stop_and_the_second_exits_130(capfd):
    with StopOnInterrupt() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop()  # the run finishes its current item, then stops
        with pytest.raises(SystemExit) as leaving:
            os.kill(os.getpid(), signal.SIGINT)
    assert leaving.value.code == EXIT_INTERRUPTED
    err = capfd.readouterr().err
    assert "stopping after the current item" in err and "garvid: stopped" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored on leaving


def test_a_run_says_each_warning_once(capsys):
    reporter = WarningReporter()
    for _ in range(3):
        reporter.warn("tiny-random has random weights")
    reporter.warn("object 2 is never visible")
    err = capsys.readouterr().err
    assert err.count("tiny-random has random weights") == 1 and "object 2 is never visible" in err
