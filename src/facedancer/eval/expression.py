"""Expression error: L2 between the 3DDFA_V2 expression coefficients of target and swap.

NOT the paper's metric. FaceDancer's "Exp" column (PAPER.md §4.1, §4.2) is the L2 distance between
embeddings of an EfficientNet-B0 expression embedder (``ExpressionEmbedder-B0.h5``) whose weights we do
not ship. Ours uses the 10 BFM expression coefficients that 3DDFA_V2 regresses, a different quantity on
a different scale: our numbers cannot be compared with the paper's (about 4 to 10), only between models
measured here.
"""

from __future__ import annotations

import numpy as np

from facedancer.eval.tddfa import EXPRESSION_SLICE


def expression_error(target: np.ndarray, swap: np.ndarray) -> np.ndarray:
    """(N,) L2 distance between the (N, 10) expression coefficients of targets and their swaps.

    The coefficients come from :meth:`facedancer.eval.tddfa.TDDFA.params` via
    :func:`facedancer.eval.tddfa.expression_coefficients` (the same forward pass also gives the pose).
    """
    n = EXPRESSION_SLICE.stop - EXPRESSION_SLICE.start
    target, swap = np.asarray(target, np.float64), np.asarray(swap, np.float64)
    if target.shape[-1] != n or swap.shape != target.shape:
        raise ValueError(f"expected two (N, {n}) arrays of expression coefficients, got {target.shape}, {swap.shape}")
    return np.linalg.norm(swap - target, axis=-1)
