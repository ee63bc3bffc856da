"""One interface for every identity encoder: an aligned face in, an embedding and named features out.

Conventions every encoder follows, so callers never care which network is behind it:

- input: RGB float in [0, 1], shape (B, 3, 112, 112), aligned to the ArcFace template; each encoder
  does its own normalisation and channel order internally;
- ``forward`` returns the raw embedding as the network outputs it, **not L2-normalised**: FaceDancer
  feeds the raw vector to its mapping network (PAPER.md §1.1); normalise for cosine scores yourself;
- ``features`` returns the outputs of the network's blocks by name (for IFSR, PAPER.md §2), shallow to
  deep, in a single pass that stops after the deepest block asked for;
- encoders are frozen: always in eval mode (BatchNorms use their moving statistics, PAPER.md §7.1),
  parameters do not require grad, yet gradients flow to the input (the losses backpropagate into G).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facedancer.errors import ConfigError

#: side of the square aligned crop every encoder takes
INPUT_SIZE = 112

Stage = Callable[[Tensor], Tensor]


def prepare(crop: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """Encoder input from aligned crops in [-1, 1] of any size (e.g. the generator's 256 px crops).

    Maps to [0, 1], then resizes bilinearly with half-pixel centres and no antialiasing, which is what
    ``tf.image.resize`` does in the official code (PAPER.md §1.1, §7.7). This is only a valid encoder
    input because the crops are aligned to the ArcFace template scaled to their size (shrink 1.0).
    """
    x = (crop + 1) / 2
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return x


def from_uint8(crops: np.ndarray | Sequence[np.ndarray]) -> Tensor:
    """Aligned RGB uint8 crops, (H, W, 3) each, as an encoder batch (B, 3, H, W) in [0, 1]."""
    batch = np.asarray(crops)
    batch = batch[None] if batch.ndim == 3 else batch
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255


class IdentityEncoder(nn.Module):
    """Base class: subclasses give ``normalise``, the named ``stages`` and the embedding ``head``."""

    name: str
    embedding_dim: int
    input_size: int = INPUT_SIZE
    #: names accepted by :meth:`features`, ordered shallow -> deep
    feature_names: tuple[str, ...]

    # --- what a subclass provides -------------------------------------------------------------
    def normalise(self, x: Tensor) -> Tensor:
        """RGB [0, 1] -> what the network was trained on (scale, offset, channel order)."""
        raise NotImplementedError

    def stages(self) -> Iterator[tuple[str, Stage]]:
        """The network's blocks in order, each named as in :attr:`feature_names`."""
        raise NotImplementedError

    def head(self, h: Tensor) -> Tensor:
        """Last block's output -> embedding."""
        raise NotImplementedError

    # --- the interface --------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Raw (not L2-normalised) embeddings, shape (B, embedding_dim)."""
        return self.head(self._trunk(x, (), to_the_end=True)[0])

    def features(self, x: Tensor, names: Iterable[str] | None = None) -> dict[str, Tensor]:
        """Named block outputs (all of :attr:`feature_names` by default), in the order asked for."""
        return self._trunk(x, self._check_names(names), to_the_end=False)[1]

    def forward_with_features(self, x: Tensor, names: Iterable[str] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Embedding and named features from one pass (identity loss and IFSR on the same swap)."""
        h, found = self._trunk(x, self._check_names(names), to_the_end=True)
        return self.head(h), found

    def train(self, mode: bool = True) -> IdentityEncoder:
        """Stays in eval mode whatever a parent module asks: a frozen encoder never updates BN stats."""
        return super().train(False)

    def freeze(self) -> IdentityEncoder:
        """Eval mode and no parameter gradients; inputs still receive gradients."""
        self.requires_grad_(False)
        return self.eval()

    # --- internals ----------------------------------------------------------------------------
    def _check_names(self, names: Iterable[str] | None) -> tuple[str, ...]:
        names = self.feature_names if names is None else tuple(names)
        unknown = [n for n in names if n not in self.feature_names]
        if unknown:
            raise ConfigError(
                f"{self.name} has no feature {', '.join(map(repr, unknown))}; "
                f"known (shallow -> deep): {', '.join(self.feature_names)}"
            )
        return names

    def _check_input(self, x: Tensor) -> None:
        want = (3, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"{self.name} takes RGB [0, 1] batches of shape (B, {', '.join(map(str, want))}), "
                f"got {tuple(x.shape)}; identity.prepare() turns [-1, 1] crops of any size into that"
            )

    def _trunk(self, x: Tensor, names: Sequence[str], to_the_end: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """Last stage's output (or the deepest one asked for) and the named stage outputs."""
        self._check_input(x)
        wanted, found = set(names), {}
        h = self.normalise(x)
        for name, stage in self.stages():
            if not to_the_end and len(found) == len(wanted):
                break
            h = stage(h)
            if name in wanted:
                found[name] = h
        return h, {n: found[n] for n in names}
