"""``garvid serve``: the page driven in real Chromium (Debian's, through Playwright), its HTTP API
through ``gradio_client`` (the README's example, run as written), and the refusals: an exposed
server without auth, a path outside ``--root``, a file that is not a video.

One server (tiny random models, a private tracking cache) serves the whole module; it is the
``garvid serve`` command itself, started as a subprocess on a free port.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from garvid_cli.main import run

pytest.importorskip("gradio")
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

REPO = Path(__file__).resolve().parents[1]
SAMPLE, SAMPLE_MASK = REPO / "samples" / "cups.mp4", REPO / "samples" / "cups_mask.png"
TINY = ["--model", "tiny-random", "--tracker", "tiny-random", "--device", "cpu", "--max-new-tokens", "4", "--frames", "2"]
QUESTION = "what does object 1 do?"
#: Where the README's screenshot is refreshed from (set it to docs/serve.png to retake it).
DOCS_SHOT = os.environ.get("GARVID_SERVE_DOCS_SHOT")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> tuple[str, Path, Path]:
    """``garvid serve`` on a free port: its URL, its --root and its tracking cache."""
    folder = tmp_path_factory.mktemp("serve")
    root, cache = folder / "root", folder / "cache"
    (root / "clips").mkdir(parents=True)
    shutil.copy(SAMPLE, root / "clips" / "cups.mp4")
    (folder / "secret.mp4").write_bytes(SAMPLE.read_bytes())  # beside the root, not in it
    port = _free_port()
    (folder / "tmp").mkdir()  # the server's temporary folders, where each session's private folder goes
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "TMPDIR": str(folder / "tmp")}
    args = [sys.executable, "-m", "garvid_cli", "serve", "--port", str(port), "--root", str(root), "--cache-dir", str(cache), *TINY]
    process = subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"garvid serve did not start: {process.stdout.read() if process.stdout else ''}")
            time.sleep(0.5)
    yield url, root, cache
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium, headless, without its sandbox (CI runs as root); no downloaded browser."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: bash .ci/setup installs Debian's chromium package")
    return {**browser_type_launch_args, "executable_path": chromium, "headless": True, "args": ["--no-sandbox"]}


def _message(page) -> str:
    return page.locator("#garvid-message textarea").input_value()


def _wait_message(page, pattern: str, timeout: float = 120_000) -> None:
    expect(page.locator("#garvid-message textarea")).to_have_value(re.compile(pattern), timeout=timeout)


def _upload(page, path: Path) -> None:
    page.locator("#garvid-upload input[type=file]").set_input_files(str(path))


def _point_on_frame(page, frame: int, x: float, y: float) -> None:
    """Go to ``frame`` with the slider's number box, then click at (x, y) of the displayed frame (fractions)."""
    before = page.locator("#garvid-frame img").get_attribute("src")
    number = page.locator("#garvid-slider input[type=number]")
    number.fill(str(frame))
    number.press("Enter")
    expect(page.locator("#garvid-frame img")).not_to_have_attribute("src", before or "", timeout=30_000)
    image = page.locator("#garvid-frame img")
    box = image.bounding_box()
    assert box is not None
    image.click(position={"x": box["width"] * x, "y": box["height"] * y})


