"""One browser session's work: its video, the objects pointed at, its ``VideoSession`` and its files.

Everything a page does goes through a :class:`Workspace`; it holds no gradio object, so the
page (``garvid.serve.page``) only wires events to it. Objects keep the CLI's numbering
(boxes, then points, then names, each in the order given), so a chip's number is the
``object N`` a question names and the number the equivalent command line gives it. Each box
or point lies on the frame it was clicked on (``@fK``); a click that refines an object adds
its ``N=`` prompt there, so one object may be prompted on several frames, as on the command
line. Names are frame-free: the detector finds them on every shot's first frame.
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
from typing import TYPE_CHECKING, Callable, Literal, Sequence

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
    from garvid.tracking.segment import SegmentedObject

Kind = Literal["box", "point", "object"]
#: The CLI's numbering: boxes, then points, then objects by name.
NUMBERING: tuple[Kind, ...] = ("box", "point", "object")
FLAGS = {"box": "--box", "point": "--point", "object": "--object"}
THUMBNAIL_WIDTH = 160


@dataclass(frozen=True)
class Prompt:
    """A box or point as ``--box``/``--point`` text (without ``N=`` and ``@``), or a name, and
    the frame it was given on (a name's is where its preview is segmented)."""

    kind: Kind
    text: str
    frame: int


@dataclass(frozen=True)
class PageObject:
    """An object: the prompt that made it, then those that refine it. ``key`` stays the same
    while the object's number changes (an object before it removed)."""

    key: int
    prompts: tuple[Prompt, ...]

    @property
    def kind(self) -> Kind:
        """What numbers it: the kind of the prompt that made it."""
        return self.prompts[0].kind

    @property
    def frames(self) -> list[int]:
        """The frames of its prompts, in the order given."""
        return list(dict.fromkeys(p.frame for p in self.prompts))

    def on(self, frame: int) -> PageObject:
        """This object with its prompts on ``frame`` alone."""
        return replace(self, prompts=tuple(p for p in self.prompts if p.frame == frame))


@dataclass(frozen=True)
class Chip:
    """What the page shows for one object: the prompt that made it, and the frames of its
    prompts with their preview scores (SAM2's for boxes and points, the detector's for names)."""

    id: int
    kind: Kind
    text: str
    colour: tuple[int, int, int]
    frames: tuple[tuple[int, float | None], ...]


def numbered(objects: Sequence[PageObject]) -> list[tuple[int, PageObject]]:
    """``objects`` with their CLI numbers: by the kind of the prompt that made each, in order."""
    ordered = sorted(objects, key=lambda o: NUMBERING.index(o.kind))  # stable: each kind keeps its order
    return list(enumerate(ordered, 1))


def prompt_texts(objects: Sequence[tuple[int, PageObject]]) -> dict[Kind, list[str]]:
    """The ``--box``, ``--point`` and ``--object`` texts of numbered ``objects``: each object's
    first prompt without an id (so the CLI numbers it as the page does), the others ``N=``,
    every box and point with its frame (``@fK``); names without one."""
    texts: dict[Kind, list[str]] = {kind: [] for kind in NUMBERING}
    for number, item in objects:
        for n, prompt in enumerate(item.prompts):
            if prompt.kind == "object":  # only ever an object's first prompt: names take no N=
                texts["object"].append(prompt.text)
            else:
                texts[prompt.kind].append(f"{f'{number}=' if n else ''}{prompt.text}@f{prompt.frame}")
    return texts


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
    pending_corner: tuple[int, int, int] | None = None  # the first click of a box: frame, x, y
    previews: dict[int, dict[int, SegmentedObject]] = field(default_factory=dict)  # by frame, then object key
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
        """Frame ``index``, with the masks of the objects prompted on it drawn."""
        index = int(min(max(index, 0), self.video.info.num_frames - 1))
        with self._frames_lock:
            pixels = self.video.frames([index])[0]
        masks = self.masks(index)
        return draw_overlay(pixels, masks) if masks else pixels

    def masks(self, frame: int) -> dict[int, np.ndarray]:
        """The preview masks on ``frame``, by object number."""
        numbers = {item.key: number for number, item in self.numbered()}
        return {numbers[key]: segmented.mask for key, segmented in self.previews.get(frame, {}).items()}

    # -- objects ---------------------------------------------------------------------------

    def numbered(self) -> list[tuple[int, PageObject]]:
        """The objects with their CLI numbers."""
        return numbered(self.objects)

    def chips(self) -> list[Chip]:
        chips = []
        for number, item in self.numbered():
            previews = {frame: self.previews.get(frame, {}).get(item.key) for frame in item.frames}
            scored = tuple((frame, preview.score if preview is not None else None) for frame, preview in previews.items())
            chips.append(Chip(number, item.kind, item.prompts[0].text, object_colour(number), scored))
        return chips

    def regions(self) -> RegionInput:
        """The objects as ``garvid ask`` takes them (what the command line shows)."""
        return self._region_input(self.numbered())

    def _region_input(self, objects: Sequence[tuple[int, PageObject]], frame: int = 0) -> RegionInput:
        """Numbered ``objects`` as a RegionInput with the server's detector; ``frame`` is where names are found."""
        texts = prompt_texts(objects)
        return self.models.region_input(boxes=tuple(texts["box"]), points=tuple(texts["point"]), objects=tuple(texts["object"]), frame=frame)

    def click(self, frame: int, x: int, y: int, mode: Literal["point", "box"], refine: int | None = None) -> str:
        """A click on frame ``frame``: a point, or one corner of a box (the second click on the same
        frame adds it); a new object, or a prompt of object ``refine`` on this frame."""
        if mode == "point":
            self.pending_corner = None
            return self.add(Prompt("point", f"{x},{y}", frame), refine)
        if self.pending_corner is None or self.pending_corner[0] != frame:
            self.pending_corner = (frame, x, y)
            return f"box: first corner at {x},{y}; click the opposite corner"
        (_, x1, y1), self.pending_corner = self.pending_corner, None
        box = f"{min(x, x1)},{min(y, y1)},{max(x, x1)},{max(y, y1)}"
        return self.add(Prompt("box", box, frame), refine)

    def add_name(self, frame: int, phrase: str) -> str:
        if not phrase.strip():
            raise GarvidError("type the name of an object first")
        return self.add(Prompt("object", check_text(phrase.strip(), "the object's name"), frame))

    def add(self, prompt: Prompt, refine: int | None = None) -> str:
        """Add ``prompt`` as a new object, or to object ``refine``, and segment its frame; on a
        problem nothing changes."""
        before = list(self.objects)
        if refine is None:
            item = PageObject(max((o.key for o in self.objects), default=0) + 1, (prompt,))
            self.objects.append(item)
        else:
            old = dict(self.numbered()).get(refine)
            if old is None:
                raise GarvidError(f"there is no object {refine} to refine")
            item = replace(old, prompts=(*old.prompts, prompt))
            self.objects[self.objects.index(old)] = item
        try:
            self._segment(prompt.frame)
        except BaseException:
            self.objects = before
            raise
        number = next(i for i, o in self.numbered() if o is item)
        return f"object {number}: {prompt.kind} {prompt.text}" + (f" on frame {prompt.frame}" if prompt.kind != "object" else "")

    def remove(self, object_id: int) -> str:
        numbered = dict(self.numbered())
        if object_id not in numbered:
            raise GarvidError(f"there is no object {object_id}")
        item = numbered[object_id]
        self.objects.remove(item)
        for frame in item.frames:
            self.previews.get(frame, {}).pop(item.key, None)
            self._segment(frame)  # the others' masks there may change (a second name of the same phrase takes the best instance)
        moved = "; the objects after it moved up one number" if object_id <= len(self.objects) else ""
        return f"removed object {object_id}{moved}"

    def _segment(self, frame: int) -> None:
        """The masks of the objects prompted on ``frame``, by ``garvid segment``'s code with the
        server's tracker: those objects' prompts there alone, numbered as the CLI would number
        them, since segmenting takes one frame."""
        from garvid.tracking.segment import segment_prompt_frame

        here = numbered([item.on(frame) for item in self.objects if frame in item.frames])
        if not here:
            self.previews.pop(frame, None)
            return
        with self.models.lock, self._frames_lock:
            segmentation = segment_prompt_frame(self.video, self._region_input(here, frame), tracker=self.models.tracker, device=self.models.options.model.device)
        keys = {number: item.key for number, item in here}
        self.previews[frame] = {keys[o.id]: o for o in segmentation.objects}

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
        for frame in sorted(self.previews) if self._video is not None else ():  # each usable as --mask PNG@fK
            files[f"mask f{frame}"] = self.folder / f"mask-f{frame}.png"
            write_label_png(label_map(self.masks(frame), (self.video.info.width, self.video.info.height)), files[f"mask f{frame}"])
        for name in ("tracks.json", "overlay.mp4"):
            if (self.folder / name).is_file():
                files[name] = self.folder / name
        return files

    def command(self, question: str | None, verb: str = "ask", window: float | None = None) -> str:
        """The command line that asks ``question`` (or describes, per ``window`` seconds) about the
        current objects, shell-quoted; the video and question come after ``--``, so a question that
        starts with ``-`` stays a question."""
        args = ["garvid", verb]
        for kind, texts in prompt_texts(self.numbered()).items():
            for text in texts:
                args += [FLAGS[kind], text]
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
        self._video, self.video_path, self.objects = None, None, []
        self.previews, self.last, self.pending_corner = {}, None, None
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

