"""The gradio page of ``garvid serve``: components, events and launch; the work is the workspace's.

Model events (segmenting, tracking, answering) share one queue slot (``concurrency_id``
``"model"``, limit 1: one device); opening a video, browsing frames and cancelling run
beside them, so the page stays responsive while a model works. Each browser session gets
its own :class:`~garvid.serve.workspace.Workspace` in a ``gr.State``, closed (its folder
removed) when the session ends.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import gradio as gr

from garvid.batch.tasks import list_videos
from garvid.errors import GarvidError, check_text
from garvid.options import AnswerOptions
from garvid.output.formats import answer_prefix, clock, render_answer
from garvid.qa.answers import VideoAnswer
from garvid.qa.reporting import Reporter
from garvid.regions.input import RegionInput
from garvid.serve.models import Models
from garvid.serve.settings import ServeSettings, confined
from garvid.serve.workspace import Cancelled, StreamingReporter, Workspace

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cups.mp4"
MODEL = "model"  # the queue's concurrency group for model work
#: The page's own events: not part of the HTTP API (that is ``/ask`` and ``/open_root``).
PAGE_ONLY: dict[str, Any] = {"api_visibility": "private"}

#: Clicking anything with ``data-seek`` (a keyframe's time, a window, an interval) seeks the player.
HEAD = """<script>
document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-seek]");
  if (!target) return;
  event.preventDefault();
  const video = document.querySelector("#garvid-player video");
  if (video) { video.pause(); video.currentTime = parseFloat(target.dataset.seek); }
});
</script>"""
CSS = """
.garvid-chip { display: inline-block; padding: 2px 10px; margin: 2px; border-radius: 12px; color: #000; font-weight: 600; }
.garvid-keyframes { display: flex; flex-wrap: wrap; gap: 4px; }
.garvid-keyframes button { display: flex; flex-direction: column; align-items: center; border: 1px solid #8884; padding: 2px; cursor: pointer; }
.garvid-keyframes img { width: 96px; }
.garvid-track { position: relative; height: 18px; background: #8882; margin: 4px 0; }
.garvid-bar { position: absolute; top: 0; height: 18px; background: #3cb44b; cursor: pointer; }
.garvid-window { display: block; text-align: left; cursor: pointer; }
"""


class _Progress(Reporter):
    """Tracking and rendering progress shown by gradio's progress bar."""

    def __init__(self, progress: gr.Progress):
        self.bar = progress

    def progress(self, stage: str, done: int, total: int) -> None:
        self.bar((done, total), desc=stage)


def _chips_html(workspace: Workspace) -> str:
    chips = []
    for chip in workspace.chips():
        frames = ", ".join(f"f{frame}" + ("" if score is None else f" ({score:.2f})") for frame, score in chip.frames)
        colour = "rgb({},{},{})".format(*chip.colour)
        text = html.escape(f"{chip.id} · {chip.kind} {chip.text} · {frames}")
        chips.append(f'<span class="garvid-chip" data-object="{chip.id}" style="background:{colour}">{text}</span>')
    return "".join(chips) or "<em>No objects yet: click on the frame, or find one by name.</em>"


def _answer_html(workspace: Workspace, result: VideoAnswer) -> str:
    lines = [
        f"<p>{html.escape(answer_prefix(a.start, a.end, a.object_id, result.windowed) + a.text)}</p>" for a in result.answers
    ]
    thumbnails = "".join(
        f'<button class="garvid-seek" data-seek="{time:.3f}"><img src="{uri}" alt="keyframe at {clock(time)}"><span>{clock(time)}</span></button>'
        for time, uri in workspace.thumbnails(result)
    )
    return "".join(lines) + f'<div class="garvid-keyframes">{thumbnails}</div>'


def _windows_html(result: VideoAnswer) -> str:
    rows = [
        f'<button class="garvid-window" data-seek="{start:.3f}">'
        + html.escape(f"[{clock(start)} - {clock(end)}] " + " · ".join(f"object {a.object_id}: {a.text}" for a in group))
        + "</button>"
        for (start, end, _), group in result.by_window()
    ]
    return "<div class='garvid-timeline'>" + "".join(rows) + "</div>"


def _intervals_html(workspace: Workspace, statement: str, intervals: list[Any]) -> str:
    duration = max(workspace.video.info.duration, 1e-6)
    bars = "".join(
        f'<div class="garvid-bar" data-seek="{i.start:.3f}" title="{clock(i.start)} - {clock(i.end)}, peak {i.peak:.2f}" '
        f'style="left:{100 * i.start / duration:.2f}%;width:{max(100 * (i.end - i.start) / duration, 0.5):.2f}%"></div>'
        for i in intervals
    )
    times = ", ".join(f"{clock(i.start)} - {clock(i.end)}" for i in intervals) or "never"
    return f"<p>when {html.escape(statement)}: {times}</p><div class='garvid-track'>{bars}</div>"


def build_page(models: Models, settings: ServeSettings) -> gr.Blocks:
    """The page; ``models`` and ``settings`` are shared by every browser session."""

    open_workspaces: dict[str, Workspace] = {}  # by gradio session: closed when its page goes away

    def workspace(state: Workspace | None, request: gr.Request) -> Workspace:
        if state is None:
            state = open_workspaces[str(request.session_hash)] = Workspace(models, settings)
        return state

    def state_deleted(ws: Workspace | None) -> None:
        """gradio dropped a session's state (an hour after it closed, e.g. an API client's that never unloads)."""
        if ws is not None:
            ws.close()
            for key in [key for key, value in open_workspaces.items() if value is ws]:
                del open_workspaces[key]

    def session_ended(request: gr.Request) -> None:
        """The page was closed: close its workspace now (gradio deletes the state itself an hour later)."""
        if (ws := open_workspaces.pop(str(request.session_hash), None)) is not None:
            ws.close()

    def objects_view(ws: Workspace, frame: int, message: str, question: str = "", chosen: int | None = None) -> tuple:
        """What changes when the objects do: state, message, frame, chips, the object list (``chosen``
        chosen, else the last), the command."""
        choices = [str(chip.id) for chip in ws.chips()]
        return (
            ws,
            message,
            ws.frame(frame) if ws.video_path is not None else None,
            _chips_html(ws),
            gr.Dropdown(choices=choices, value=str(chosen) if str(chosen) in choices else (choices[-1] if choices else None)),
            ws.command(question or None),
        )

    def opened(ws: Workspace, message: str) -> tuple:
        last = ws.video.info.num_frames - 1
        return (
            *objects_view(ws, 0, message),
            gr.Slider(minimum=0, maximum=last, value=0, step=1),
            str(ws.video_path),
            [],
            "",
            None,
        )

    def failed_open(ws: Workspace, error: GarvidError) -> tuple:
        return (ws, str(error), *([gr.skip()] * 9))

    def open_upload(state: Workspace | None, upload: str | None, request: gr.Request) -> tuple:
        ws = workspace(state, request)
        if not upload:
            return failed_open(ws, GarvidError("choose a video file to upload"))
        try:
            ws.open(Path(upload), Path(upload).name, owned=True)
        except GarvidError as error:
            return failed_open(ws, error)
        return opened(ws, f"opened {ws.video_name}")

    def open_root(state: Workspace | None, requested: str | None, request: gr.Request) -> tuple:
        ws = workspace(state, request)
        try:
            ws.open(confined(settings.root, requested or ""), requested or "", owned=False)
        except GarvidError as error:
            return failed_open(ws, error)
        return opened(ws, f"opened {ws.video_name}")

    def open_sample(state: Workspace | None, request: gr.Request) -> tuple:
        ws = workspace(state, request)
        try:
            ws.open(SAMPLE, "samples/cups.mp4", owned=False)
        except GarvidError as error:
            return failed_open(ws, error)
        return opened(ws, "opened samples/cups.mp4")

    def show_frame(state: Workspace | None, frame: int) -> Any:
        if state is None or state.video_path is None:
            return gr.skip()
        return state.frame(int(frame))

    def click(
        state: Workspace | None, frame: int, mode: str, refine: bool, object_id: str | None, question: str, request: gr.Request, event: gr.SelectData
    ) -> tuple:
        """A click adds a new object, or (``refine``) a prompt of the chosen object on this frame."""
        ws = workspace(state, request)
        target = int(object_id) if refine and object_id else None
        try:
            if refine and target is None:
                raise GarvidError("choose the object to refine in the Object list first")
            x, y = (int(round(v)) for v in event.index)
            message = ws.click(int(frame), x, y, "box" if mode == "box" else "point", target)
        except GarvidError as error:
            message = str(error)
        return objects_view(ws, int(frame), message, question, target)

    def find(state: Workspace | None, frame: int, phrase: str, question: str, request: gr.Request) -> tuple:
        ws = workspace(state, request)
        try:
            message = ws.add_name(int(frame), phrase)
        except GarvidError as error:
            message = str(error)
        return objects_view(ws, int(frame), message, question)

    def remove(state: Workspace | None, frame: int, object_id: str | None, question: str, request: gr.Request) -> tuple:
        ws = workspace(state, request)
        try:
            message = ws.remove(int(object_id or 0))
        except GarvidError as error:
            message = str(error)
        return objects_view(ws, int(frame), message, question)

    def track(state: Workspace | None, request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple:
        ws = workspace(state, request)
        try:
            overlay = ws.track(_Progress(progress), progress=lambda done, total: progress((done, total), desc="rendering"))
        except GarvidError as error:
            return ws, str(error), gr.skip(), gr.skip()
        return ws, f"tracked {len(ws.objects)} objects", str(overlay), [str(p) for p in ws.exports().values()]

    def answer(ws: Workspace, question: str | None, window: float | None, history: list | None) -> Iterator[tuple]:
        """Stream one answer (``question`` None: describe per ``window``) into the chat."""
        history = [*(history or []), {"role": "user", "content": html.escape(question or f"describe each object per {window:g} s")}]
        history.append({"role": "assistant", "content": "…"})
        skip = (gr.skip(),) * 5
        reporter = StreamingReporter()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = ws.ask(question, reporter, window=window)
            except (GarvidError, Cancelled) as error:
                outcome["error"] = error
            finally:
                reporter.events.put(("done", None))

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text = ""
        try:
            while (event := reporter.events.get())[0] != "done":
                kind, value = event
                if kind == "token":
                    text += str(value)
                elif kind == "begin":
                    start, end, object_id = value  # type: ignore[misc]
                    text += ("\n" if text else "") + answer_prefix(start, end, object_id, window is not None)
                elif kind == "warning":
                    yield ws, history, str(value), *skip
                    continue
                elif kind == "progress" and not text:
                    stage, done, total = value  # type: ignore[misc]
                    history[-1]["content"] = f"({stage} {done}/{total})"
                    yield ws, history, gr.skip(), *skip
                    continue
                else:
                    continue
                history[-1]["content"] = html.escape(text)
                yield ws, history, gr.skip(), *skip
        finally:
            if thread.is_alive():  # the page went away or cancelled: stop generating
                reporter.cancel.set()
        if "error" in outcome:
            history[-1]["content"] = html.escape(text) + f"<p><em>{html.escape(str(outcome['error']) or 'cancelled')}</em></p>"
            yield ws, history, str(outcome["error"]) or "answer cancelled", *skip
            return
        result: VideoAnswer = outcome["result"]
        history[-1]["content"] = _answer_html(ws, result)
        files = ws.exports()
        player = gr.skip()
        if window is not None:
            overlay = ws.folder / "overlay.mp4"
            player = gr.Video(value=str(overlay if overlay.is_file() else ws.video_path), subtitles=str(files["vtt"]))
        yield (
            ws,
            history,
            "answered",
            gr.DownloadButton(value=str(files["json"]), visible=True),
            [str(p) for p in files.values()],
            ws.command(question) if question is not None else ws.command(None, "describe", window),
            _windows_html(result) if window is not None else gr.skip(),
            player,
        )

    def ask_in_chat(state: Workspace | None, question: str, history: list | None, request: gr.Request) -> Iterator[tuple]:
        yield from answer(workspace(state, request), question, None, history)

    def describe(state: Workspace | None, window: float | None, history: list | None, request: gr.Request) -> Iterator[tuple]:
        if not window or window <= 0:
            yield (workspace(state, request), gr.skip(), "give the window in seconds (a positive number)", *(gr.skip(),) * 5)
            return
        yield from answer(workspace(state, request), None, float(window), history)

    def when(state: Workspace | None, statement: str, request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple:
        ws = workspace(state, request)
        try:
            result = ws.when(statement, _Progress(progress))
        except GarvidError as error:
            return ws, str(error), gr.skip(), gr.skip()
        return ws, f"{len(result.intervals)} intervals", _intervals_html(ws, statement, result.intervals), [str(p) for p in ws.exports().values()]

    def cancel(state: Workspace | None) -> str:
        if state is not None:
            state.cancel()
        return "answer cancelled"

    def ask_api(video: str, mask: str, question: str) -> str:
        """Ask ``question`` about ``video`` with the objects of the label PNG ``mask`` (frame 0): ``garvid ask
        --format json``'s text (text, not a JSON value: gradio_client would take its ``video.path`` for a file)."""
        ws = Workspace(models, settings)
        try:
            ws.open(Path(video), Path(video).name, owned=True)
            request = ws.request(models.region_input(masks=(Path(mask),)))
            with models.open_session(request, Reporter()) as session, models.lock:
                return render_answer(session.ask(check_text(question, "the question")), "json")
        except GarvidError as error:
            raise gr.Error(str(error)) from None
        finally:
            ws.close()

    with gr.Blocks(title="garvid", delete_cache=(3600, 3600)) as page:
        state = gr.State(None, delete_callback=state_deleted)
        gr.Markdown("## garvid: point at objects, track them, ask about them")
        message = gr.Textbox(label="Message", interactive=False, elem_id="garvid-message")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Upload a video", elem_id="garvid-upload")
                if settings.root is not None:
                    try:
                        choices = [str(p.relative_to(settings.root)) for p in list_videos(settings.root, recursive=True)]
                    except GarvidError:
                        choices = []
                    picked = gr.Dropdown(choices=choices, allow_custom_value=True, label=f"Or a video under {settings.root}", elem_id="garvid-root")
                    open_picked = gr.Button("Open", elem_id="garvid-open-root")
                sample = gr.Button("Open the sample (cups.mp4)", visible=SAMPLE.is_file(), elem_id="garvid-sample")
                mode = gr.Radio(["point", "box"], value="point", label="A click on the frame adds", elem_id="garvid-mode")
                refine = gr.Checkbox(label="Clicks refine the chosen object (on any frame)", elem_id="garvid-refine")
                phrase = gr.Textbox(label="Or find an object by name", elem_id="garvid-phrase")
                find_button = gr.Button("Find", elem_id="garvid-find")
                chips = gr.HTML(elem_id="garvid-chips")
                with gr.Row():
                    remove_id = gr.Dropdown(choices=[], label="Object", elem_id="garvid-remove-id")
                    remove_button = gr.Button("Remove", elem_id="garvid-remove")
            with gr.Column(scale=2):
                frame_image = gr.Image(label="Click to point at an object", interactive=False, type="numpy", elem_id="garvid-frame")
                slider = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="garvid-slider")
            with gr.Column(scale=2):
                track_button = gr.Button("Track", variant="primary", elem_id="garvid-track")
                player = gr.Video(label="Video", interactive=False, elem_id="garvid-player")
                timeline = gr.HTML(elem_id="garvid-timeline")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Answers", sanitize_html=False, elem_id="garvid-chat", height=420)
                question = gr.Textbox(label="Ask about the objects (object 1, #2, ...)", elem_id="garvid-question")
                with gr.Row():
                    ask_button = gr.Button("Ask", variant="primary", elem_id="garvid-ask")
                    cancel_button = gr.Button("Cancel", elem_id="garvid-cancel")
                with gr.Row():
                    window = gr.Number(2.0, label="Describe per window (s)", elem_id="garvid-window")
                    describe_button = gr.Button("Describe", elem_id="garvid-describe")
                with gr.Row():
                    statement = gr.Textbox(label="When does this hold? (object 1 picks up object 2)", elem_id="garvid-statement")
                    when_button = gr.Button("When", elem_id="garvid-when")
            with gr.Column(scale=2):
                command = gr.Textbox(label="The same on the command line", interactive=False, elem_id="garvid-command")
                json_button = gr.DownloadButton("Download the answer JSON", visible=False, elem_id="garvid-json")
                exports = gr.File(label="Exports", file_count="multiple", interactive=False, elem_id="garvid-exports")

        object_outputs = [state, message, frame_image, chips, remove_id, command]
        open_outputs = [*object_outputs, slider, player, chat, timeline, exports]
        upload.upload(open_upload, [state, upload], open_outputs, concurrency_limit=None, **PAGE_ONLY)
        if settings.root is not None:
            open_picked.click(open_root, [state, picked], open_outputs, concurrency_limit=None, api_name="open_root")
        sample.click(open_sample, [state], open_outputs, concurrency_limit=None, **PAGE_ONLY)
        slider.change(show_frame, [state, slider], [frame_image], concurrency_limit=None, trigger_mode="always_last", **PAGE_ONLY)
        frame_image.select(click, [state, slider, mode, refine, remove_id, question], object_outputs, concurrency_id=MODEL, **PAGE_ONLY)
        find_button.click(find, [state, slider, phrase, question], object_outputs, concurrency_id=MODEL, **PAGE_ONLY)
        remove_button.click(remove, [state, slider, remove_id, question], object_outputs, concurrency_id=MODEL, **PAGE_ONLY)
        track_button.click(track, [state], [state, message, player, exports], concurrency_id=MODEL, **PAGE_ONLY)
        answer_outputs = [state, chat, message, json_button, exports, command, timeline, player]
        asking = ask_button.click(ask_in_chat, [state, question, chat], answer_outputs, concurrency_id=MODEL, **PAGE_ONLY)
        describing = describe_button.click(describe, [state, window, chat], answer_outputs, concurrency_id=MODEL, **PAGE_ONLY)
        when_button.click(when, [state, statement], [state, message, timeline, exports], concurrency_id=MODEL, **PAGE_ONLY)
        cancel_button.click(cancel, [state], [message], queue=False, cancels=[asking, describing], **PAGE_ONLY)
        question.change(lambda ws, q: ws.command(q or None) if ws is not None else "", [state, question], [command], queue=False, **PAGE_ONLY)

        with gr.Row(visible=False):
            api_video, api_mask = gr.File(), gr.File()
            api_question, api_result = gr.Textbox(), gr.Textbox()
            api_button = gr.Button()
        page.unload(session_ended)
        api_button.click(ask_api, [api_video, api_mask, api_question], [api_result], api_name="ask", concurrency_id=MODEL)
    return page


def serve(settings: ServeSettings, regions: RegionInput, options: AnswerOptions, command_flags: Sequence[str] = ()) -> None:
    """Build the page and serve it until interrupted (no share link); ``command_flags`` are the
    flags that set ``options`` and ``regions``' detector, for the command line the page shows."""
    page = build_page(Models(options, regions, tuple(command_flags)), settings)
    page.queue(default_concurrency_limit=1)
    page.launch(
        server_name=settings.host,
        server_port=settings.port,
        auth=list(settings.auth) or None,
        share=False,
        allowed_paths=[str(p) for p in (settings.root, SAMPLE.parent) if p is not None],  # the player plays videos opened there
        max_file_size=f"{settings.max_upload_mb:g}mb",
        head=HEAD,
        css=CSS,
        show_error=False,
    )
