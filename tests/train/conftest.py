"""Prepared LFW crops shared by the training tests (aligned once per session, never committed)."""

from __future__ import annotations

import pytest
import torch

from facedancer.train.prepare import PrepareOptions, prepare


@pytest.fixture(scope="session")
def lfw_crops(lfw, tmp_path_factory):
    """20 LFW identities (~160 photos) aligned to 256 px crops with ``facedancer prepare``."""
    src = tmp_path_factory.mktemp("lfw-src")
    for person in sorted(p for p in lfw.iterdir() if p.is_dir())[:20]:
        (src / person.name).symlink_to(person)
    dst = tmp_path_factory.mktemp("lfw-crops")
    prepare(src, dst, PrepareOptions(min_face=64))
    return dst


class TinyEncoder(torch.nn.Module):
    """A stand-in identity encoder with the ``facedancer.identity`` interface, small enough for unit tests."""

    embedding_dim = 16
    input_size = 32
    feature_names = ("block1", "block2", "block3")

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.block1 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.PReLU(8))
        self.block2 = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.PReLU(16))
        self.block3 = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, 2, 1), torch.nn.PReLU(16))
        self.head = torch.nn.Linear(16 * 4 * 4, self.embedding_dim)
        self.requires_grad_(False).eval()

    def prepare(self, crop: torch.Tensor) -> torch.Tensor:
        x = (crop + 1) / 2
        return torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)

    def features(self, x: torch.Tensor, names=None) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.feature_names:
            x = getattr(self, name)(x)
            out[name] = x
        return {n: out[n] for n in (names or self.feature_names)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)["block3"].flatten(1))


@pytest.fixture
def tiny_encoder():
    return TinyEncoder()
