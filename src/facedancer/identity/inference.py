"""Identity embeddings of face images at inference: aligned uint8 crops in, raw embeddings out.

The one path from a picture of a face to its embedding, for the swap's source, reference matching and the
evaluation's recognisers. The crop must be aligned to the ArcFace template *at the encoder's own input size*
(``align(image, points, encoder.input_size)``): that is the official inference recipe, which aligns the
source straight to 112 px rather than resizing a larger crop (PAPER.md §1.1). Training embeds generator
tensors in [-1, 1] instead, resized to 112 px (:func:`facedancer.identity.prepare`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from facedancer.identity.base import IdentityEncoder, from_uint8


@torch.inference_mode()
def embed_crops(
    encoder: IdentityEncoder, crops: np.ndarray | Sequence[np.ndarray], device: torch.device | str | None = None
) -> Tensor:
    """Raw (not unit-length) embeddings (N, D) of aligned RGB uint8 crops, (H, W, 3) each or stacked, on
    ``device`` (default: the CPU). A single crop gives a batch of one; no crops give (0, D)."""
    if len(crops) == 0:
        return torch.zeros((0, encoder.embedding_dim), device=device)
    x = from_uint8(crops)
    return encoder(x if device is None else x.to(device))
