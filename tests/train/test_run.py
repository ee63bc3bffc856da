"""A run, not its trainer, sets the process's seeds and switches and writes the run directory."""

import random

import numpy as np
import pytest
import torch
import yaml

from facedancer.config import from_dict
from facedancer.presets import Preset
from facedancer.train.run import load_run_config, load_run_preset, process_settings, resolve_perceptual
from facedancer.train.trainer import Trainer


def _states() -> tuple:
    return (
        torch.get_rng_state(),
        np.random.get_state()[1].copy(),
        random.getstate(),
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
    )


def _same(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def test_building_a_trainer_sets_nothing_process_wide_and_writes_no_file(lfw_crops, micro_config, tmp_path):
    preset = resolve_perceptual(from_dict(Preset, micro_config(lfw_crops, tmp_path / "runs", deterministic=True)))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.manual_seed(123)
    before = _states()
    first = Trainer(preset, run_dir)
    assert _same(_states(), before)
    assert list(run_dir.iterdir()) == [] and not (tmp_path / "runs").exists()
    torch.rand(5)  # the process's generator moved on: the networks are still the seed's
    second = Trainer(preset, run_dir)
    for a, b in ((first.generator, second.generator), (first.discriminator, second.discriminator)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    first.close()
    second.close()

    with process_settings(preset.train, first.device):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.equal(torch.get_rng_state(), torch.random.manual_seed(0).get_state())
    assert torch.are_deterministic_algorithms_enabled() == before[3]


def test_the_perceptual_mean_is_its_own_setting(lfw_crops, micro_config, tmp_path):
    """One knob, one effect: the official reconstruction no longer changes the perceptual loss."""
    config = micro_config(lfw_crops, tmp_path)
    for reconstruction, mean in (("official", "plain"), ("plain", "official"), ("plain", "plain")):
        config["train"]["loss"] = {"reconstruction": reconstruction, "perceptual_mean": mean}
        trainer = Trainer(resolve_perceptual(from_dict(Preset, config)), tmp_path)
        assert trainer.gan.reconstruction.mode == reconstruction
        assert trainer.gan.perceptual.official == (mean == "official")
        trainer.close()


@pytest.mark.parametrize("reconstruction, recorded", [("official", "official"), ("plain", "plain")])
def test_a_run_recorded_before_the_setting_resumes_with_the_perceptual_mean_it_had(reconstruction, recorded, tmp_path):
    config = {"name": "old", "train": {"loss": {"reconstruction": reconstruction}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_run_config(tmp_path)["train"]["loss"]["perceptual_mean"] == recorded
    preset = load_run_preset(tmp_path, ["train.loss.perceptual_mean=plain"])
    assert preset.train.loss.perceptual_mean == "plain" and preset.train.loss.reconstruction == reconstruction
