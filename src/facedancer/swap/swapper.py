"""FaceSwapper: the inference pipeline for images, folders and videos.

source image -> detect -> align 112 -> identity (once per source)
target frame -> detect (+ track, smooth) -> select -> align 256 -> swap crops in batches
             -> inverse warp, mask, colour -> paste back -> writer (audio kept, provenance label)

:meth:`FaceSwapper.swap_faces` is that second line from "align" on, for faces already found; a video runs the
same steps as a pipeline of threads (:mod:`facedancer.swap.video`), folders file by file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facedancer.device import resolve_device
from facedancer.errors import ConfigError, FacedancerError, InputError, NoFaceError
from facedancer.faces import (
    BlendConfig,
    FaceDetector,
    TrackerConfig,
    YuNetDetector,
    align,
    blend_face,
    largest_face,
    make_detector,
)
from facedancer.io import (
    DEFAULT_MAX_PIXELS,
    ProvenanceLabel,
    media_kind,
    read_image,
    write_image,
)
from facedancer.swap import video
from facedancer.swap.backends import Backend
from facedancer.swap.files import FolderReport, check_output, check_outputs, input_paths
from facedancer.swap.models import DEFAULT_MODEL, CropSwapper, Precision, load_crop_swapper
from facedancer.swap.progress import FrameProgress, progress_bar
from facedancer.swap.report import SwapReport, nothing_swapped
from facedancer.swap.select import FaceMatcher, Selection

ImageLike = np.ndarray | str | Path


@dataclass(frozen=True)
class Source:
    """A source face prepared once (an embedding, or a crop for the classical swapper)."""

    state: object


Sources = Source | ImageLike | Sequence[Source | ImageLike]


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
        self._detector = detector
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
    def detector(self) -> FaceDetector:
        """The detector given, else YuNet, built on first use (:meth:`swap_faces` needs none)."""
        if self._detector is None:
            self._detector = YuNetDetector()
        return self._detector

    @property
    def label(self) -> ProvenanceLabel:
        return ProvenanceLabel(model=self.swapper.name, source_type=self.swapper.source_type)

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
        return pixels, found.landmarks[largest_face(found.boxes)]

    def source(self, image: ImageLike) -> Source:
        """The main (largest) face of a source image, prepared once for any number of swaps."""
        pixels, points = self._main_face(image, "source")
        return Source(self.swapper.source(pixels, points))

    def reference(self, image: ImageLike) -> np.ndarray:
        """Unit identity embedding of a reference photo's main face (for reference selection)."""
        pixels, points = self._main_face(image, "reference")
        return self.matcher.embed(pixels, points[None])[0]

    def _sources(self, sources: Sources) -> list[Source]:
        """One or several sources given as :class:`Source`, images or paths, each prepared once."""
        items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        return [s if isinstance(s, Source) else self.source(s) for s in items]

    # --- faces already found --------------------------------------------------------------------
    def swap_faces(
        self,
        frame: np.ndarray,
        landmarks: np.ndarray | Sequence[np.ndarray],
        sources: Sources,
        assigned: Sequence[int | None] | None = None,
        report: SwapReport | None = None,
    ) -> np.ndarray:
        """``frame`` (RGB uint8, not modified) with the faces at ``landmarks`` ((N, 5, 2) five points in frame
        coordinates, from any detector) swapped: aligned, through the model, blended back.

        ``assigned`` gives each face the index of its source in ``sources``, or None to leave it alone
        (default: every face gets the first source).
        """
        return self.swap_frames([frame], [landmarks], sources, None if assigned is None else [assigned], report)[0]

    def swap_frames(
        self,
        frames: Sequence[np.ndarray],
        landmarks: Sequence[np.ndarray | Sequence[np.ndarray]],
        sources: Sources,
        assigned: Sequence[Sequence[int | None]] | None = None,
        report: SwapReport | None = None,
        batch_size: int | None = None,
    ) -> list[np.ndarray]:
        """:meth:`swap_faces` for several frames (``landmarks`` and ``assigned``: one entry per frame) whose
        faces share generator batches of ``batch_size`` (default: the swapper's)."""
        sources, report = self._sources(sources), report or SwapReport()
        if assigned is None:
            assigned = [[0] * len(points) for points in landmarks]
        group = [
            (frame, self._align(frame, points, which, report))
            for frame, points, which in zip(frames, landmarks, assigned, strict=True)
        ]
        faces = [f for _, fs in group for f in fs]
        return self._paste(group, self._generate(faces, sources, report, batch_size), report)

    # the three steps of swap_faces, which a video runs in separate threads (facedancer.swap.video)
    def _align(
        self, frame: np.ndarray, landmarks: Sequence[np.ndarray], assigned: Sequence[int | None], report: SwapReport
    ) -> list[_Face]:
        size = self.swapper.crop_size
        with report.timed("align"):
            return [
                _Face(*align(frame, pts, size), pts, src)
                for pts, src in zip(landmarks, assigned, strict=True)
                if src is not None
            ]

    def _generate(
        self, faces: list[_Face], sources: Sequence[Source], report: SwapReport, batch_size: int | None = None
    ) -> list[np.ndarray]:
        """The swapped crop of every face, in generator batches."""
        batch, swapped = batch_size or self.batch_size, []
        with report.timed("generate"):
            for i in range(0, len(faces), batch):
                chunk = faces[i : i + batch]
                swapped.extend(
                    self.swapper.swap(np.stack([f.crop for f in chunk]), [sources[f.source].state for f in chunk])
                )
        return swapped

    def _paste(
        self, group: list[tuple[np.ndarray, list[_Face]]], swapped: list[np.ndarray], report: SwapReport
    ) -> list[np.ndarray]:
        """Each frame of ``group`` with its faces' swapped crops (in order) pasted back."""
        out, k = [], 0
        with report.timed("blend"):
            for frame, fs in group:
                for j, f in enumerate(fs):  # copy the frame once (it may be the caller's), then paste in place
                    frame = blend_face(
                        frame, swapped[k], f.matrix, f.landmarks, self.blend, inplace=j > 0, target=f.crop
                    )
                    k += 1
                out.append(frame)
        report.faces_swapped += k
        report.frames_without_faces += sum(1 for _, fs in group if not fs)
        report.frames += len(group)
        return out

    # --- images and videos ----------------------------------------------------------------------
    def swap_image(
        self, sources: Sources, target: ImageLike, selection: Selection | None = None, report: SwapReport | None = None
    ) -> np.ndarray:
        """The target image with its selected faces swapped. ``sources`` are :meth:`source` results
        (or images, prepared on the fly); several only with reference selection, one per reference."""
        start = time.perf_counter()
        selection, sources = selection or Selection(), self._sources(sources)
        report = report or SwapReport()
        frame = self._read(target)
        with report.timed("detect"):
            found = self.detector.detect(frame)
            identities = self.matcher.embed(frame, found.landmarks) if selection.needs_identity else None
            assigned = selection.assign(found.boxes, identities)
        report.faces_found += len(found)
        report.most_faces = max(report.most_faces, len(found))
        out = self.swap_faces(frame, found.landmarks, sources, assigned, report)
        report.elapsed += time.perf_counter() - start
        return out

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
        """Swap faces through a whole video, streaming; keeps fps, size, rotation and audio.

        Decoding, detection, the generator, blending and encoding run at the same time, each in a thread
        (:mod:`facedancer.swap.video`); the report's ``seconds`` say how long each stage was busy.
        """
        return video.swap_video(
            self,
            self._sources(sources),
            target,
            output,
            selection or Selection(),
            label=label,
            progress=progress,
            max_frames=max_frames,
        )

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
        check_outputs(target, output, input_paths(sources))
        kind = media_kind(target)
        if kind == "video":
            check_output(output, target, "video")
            return self.swap_video(
                sources, target, output, selection, label=label, progress=progress, max_frames=max_frames
            )
        if kind == "image":
            check_output(output, target, "image")
            report = SwapReport()
            result = self.swap_image(sources, target, selection, report)
            if report.faces_swapped == 0:
                raise nothing_swapped(target, selection or Selection(), report, video=False)
            with report.timed("encode"):
                write_image(output, result, self.label if label else None)
            report.elapsed += report.seconds["encode"]
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
        for an animation, animated WebP (:func:`~facedancer.swap.files.folder_plan`), and listed in ``renamed``.
        """
        target, output = Path(target), Path(output)
        plan = check_outputs(target, output, input_paths(sources))
        sources = self._sources(sources)
        result = FolderReport()
        with progress_bar(progress, len(plan), f"{target.name}/") as advance:
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
