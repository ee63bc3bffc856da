"""FaceSwapper: the inference pipeline for images, folders and videos.

source image -> detect -> align 112 -> identity (once per source)
target frame -> detect (+ track, smooth) -> select -> align 256 -> swap crops in batches
             -> inverse warp, mask, colour -> paste back -> writer (audio kept, provenance label)

Video frames are queued until enough faces have gathered for one generator batch (or the queue is full),
so several frames share a forward pass while memory stays bounded however long the video is.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from facedancer.atomic import overwritten_input
from facedancer.device import resolve_device
from facedancer.errors import ConfigError, FacedancerError, InputError, NoFaceError, NothingSwappedError, OutputError
from facedancer.faces import (
    BlendConfig,
    FaceDetector,
    FaceTracker,
    RetinaFaceDetector,
    TrackerConfig,
    YuNetDetector,
    align,
    blend_face,
)
from facedancer.io import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    DEFAULT_MAX_PIXELS,
    IMAGE_OUTPUT_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_OUTPUT_SUFFIXES,
    ProvenanceLabel,
    VideoReader,
    VideoWriter,
    media_kind,
    read_image,
    write_image,
)
from facedancer.io.formats import FALLBACK_OUTPUT_SUFFIX
from facedancer.swap.backends import Backend
from facedancer.swap.models import DEFAULT_MODEL, CropSwapper, Precision, load_crop_swapper
from facedancer.swap.select import FaceMatcher, Selection

ImageLike = np.ndarray | str | Path
#: ``progress=True`` draws a bar on the terminal; a callable is told how many more frames are done instead
FrameProgress = bool | Callable[[int], object]
#: frames a video may queue while waiting for a full generator batch
MAX_QUEUED_FRAMES = 16
#: a track that matched no reference is checked again for this many frames before it is left alone
REFERENCE_RETRIES = 10


@dataclass
class SwapReport:
    """What a swap did, and where its time went (seconds per stage)."""

    frames: int = 0
    faces_swapped: int = 0
    frames_without_faces: int = 0
    faces_found: int = 0  # detected (videos: shown by the tracker), selected or not
    most_faces: int = 0  # the most faces found in one frame
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@dataclass(frozen=True)
class Source:
    """A source face prepared once (an embedding, or a crop for the classical swapper)."""

    state: object


Sources = Source | ImageLike | Sequence[Source | ImageLike]


@dataclass
class FolderReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    #: (input, output) of the files written under another suffix, because their own cannot be written
    renamed: list[tuple[Path, Path]] = field(default_factory=list)


@dataclass
class _Face:
    crop: np.ndarray
    matrix: np.ndarray
    landmarks: np.ndarray
    source: int


def default_batch_size(device: torch.device) -> int:
    """Faces per generator call: 8 on an accelerator; 1 on a CPU, where the per-face time *grows* with the
    batch (facedancer-lite fp32: 148 / 191 / 230 ms per face at batch 1 / 8 / 32, bench_generator.py)."""
    return 1 if torch.device(device).type == "cpu" else 8


def make_detector(name: str, device: torch.device | str = "cpu") -> FaceDetector:
    """A detector by name; RetinaFace (a torch network, unlike YuNet) runs on ``device``."""
    if name == "yunet":
        return YuNetDetector()
    if name == "retinaface":
        return RetinaFaceDetector(device=device)
    raise ConfigError(f"unknown detector {name!r}; choose yunet or retinaface")


class FaceSwapper:
    """Swap faces in images, folders and videos with one model, detector and blend."""

    def __init__(
        self,
        swapper: CropSwapper,
        detector: FaceDetector | None = None,
        blend: BlendConfig | None = None,
        batch_size: int | None = None,
        tracker: TrackerConfig | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.swapper = swapper
        self.detector = detector or YuNetDetector()
        self.blend = blend or BlendConfig()
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        self.batch_size = batch_size or default_batch_size(swapper.device)
        self.tracker = tracker or TrackerConfig()
        self.max_pixels = max_pixels
        self._matcher: FaceMatcher | None = None

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path = DEFAULT_MODEL,
        *,
        device: str | torch.device = "cpu",
        precision: Precision = "auto",
        detector: str = "yunet",
        compile: bool = False,
        backend: Backend = "auto",
        **kwargs: object,
    ) -> FaceSwapper:
        """``model``: a bundled model name, a model directory, or "classical". ``backend`` and ``precision``:
        see :mod:`facedancer.swap.backends` (``compile=True`` is the older spelling of ``backend="compile"``)."""
        device = resolve_device(device)
        swapper = load_crop_swapper(model, device, precision, compile=compile, backend=backend)
        return cls(swapper, make_detector(detector, device), **kwargs)  # type: ignore[arg-type]

    @property
    def label(self) -> ProvenanceLabel:
        source_type = getattr(self.swapper, "source_type", COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA)
        return ProvenanceLabel(model=self.swapper.name, source_type=source_type)

    @property
    def matcher(self) -> FaceMatcher:
        if self._matcher is None:
            self._matcher = FaceMatcher()
        return self._matcher

    # --- sources and references ---------------------------------------------------------------
    def _read(self, image: ImageLike) -> np.ndarray:
        return image if isinstance(image, np.ndarray) else read_image(image, max_pixels=self.max_pixels)

    def _main_face(self, image: ImageLike, role: str) -> tuple[np.ndarray, np.ndarray]:
        """(image, five points) of the largest face; NoFaceError when there is none."""
        pixels = self._read(image)
        found = self.detector.detect(pixels)
        if len(found) == 0:
            where = f" ({image})" if not isinstance(image, np.ndarray) else ""
            raise NoFaceError(f"no face found in the {role} image{where}")
        areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
        return pixels, found.landmarks[int(np.argmax(areas))]

    def source(self, image: ImageLike) -> Source:
        """The main (largest) face of a source image, prepared once for any number of swaps."""
        pixels, points = self._main_face(image, "source")
        return Source(self.swapper.source(pixels, points))

    def reference(self, image: ImageLike) -> np.ndarray:
        """Unit identity embedding of a reference photo's main face (for reference selection)."""
        pixels, points = self._main_face(image, "reference")
        return self.matcher.embed(pixels, points[None])[0]

    # --- frames -------------------------------------------------------------------------------
    def _faces(
        self, frame: np.ndarray, landmarks: Sequence[np.ndarray], assigned: list[int | None], report: SwapReport
    ) -> list[_Face]:
        size = self.swapper.crop_size
        with report.timed("align"):
            return [
                _Face(*align(frame, pts, size), pts, src)
                for pts, src in zip(landmarks, assigned, strict=True)
                if src is not None
            ]

    def _render(
        self, queue: list[tuple[np.ndarray, list[_Face]]], sources: Sequence[Source], report: SwapReport
    ) -> list[np.ndarray]:
        """Swap every queued face in generator batches, then paste each back into its frame."""
        faces = [f for _, fs in queue for f in fs]
        swapped: list[np.ndarray] = []
        with report.timed("generate"):
            for i in range(0, len(faces), self.batch_size):
                chunk = faces[i : i + self.batch_size]
                swapped.extend(
                    self.swapper.swap(np.stack([f.crop for f in chunk]), [sources[f.source].state for f in chunk])
                )
        out, k = [], 0
        with report.timed("blend"):
            for frame, fs in queue:
                for j, f in enumerate(fs):  # copy the frame once (it may be the caller's), then paste in place
                    frame = blend_face(
                        frame, swapped[k], f.matrix, f.landmarks, self.blend, inplace=j > 0, target=f.crop
                    )
                    k += 1
                out.append(frame)
        report.faces_swapped += len(faces)
        report.frames_without_faces += sum(1 for _, fs in queue if not fs)
        report.frames += len(queue)
        return out

    def swap_image(
        self, sources: Sources, target: ImageLike, selection: Selection | None = None, report: SwapReport | None = None
    ) -> np.ndarray:
        """The target image with its selected faces swapped. ``sources`` are :meth:`source` results
        (or images, prepared on the fly); several only with reference selection, one per reference."""
        selection, sources = selection or Selection(), self._sources(sources)
        report = report or SwapReport()
        frame = self._read(target)
        with report.timed("detect"):
            found = self.detector.detect(frame)
            identities = self.matcher.embed(frame, found.landmarks) if selection.needs_identity else None
            assigned = selection.assign(found.boxes, identities)
        report.faces_found += len(found)
        report.most_faces = max(report.most_faces, len(found))
        return self._render([(frame, self._faces(frame, found.landmarks, assigned, report))], sources, report)[0]

    def _sources(self, sources: Sources) -> list[Source]:
        """One or several sources given as :class:`Source`, images or paths, each prepared once."""
        items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        return [s if isinstance(s, Source) else self.source(s) for s in items]

    def swap_video(
        self,
        sources: Sources,
        target: str | Path,
        output: str | Path,
        selection: Selection | None = None,
        *,
        label: bool = True,
        progress: FrameProgress = False,
        max_frames: int | None = None,
    ) -> SwapReport:
        """Swap faces through a whole video, streaming; keeps fps, size, rotation and audio."""
        selection, sources = selection or Selection(), self._sources(sources)
        report = SwapReport()
        track_source: dict[int, int | None] = {}  # each track's source, decided once per track
        tries: dict[int, int] = defaultdict(int)
        with (
            VideoReader(target, max_frames=max_frames, max_pixels=self.max_pixels) as reader,
            VideoWriter(output, self.label if label else None, like=reader) as writer,
            _progress(progress, reader.info.frames, Path(target).name) as advance,
        ):
            tracker = FaceTracker(float(reader.fps), self.tracker)
            queue: list[tuple[np.ndarray, list[_Face]]] = []
            frames = iter(reader)
            while True:
                with report.timed("decode"):
                    frame = next(frames, None)
                if frame is None:
                    break
                with report.timed("detect"):
                    tracked = tracker.update(self.detector.detect(frame), frame)
                    if selection.needs_identity:
                        assigned = self._by_track(frame, tracked, selection, track_source, tries)
                    else:
                        assigned = _by_track_position(tracked, selection, track_source, tracker.track_ids)
                report.faces_found += len(tracked)
                report.most_faces = max(report.most_faces, len(tracked))
                queue.append((frame, self._faces(frame, [t.landmarks for t in tracked], assigned, report)))
                if sum(len(fs) for _, fs in queue) >= self.batch_size or len(queue) >= MAX_QUEUED_FRAMES:
                    self._flush(queue, sources, writer, report, advance)
            self._flush(queue, sources, writer, report, advance)
            if report.faces_swapped == 0:  # inside the writer: the unchanged copy is discarded, not labelled
                raise _nothing_swapped(target, selection, report, video=True)
        return report

    def _by_track(
        self,
        frame: np.ndarray,
        tracked: list,
        selection: Selection,
        track_source: dict[int, int | None],
        tries: dict[int, int],
    ) -> list[int | None]:
        """Reference matching once per track (retried a few frames while it matches nothing)."""
        todo = [t for t in tracked if track_source.get(t.track_id) is None and tries[t.track_id] < REFERENCE_RETRIES]
        if todo:
            found = selection.assign(
                np.array([t.box for t in todo]), self.matcher.embed(frame, np.stack([t.landmarks for t in todo]))
            )
            for t, src in zip(todo, found, strict=True):
                track_source[t.track_id] = src
                tries[t.track_id] += 1
        return [track_source.get(t.track_id) for t in tracked]

    def _flush(self, queue: list, sources: list[Source], writer: VideoWriter, report: SwapReport, advance) -> None:
        if not queue:
            return
        frames = self._render(queue, sources, report)
        with report.timed("encode"):
            for frame in frames:
                writer.write(frame)
        advance(len(frames))
        queue.clear()

    # --- files and folders ----------------------------------------------------------------------
    def swap_file(
        self,
        sources: Sources,
        target: str | Path,
        output: str | Path,
        selection: Selection | None = None,
        *,
        label: bool = True,
        progress: FrameProgress = False,
        max_frames: int | None = None,
    ) -> SwapReport:
        """An image or a video on disk to an output file of a matching kind (``max_frames``: videos only).

        Raises :class:`NothingSwappedError`, writing nothing, when no face was swapped.
        """
        target, output = Path(target), Path(output)
        check_outputs(target, output, _paths(sources))
        kind = media_kind(target)
        if kind == "video":
            _check_output(output, target, "video")
            return self.swap_video(
                sources, target, output, selection, label=label, progress=progress, max_frames=max_frames
            )
        if kind == "image":
            _check_output(output, target, "image")
            report = SwapReport()
            result = self.swap_image(sources, target, selection, report)
            if report.faces_swapped == 0:
                raise _nothing_swapped(target, selection or Selection(), report, video=False)
            with report.timed("encode"):
                write_image(output, result, self.label if label else None)
            return report
        raise InputError(f"cannot swap {target}: unsupported file type {target.suffix!r}")

    def swap_folder(
        self,
        sources: Sources,
        target: str | Path,
        output: str | Path,
        selection: Selection | None = None,
        *,
        label: bool = True,
        progress: bool = False,
        max_frames: int | None = None,
    ) -> FolderReport:
        """Every image and video under ``target`` into the same tree under ``output``.

        A file that fails (unreadable, unsupported, truncated, no face swapped) is skipped and reported; the
        rest finish. A file whose suffix cannot be written (BMP, TIFF, AVI, ...) is written as PNG, MP4 or,
        for an animation, animated WebP (:func:`folder_plan`), and listed in ``renamed``.
        """
        target, output = Path(target), Path(output)
        plan = check_outputs(target, output, _paths(sources))
        sources = self._sources(sources)
        result = FolderReport()
        with _progress(progress, len(plan), f"{target.name}/") as advance:
            for path, dest in plan:
                try:
                    self.swap_file(sources, path, dest, selection, label=label, max_frames=max_frames)
                    result.written.append(dest)
                    if dest.name != path.name:
                        result.renamed.append((path, dest))
                except FacedancerError as e:
                    result.failed.append((path, str(e)))
                advance(1)
        return result


