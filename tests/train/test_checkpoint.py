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
