"""What an evaluation measures: the models, and two baselines that bracket every metric.

Every contender turns (target frame, target face, source) into one image, and every image is measured
the same way. Swaps are measured **on the pasted-back image**, what a user of ``facedancer swap`` gets:
the target face is aligned to the ArcFace template as in the swap pipeline (PAPER.md §3.6), swapped,
and blended back with the pipeline's own :func:`~facedancer.faces.blend_face` (mask, colour match).

- ``copy-target``: no swap, the target itself. Identity retrieval finds the target, never the source
  (retrieval's floor); pose and expression error are zero and FID is that of the reals with themselves
  (their best possible values).
- ``paste-source``: the source face aligned to the target's five points and blended in exactly as a
  swap is, without any generator. Retrieval finds the source (its ceiling), while pose and expression
  are the source's, not the target's (the error a swapper that ignores the target would make).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from facedancer.assets.store import sha256_of
from facedancer.errors import ConfigError
from facedancer.faces import BlendConfig, align
from facedancer.io import COMPOSITE_SYNTHETIC
from facedancer.nn.pretrained import WEIGHTS_NAME, read_meta
from facedancer.swap.models import CLASSICAL, CropSwapper, load_crop_swapper, model_directory
from facedancer.swap.swapper import FaceSwapper, Source

COPY_TARGET = "copy-target"
PASTE_SOURCE = "paste-source"
Kind = Literal["baseline", "model"]


class Contender(Protocol):
    name: str
    kind: Kind

    def prepare(self, image: np.ndarray, landmarks: np.ndarray) -> object:
        """What this contender keeps of a source face (five points ``landmarks`` in ``image``)."""
        ...

    def render(self, frames: list[np.ndarray], landmarks: list[np.ndarray], sources: list[object]) -> list[np.ndarray]:
        """Each frame with its face (five points) replaced using the matching prepared source."""
        ...

    def describe(self) -> dict:
        """Provenance for the report."""
        ...


class CopyTarget:
    """The target frame unchanged."""

    name, kind = COPY_TARGET, "baseline"

    def prepare(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        return None

    def render(self, frames: list[np.ndarray], landmarks: list[np.ndarray], sources: list[object]) -> list[np.ndarray]:
        return list(frames)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind}


class _AlignedSource:
    """A crop swapper whose "swap" is the aligned source crop itself: no generator at all."""

    name, crop_size = PASTE_SOURCE, 256
    source_type = COMPOSITE_SYNTHETIC  # the source's own pixels pasted in: no trained model

    def source(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return align(image, landmarks, self.crop_size)[0]

    def swap(self, crops: np.ndarray, sources: list[object]) -> np.ndarray:
        return np.stack([np.asarray(s) for s in sources])


class Swapped:
    """A crop swapper run by the swap tool's own :meth:`FaceSwapper.swap_frames`: align, swap, paste back."""

    def __init__(self, swapper: CropSwapper, name: str, kind: Kind, blend: BlendConfig, provenance: dict) -> None:
        self.swapper, self.name, self.kind, self.provenance = swapper, name, kind, provenance
        self.faces = FaceSwapper(swapper, blend=blend, batch_size=1)

    def prepare(self, image: np.ndarray, landmarks: np.ndarray) -> object:
        return self.swapper.source(image, landmarks)

    def render(self, frames: list[np.ndarray], landmarks: list[np.ndarray], sources: list[object]) -> list[np.ndarray]:
        # one generator batch for all the frames; face i (the only one of frame i) gets source i
        return self.faces.swap_frames(
            frames,
            [points[None] for points in landmarks],
            [Source(s) for s in sources],
            [[i] for i in range(len(frames))],
            batch_size=max(1, len(frames)),
        )

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, **self.provenance}


def model_provenance(spec: str) -> dict:
    """Where a model came from, for the report: its directory, weights digest and identity encoder."""
    if spec == CLASSICAL:
        return {"model": CLASSICAL}
    directory = model_directory(spec)
    return {
        "model": str(Path(directory).resolve()),
        "weights_sha256": sha256_of(Path(directory) / WEIGHTS_NAME),
        "identity_encoder": read_meta(directory).get("identity_encoder"),
    }


def load_contenders(models: list[str], device: str = "cpu", blend: BlendConfig | None = None) -> list[Contender]:
    """The two baselines, then one contender per model spec (a model directory, a bundled name or
    ``classical``), all blended with the same :class:`BlendConfig`. A model is named as the swap tool
    names it (its directory, or ``preset@stepN`` for a training checkpoint), or by its spec where two
    such names would be the same."""
    if len(set(models)) != len(models):
        raise ConfigError("the same model is named twice")
    if clash := {COPY_TARGET, PASTE_SOURCE} & set(models):
        raise ConfigError(f"{clash.pop()} is a baseline name, not a model")
    blend = blend or BlendConfig()
    # fp32: a metric must not move with the CPU it runs on (auto would take bf16 where it is native)
    swappers = [load_crop_swapper(spec, device, "fp32") for spec in models]
    names = [s.name for s in swappers]
    if len(set(names)) != len(names) or {COPY_TARGET, PASTE_SOURCE} & set(names):
        names = list(models)
    out: list[Contender] = [CopyTarget(), Swapped(_AlignedSource(), PASTE_SOURCE, "baseline", blend, {})]
    for spec, name, swapper in zip(models, names, swappers, strict=True):
        out.append(Swapped(swapper, name, "model", blend, model_provenance(spec)))
    return out