def folder_plan(target: Path, output: Path) -> list[tuple[Path, Path]]:
    """(input, output) for every file under the folder ``target``, mirrored under ``output``.

    An input whose suffix cannot be written gets the fallback suffix of its kind (``photo.bmp`` ->
    ``photo.png``), or its whole name plus that suffix (``photo.bmp.png``) where the short name is taken.
    """
    files = sorted(p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))
    plan, fallback = [], set()
    for path in files:
        rel = path.relative_to(target)
        kind = media_kind(path)
        writable = IMAGE_OUTPUT_SUFFIXES if kind == "image" else VIDEO_OUTPUT_SUFFIXES
        if kind is None or path.suffix.lower() in writable:
            plan.append((path, output / rel))
            continue
        animation = kind == "video" and path.suffix.lower() in IMAGE_SUFFIXES
        suffix = FALLBACK_OUTPUT_SUFFIX["animation" if animation else kind]
        plan.append((path, output / rel.with_suffix(suffix)))
        fallback.add(path)
    taken = defaultdict(int)
    for _, dest in plan:
        taken[dest] += 1
    return [
        (path, dest.with_name(path.name + dest.suffix) if path in fallback and taken[dest] > 1 else dest)
        for path, dest in plan
    ]


def check_outputs(target: Path, output: Path, inputs: Sequence[Path] = ()) -> list[tuple[Path, Path]]:
    """Refuse, before any work, an output that would overwrite an input (the target, a source, a reference),
    however its path is spelled (``./``, ``..``, a symlink or a hard link); for a folder target also an output
    folder inside it. Returns the folder plan (:func:`folder_plan`), or ``[(target, output)]`` for a file."""
    if target.is_dir():
        if output.exists() and not output.is_dir():
            raise OutputError(f"cannot write into {output}: it is a file; a folder target needs an output folder")
        inside = output.resolve()
        if inside == target.resolve() or target.resolve() in inside.parents:
            raise OutputError(
                f"cannot write into {output}: it is inside the target folder {target}; choose a folder outside it"
            )
        plan = folder_plan(target, output)
        if not plan:
            raise InputError(f"cannot swap {target}: the folder is empty")
    else:
        if output.is_dir():
            raise OutputError(f"cannot write {output}: it is a folder; give a file name (or a folder target)")
        plan = [(target, output)]
    if clash := overwritten_input((dest for _, dest in plan), [*inputs, *(path for path, _ in plan)]):
        raise OutputError(f"cannot write {clash[0]}: it would overwrite the input {clash[1]}")
    return plan


