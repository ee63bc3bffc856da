"""What a job does: the same library calls as ``facedancer swap``, with models kept loaded between jobs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facedancer.faces import BlendConfig
from facedancer.io import DEFAULT_MAX_PIXELS
from facedancer.swap import DEFAULT_THRESHOLD, CropSwapper, FaceSwapper, Selection, SwapReport
from facedancer.swap.models import Precision, load_crop_swapper
from facedancer.swap.select import SelectionMode
from facedancer.ui.choices import ModelChoice


@dataclass(frozen=True)
class SwapOptions:
    """Everything a request chooses besides its files."""

    model: ModelChoice
    faces: SelectionMode = "all"
    index: int = 0
    threshold: float = DEFAULT_THRESHOLD
    blend: BlendConfig = field(default_factory=BlendConfig)
    precision: Precision = "auto"
    max_frames: int | None = None


class Swappers:
    """Loaded models by (model, precision): loading a generator takes seconds, a job should not wait for it.

    Each model's jobs run one at a time (:class:`~facedancer.ui.jobs.JobQueue`), so a model is never
    used by two threads at once; the lock only guards the dictionary.
    """

    def __init__(self, device: str | torch.device = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.device = device
        self.max_pixels = max_pixels
        self._loaded: dict[tuple[str, str | None], CropSwapper] = {}
        self._lock = threading.Lock()

    def face_swapper(self, options: SwapOptions) -> FaceSwapper:
        precision = options.precision if options.model.has_precision else None
        key = (options.model.spec, precision)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load_crop_swapper(options.model.spec, self.device, precision or "auto")
            crop_swapper = self._loaded[key]
        return FaceSwapper(crop_swapper, blend=options.blend, max_pixels=self.max_pixels)

    def swap(
        self,
        options: SwapOptions,
        sources: Sequence[Path],
        references: Sequence[Path],
        target: Path,
        output: Path,
        progress: Callable[[int], object],
    ) -> SwapReport:
        """Swap ``target`` into ``output``, labelled as the CLI labels it; one reference per source, or none."""
        swapper = self.face_swapper(options)
        refs = np.stack([swapper.reference(r) for r in references]) if references else None
        selection = Selection(mode=options.faces, index=options.index, references=refs, threshold=options.threshold)
        prepared = [swapper.source(s) for s in sources]
        return swapper.swap_file(
            prepared, target, output, selection, label=True, progress=progress, max_frames=options.max_frames
        )
