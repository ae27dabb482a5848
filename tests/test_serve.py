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
    """Open, point on frame 30 and refine that object on frame 60, track, ask, seek, download; meanwhile a
    second browser session sees none of it and gets a message for a file that is not a video."""
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
    _wait_message(page, r"^object 1: point \d+,\d+ on frame 30$")
    chips = page.locator("#garvid-chips .garvid-chip")
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text("1 · point")
    assert page.locator("#garvid-frame img").get_attribute("src") != plain  # the mask preview is drawn
    page.screenshot(path=shots / "3-object.png")
    _check_another_session(browser, url, root.parent / "tmp", tmp_path, shots)

    page.locator("#garvid-refine input[type=checkbox]").check()  # the Object list holds object 1: a click refines it
    _point_on_frame(page, 60, 0.4, 0.5)
    _wait_message(page, r"^object 1: point \d+,\d+ on frame 60$")
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text(re.compile(r"f30( \([0-9.]+\))?, f60"))

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
    assert command.startswith("garvid ask --point ") and f"--cache-dir {cache}" in command
    assert re.search(r"--point \d+,\d+@f30 --point 1=\d+,\d+@f60 ", command), command

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


def _workspace(tracker: str = "", **settings):
    from garvid.options import AnswerOptions, ModelOptions, TrackingOptions
    from garvid.serve.models import Models
    from garvid.serve.settings import ServeSettings
    from garvid.serve.workspace import Workspace

    options = AnswerOptions(model=ModelOptions(device="cpu"), tracking=TrackingOptions(tracker))
    return Workspace(Models(options, command_flags=("--model", "tiny-random")), ServeSettings(**settings))


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
    from garvid.serve.workspace import PageObject, Prompt

    workspace = _workspace()
    try:
        workspace.video_name = "my clip.mp4"
        workspace.objects = [
            PageObject(1, (Prompt("point", "5,6", 12), Prompt("box", "3,3,9,9", 40))),
            PageObject(2, (Prompt("object", "the red cup", 12),)),
            PageObject(3, (Prompt("box", "1,2,30,40", 0), Prompt("point", "7,8", 12))),
        ]
        assert [(c.id, c.kind, [f for f, _ in c.frames]) for c in workspace.chips()] == [(1, "box", [0, 12]), (2, "point", [12, 40]), (3, "object", [12])]
        question = "-v $(rm -rf ~); what does object 3 do?"
        words = shlex.split(workspace.command(question))
        assert words[words.index("--") :] == ["--", "my clip.mp4", question]
        assert words[:words.index("--")] == [
            "garvid", "ask", "--box", "1,2,30,40@f0", "--box", "2=3,3,9,9@f40", "--point", "1=7,8@f12", "--point", "5,6@f12",
            "--object", "the red cup", "--model", "tiny-random",
        ]  # fmt: skip
        regions = workspace.regions()
        assert (regions.boxes, regions.points, regions.objects, regions.frame) == (
            ("1,2,30,40@f0", "2=3,3,9,9@f40"), ("1=7,8@f12", "5,6@f12"), ("the red cup",), 0
        )
    finally:
        workspace.close()


def test_objects_on_two_frames_refined_and_previewed_per_frame():
    """A point on frame 10 and a box on frame 30 are two objects (the box numbered first, as on the
    command line); a refining click adds the point object's prompt on frame 30 (``2=``); each frame's
    preview shows its own objects; the CLI resolves the page's prompts onto the same frames."""
    from garvid.errors import GarvidError

    workspace = _workspace("tiny-random")
    try:
        workspace.open(SAMPLE, "cups.mp4", owned=False)
        assert workspace.click(10, 100, 80, "point") == "object 1: point 100,80 on frame 10"
        assert workspace.click(30, 20, 20, "box").startswith("box: first corner")
        assert workspace.click(30, 60, 50, "box") == "object 1: box 20,20,60,50 on frame 30"  # boxes come first
        assert workspace.click(30, 150, 90, "point", refine=2) == "object 2: point 150,90 on frame 30"
        assert (workspace.regions().boxes, workspace.regions().points) == (("20,20,60,50@f30",), ("100,80@f10", "2=150,90@f30"))
        assert [(c.id, [f for f, _ in c.frames]) for c in workspace.chips()] == [(1, [30]), (2, [10, 30])]
        assert set(workspace.masks(10)) == {2} and set(workspace.masks(30)) == {1, 2} and workspace.masks(20) == {}
        resolved = workspace.regions().resolve(workspace.video.info, workspace.video.timestamps())
        assert {p.frame: p.own_ids for p in resolved.per_frame()} == {10: [2], 30: [1, 2]}
        assert not (workspace.frame(20) != workspace.video.frames([20])[0]).any()  # no object there: no mask drawn

        workspace.click(30, 0, 0, "box", refine=1)
        with pytest.raises(GarvidError, match="^object 1 is given two boxes on frame 30"):
            workspace.click(30, 9, 9, "box", refine=1)
        assert len(workspace.regions().boxes) == 1  # nothing changed
        assert workspace.remove(1) == "removed object 1; the objects after it moved up one number"
        assert workspace.regions().points == ("100,80@f10", "1=150,90@f30") and set(workspace.masks(30)) == {1}
        assert set(workspace.exports()) == {"mask f10", "mask f30"}
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
