import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from facedancer.config import from_dict
from facedancer.errors import ConfigError, TrainingError
from facedancer.io import read_label
from facedancer.nn import Generator
from facedancer.nn.pretrained import read_meta
from facedancer.presets import Preset
from facedancer.swap import FaceSwapper
from facedancer.train import checkpoint
from facedancer.train.dataset_format import read_manifest
from facedancer.train.monitor import read_values
from facedancer.train.run import HELD_OUT, resolve_perceptual, train
from facedancer.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def micro(micro_config):
    """conftest's micro_config as a Preset."""
    return lambda root, out_dir, **train: from_dict(Preset, micro_config(root, out_dir, **train))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = checkpoint.latest(run_dir / "checkpoints")
    return {
        f"{name}.{k}": v
        for name in ("generator", "discriminator")
        for k, v in load_file(str(ckpt / name / "model.safetensors")).items()
    }


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _env() -> dict[str, str]:
    # one thread everywhere: bit-exact comparisons need the same reduction order in every process
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _cli(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "facedancer", *map(str, args)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


# slow (1.3 min, three CLI training runs): the default run keeps bit-identical resumption after SIGINT and
# SIGTERM (tests/train/test_faults.py: signals, and a kill at every moment of a checkpoint write)
@pytest.mark.slow
def test_twenty_steps_equal_ten_then_kill_then_resume(lfw_crops, tmp_path, micro_config):
    config = tmp_path / "micro.yaml"
    config.write_text(yaml.safe_dump(micro_config(lfw_crops, tmp_path / "runs", steps=20)))
    straight = _cli("train", config)
    out, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err
    run_a = tmp_path / "runs" / "00000-micro"

    killed = _cli("train", config)
    run_b = tmp_path / "runs" / "00001-micro"
    deadline = time.monotonic() + 300
    while not (run_b / "metrics.jsonl").is_file() or len(metrics(run_b)) < 3:
        assert killed.poll() is None and time.monotonic() < deadline, killed.communicate()
        time.sleep(0.05)
    killed.send_signal(signal.SIGTERM)
    out, err = killed.communicate(timeout=300)
    assert killed.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM" in out and "--resume" in out
    stopped_at = int(checkpoint.latest(run_b / "checkpoints").name.split("-")[1])
    assert 3 <= stopped_at < 20

    resumed = _cli("train", "--resume", run_b)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    a, b = weights(run_a), weights(run_b)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the straight run"
    # the logged losses of the steps after the resume match the straight run's too
    losses = {m["step"]: m["G/total"] for m in metrics(run_a) if "G/total" in m}
    after = {m["step"]: m["G/total"] for m in metrics(run_b) if "G/total" in m and m["step"] > stopped_at}
    assert after and all(losses[s] == v for s, v in after.items())


def test_ddp_two_cpu_ranks_hold_identical_weights(lfw_crops, tmp_path, micro_config):
    config = tmp_path / "micro.yaml"
    config.write_text(yaml.safe_dump(micro_config(lfw_crops, tmp_path / "runs", steps=3, checkpoint_every=2)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    r = subprocess.run(
        [*cmd, "-m", "facedancer", "train", config], env=_env(), capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "runs" / "00000-micro"
    assert not (tmp_path / "runs" / "00001-micro").exists()  # one run directory, made by rank 0
    done = metrics(run)[-1]
    assert done["event"] == "finished" and len(done["replica_digests"]) == 2
    assert done["replica_digests"][0] == done["replica_digests"][1]
    state = checkpoint.load_state(checkpoint.latest(run / "checkpoints"))
    assert state["world_size"] == 2 and state["step"] == 3 and len(state["rng"]) == 2
    # global batch: 2 ranks x 2 images per step
    assert metrics(run)[0]["samples_per_s"] > 0


class Poisoned(torch.nn.Module):
    """The reconstruction loss turning NaN at one step."""

    def __init__(self, trainer: Trainer, at_step: int) -> None:
        super().__init__()
        self.real, self.trainer, self.at_step = trainer.gan.reconstruction, trainer, at_step

    def forward(self, swap, target, same):
        value = self.real(swap, target, same)
        return value * float("nan") if self.trainer.step == self.at_step else value


def test_nan_guard_stops_before_the_update_and_keeps_the_last_checkpoint(lfw_crops, tmp_path, micro):
    preset = resolve_perceptual(micro(lfw_crops, tmp_path, steps=10, checkpoint_every=1))
    trainer = Trainer(preset, tmp_path)
    trainer.gan.reconstruction = Poisoned(trainer, at_step=3)
    try:
        with pytest.raises(TrainingError, match=r"non-finite loss at step 4 \(G/rec=nan.*last good checkpoint"):
            trainer.fit()
    finally:
        trainer.close()
    last = checkpoint.latest(tmp_path / "checkpoints")
    assert last.name == "step-00000003" and trainer.step == 3
    saved = load_file(str(last / "generator" / "model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in trainer.generator.state_dict().items())  # no update


def test_options_alternating_accumulation_hinge_official_and_lr_schedule(lfw_crops, tmp_path, micro_config):
    config = micro_config(lfw_crops, tmp_path, steps=3, update="alternating", accumulate=2, lr_decay_steps=4)
    config["train"]["loss"] = {
        "adversarial": "hinge",
        "reconstruction": "official",
        "perceptual_mean": "official",
        "r1_gamma": 0.0,
    }
    config["ifsr"]["reduction"] = "sample"
    config["data"]["augment"] = {"per": "sample"}
    preset = resolve_perceptual(from_dict(Preset, config))
    trainer = Trainer(preset, tmp_path)
    try:
        values = [read_values(trainer.train_step()) for _ in range(3)]
    finally:
        trainer.close()
    assert all(np.isfinite(v).all() for row in values for v in row.values())
    assert "D/r1" not in values[0] and {"G/ifsr", "G/p", "G/cyc", "G/rec"} <= set(values[0])
    assert trainer.feed.position == 6  # two micro-batches per step
    assert trainer.gan.sched_g.get_last_lr()[0] == pytest.approx(1e-4 * 0.97 ** (3 / 4))
    assert (
        trainer.gan.opt_g.param_groups[0]["betas"] == (0.0, 0.99) and trainer.gan.opt_g.param_groups[0]["eps"] == 1e-7
    )


def test_run_directory_metrics_tensorboard_and_validation(lfw_crops, lfw, tmp_path, micro):
    preset = micro(lfw_crops, tmp_path, steps=2, tensorboard=True, val_every=2, image_every=2)
    result = train(preset)
    assert result.status == "finished" and result.run_dir.name == "00000-micro"
    assert train(micro(lfw_crops, tmp_path, steps=1)).run_dir.name == "00001-micro"
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["train"]["loss"]["perceptual"] == "identity"  # "auto" resolved and recorded
    assert from_dict(Preset, saved).generator.image_size == 32
    rows = metrics(result.run_dir)
    val = next(r for r in rows if "val/id_similarity" in r)
    assert -1 <= val["val/id_similarity"] <= 1 and val["val/rec_l1"] > 0
    assert {"G/id", "G/rec", "G/ifsr", "D/r1", "lr", "samples_per_s"} <= set(rows[0])
    events = list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 1000  # scalars and an image grid
    model = result.checkpoint / "generator"
    assert Generator.from_pretrained(model).config.image_size == 32
    assert read_meta(model)["identity_encoder"] == "sface"
    held_out = (result.run_dir / HELD_OUT).read_text().split()
    trained = {r["identity"] for r in read_manifest(lfw_crops)} - set(held_out)
    assert len(held_out) == 4 and trained and all((lfw / name).is_dir() for name in held_out)
    # what training writes is what `facedancer swap --model` takes
    out = tmp_path / "swap.png"
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    FaceSwapper.from_pretrained(model).swap_file(next(people[0].glob("*.jpg")), next(people[1].glob("*.jpg")), out)
    assert "micro@step2" in str(read_label(out))


def test_configuration_errors(lfw_crops, tmp_path, micro_config, micro):
    with pytest.raises(ConfigError, match="needs a GPU"):
        Trainer(resolve_perceptual(micro(lfw_crops, tmp_path, precision="bf16")), tmp_path)
    no_margins = micro_config(lfw_crops, tmp_path)
    no_margins["ifsr"]["margins"] = None
    with pytest.raises(ConfigError, match="calibrate-ifsr"):
        Trainer(resolve_perceptual(from_dict(Preset, no_margins)), tmp_path)
    no_data = micro_config(lfw_crops, tmp_path / "runs")
    no_data["data"]["root"] = None
    with pytest.raises(ConfigError, match="data.root"):
        train(from_dict(Preset, no_data))
    assert not (tmp_path / "runs").exists()  # no half-made run directory, nor the runs folder it made


def test_cli_dry_run_and_errors(cli, lfw_crops, tmp_path):
    out = tmp_path / "runs"
    r = cli("train", "tiny-64", "--set", f"data.root={lfw_crops}", "--set", f"train.out_dir={out}", "--dry-run")
    assert r.returncode == 0, r.stderr
    printed = yaml.safe_load(r.stdout)
    assert printed["train"]["out_dir"] == str(out) and printed["generator"]["image_size"] == 64
    assert printed["ifsr"]["margins"] == "ifsr_margins_sface"
    assert not out.exists()  # a dry run creates nothing
    r = cli("train", "tiny-64", "--set", "train.stpes=7", "--dry-run")
    assert r.returncode == 2 and "did you mean 'steps'" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "tiny-64", "--resume", tmp_path)
    assert r.returncode == 2 and "drop CONFIG" in r.stderr
    r = cli("train", "--resume", tmp_path)
    assert r.returncode == 2 and "not a training run" in r.stderr


@pytest.mark.slow
def test_tiny_preset_trains_200_steps_on_lfw_and_its_losses_fall(lfw, tmp_path):
    from dataclasses import replace

    from facedancer.presets import load_preset
    from facedancer.train.prepare import PrepareOptions, prepare

    crops = tmp_path / "lfw"
    prepare(lfw, crops, PrepareOptions(min_face=64, workers=2))
    preset = load_preset("tiny-64")
    preset = replace(
        preset,
        data=replace(preset.data, root=str(crops)),
        train=replace(preset.train, out_dir=str(tmp_path / "runs"), tensorboard=False),
    )
    result = train(preset)
    assert result.status == "finished" and result.step == 200
    rows = metrics(result.run_dir)
    steps = {r["step"]: r for r in rows if "G/id" in r}
    val = [r for r in rows if "val/rec_l1" in r]
    first, last = steps[10], {k: np.mean([steps[s][k] for s in (180, 190, 200)]) for k in ("G/id", "G/rec")}
    print({"first": {k: first[k] for k in ("G/id", "G/rec")}, "last": last, "val": val})
    assert last["G/id"] < first["G/id"] - 0.1
    assert last["G/rec"] < 0.4 * first["G/rec"]
    assert val[-1]["val/rec_l1"] < 0.6 * val[0]["val/rec_l1"]


def init_config(root, out_dir, model: Path, **train) -> dict:
    """A preset with a converted official model's networks, its encoder and the official IFSR margins."""
    from facedancer.config import to_dict
    from facedancer.nn import Discriminator

    return {
        "name": "official-init",
        "generator": to_dict(Generator.read_config(model)[1]),
        "discriminator": to_dict(Discriminator.read_config(model / "discriminator")[1]),
        "identity": {"encoder": "arcface-keras-r50"},
        "ifsr": {"margins": "ifsr_margins_arcface_keras"},
        "data": {"root": str(root), "val_identities": 4, "val_pairs": 0, "workers": 0},
        "train": {
            "out_dir": str(out_dir),
            "batch_size": 2,
            "steps": 2,
            "tensorboard": False,
            "log_every": 1,
            "val_every": 0,
            "image_every": 0,
            "init": str(model),
            **train,
        },
    }


def test_init_starts_a_new_run_from_a_converted_official_model(lfw_crops, official_model_512, tmp_path):
    """--init: weights only (G, D from discriminator/, the model's own encoder), fresh optimiser, a new run."""
    from facedancer.identity import KerasResNet
    from facedancer.nn import Discriminator

    model = official_model_512
    preset = resolve_perceptual(from_dict(Preset, init_config(lfw_crops, tmp_path / "runs", model)))
    trainer = Trainer(preset, tmp_path / "probe")
    try:
        for net, reference in (
            (trainer.generator, Generator.from_pretrained(model)),
            (trainer.discriminator, Discriminator.from_pretrained(model / "discriminator")),
            (trainer.encoder, KerasResNet.from_directory(model / "identity_encoder")),
        ):
            ours, theirs = net.state_dict(), reference.state_dict()
            assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
        assert trainer.step == 0 and not trainer.gan.opt_g.state and trainer.gan.ifsr is not None
    finally:
        trainer.close()

    result = train(preset)
    assert result.status == "finished" and result.step == 2 and result.run_dir.name == "00000-official-init"
    meta = read_meta(result.checkpoint / "generator")
    assert meta["init"] == str(model) and meta["licence"] == "CC BY-NC-SA 4.0"
    trained = Generator.from_pretrained(result.checkpoint / "generator").state_dict()
    start = Generator.from_pretrained(model).state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in start)


def test_init_refuses_a_model_that_is_not_the_presets(cli, lfw_crops, official_model_512, tmp_path):
    wider = init_config(lfw_crops, tmp_path / "runs", official_model_512)
    wider["generator"]["mapping_width"] = 32
    with pytest.raises(ConfigError, match=r"differs from the preset's in mapping_width \(mapping_width=16\)"):
        Trainer(resolve_perceptual(from_dict(Preset, wider)), tmp_path)
    args = ["--set", f"data.root={lfw_crops}", "--set", f"train.out_dir={tmp_path / 'runs'}"]
    r = cli("train", "tiny-64", "--init", official_model_512, *args)
    assert r.returncode == 2 and "was made for arcface-keras-r50, this preset uses sface" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "runs").exists()  # not even the runs folder it made
    r = cli("train", "--resume", tmp_path, "--init", official_model_512)
    assert r.returncode == 2 and "give one" in r.stderr
