"""``convert_official``: one ordinary model directory (generator, encoder, discriminator, card) from the Keras files."""

import json

import numpy as np
import pytest
import torch

from facedancer.assets.store import sha256_of
from facedancer.errors import ConversionError, OutputError
from facedancer.identity import KerasResNet
from facedancer.nn import Discriminator, Generator
from facedancer.nn.pretrained import read_meta
from facedancer.official import convert_official, load_keras_discriminator, load_keras_generator


def test_model_directory(official_model, official_keras, arcface16):
    assert {p.name for p in official_model.iterdir()} == {
        "config.json",
        "model.safetensors",
        "identity_encoder",
        "discriminator",
        "README.md",
    }
    g = Generator.from_pretrained(official_model)
    reference = load_keras_generator(official_keras / "tiny_g_configC.h5")
    assert g.config == reference.config
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), reference.state_dict().values(), strict=True))
    d = Discriminator.from_pretrained(official_model / "discriminator")
    assert d.config == load_keras_discriminator(official_keras / "tiny_d.h5").config
    assert KerasResNet.from_directory(official_model / "identity_encoder").embedding_dim == 16

    meta = read_meta(official_model)
    assert meta["identity_encoder"] == "arcface-keras-r50" and meta["name"] == "tiny_g_configC"
    assert meta["licence"] == "CC BY-NC-SA 4.0"
    card = (official_model / "README.md").read_text()
    for role, path in (("generator", official_keras / "tiny_g_configC.h5"), ("identity encoder", arcface16)):
        digest = meta["source"][role]["sha256"]
        assert digest == sha256_of(path) and digest in card and path.name in card
    assert "CC BY-NC-SA 4.0" in card and "non-commercial" in card
    assert "8 px: affa, 16 px: affa, 32 px: affa, 64 px: concat" in card


def official_checkpoint(split, official_keras, root, step=3):
    """The official train.py's layout: gen/gen_N.h5 + gen.json and dis/dis_N.h5 + dis.json (weights only)."""
    for kind, src in (("gen", "tiny_g_doaffa.h5"), ("dis", "tiny_d.h5")):
        (root / kind).mkdir(parents=True)
        split(official_keras / src, root / kind / f"{kind}_{step}.h5", root / kind / f"{kind}.json")
    return root / "gen" / f"gen_{step}.h5"


def test_official_checkpoint_layout_is_found(official_keras, keras_split, arcface16, tmp_path):
    """A weights-only gen_N.h5: its gen.json and the matching dis_N.h5 + dis.json are found on their own."""
    gen = official_checkpoint(keras_split, official_keras, tmp_path / "checkpoints" / "run")
    out = convert_official(gen, tmp_path / "model", arcface16)
    data = np.load(official_keras / "tiny_g_doaffa.npz")
    with torch.no_grad():
        y = Generator.from_pretrained(out)(torch.from_numpy(data["x"]).permute(0, 3, 1, 2), torch.from_numpy(data["z"]))
    assert np.abs(y.permute(0, 2, 3, 1).numpy() - data["y"]).max() < 1e-5
    assert (out / "discriminator" / "model.safetensors").is_file()
    assert json.loads((out / "config.json").read_text())["meta"]["source"]["discriminator"]["file"] == "dis_3.h5"


def test_existing_output_is_left_alone(official_keras, arcface16, official_model):
    before = {p: p.stat().st_mtime_ns for p in official_model.rglob("*")}
    with pytest.raises(OutputError, match="exists; convert into a new directory"):
        convert_official(official_keras / "tiny_g_configC.h5", official_model, arcface16)
    assert {p: p.stat().st_mtime_ns for p in official_model.rglob("*")} == before


def test_without_an_encoder_the_identity_must_be_arcface_res50s(official_keras, tmp_path):
    with pytest.raises(ConversionError, match="takes 16-d identities, not ArcFace-Res50's 512: give the encoder"):
        convert_official(official_keras / "tiny_g_configC.h5", tmp_path / "model")
    assert not (tmp_path / "model").exists()
