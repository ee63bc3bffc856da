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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from facedancer.errors import ConfigError, FacedancerError, InputError, NoFaceError, OutputError
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
    DEFAULT_MAX_PIXELS,
    IMAGE_OUTPUT_SUFFIXES,
    VIDEO_OUTPUT_SUFFIXES,
    ProvenanceLabel,
    VideoReader,
    VideoWriter,
    media_kind,
    read_image,
    write_image,
)
from facedancer.swap.backends import Backend
from facedancer.swap.models import DEFAULT_MODEL, CropSwapper, Precision, load_crop_swapper
from facedancer.swap.select import FaceMatcher, Selection

ImageLike = np.ndarray | str | Path
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


@dataclass
class _Face:
    crop: np.ndarray
    matrix: np.ndarray
    landmarks: np.ndarray
    source: int


def resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is available to this torch build")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: Metal is not available on this machine")
    return dev


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
        return ProvenanceLabel(model=self.swapper.name)

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
                    frame = blend_face(frame, swapped[k], f.matrix, f.landmarks, self.blend, inplace=j > 0)
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
        progress: bool = False,
        max_frames: int | None = None,
    ) -> SwapReport:
        """Swap faces through a whole video, streaming; keeps fps, size, rotation and audio."""
        selection, sources = selection or Selection(), self._sources(sources)
        report = SwapReport()
        track_source: dict[int, int | None] = {}
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
                    boxes = np.array([t.box for t in tracked], np.float32).reshape(-1, 4)
                    if selection.needs_identity:
                        assigned = self._by_track(frame, tracked, selection, track_source, tries)
                    else:
                        assigned = selection.assign(boxes)
                queue.append((frame, self._faces(frame, [t.landmarks for t in tracked], assigned, report)))
                if sum(len(fs) for _, fs in queue) >= self.batch_size or len(queue) >= MAX_QUEUED_FRAMES:
                    self._flush(queue, sources, writer, report, advance)
            self._flush(queue, sources, writer, report, advance)
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
        progress: bool = False,
        max_frames: int | None = None,
    ) -> SwapReport:
        """An image or a video on disk to an output file of a matching kind."""
        target, output = Path(target), Path(output)
        kind = media_kind(target)
        if kind == "video":
            _check_output(output, VIDEO_OUTPUT_SUFFIXES, "video")
            return self.swap_video(
                sources, target, output, selection, label=label, progress=progress, max_frames=max_frames
            )
        if kind == "image":
            _check_output(output, IMAGE_OUTPUT_SUFFIXES, "image")
            report = SwapReport()
            result = self.swap_image(sources, target, selection, report)
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
    ) -> FolderReport:
        """Every image and video under ``target`` into the same tree under ``output``.

        A file that fails (unreadable, unsupported, truncated) is skipped and reported; the rest finish.
        """
        sources = self._sources(sources)
        target, output = Path(target), Path(output)
        result = FolderReport()
        files = sorted(p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))
        with _progress(progress, len(files), f"{target.name}/") as advance:
            for path in files:
                dest = output / path.relative_to(target)
                try:
                    self.swap_file(sources, path, dest, selection, label=label)
                    result.written.append(dest)
                except FacedancerError as e:
                    result.failed.append((path, str(e)))
                advance(1)
        return result


def _check_output(output: Path, allowed: frozenset[str] | set[str], kind: str) -> None:
    if output.suffix.lower() not in allowed:
        raise OutputError(f"cannot write {output}: a {kind} output needs one of {', '.join(sorted(allowed))}")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s")


@contextlib.contextmanager
def _progress(enabled: bool, total: int | None, what: str) -> Iterator:
    """A rich progress bar with items/s and ETA, or a no-op."""
    if not enabled:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(what, total=total or None)
        yield lambda n: bar.advance(task, n)
