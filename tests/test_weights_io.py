"""The one reader and strict loader of weights files: formats, wrappers, and one-line errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from facedancer.errors import CheckpointError
from facedancer.weights_io import load_strict, misfit, read_state_dict


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))


def test_safetensors_and_torch_files_read_alike_whatever_the_suffix(tmp_path):
    state = {k: torch.randn_like(v.float()) for k, v in _net().state_dict().items()}
    save_file(state, str(tmp_path / "w.bin"))  # safetensors content, recognised by its header
    torch.save(state, tmp_path / "w.pth")
    for name in ("w.bin", "w.pth"):
        read = read_state_dict(tmp_path / name)
        assert read.keys() == state.keys()
        assert all(torch.equal(read[k], v) for k, v in state.items())


def test_parallel_prefix_and_training_wrapper_are_dropped(tmp_path):
    net = _net()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "c.pt")
    assert read_state_dict(tmp_path / "c.pt").keys() == net.state_dict().keys()


def test_unreadable_files_are_one_line_errors_naming_the_file_and_the_content(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(64, 64)}, good)
    (tmp_path / "truncated.pth").write_bytes(good.read_bytes()[:300])
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    save_file({"w": torch.zeros(64, 64)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "model.safetensors").read_bytes()[:100])
    torch.save(nn.Linear(2, 2), tmp_path / "code.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    cases = {
        "nowhere.pth": r"nowhere\.pth does not exist$",
        "truncated.pth": r"truncated\.pth is truncated or corrupt, or not a Thing state dict \(.+\)$",
        "junk.pth": r"junk\.pth is truncated or corrupt, or not a Thing state dict \(Unsupported operand 110\)$",
        "model.safetensors": r"model\.safetensors is truncated or corrupt, or not a Thing state dict \(.+\)$",
        "code.pth": r"code\.pth is not a Thing state dict: it holds pickled Python objects beyond tensors",
        "tensor.pth": r"tensor\.pth is not a Thing state dict: it does not hold a plain state dict of tensors "
        r"\(a Tensor\)$",
    }
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as caught:
            read_state_dict(tmp_path / name, "Thing state dict")
        assert "\n" not in str(caught.value)
    with pytest.raises(CheckpointError, match="not a readable torch weights file"):  # the default names the format
        read_state_dict(tmp_path / "junk.pth")


def test_misfit_names_every_kind_of_problem_and_counts_the_rest():
    own = {f"k{i}": torch.zeros(2) for i in range(7)} | {"shaped": torch.zeros(2, 3)}
    tensors = {"shaped": torch.zeros(3, 2), "extra": torch.zeros(1)}
    assert misfit(own, tensors) == (
        "missing tensors: k0, k1, k2, k3 and 3 more; unexpected tensors: extra; wrong shapes: shaped (3, 2) != (2, 3)"
    )
    assert misfit(own, own) == ""


def test_load_strict_refuses_a_misfit_and_adds_the_callers_hint():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = {k: v + 1 for k, v in before.items()}
    state["0.weight"] = torch.zeros(3, 2, 3, 3)
    message = r"^f\.pth does not fit Net: wrong shapes: 0\.weight \(3, 2, 3, 3\) != \(3, 2, 1, 1\); try a 3x3 net$"
    with pytest.raises(CheckpointError, match=message):
        load_strict(net, state, "f.pth", "Net", hint=lambda tensors: "; try a 3x3 net")
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # nothing half-loaded


def test_load_strict_copies_into_a_built_module_and_assigns_to_a_meta_one_in_its_own_dtype():
    state = {k: (v.double() if v.is_floating_point() else v) + 1 for k, v in _net().state_dict().items()}
    built = load_strict(_net(), state, "f")
    assert built[0].weight.dtype == torch.float32 and torch.equal(built[0].weight, state["0.weight"].float())
    with torch.device("meta"):
        template = _net()
    assigned = load_strict(template, state, "f")
    assert assigned[0].weight.dtype == torch.float32 and torch.equal(assigned[0].weight, state["0.weight"].float())
    assert not any(t.is_meta for t in assigned.state_dict().values())


def test_load_strict_gives_a_meta_module_its_own_dtype_not_the_files(tmp_path):
    """Bundles write fp16; an fp32 module built on the meta device must still come out fp32."""
    state = {k: torch.randn_like(v.float()).half() for k, v in _net().state_dict().items()}
    state["1.num_batches_tracked"] = torch.tensor(5)
    save_file(state, str(tmp_path / "half.safetensors"))
    with torch.device("meta"):
        template = _net()
    loaded = load_strict(template, read_state_dict(tmp_path / "half.safetensors"), "half.safetensors")
    for key, value in loaded.state_dict().items():
        want = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
        assert value.dtype == want, key
        assert torch.equal(value, state[key].to(want)), key