def _paths(sources: Sources) -> list[Path]:
    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    return [Path(s) for s in items if isinstance(s, (str, Path))]


def _by_track_position(
    tracked: list, selection: Selection, decided: dict[int, int | None], alive: set[int]
) -> list[int | None]:
    """ "all", "largest" and "index" in a video, decided once per track, in the frame where it appears.

    A per-frame choice lets the swap jump between two people whose sizes are close or whose positions
    cross. A track that appears while the chosen face's track lives is not chosen.
    """
    if any(t.track_id not in decided for t in tracked):
        picks = selection.assign(np.array([t.box for t in tracked], np.float32).reshape(-1, 4))
        taken = selection.mode != "all" and any(decided.get(i) is not None for i in alive)
        for t, pick in zip(tracked, picks, strict=True):
            if t.track_id not in decided:
                decided[t.track_id] = None if taken else pick
    return [decided[t.track_id] for t in tracked]


def _nothing_swapped(target: Path, selection: Selection, report: SwapReport, video: bool) -> NothingSwappedError:
    found = report.most_faces
    faces = f"{found} face" if found == 1 else f"{found} faces"
    if report.faces_found == 0:
        why = f"no face found in {report.frames} frames" if video else "no face found"
    elif selection.mode == "index":
        has = f"at most {faces} in a frame" if video else f"it has {faces}"
        why = f"face index {selection.index} was asked for (0 is the leftmost) but {has}"
    elif selection.mode == "reference":
        why = f"no face looks like the reference (similarity threshold {selection.threshold:g})"
    else:
        why = "no face could be swapped"
    return NothingSwappedError(f"nothing swapped in {target}: {why}; nothing written")


def _check_output(output: Path, target: Path, kind: str) -> None:
    allowed = IMAGE_OUTPUT_SUFFIXES if kind == "image" else VIDEO_OUTPUT_SUFFIXES
    if output.suffix.lower() not in allowed:
        what = "an image" if kind == "image" else "a video"
        if kind == "video" and target.suffix.lower() in IMAGE_SUFFIXES:
            what = f"{target.name} is an animation: a video"
        raise OutputError(f"cannot write {output}: {what} output needs one of {', '.join(sorted(allowed))}")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s")


@contextlib.contextmanager
def _progress(progress: FrameProgress, total: int | None, what: str) -> Iterator:
    """A rich progress bar with items/s and ETA, the caller's own callback (a web page's bar), or a no-op."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(what, total=total or None)
        yield lambda n: bar.advance(task, n)
