"""IFSR, Interpreted Feature Similarity Regularization (PAPER.md §2), and its margins files.

A good swap's mid-level identity-encoder features legitimately differ from the target's by about the
margin m_i of block i (measured by the pre-study in ``calibrate.py``): pushing them closer would block the
identity change, letting them drift further loses pose, expression, lighting and occlusion. So

    d_i^b = 1 - cos(vec phi_i(X_t^b), vec phi_i(Y^b))
    L_ifsr = sum_i max(0, mean_b d_i^b - scale * m_i)          (reduction "batch", the official code)
    L_ifsr = sum_i mean_b max(0, d_i^b - scale * m_i)          (reduction "sample")

with both images mapped to the encoder input by ``identity.encode_crops`` and scale 1.2.
Margins belong to one encoder: a margins file names it, and the official ArcFace-ResNet50 numbers do
not transfer to another (the SFace margins we ship came from ``facedancer calibrate-ifsr``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facedancer.atomic import atomic_path
from facedancer.errors import ConfigError

FORMAT = "facedancer-ifsr-margins"


@dataclass
class Margins:
    """What ``facedancer calibrate-ifsr`` writes: the encoder, per-block margins, how they were made."""

    encoder: str
    #: block name -> raw margin (mean target<->changed cosine distance), in the encoder's block order
    margins: dict[str, float]
    #: every measured block: {"target_changed": {"mean", "std"}, "changed_source": ..., "target_source": ..., "eer"}
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        data = {"format": FORMAT, "version": 1, **self.__dict__}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return Path(path)

    @classmethod
    def load(cls, spec: str | Path) -> Margins:
        """A JSON path, or the name of a margins file shipped in ``facedancer/configs`` (without .json)."""
        path = Path(spec)
        if not path.is_file():
            packaged = Path(str(resources.files("facedancer") / "configs" / f"{spec}.json"))
            if not packaged.is_file():
                raise ConfigError(f"IFSR margins {str(spec)!r} are neither a file nor a packaged margins name")
            path = packaged
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read IFSR margins {path}: {e}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a facedancer IFSR margins file")
        try:
            margins = {str(k): float(v) for k, v in data["margins"].items()}
            encoder = str(data["encoder"])
        except (KeyError, AttributeError, TypeError, ValueError):
            raise ConfigError(f"{path}: a margins file needs 'encoder' and a 'margins' mapping of numbers") from None
        if not margins or not all(0 <= v < math.inf for v in margins.values()):
            raise ConfigError(f"{path}: margins must be a non-empty mapping of finite non-negative numbers")
        return cls(encoder, margins, data.get("statistics", {}), data.get("provenance", {}))


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample ``1 - cos`` of two feature maps flattened per image, shape (B,); at least fp32.

    fp32 sums over a 400k-element block drift by ~5e-5: negligible for the loss, so the calibration
    passes float64 features for its statistics.
    """
    dtype = torch.promote_types(a.dtype, torch.float32)
    return 1.0 - F.cosine_similarity(a.flatten(1).to(dtype), b.flatten(1).to(dtype), dim=1)


class IFSRLoss(nn.Module):
    """The hinge above on target and swap features (from :class:`~facedancer.train.losses.EncoderPass`)."""

    def __init__(
        self,
        margins: dict[str, float],
        scale: float = 1.2,
        reduction: Literal["batch", "sample"] = "batch",
    ) -> None:
        super().__init__()
        self.margins, self.scale, self.reduction = dict(margins), scale, reduction

    @property
    def blocks(self) -> list[str]:
        return list(self.margins)

    def distances(self, target_features: dict[str, Tensor], swap_features: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-block, per-sample cosine distances between target and swap features, each (B,)."""
        return {n: cosine_distance(target_features[n], swap_features[n]) for n in self.margins}

    def forward(self, target_features: dict[str, Tensor], swap_features: dict[str, Tensor]) -> Tensor:
        return self.hinge(self.distances(target_features, swap_features))

    def hinge(self, distances: dict[str, Tensor]) -> Tensor:
        total = torch.zeros((), device=next(iter(distances.values())).device)
        for name, d in distances.items():
            limit = self.scale * self.margins[name]
            total = total + (F.relu(d.mean() - limit) if self.reduction == "batch" else F.relu(d - limit).mean())
        return total
