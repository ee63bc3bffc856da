"""Swapper test doubles and a small random generator: plumbing tests need no trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facedancer.nn import Generator, GeneratorConfig


class EchoSwapper:
    """Returns the target crops unchanged: what comes out shows the pipeline's own error."""

    name = "echo"
    crop_size = 256
    device = torch.device("cpu")

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
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised SFace-conditioned generator saved as a model directory."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        identity_dim=128,
        base_channels=8,
        max_channels=32,
        mapping_width=32,
        fusion={32: "affa", 64: "affa", 128: "affa", 256: "concat"},
    )
    path = tmp_path_factory.mktemp("models") / "tiny-random"
    Generator(cfg).save_pretrained(path, meta={"identity_encoder": "sface"})
    return path


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
