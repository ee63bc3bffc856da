"""Prepared LFW crops shared by the training tests (aligned once per session, never committed)."""

from __future__ import annotations

import pytest
import torch

from facedancer.identity import IdentityEncoder
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


class TinyEncoder(IdentityEncoder):
    """A stand-in identity encoder (the real interface, 32 px input, three conv blocks) for fast unit tests."""

    name = "tiny"
    embedding_dim = 16
    input_size = 32
    feature_names = ("block1", "block2", "block3")

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.block1 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.PReLU(8))
        self.block2 = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.PReLU(16))
        self.block3 = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, 2, 1), torch.nn.PReLU(16))
        self.fc = torch.nn.Linear(16 * 4 * 4, self.embedding_dim)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        self.freeze()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1

    def stages(self):
        for name in self.feature_names:
            yield name, getattr(self, name)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h.flatten(1))


@pytest.fixture
def tiny_encoder():
    return TinyEncoder()
