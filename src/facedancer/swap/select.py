"""Which target faces get swapped, and with which source.

Users of other swappers complain most that the wrong face was swapped. Choices: every face (default),
the largest, the N-th from the left, or faces that look like a reference photo; and several
source -> reference pairs at once for videos with several people. Identity matching uses SFace, which
is always installed, whatever model does the swapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from facedancer.faces.align import align
from facedancer.identity import IdentityEncoder, from_uint8, load_encoder

#: cosine similarity above which two SFace embeddings are taken as the same person (OpenCV's
#: recommended SFace threshold is 0.363; LFW same-person pairs average ~0.64, different ~0.09)
DEFAULT_THRESHOLD = 0.363

SelectionMode = Literal["all", "largest", "index", "reference"]


class FaceMatcher:
    """L2-normalised SFace embeddings of faces in frames, for matching against references."""

    def __init__(self, encoder: IdentityEncoder | None = None) -> None:
        self.encoder = encoder or load_encoder("sface")

    @torch.inference_mode()
    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(N, D) unit embeddings of the faces with (N, 5, 2) ``landmarks`` in ``image``."""
        if len(landmarks) == 0:
            return np.zeros((0, self.encoder.embedding_dim), np.float32)
        crops = np.stack([align(image, pts, self.encoder.input_size)[0] for pts in landmarks])
        z = self.encoder(from_uint8(crops)).numpy()
        return z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)


@dataclass(frozen=True)
class Selection:
    """``mode``: "all", "largest", "index" (the ``index``-th face from the left) or "reference".

    For "reference", ``references`` holds one unit embedding per source (row i belongs to source i);
    a face goes to the source whose reference it resembles most, if above ``threshold``.
    """

    mode: SelectionMode = "all"
    index: int = 0
    references: np.ndarray | None = None
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        if self.mode == "reference" and (self.references is None or len(self.references) == 0):
            raise ValueError("reference selection needs at least one reference embedding")

    @property
    def needs_identity(self) -> bool:
        return self.mode == "reference"

    def assign(self, boxes: np.ndarray, identities: np.ndarray | None = None) -> list[int | None]:
        """For each face (boxes (N, 4)): the index of its source, or None to leave it alone.

        ``identities`` are the faces' unit embeddings (:class:`FaceMatcher`), needed for "reference".
        """
        n = len(boxes)
        if n == 0:
            return []
        if self.mode == "all":
            return [0] * n
        if self.mode == "largest":
            chosen = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        elif self.mode == "index":
            order = np.argsort((boxes[:, 0] + boxes[:, 2]) / 2, kind="stable")
            chosen = int(order[self.index]) if self.index < n else -1
        else:
            assert identities is not None and self.references is not None
            sims = identities @ self.references.T
            best = sims.argmax(1)
            return [int(b) if sims[i, b] >= self.threshold else None for i, b in enumerate(best)]
        return [0 if i == chosen else None for i in range(n)]
