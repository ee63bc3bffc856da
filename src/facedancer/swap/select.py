"""Which target faces get swapped, and with which source.

Users of other swappers complain most that the wrong face was swapped. Choices: every face (default),
the largest, the N-th from the left, or faces that look like a reference photo; and several
source -> reference pairs at once for videos with several people. Identity matching uses SFace, which
is always installed, whatever model does the swapping.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facedancer.faces.align import align
from facedancer.faces.detect import largest_face
from facedancer.faces.track import TrackedFace
from facedancer.identity import IdentityEncoder, embed_crops, load_encoder

#: cosine similarity above which two SFace embeddings are taken as the same person (OpenCV's
#: recommended SFace threshold is 0.363; LFW same-person pairs average ~0.64, different ~0.09)
DEFAULT_THRESHOLD = 0.363
#: a track that matched no reference is checked again for this many frames before it is left alone
REFERENCE_RETRIES = 10

SelectionMode = Literal["all", "largest", "index", "reference"]


class FaceMatcher:
    """L2-normalised SFace embeddings of faces in frames, for matching against references."""

    def __init__(self, encoder: IdentityEncoder | None = None) -> None:
        self.encoder = encoder or load_encoder("sface")

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(N, D) unit embeddings of the faces with (N, 5, 2) ``landmarks`` in ``image``."""
        z = embed_crops(self.encoder, [align(image, pts, self.encoder.input_size)[0] for pts in landmarks]).numpy()
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
            chosen = largest_face(boxes)
        elif self.mode == "index":
            order = np.argsort((boxes[:, 0] + boxes[:, 2]) / 2, kind="stable")
            chosen = int(order[self.index]) if self.index < n else -1
        else:
            assert identities is not None and self.references is not None
            sims = identities @ self.references.T
            best = sims.argmax(1)
            return [int(b) if sims[i, b] >= self.threshold else None for i, b in enumerate(best)]
        return [0 if i == chosen else None for i in range(n)]


class TrackChoices:
    """A video's selection, decided once per tracked face rather than per frame.

    A per-frame choice lets the swap jump between two people whose sizes are close or whose positions cross.
    "all", "largest" and "index" are decided in the frame where a track appears; a track that appears while
    the chosen face's track lives is not chosen. "reference" matches each track's identity once (``embed``,
    e.g. :meth:`FaceMatcher.embed`), retried for :data:`REFERENCE_RETRIES` frames while it matches nothing.
    """

    def __init__(self, selection: Selection, embed: Callable[[np.ndarray, np.ndarray], np.ndarray] | None) -> None:
        if selection.needs_identity and embed is None:
            raise ValueError("reference selection needs an embed function")
        self.selection, self.embed = selection, embed
        self._source: dict[int, int | None] = {}  # each track's source, once decided
        self._tries: dict[int, int] = defaultdict(int)

    def assign(self, frame: np.ndarray, tracked: list[TrackedFace], alive: set[int]) -> list[int | None]:
        """The source of each of the frame's ``tracked`` faces, or None; ``alive``: the tracker's live ids."""
        if self.selection.needs_identity:
            return self._by_reference(frame, tracked)
        return self._by_position(tracked, alive)

    def _by_reference(self, frame: np.ndarray, tracked: list[TrackedFace]) -> list[int | None]:
        todo = [
            t for t in tracked if self._source.get(t.track_id) is None and self._tries[t.track_id] < REFERENCE_RETRIES
        ]
        if todo:
            found = self.selection.assign(
                np.array([t.box for t in todo]), self.embed(frame, np.stack([t.landmarks for t in todo]))
            )
            for t, src in zip(todo, found, strict=True):
                self._source[t.track_id] = src
                self._tries[t.track_id] += 1
        return [self._source.get(t.track_id) for t in tracked]

    def _by_position(self, tracked: list[TrackedFace], alive: set[int]) -> list[int | None]:
        decided = self._source
        if any(t.track_id not in decided for t in tracked):
            picks = self.selection.assign(np.array([t.box for t in tracked], np.float32).reshape(-1, 4))
            taken = self.selection.mode != "all" and any(decided.get(i) is not None for i in alive)
            for t, pick in zip(tracked, picks, strict=True):
                if t.track_id not in decided:
                    decided[t.track_id] = None if taken else pick
        return [decided[t.track_id] for t in tracked]
