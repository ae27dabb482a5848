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


def _spin(seconds: float = 10.0) -> None:
    """Run Python code (where signals are handled) until interrupted, or fail after ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    pytest.fail("no interrupt arrived")


def test_an_interrupt_inside_a_finalizer_reaches_the_main_code_without_a_traceback(capfd):
    """Ctrl-C landing in decord's VideoReader.__del__ printed "Exception ignored ... Traceback" and
    was lost; now it is delivered again to the main code, silently."""
    from garvid_cli.console import interrupts_handled

    class Finalized:
        def __del__(self):
            raise KeyboardInterrupt  # as when Ctrl-C arrives while the finalizer runs

    with pytest.raises(KeyboardInterrupt), interrupts_handled():
        Finalized()  # freed at once
        _spin()  # the re-delivered interrupt arrives meanwhile
    assert "Exception ignored" not in capfd.readouterr().err


def test_sigterm_ends_a_command_through_its_cleanup_with_143(tmp_path):
    """SIGTERM raises in the main code as Ctrl-C does: `with` blocks (temporary folders) are
    unwound, and the exit status is 143."""
    import tempfile

    from garvid_cli.console import interrupts_handled

    made = []
    with pytest.raises(SystemExit) as ended, interrupts_handled():
        with tempfile.TemporaryDirectory(prefix="garvid-batch-", dir=tmp_path) as scratch:
            made.append(scratch)
            os.kill(os.getpid(), signal.SIGTERM)
            _spin()
    assert ended.value.code == 143 and made and not os.path.exists(made[0])
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored after the command
