import os
import random

import numpy as np
import torch

from facedancer.nn import Discriminator, DiscriminatorConfig
from facedancer.train import checkpoint


def test_state_round_trip_keeps_types_and_bits():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), betas=(0.0, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {
        "optim": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "position": 17,
        "nested": [1.5, None, "x", (2, 3)],
    }
    tensors = {}
    tree = checkpoint.split_state(state, tensors)
    back = checkpoint.join_state(tree, tensors)
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    assert back["position"] == 17 and back["nested"] == [1.5, None, "x", (2, 3)]
    assert set(back["optim"]["state"]) == {0, 1}  # integer keys survive
    torch.testing.assert_close(back["optim"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(back["optim"])
    assert fresh.param_groups[0]["betas"] == (0.0, 0.99)
    random.setstate(back["rng"]["python"])
    np.random.set_state(back["rng"]["numpy"])
    torch.set_rng_state(back["rng"]["torch"])
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    torch.set_rng_state(state["rng"]["torch"])
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())


def test_save_is_atomic_points_latest_and_prunes(tmp_path):
    d = Discriminator(DiscriminatorConfig(image_size=16, base_channels=4, max_channels=4))
    models = {"discriminator": (d, {"step": 0})}
    for step in (1, 2, 3):
        path = checkpoint.save(tmp_path, step, models, {"step": step}, keep=2)
    assert path.name == "step-00000003" and checkpoint.latest(tmp_path) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-00000002", "step-00000003"]
    assert checkpoint.load_state(path) == {"step": 3}
    # a crash while writing leaves only a hidden temporary folder; the pointer still names a whole checkpoint
    (tmp_path / ".step-00000004.tmp").mkdir()
    assert checkpoint.latest(tmp_path) == path
    assert (path / "discriminator" / "model.safetensors").is_file()


def test_a_checkpoint_reaches_the_disk_before_its_name_does(tmp_path, monkeypatch):
    """Every file and folder of a checkpoint is fsync'ed before the rename that makes it complete, and the
    parent folder after it (so a power loss cannot leave a "complete" checkpoint empty); likewise ``latest``."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    d = Discriminator(DiscriminatorConfig(image_size=16, base_channels=4, max_channels=4))
    path = checkpoint.save(tmp_path, 1, {"discriminator": (d, {})}, {"step": 1}, keep=2)

    def synced_between(first: int, last: int) -> set[int]:
        return {ino for kind, ino in events[first:last] if kind == "fsync"}

    renamed = events.index(("rename", "step-00000001"))
    pointed = events.index(("rename", "latest"))
    inside = [*path.rglob("*"), path]
    assert {p.stat().st_ino for p in inside} <= synced_between(0, renamed)
    assert tmp_path.stat().st_ino in synced_between(renamed, pointed)
    assert (tmp_path / "latest").stat().st_ino in synced_between(renamed, pointed)
    assert tmp_path.stat().st_ino in synced_between(pointed, len(events))
