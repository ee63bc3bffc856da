"""Swapper test doubles and a small random generator: plumbing tests need no trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facedancer.io import COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA


class EchoSwapper:
    """Returns the target crops unchanged: what comes out shows the pipeline's own error."""

    name = "echo"
    crop_size = 256
    device = torch.device("cpu")
    source_type = COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA  # labelled as a generator's output would be

    def source(self, image: np.ndarray, landmarks: np.ndarray) -> int:
        return 0

    def swap(self, crops: np.ndarray, sources: list) -> np.ndarray:
        return crops.copy()


class PaintSwapper(EchoSwapper):
    """Paints each swapped crop with its source's colour, so it is obvious which faces changed."""

    name = "paint"
    colours = ((255, 0, 0), (0, 0, 255))

    def source(self, image: np.ndarray, landmarks: np.ndarray) -> int:
        self._count = getattr(self, "_count", -1) + 1
        return self._count

    def swap(self, crops: np.ndarray, sources: list) -> np.ndarray:
        out = np.empty_like(crops)
        for i, s in enumerate(sources):
            out[i] = self.colours[s % len(self.colours)]
        return out


@pytest.fixture(scope="session")
def lfw_pair(lfw: Path) -> tuple[Path, Path]:
    """(source, target): two different people, frontal enough for any detector."""
    return lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", lfw / "Adrien_Brody" / "Adrien_Brody_0001.jpg"


@pytest.fixture
def echo() -> EchoSwapper:
    return EchoSwapper()


@pytest.fixture
def paint() -> PaintSwapper:
    return PaintSwapper()