@pytest.mark.slow
def test_round_trip_in_chromium(server, page, browser, tmp_path):
    """Open, point on frame 30, track, ask, seek, download; meanwhile a second browser session sees
    none of it and gets a message for a file that is not a video."""
    url, root, cache = server
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page.set_viewport_size({"width": 1400, "height": 1300})
    page.goto(url)
    expect(page.locator("#garvid-upload")).to_be_visible(timeout=30_000)
    page.screenshot(path=shots / "1-page.png")

    _upload(page, SAMPLE)
    _wait_message(page, r"^opened cups\.mp4$")
    page.screenshot(path=shots / "2-opened.png")

    plain = page.locator("#garvid-frame img").get_attribute("src")
    _point_on_frame(page, 30, 0.5, 0.6)
    _wait_message(page, r"^object 1: point \d+,\d+$")
    chips = page.locator("#garvid-chips .garvid-chip")
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text("1 · point")
    assert page.locator("#garvid-frame img").get_attribute("src") != plain  # the mask preview is drawn
    page.screenshot(path=shots / "3-object.png")
    _check_another_session(browser, url, root.parent / "tmp", tmp_path, shots)

    page.locator("#garvid-track").click()
    _wait_message(page, r"^tracked 1 objects$")
    player = page.locator("#garvid-player video")
    expect(player).to_have_attribute("src", re.compile("overlay"), timeout=30_000)
    page.screenshot(path=shots / "4-tracked.png")

    page.locator("#garvid-question textarea").fill(QUESTION)
    page.evaluate(
        """() => {
          window.garvidSeen = new Set();
          const chat = document.querySelector('#garvid-chat');
          new MutationObserver(() => {
            const bots = chat.querySelectorAll('.message.bot, [data-testid="bot"]');
            if (bots.length) window.garvidSeen.add(bots[bots.length - 1].textContent);
          }).observe(chat, {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.locator("#garvid-ask").click()
    thumbnails = page.locator("#garvid-chat .garvid-keyframes button")
    expect(thumbnails.first).to_be_visible(timeout=120_000)
    assert page.evaluate("() => window.garvidSeen.size") >= 2  # the answer grew on the page before it was done
    _wait_message(page, "^answered$")
    page.screenshot(path=shots / "5-answered.png")
    if DOCS_SHOT:
        page.screenshot(path=REPO / DOCS_SHOT, full_page=True)

    last = thumbnails.last
    seek = float(last.get_attribute("data-seek") or "nan")
    assert seek > 0
    page.wait_for_function("() => document.querySelector('#garvid-player video').readyState >= 1", timeout=30_000)
    last.click()
    page.wait_for_function(f"() => Math.abs(document.querySelector('#garvid-player video').currentTime - {seek}) < 0.05")
    page.screenshot(path=shots / "6-seeked.png")

    with page.expect_download() as download:
        page.locator("#garvid-json").click()
    record = json.loads(Path(download.value.path()).read_text())
    assert record["question"] == QUESTION and [o["id"] for o in record["objects"]] == [1]
    command = page.locator("#garvid-command textarea").input_value()
    assert command.startswith("garvid ask --point ") and "--mask-frame 30" in command and f"--cache-dir {cache}" in command

    # the command the page shows is the batch run of the same request: the same JSON, answer included
    args = shlex.split(command)[1:]
    args[args.index("cups.mp4")] = str(SAMPLE)
    args[args.index("--"):args.index("--")] = ["--format", "json", "-o", str(tmp_path / "cli.json")]
    assert run(args) == 0
    cli = json.loads((tmp_path / "cli.json").read_text())
    for data in (record, cli):
        data.pop("timings"), data["video"].pop("path")
    assert record == cli


def _check_another_session(browser, url: str, tmp: Path, tmp_path: Path, shots: Path) -> None:
    """A second browser context: no object of the first; a non-video upload gets a one-line message,
    nothing opens; closing the page removes its private folder (under the server's ``tmp``)."""
    context = browser.new_context()
    try:
        other = context.new_page()
        other.goto(url)
        expect(other.locator("#garvid-upload")).to_be_visible(timeout=30_000)
        expect(other.locator("#garvid-chips .garvid-chip")).to_have_count(0)
        not_a_video = tmp_path / "notes.mp4"
        not_a_video.write_text("these are notes, not a video\n")
        _upload(other, not_a_video)
        expect(other.locator("#garvid-message textarea")).not_to_have_value("", timeout=30_000)
        assert _message(other).startswith("notes.mp4: not a readable video") and "\n" not in _message(other)
        expect(other.locator("#garvid-frame img")).to_have_count(0)  # nothing opened
        expect(other.locator("#garvid-chips .garvid-chip")).to_have_count(0)
        other.screenshot(path=shots / "3b-other-session.png")
        before = len(_session_folders(tmp))
    finally:
        context.close()
    deadline = time.monotonic() + 60
    while len(_session_folders(tmp)) != before - 1:  # the closed page's folder is removed
        assert time.monotonic() < deadline, f"the closed session's folder is still there: {_session_folders(tmp)}"
        time.sleep(0.5)


def _session_folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("garvid-serve-*"))


def test_paths_outside_the_root_are_refused(server):
    from gradio_client import Client

    url, root, _ = server
    client = Client(url, verbose=False)
    for outside in ("../secret.mp4", str(root.parent / "secret.mp4"), "clips/../../secret.mp4", "/etc/passwd"):
        assert client.predict(outside, api_name="/open_root")[0] == f"{outside!r} is outside the served folder"
    (root / "escape.mp4").symlink_to(root.parent / "secret.mp4")
    assert client.predict("escape.mp4", api_name="/open_root")[0] == "'escape.mp4' is outside the served folder"
    assert client.predict("clips/cups.mp4", api_name="/open_root")[0] == "opened clips/cups.mp4"


@pytest.mark.slow
def test_the_readme_client_example_runs(server, monkeypatch, capsys):
    url, _, _ = server
    readme = (REPO / "README.md").read_text()
    example = re.search(r"<!-- serve-client-example -->\s*```python\n(.*?)```", readme, re.S)
    assert example, "README.md lost its gradio_client example"
    monkeypatch.chdir(REPO)
    exec(compile(example.group(1).replace("http://127.0.0.1:7860/", url), "README.md", "exec"), {})
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0 makes the page reachable from other machines: give --auth USER:PASSWORD or --auth-file"),
        (["--host", "0.0.0.0", "--auth", "alice"], "--auth must be USER:PASSWORD with neither part empty"),
        (["--root", "/nonexistent/folder"], "--root /nonexistent/folder is not a folder"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be a positive number, not 0"),
    ],
)
def test_bad_serving_options_are_one_line_and_exit_2_before_anything_loads(args, message, capsys):
    assert run(["serve", *args]) == 2
    assert capsys.readouterr().err == f"garvid: error: {message}\n"
    assert "garvid.serve.page" not in sys.modules  # refused before gradio or any model loads


