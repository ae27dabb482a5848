"""One browser session's work: its video, the objects pointed at, its ``VideoSession`` and its files.

Everything a page does goes through a :class:`Workspace`; it holds no gradio object, so the
page (``garvid.serve.page``) only wires events to it. Objects keep the CLI's numbering
(boxes, then points, then names, each in the order given), so a chip's number is the
``object N`` a question names and the number the equivalent command line gives it. All
objects share one prompt frame, as on the command line (``--mask-frame``).
"""

from __future__ import annotations

import base64
import io
import queue
import shlex
import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np
from PIL import Image

from garvid.errors import GarvidError, check_text
from garvid.files import write_json, write_text
from garvid.media.open import open_video_with
from garvid.output.formats import render_answer, render_when
from garvid.output.masks import label_map, write_label_png
from garvid.output.overlay import draw_overlay, object_colour
from garvid.qa.reporting import Reporter
from garvid.qa.video_request import VideoRequest
from garvid.qa.when_result import WhenAnswer
from garvid.regions.input import RegionInput
from garvid.serve.models import Models
from garvid.serve.settings import ServeSettings

if TYPE_CHECKING:
    from garvid.media.source import FrameSource
    from garvid.qa.answers import Answer, VideoAnswer
    from garvid.qa.keyframes import Window
    from garvid.qa.video_session import VideoSession

Kind = Literal["box", "point", "object"]
#: The CLI's numbering: boxes, then points, then objects by name.
NUMBERING: tuple[Kind, ...] = ("box", "point", "object")
FLAGS = {"box": "--box", "point": "--point", "object": "--object"}
THUMBNAIL_WIDTH = 160


@dataclass(frozen=True)
class PageObject:
    """An object as pointed at: a box or point as ``--box``/``--point`` text, or a name."""

    kind: Kind
    text: str


@dataclass(frozen=True)
class Chip:
    """What the page shows for one object."""

    id: int
    kind: Kind
    text: str
    colour: tuple[int, int, int]
    score: float | None


class Cancelled(Exception):
    """The page cancelled the answer being generated."""


