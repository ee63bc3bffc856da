"""How a decoder stage merges the encoder skip feature ``z_a`` with its own feature ``h``.

AFFA (Adaptive Feature Fusion Attention) is the paper's contribution: a learned per-pixel,
per-channel gate ``m`` that chooses between the target's attributes (``m -> 0``) and the
identity-conditioned decoder path (``m -> 1``), with no segmentation network. The other types are the
ablation baselines (``concat``, ``add``, ``none``) and the official code's two AFFA variants
(``d_affa``, ``do_affa``). PAPER.md §1.3 and §5 rows 7-8.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facedancer.nn.layers import LEAKY_SLOPE, instance_norm

FusionType = Literal["affa", "concat", "add", "none", "d_affa", "do_affa"]
FUSION_TYPES: tuple[str, ...] = get_args(FusionType)


class Fusion(nn.Module):
    """Base: ``forward(z_a, h)`` returns the tensor the stage's ResUp consumes."""

    #: channels of the fused output relative to ``C`` (only concatenation widens it)
    channel_factor: int = 1

    def forward(self, z_a: Tensor, h: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_with_masks(self, z_a: Tensor, h: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``forward`` and the attention masks it gated with, by name (``""`` for a single one), each computed
        once, so that the generator can record them without knowing the fusion's type. None here."""
        return self(z_a, h), {}


class NoSkip(Fusion):
    """The official ``no_skip``: the encoder feature is ignored."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, z_a: Tensor, h: Tensor) -> Tensor:
        return h


class Concat(Fusion):
    """Baseline 1 (and the paper's final 256 px stage): channel concatenation."""

    channel_factor = 2

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, z_a: Tensor, h: Tensor) -> Tensor:
        return torch.cat([z_a, h], dim=1)


class Add(Fusion):
    """Baseline 2: element-wise sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, z_a: Tensor, h: Tensor) -> Tensor:
        return z_a + h


class AFFA(Fusion):
    """``m = sigmoid(Conv1x1_C(IN(LReLU(Conv3x3_{C/4}([z_a, h])))))``; ``f = (1 - m) z_a + m h``."""

    def __init__(self, channels: int, hidden: int | None = None, mask_channels: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(channels // 4, 1)
        self.conv1 = nn.Conv2d(2 * channels, hidden, 3, padding=1)
        self.norm = instance_norm(hidden)
        self.conv2 = nn.Conv2d(hidden, mask_channels or channels, 1)

    def mask(self, z_a: Tensor, h: Tensor) -> Tensor:
        """The attention mask, shape ``(B, C, H, W)``: one gate per pixel and per channel."""
        x = F.leaky_relu(self.conv1(torch.cat([z_a, h], dim=1)), LEAKY_SLOPE)
        return torch.sigmoid(self.conv2(self.norm(x)))

    def forward(self, z_a: Tensor, h: Tensor) -> Tensor:
        return self.gate(z_a, h, self.mask(z_a, h))

    def forward_with_masks(self, z_a: Tensor, h: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        m = self.mask(z_a, h)
        return self.gate(z_a, h, m), {"": m}

    @staticmethod
    def gate(z_a: Tensor, h: Tensor, m: Tensor) -> Tensor:
        """``(1 - m) z_a + m h``: the mask's choice between the target's attributes and the decoder path."""
        return (1 - m) * z_a + m * h


class DoubleAFFA(Fusion):
    """The official ``d_affa``: a second AFFA fuses ``z_a`` with the first one's output."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = AFFA(channels)
        self.second = AFFA(channels)

    def forward(self, z_a: Tensor, h: Tensor) -> Tensor:
        return self.second(z_a, self.first(z_a, h))

    def forward_with_masks(self, z_a: Tensor, h: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Both AFFAs' masks: ``first`` (over ``[z_a, h]``) and ``second`` (over ``[z_a, first's output]``)."""
        h, first = self.first.forward_with_masks(z_a, h)
        out, second = self.second.forward_with_masks(z_a, h)
        return out, {"first": first[""], "second": second[""]}


class DualMaskAFFA(AFFA):
    """The official ``do_affa`` (``adaptive_attention_double``): a C-channel mask times a 1-channel spatial mask.

    Both branches read ``[z_a, h]`` through AFFA's stack with ``C`` hidden filters in their 3x3 conv (not
    plain AFFA's C/4): the channel branch ends in C outputs, the spatial one in a single output.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, hidden=channels)
        self.spatial = AFFA(channels, hidden=channels, mask_channels=1)

    def mask(self, z_a: Tensor, h: Tensor) -> Tensor:
        return super().mask(z_a, h) * self.spatial.mask(z_a, h)


FUSIONS: dict[str, type[Fusion]] = {
    "affa": AFFA,
    "concat": Concat,
    "add": Add,
    "none": NoSkip,
    "d_affa": DoubleAFFA,
    "do_affa": DualMaskAFFA,
}


def make_fusion(kind: str, channels: int) -> Fusion:
    if kind not in FUSIONS:
        raise ValueError(f"unknown fusion {kind!r}; choose from {', '.join(FUSION_TYPES)}")
    return FUSIONS[kind](channels)