def test_auth_file_lines(tmp_path):
    from garvid.serve.settings import ServeSettings

    users = tmp_path / "users.txt"
    users.write_text("# who may use the page\nalice:s3cr:et\n\nbob:pw\n")
    settings = ServeSettings.build(host="0.0.0.0", auth_file=users)
    assert settings.auth == (("alice", "s3cr:et"), ("bob", "pw"))
    users.write_text("carol\n")
    with pytest.raises(Exception, match=f"line 1 of {users} must be USER:PASSWORD"):
        ServeSettings.build(host="0.0.0.0", auth_file=users)


def _workspace(**settings):
    from garvid.options import AnswerOptions
    from garvid.serve.models import Models
    from garvid.serve.settings import ServeSettings
    from garvid.serve.workspace import Workspace

    return Workspace(Models(AnswerOptions(), command_flags=("--model", "tiny-random")), ServeSettings(**settings))


def test_too_long_or_too_large_videos_are_refused_and_nothing_opens(tmp_path):
    from garvid.errors import GarvidError

    for limits, message in (
        ({"max_duration": 1.0}, "cups.mp4 lasts 4 s; this server takes up to 1 s"),
        ({"max_upload_mb": 0.01}, "cups.mp4 is 0.181 MB; this server takes up to 0.01 MB"),
    ):
        workspace = _workspace(**limits)
        try:
            with pytest.raises(GarvidError) as refused:
                workspace.open(SAMPLE, "cups.mp4", owned=False)
            assert str(refused.value) == message and workspace.video_path is None
        finally:
            workspace.close()
        assert not workspace.folder.exists()  # the session's folder goes with it


def test_objects_take_the_cli_numbering_and_the_command_keeps_user_text_as_data():
    from garvid.serve.workspace import PageObject

    workspace = _workspace()
    try:
        workspace.video_name, workspace.prompt_frame = "my clip.mp4", 12
        workspace.objects = [PageObject("point", "5,6"), PageObject("object", "the red cup"), PageObject("box", "1,2,30,40")]
        assert [(c.id, c.kind) for c in workspace.chips()] == [(1, "box"), (2, "point"), (3, "object")]
        question = "-v $(rm -rf ~); what does object 3 do?"
        words = shlex.split(workspace.command(question))
        assert words[words.index("--") :] == ["--", "my clip.mp4", question]
        assert words[:words.index("--")] == [
            "garvid", "ask", "--box", "1,2,30,40", "--point", "5,6", "--object", "the red cup", "--mask-frame", "12", "--model", "tiny-random",
        ]  # fmt: skip
    finally:
        workspace.close()


def test_a_cancelled_answer_stops_at_its_next_token():
    from garvid.serve.workspace import StreamingReporter

    reporter = StreamingReporter()
    reporter.token("a")
    reporter.cancel.set()
    with pytest.raises(KeyboardInterrupt):  # what VideoSession.ask takes for an interrupted answer
        reporter.token("b")
    assert reporter.events.get_nowait() == ("token", "a") and reporter.events.empty()