class StreamingReporter(Reporter):
    """Hands an answer's text to the page as it grows (``events``) and stops it when ``cancel`` is set."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()
        self.cancel = threading.Event()

    def warn(self, message: str) -> None:
        self.events.put(("warning", message))

    def progress(self, stage: str, done: int, total: int) -> None:
        self.events.put(("progress", (stage, done, total)))

    def answer_begins(self, window: Window, object_id: int | None) -> None:
        self._check()
        self.events.put(("begin", (window.start, window.end, object_id)))

    def token(self, text: str) -> None:
        self._check()
        self.events.put(("token", text))

    def answer_ends(self, answer: Answer) -> None:
        self.events.put(("end", answer.text))

    def _check(self) -> None:
        if self.cancel.is_set():
            raise KeyboardInterrupt  # what VideoSession.ask takes for an interrupted answer


@dataclass
class Workspace:
    """A browser session's state and private folder (removed by :meth:`close`)."""

    models: Models
    settings: ServeSettings
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="garvid-serve-")))
    video_path: Path | None = None
    video_name: str = ""  # as the user knows it: the uploaded file's name, or the path under --root
    objects: list[PageObject] = field(default_factory=list)
    prompt_frame: int | None = None
    pending_corner: tuple[int, int] | None = None  # the first click of a box
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # the prompt frame's masks, by object id
    scores: dict[int, float | None] = field(default_factory=dict)
    reporter: StreamingReporter | None = None  # of the answer being generated
    last: VideoAnswer | WhenAnswer | None = None
    _video: FrameSource | None = None
    _session: VideoSession | None = None
    _session_key: tuple | None = None
    _frames_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the video -------------------------------------------------------------------------

    def open(self, path: Path, name: str, *, owned: bool) -> None:
        """Open ``path`` (moved into the private folder when ``owned``, an upload), after the size and
        duration checks; a file that is not a video is refused and nothing changes."""
        try:
            video = self._checked(path, name)
        except GarvidError as error:
            if owned:
                path.unlink(missing_ok=True)  # a refused upload is not kept
            raise GarvidError(str(error).replace(str(path), name)) from None  # the server's folders are not the page's business
        self._reset()
        if owned:
            video.close()
            target = self.folder / f"video{path.suffix.lower()}"
            shutil.move(path, target)
            video, path = open_video_with(target, self.models.options.tracking), target
        self._video, self.video_path, self.video_name = video, path, name

    def _checked(self, path: Path, name: str) -> FrameSource:
        """``path`` opened, if it is a video within the server's size and duration limits."""
        size_mb = path.stat().st_size / 1e6
        if size_mb > self.settings.max_upload_mb:
            raise GarvidError(f"{name} is {size_mb:.3g} MB; this server takes up to {self.settings.max_upload_mb:g} MB")
        video = open_video_with(path, self.models.options.tracking)
        if video.info.duration > self.settings.max_duration:
            video.close()
            raise GarvidError(f"{name} lasts {video.info.duration:.0f} s; this server takes up to {self.settings.max_duration:g} s")
        return video

    @property
    def video(self) -> FrameSource:
        if self._video is None:
            raise GarvidError("open a video first")
        return self._video

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index``, with the objects' masks drawn when it is the prompt frame."""
        index = int(min(max(index, 0), self.video.info.num_frames - 1))
        with self._frames_lock:
            pixels = self.video.frames([index])[0]
        if index == self.prompt_frame and self.masks:
            return draw_overlay(pixels, self.masks)
        return pixels

    # -- objects ---------------------------------------------------------------------------

    def numbered(self) -> list[tuple[int, PageObject]]:
        """The objects with their CLI numbers."""
        ordered = sorted(self.objects, key=lambda o: NUMBERING.index(o.kind))  # stable: each kind keeps its order
        return list(enumerate(ordered, 1))

    def chips(self) -> list[Chip]:
        return [Chip(i, o.kind, o.text, object_colour(i), self.scores.get(i)) for i, o in self.numbered()]

    def regions(self) -> RegionInput:
        by_kind = {kind: tuple(o.text for _, o in self.numbered() if o.kind == kind) for kind in NUMBERING}
        return self.models.region_input(boxes=by_kind["box"], points=by_kind["point"], objects=by_kind["object"], frame=self.prompt_frame or 0)

    def click(self, frame: int, x: int, y: int, mode: Literal["point", "box"]) -> str:
        """A click on frame ``frame``: a point object, or one corner of a box (the second click adds it)."""
        self._check_frame(frame)
        if mode == "point":
            self.pending_corner = None
            return self.add(PageObject("point", f"{x},{y}"), frame)
        if self.pending_corner is None:
            self.pending_corner = (x, y)
            return f"box: first corner at {x},{y}; click the opposite corner"
        (x1, y1), self.pending_corner = self.pending_corner, None
        box = f"{min(x, x1)},{min(y, y1)},{max(x, x1)},{max(y, y1)}"
        return self.add(PageObject("box", box), frame)

    def add_name(self, frame: int, phrase: str) -> str:
        self._check_frame(frame)
        if not phrase.strip():
            raise GarvidError("type the name of an object first")
        return self.add(PageObject("object", check_text(phrase.strip(), "the object's name")), frame)

    def add(self, item: PageObject, frame: int) -> str:
        """Add ``item`` on ``frame`` and segment the prompt frame; on a problem nothing changes."""
        before = (list(self.objects), self.prompt_frame)
        self.objects.append(item)
        self.prompt_frame = frame
        try:
            self._segment()
        except BaseException:
            self.objects, self.prompt_frame = before
            raise
        number = next(i for i, o in self.numbered() if o is item)
        return f"object {number}: {item.kind} {item.text}"

    def remove(self, object_id: int) -> str:
        numbered = dict(self.numbered())
        if object_id not in numbered:
            raise GarvidError(f"there is no object {object_id}")
        self.objects.remove(numbered[object_id])
        if not self.objects:
            self.prompt_frame, self.masks, self.scores = None, {}, {}
        else:
            self._segment()
        moved = "; the objects after it moved up one number" if object_id <= len(self.objects) else ""
        return f"removed object {object_id}{moved}"

    def _check_frame(self, frame: int) -> None:
        if self.prompt_frame is not None and frame != self.prompt_frame:
            raise GarvidError(
                f"the objects are on frame {self.prompt_frame} (all share one prompt frame): go back to it, or remove them to start on frame {frame}"
            )

    def _segment(self) -> None:
        """Every object's mask on the prompt frame, by ``garvid segment``'s code."""
        from garvid.tracking.segment import segment_prompt_frame

        options = self.models.options
        with self.models.lock, self._frames_lock:
            segmentation = segment_prompt_frame(self.video, self.regions(), tracker=options.tracking.tracker, device=options.model.device)
        self.masks = segmentation.masks
        self.scores = {o.id: o.score for o in segmentation.objects}

    # -- tracking and answering --------------------------------------------------------------

    def request(self, regions: RegionInput | None = None) -> VideoRequest:
        """The open video with ``regions`` (default: the page's objects) and the server's options."""
        if self.video_path is None:
            raise GarvidError("open a video first")
        if regions is None and not self.objects:
            raise GarvidError("point at an object first: click on the frame, or find one by name")
        return VideoRequest(self.video_path, regions or self.regions(), None, self.models.options)

    def session(self, reporter: Reporter) -> VideoSession:
        """The open video's ``VideoSession`` for the current objects (a new one when they changed)."""
        request = self.request()
        key = (request.regions, request.video)
        if self._session is None or self._session_key != key:
            self._close_session()
            self._session = self.models.open_session(request, reporter)
            self._session_key = key
        self._session.context.reporter = reporter
        return self._session

    def track(self, reporter: Reporter, progress: Callable[[int, int], None] | None = None) -> Path:
        """Track every object (through the tracking cache) and render the overlay video."""
        from garvid.output.overlay import render_tracks

        session = self.session(reporter)
        overlay = self.folder / "overlay.mp4"
        tracking = self.models.options.tracking
        render_tracks(session.tracks, overlay, progress=progress, decoder=tracking.decoder, decode_device=tracking.decode_device)
        write_json(session.tracks.to_json(), self.folder / "tracks.json")
        return overlay

    def ask(self, question: str | None, reporter: StreamingReporter, window: float | None = None) -> VideoAnswer:
        """Answer ``question`` (None: describe each object, per ``window`` seconds when given)."""
        if question is not None:
            question = check_text(question.strip(), "the question")
            if not question:
                raise GarvidError("type a question first")
        keyframes = replace(self.models.options.keyframes, window=window) if window is not None else None
        self.reporter = reporter
        try:
            session = self.session(reporter)
            with self.models.lock:
                result = session.ask(question, keyframes=keyframes)
        except KeyboardInterrupt:
            raise Cancelled from None
        finally:
            self.reporter = None
        self.last = result
        return result

    def when(self, statement: str, reporter: Reporter) -> WhenAnswer:
        statement = check_text(statement.strip(), "the statement")
        if not statement:
            raise GarvidError("type a statement first, such as: object 1 picks up object 2")
        session = self.session(reporter)
        with self.models.lock:
            result = session.when(statement)
        self.last = result
        return result

    def cancel(self) -> None:
        if self.reporter is not None:
            self.reporter.cancel.set()

    def thumbnails(self, result: VideoAnswer) -> list[tuple[float, str]]:
        """Each keyframe of ``result`` as (time, JPEG data URI)."""
        frames = [k["frame"] for k in result.keyframes]
        with self._frames_lock:
            pixels = self.video.frames(frames) if frames else []
        out = []
        for keyframe, image in zip(result.keyframes, pixels):
            picture = Image.fromarray(image)
            picture.thumbnail((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH))
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=80)
            out.append((float(keyframe["time"]), "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()))
        return out

    # -- exports ---------------------------------------------------------------------------

    def exports(self) -> dict[str, Path]:
        """What the CLI would write for the current state, written into the private folder."""
        files: dict[str, Path] = {}
        if self.last is not None:
            render = render_when if isinstance(self.last, WhenAnswer) else render_answer
            for fmt in ("json", "srt", "vtt"):
                path = self.folder / f"{'when' if render is render_when else 'answer'}.{fmt}"
                write_text(render(self.last, fmt), path)  # type: ignore[arg-type]
                files[fmt] = path
        if self.masks and self._video is not None:
            files["mask"] = self.folder / "mask.png"
            write_label_png(label_map(self.masks, (self.video.info.width, self.video.info.height)), files["mask"])
        for name in ("tracks.json", "overlay.mp4"):
            if (self.folder / name).is_file():
                files[name] = self.folder / name
        return files

    def command(self, question: str | None, verb: str = "ask", window: float | None = None) -> str:
        """The command line that asks ``question`` (or describes, per ``window`` seconds) about the
        current objects, shell-quoted; the video and question come after ``--``, so a question that
        starts with ``-`` stays a question."""
        args = ["garvid", verb]
        for _, item in self.numbered():
            args += [FLAGS[item.kind], item.text]
        if self.prompt_frame:
            args += ["--mask-frame", str(self.prompt_frame)]
        if window is not None:
            args += ["--window", f"{window:g}"]
        args += [*self.models.command_flags, "--", self.video_name or "VIDEO"]
        if verb == "ask":
            args.append(question or "QUESTION")
        return shlex.join(args)

    # -- lifetime --------------------------------------------------------------------------

    def _reset(self) -> None:
        self._close_session()
        if self._video is not None:
            self._video.close()
        self._video, self.video_path, self.objects, self.prompt_frame = None, None, [], None
        self.masks, self.scores, self.last, self.pending_corner = {}, {}, None, None
        for item in self.folder.iterdir():
            if item.is_file():
                item.unlink()

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session, self._session_key = None, None

    def close(self) -> None:
        """End the session: close the video and remove the private folder."""
        self.cancel()
        self._close_session()
        if self._video is not None:
            self._video.close()
            self._video = None
        shutil.rmtree(self.folder, ignore_errors=True)

