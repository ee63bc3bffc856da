import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from facedancer.errors import CheckpointError
from facedancer.nn import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from facedancer.nn.pretrained import Pretrained, read_meta

SMALL = GeneratorConfig(
    image_size=64,
    base_channels=8,
    max_channels=16,
    mapping_width=16,
    identity_dim=16,
    fusion={16: "affa", 32: "d_affa", 64: "concat"},
    mapping_depth=2,
)


def test_round_trip_is_bit_exact(tmp_path):
    g = Generator(SMALL)
    g.save_pretrained(tmp_path / "m")
    g2 = Generator.from_pretrained(tmp_path / "m")
    assert g2.config == g.config
    for (k, a), (k2, b) in zip(g.state_dict().items(), g2.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    x, z = torch.randn(1, 3, 64, 64), torch.randn(1, 16)
    assert torch.equal(g(x, z), g2(x, z))


def test_config_json_holds_every_constructor_argument(tmp_path):
    Generator(SMALL).save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["class"] == "Generator"
    assert set(SMALL.__dataclass_fields__) <= set(meta)
    assert type(Pretrained.from_pretrained(tmp_path)) is Generator


def test_meta_is_kept_beside_the_config(tmp_path):
    Generator(SMALL).save_pretrained(tmp_path, meta={"identity_encoder": "sface"})
    assert read_meta(tmp_path) == {"identity_encoder": "sface"}
    assert Generator.from_pretrained(tmp_path).config == SMALL


def test_fp16_save_loads_into_fp32(tmp_path):
    g = Generator(SMALL)
    g.save_pretrained(tmp_path, dtype=torch.float16)
    assert all(t.dtype == torch.float16 for t in load_file(str(tmp_path / "model.safetensors")).values())
    g2 = Generator.from_pretrained(tmp_path)
    assert next(g2.parameters()).dtype == torch.float32


def _tamper(path, fn):
    tensors = load_file(str(path))
    fn(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.pop("stem.weight"), "missing tensors: stem.weight"),
        (lambda t: t.__setitem__("extra.weight", torch.zeros(1)), "unexpected tensors: extra.weight"),
        (lambda t: t.__setitem__("stem.bias", torch.zeros(3)), "wrong shapes: stem.bias (3,) != (8,)"),
    ],
)
def test_mismatched_tensors_are_named(tmp_path, edit, message):
    Generator(SMALL).save_pretrained(tmp_path)
    _tamper(tmp_path / "model.safetensors", edit)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Generator.from_pretrained(tmp_path)


def test_truncated_and_missing_files(tmp_path):
    Generator(SMALL).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Generator.from_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        Generator.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not JSON"):
        Generator.from_pretrained(tmp_path)


def test_wrong_class_and_bad_config(tmp_path):
    Discriminator(DiscriminatorConfig(image_size=64, base_channels=8, max_channels=16)).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="describes a 'Discriminator'"):
        Generator.from_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["widht"] = 3
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown config key 'widht'"):
        Discriminator.from_pretrained(tmp_path)
