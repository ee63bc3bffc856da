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


@pytest.fixture(scope="session")
def micro_config():
    """A factory of the 32 px FaceDancer config on real SFace and LFW crops that the training tests share:
    the whole system (IFSR, perceptual, cycle, R1) at about a second per step on a CPU core."""

    def make(root, out_dir, **train) -> dict:
        return {
            "name": "micro",
            "generator": {
                "image_size": 32,
                "identity_dim": 128,
                "mapping_depth": 2,
                "mapping_width": 32,
                "base_channels": 8,
                "max_channels": 16,
                "fusion": {16: "affa", 32: "concat"},
            },
            "discriminator": {"image_size": 32, "base_channels": 8, "max_channels": 16},
            "identity": {"encoder": "sface"},
            "ifsr": {"margins": "ifsr_margins_sface"},
            "data": {"root": str(root), "val_identities": 4, "val_pairs": 4, "workers": 0},
            "train": {
                "out_dir": str(out_dir),
                "batch_size": 2,
                "steps": 4,
                "tensorboard": False,
                "log_every": 1,
                "val_every": 0,
                "image_every": 0,
                "checkpoint_every": 100,
                "deterministic": True,
                **train,
            },
        }

    return make
