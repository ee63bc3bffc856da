"""The classical swapper: the parameter-free reference swap as a :class:`~facedancer.swap.models.CropSwapper`.

The swap itself is geometry and blending, so it lives in ``faces/`` (:mod:`facedancer.faces.classical_swap`:
the thin-plate landmark warp, the face mask, the Poisson paste), where the training side's IFSR pre-study
(``train/calibrate.py``) uses it too: ``train`` sits beside ``swap`` in the layers, not above it, so it may not
import from here. What makes it a *swapper* (a model name, a source kept once, crops in and crops out, the
provenance label of an algorithmic composite) is this module.
"""

from __future__ import annotations

import numpy as np
import torch

from facedancer.faces.align import align, template
from facedancer.faces.classical_swap import face_mask, poisson_paste
from facedancer.io import COMPOSITE_SYNTHETIC

#: the ``--model`` name of the classical swapper
CLASSICAL = "classical"


class ClassicalSwapper:
    """The parameter-free reference: the source face warped onto the target's landmarks, Poisson-blended.

    Every crop is aligned to the same template, so both faces' five points are the template's: the
    landmark warp of :func:`classical_swap` is the identity here and is skipped (bit-identical output,
    23.6 -> 12.6 ms a face), leaving the Poisson paste inside the template's face mask, computed once.
    """

    name = CLASSICAL
    device = torch.device("cpu")
    source_type = COMPOSITE_SYNTHETIC  # real pixels of the source, warped and re-lit by an algorithm: no AI model

    def __init__(self, crop_size: int = 256) -> None:
        self.crop_size = crop_size
        self._mask = face_mask(template(crop_size), (crop_size, crop_size))

    def source(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return align(image, landmarks, self.crop_size)[0]

    def swap(self, crops: np.ndarray, sources: list[object]) -> np.ndarray:
        return np.stack([poisson_paste(np.asarray(s), c, self._mask) for c, s in zip(crops, sources, strict=True)])
