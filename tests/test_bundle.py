"""Bundling a trained generator for shipping: fp16 weights, a card whose facts match them, the default model."""

import hashlib

import pytest
import torch
from safetensors import safe_open

from facedancer.bundle import bundle_model
from facedancer.errors import CheckpointError, OutputError
from facedancer.io import read_label
from facedancer.nn import Generator, parameter_count
from facedancer.swap import DEFAULT_MODEL, models


def test_bundle_writes_fp16_weights_and_a_card_that_matches_them(random_model, tmp_path):
    out = bundle_model(random_model, tmp_path / "lite", "# My model\n\nTrained on LFW.")
    weights = out / "model.safetensors"
    with safe_open(str(weights), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118  (safe_open has no __iter__)
    assert dtypes == {torch.float16}
    fp32 = Generator.from_pretrained(random_model)
    assert weights.stat().st_size < 2.1 * parameter_count(fp32) + 100_000  # two bytes a parameter, plus header
    card = (out / "README.md").read_text()
    assert card.startswith("# My model\n\nTrained on LFW.")
    assert hashlib.sha256(weights.read_bytes()).hexdigest() in card and "sface (128-d)" in card
    # loads back as fp32 for the CPU and swaps like the original, within fp16 rounding
    shipped = Generator.from_pretrained(out).eval()
    x, z = torch.rand(1, 3, 256, 256) * 2 - 1, torch.randn(1, 128)
    with torch.no_grad():
        assert (shipped(x, z) - fp32.eval()(x, z)).abs().max() < 0.02
    assert not list(tmp_path.glob(".*"))  # no staging directory left behind


def test_a_converted_model_keeps_its_encoder_and_licence(official_model, tmp_path):
    out = bundle_model(official_model, tmp_path / "shipped")
    assert (out / "identity_encoder" / "model.safetensors").is_file()
    assert "licence of the weights it started from (converted): CC BY-NC-SA 4.0" in (out / "README.md").read_text()
    assert models.GeneratorSwapper.from_pretrained(out).encoder.embedding_dim == 16


def test_bundle_refuses_an_existing_output_and_an_unnamed_encoder(random_model, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="exists"):
        bundle_model(random_model, tmp_path / "taken")
    bare = Generator(Generator.read_config(random_model)[1]).save_pretrained(tmp_path / "bare")
    with pytest.raises(CheckpointError, match="identity encoder"):
        bundle_model(bare, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_bundled_default_model_is_what_swap_uses_without_model(run, random_model, lfw, tmp_path, monkeypatch):
    shipped = bundle_model(random_model, tmp_path / DEFAULT_MODEL)
    monkeypatch.setattr(models, "bundled_models", lambda: {DEFAULT_MODEL: shipped})
    source, target = lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", lfw / "Adrien_Brody" / "Adrien_Brody_0001.jpg"
    code, _, err = run("swap", "-s", source, "-t", target, "-o", tmp_path / "swap.jpg")
    assert code == 0, err
    assert DEFAULT_MODEL in str(read_label(tmp_path / "swap.jpg"))
