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
from facedancer.swap import DEFAULT_THRESHOLD, FaceSwapper, Selection, SwapReport
from facedancer.swap.models import Precision
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
    """Loaded swappers by (model, precision): a generator takes seconds to load, the SFace matcher of a
    reference job ~0.2 s, the detector ~20 ms; a job should not wait for any of them again.

    Each model's jobs run one at a time on its own worker (:class:`~facedancer.ui.jobs.JobQueue`, one
    name per model: :func:`~facedancer.ui.choices.model_choices`), so a swapper is never used by two
    threads at once and a job may set its own options on it. A model loads under its own lock, so a slow
    load delays only that model's jobs; the shared lock only guards the dictionaries.
    """

    def __init__(self, device: str | torch.device = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.device = device
        self.max_pixels = max_pixels
        self._loaded: dict[tuple[str, str | None], FaceSwapper] = {}
        self._loading: dict[tuple[str, str | None], threading.Lock] = {}
        self._lock = threading.Lock()

    def face_swapper(self, options: SwapOptions) -> FaceSwapper:
        """The model's swapper, loaded on its first job, set to this job's blend."""
        precision = options.precision if options.model.has_precision else None
        key = (options.model.spec, precision)
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            swapper = self._loaded.get(key)
            if swapper is None:
                swapper = FaceSwapper.from_pretrained(
                    options.model.spec, device=self.device, precision=precision or "auto", max_pixels=self.max_pixels
                )
                with self._lock:
                    self._loaded[key] = swapper
        swapper.blend = options.blend
        return swapper

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
