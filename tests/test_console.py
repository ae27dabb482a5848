"""Terminal plumbing shared by the commands: Ctrl-C handling and warnings."""

from __future__ import annotations

import os
import signal
import warnings

import garvid_cli.main
import pytest
from garvid_cli.console import EXIT_INTERRUPTED, StopOnInterrupt

from garvid.errors import GarvidWarning
from garvid.qa.reporting import Reporter


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


def test_a_run_says_each_warning_once(capsys, monkeypatch):
    """Reporter warnings and GarvidWarnings share one channel; the CLI prints each distinct one once per run."""

    def command() -> None:
        reporter = Reporter()
        for _ in range(3):
            reporter.warn("tiny-random has random weights")
        warnings.warn("object 2 is never visible", GarvidWarning)

    monkeypatch.setattr(garvid_cli.main, "_register_commands", lambda: None)
    monkeypatch.setattr(garvid_cli.main, "app", lambda **_: command())
    assert garvid_cli.main.run([]) == 0
    err = capsys.readouterr().err
    assert err.count("tiny-random has random weights") == 1 and "object 2 is never visible" in err
