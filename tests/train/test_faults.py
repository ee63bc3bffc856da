"""Training under faults (issue 15): kills inside checkpoint writes, signals, a full disk, unreadable
checkpoints and crops, and resumes that change settings.

Faults are injected in-process where that can be done exactly (cheap and reproducible): a copy of the run
directory taken at a moment inside a checkpoint write is what a SIGKILL at that moment leaves on disk.
The slow test kills a real process at random moments inside its checkpoint writes, ten times.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
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

from facedancer.config import apply_overrides, from_dict, to_dict
from facedancer.errors import CheckpointError, ConfigError, InputError
from facedancer.presets import Preset
from facedancer.train import checkpoint
from facedancer.train.data import to_tensor
from facedancer.train.dataset_format import write_record
from facedancer.train.loop import Hook
from facedancer.train.monitor import read_metrics
from facedancer.train.run import load_run_config, process_settings, resolve_perceptual, train, write_config
from facedancer.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
MODELS = ("generator", "discriminator")


def saved_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": v for m in MODELS for k, v in load_file(str(ckpt / m / "model.safetensors")).items()}


def live_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": v.detach() for m in MODELS for k, v in getattr(trainer, m).state_dict().items()}


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"


def visible_state(run: Path) -> tuple:
    """What resuming can see of a run directory: names (hidden staging included) and the pointer's text."""
    names = tuple(sorted(str(p.relative_to(run)) for p in (run / "checkpoints").rglob("*") if p.is_dir()))
    pointer = run / "checkpoints" / "latest"
    return names, pointer.read_text() if pointer.is_file() else None


@pytest.fixture(scope="module")
def micro_preset(lfw_crops, micro_config):
    def make(out_dir, **train_options) -> Preset:
        options = {"steps": 4, "checkpoint_every": 1, "keep_checkpoints": 2, **train_options}
        return resolve_perceptual(from_dict(Preset, micro_config(lfw_crops, out_dir, **options)))

    return make


def resumed(run: Path, *overrides: str) -> Preset:
    """The preset ``facedancer train --resume RUN --set ...`` builds: the recorded config plus overrides."""
    return resolve_perceptual(from_dict(Preset, apply_overrides(load_run_config(run), list(overrides))))


@pytest.fixture(scope="module")
def straight(micro_preset, tmp_path_factory):
    """A 4-step run that checkpoints every step, and copies of its directory taken before and after every
    rename and deletion while it wrote its step-3 checkpoint: every state a SIGKILL then can leave."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("straight")
    run = root / "run"
    run.mkdir()
    snapshots: dict[tuple, Path] = {}
    writing = False
    real_replace, real_rmtree, real_save = os.replace, shutil.rmtree, checkpoint.save

    def snap() -> None:
        state = visible_state(run)
        if writing and state not in snapshots:
            snapshots[state] = root / f"killed-{len(snapshots):02d}"
            shutil.copytree(run, snapshots[state], symlinks=True)

    def replace(src, dst, *args, **kwargs):
        snap()
        real_replace(src, dst, *args, **kwargs)
        snap()

    def rmtree(path, *args, **kwargs):
        snap()
        real_rmtree(path, *args, **kwargs)
        snap()

    def save(folder, step, *args, **kwargs):
        nonlocal writing
        writing = step == 3
        try:
            return real_save(folder, step, *args, **kwargs)
        finally:
            writing = False

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "replace", replace)
            mp.setattr(shutil, "rmtree", rmtree)
            mp.setattr(checkpoint, "save", save)
            trainer = Trainer(micro_preset(root), run)
            write_config(trainer.preset, run)
            try:
                trainer.fit()
            finally:
                trainer.close()
    finally:
        torch.set_num_threads(threads)
    # keep_checkpoints 2: steps 3 and 4 remain; a resume from step k must equal step k + 1 after one step
    return {
        "run": run,
        "snapshots": list(snapshots.values()),
        "weights": {s: saved_weights(run / f"checkpoints/step-{s:08d}") for s in (3, 4)},
    }


@pytest.fixture(scope="module")
def resumer(micro_preset, tmp_path_factory):
    """One trainer that resumes copies of the straight run (load() restores everything a fresh process has)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("resumer")
    trainer = Trainer(micro_preset(home), home)
    yield trainer
    trainer.close()
    torch.set_num_threads(threads)


def resume_one_step(trainer: Trainer, run: Path) -> int:
    """Resume ``run`` and take one step; the step it resumed from."""
    trainer.run_dir = run
    trainer.resume()
    resumed_at = trainer.step
    trainer.train_step()
    return resumed_at


def test_a_kill_at_any_moment_of_a_checkpoint_write_resumes_bit_identically(straight, resumer):
    snapshots = straight["snapshots"]
    # the write goes through distinct on-disk states: staging only, the new folder renamed in, the pointer
    # moved, the oldest checkpoint pruned
    assert len(snapshots) >= 4
    froms = []
    for run in snapshots:
        froms.append(resume_one_step(resumer, run))
        assert_identical(live_weights(resumer), straight["weights"][resumer.step])
        # the next checkpoint write also works over what the kill left (a stale staging folder)
        assert resumer.save() == checkpoint.candidates(run / "checkpoints")[0]
        assert not list((run / "checkpoints").glob(".*"))
    assert set(froms) == {2, 3}  # killed before and after the pointer moved


def test_an_unreadable_latest_checkpoint_falls_back_to_the_previous_one(straight, resumer, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight["run"], run)
    weights = run / "checkpoints/step-00000004/generator/model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a disk fault mid-file
    with pytest.warns(UserWarning, match=r"resuming from step-00000003.*step-00000004.*truncated or corrupt"):
        assert resume_one_step(resumer, run) == 3
    assert_identical(live_weights(resumer), straight["weights"][4])

    (run / "checkpoints/step-00000003/training.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no readable checkpoint.*step-00000004.*step-00000003") as e:
        resumer.resume()
    assert "\n" not in str(e.value)

    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    (run / "checkpoints/latest").write_text("")  # a pointer emptied by a power loss, and nothing else
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        resumer.resume()


def test_an_empty_pointer_resumes_from_the_newest_checkpoint_folder(straight, resumer, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight["run"], run)
    (run / "checkpoints/latest").write_bytes(b"")
    assert resume_one_step(resumer, run) == 4


def test_ctrl_c_and_sigterm_checkpoint_and_resume_bit_identically(straight, micro_preset, tmp_path, one_thread):
    """Signals at steps 2 and 3 of the same run; the metrics show each resumption and no step twice."""
    trainer = Trainer(micro_preset(tmp_path), tmp_path)
    stops = {2: signal.SIGINT, 3: signal.SIGTERM}

    class SignalAfterStep(Hook):
        def after_step(self, trainer, logged):
            if trainer.step in stops:
                os.kill(os.getpid(), stops.pop(trainer.step))

    hooks = [*trainer.hooks(), SignalAfterStep()]
    try:
        first = trainer.fit(hooks)
        assert (first.status, first.step, first.checkpoint.name) == ("SIGINT", 2, "step-00000002")
        trainer.resume()
        second = trainer.fit(hooks)
        assert (second.status, second.step) == ("SIGTERM", 3)
        trainer.resume()
        assert trainer.fit(hooks).status == "finished"
    finally:
        trainer.close()
    assert_identical(live_weights(trainer), straight["weights"][4])
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows if "G/total" in r] == [1, 2, 3, 4]
    straight_losses = {r["step"]: r["G/total"] for r in read_metrics(straight["run"]) if "G/total" in r}
    assert all(r["G/total"] == straight_losses[r["step"]] for r in rows if "G/total" in r)
    markers = [r for r in rows if r.get("event") == "resumed"]
    assert [(m["step"], m["from"]) for m in markers] == [(2, "step-00000002"), (3, "step-00000003")]


def test_a_full_disk_during_a_checkpoint_write_is_one_line_and_keeps_the_last_checkpoint(
    micro_config, lfw_crops, tmp_path, monkeypatch, run, one_thread
):
    config = tmp_path / "micro.yaml"
    config.write_text(yaml.safe_dump(micro_config(lfw_crops, tmp_path / "runs", steps=3, checkpoint_every=1)))
    real = checkpoint.save_file

    def save_file(tensors, path, *args, **kwargs):
        if "step-00000002" in path:
            with open(path, "wb") as f:  # the disk fills up halfway through the training state
                f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    code, _, err = run("train", config)
    assert code == 2 and "Traceback" not in err
    assert err.count("\n") == 1, err
    assert "cannot write checkpoint" in err and "No space left on device" in err
    assert "step-00000001 is intact" in err and "--resume" in err
    folder = tmp_path / "runs/00000-micro/checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step-00000001"]  # no partial files
    assert checkpoint.load_state(folder / "step-00000001")["step"] == 1


def test_a_resume_applies_or_refuses_changed_settings_and_records_what_ran(
    straight, micro_preset, tmp_path, one_thread
):
    """Defect 8: the restored Adam state and schedule kept the old lr, betas and eps while config.yaml
    recorded the new ones, and a new batch size silently remapped the data position."""
    run = tmp_path / "run"
    shutil.copytree(straight["run"], run)
    before = (run / "config.yaml").read_bytes()
    for key, value in (("batch_size", 4), ("seed", 7), ("out_dir", tmp_path)):
        with pytest.raises(ConfigError, match=rf"train.{key} cannot change .* drop that --set"):
            train(resumed(run, f"train.{key}={value}"), resume=run)
    with pytest.raises(ConfigError, match=r"generator.base_channels cannot change \(8 -> 4\)"):
        train(resumed(run, "generator.base_channels=4"), resume=run)
    assert (run / "config.yaml").read_bytes() == before and not (run / "checkpoints/step-00000005").exists()

    sets = ["train.steps=5", "train.lr=1e-3", "train.betas=[0.5, 0.9]", "train.eps=1e-6", "train.lr_decay=0.5"]
    with pytest.warns(UserWarning, match=r"changed settings: .*train.lr 0.0001 -> 0.001"):
        assert train(resumed(run, *sets, "train.lr_decay_steps=8"), resume=run).step == 5
    group = checkpoint.load_state(run / "checkpoints/step-00000005")["optim_g"]["param_groups"][0]
    assert group["betas"] == (0.5, 0.9) and group["eps"] == 1e-6
    assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (5 / 8))
    rows = read_metrics(run)
    assert next(r for r in rows if r["step"] == 5 and "lr" in r)["lr"] == pytest.approx(1e-3 * 0.5 ** (5 / 8))
    assert next(r for r in rows if r.get("event") == "resumed")["changed"]["train.lr"] == [1e-4, 1e-3]
    recorded = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert (recorded["lr"], recorded["betas"], recorded["eps"]) == (1e-3, [0.5, 0.9], 1e-6)


def test_a_resume_on_another_dataset_is_refused(straight, micro_preset, lfw_crops, tmp_path, one_thread):
    data = tmp_path / "data"
    shutil.copytree(lfw_crops, data, symlinks=True)
    manifest = data / "manifest.csv"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-1]))  # one crop fewer
    write_record(data, len(manifest.read_text().splitlines()) - 1)
    run = tmp_path / "run"
    shutil.copytree(straight["run"], run)
    preset = micro_preset(tmp_path)
    moved = from_dict(Preset, {**to_dict(preset), "data": {**to_dict(preset.data), "root": str(data)}})
    trainer = Trainer(moved, run)
    try:
        with pytest.raises(ConfigError, match="is not the dataset .* was trained on"):
            trainer.resume()
    finally:
        trainer.close()


def test_unreadable_crops_are_replaced_counted_and_never_stop_the_run(
    micro_preset, lfw_crops, tmp_path, capfd, one_thread
):
    data = tmp_path / "data"
    shutil.copytree(lfw_crops, data, symlinks=True)
    np.random.seed(123)
    random.seed(123)
    preset = micro_preset(tmp_path, seed=0)
    preset = from_dict(Preset, {**to_dict(preset), "data": {**to_dict(preset.data), "root": str(data), "workers": 1}})
    trainer = Trainer(preset, tmp_path)
    try:
        with process_settings(preset.train, trainer.device):  # where a run starts
            # the run seeds numpy's and Python's generators too
            assert np.random.random() == np.random.RandomState(0).random_sample()
            assert random.random() == random.Random(0).random()
        feed = trainer.feed
        first = feed.sampler(0).batch(0)[0][0]
        broken = feed.train_crops.files[first]
        (data / broken).write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
        with pytest.warns(UserWarning, match=f"skipping unreadable crop .*{broken}"):
            batch = trainer.next_batch()
        assert feed.unreadable == {broken}
        replacement = to_tensor(feed.train_crops.load((first + 1) % len(feed.train_crops), 32))
        assert torch.equal(feed.dataset[(first, first, True)]["target"], replacement)
        assert batch.target.shape[0] == 2
        trainer.close()
        for crop in (data / "crops").rglob("*.png"):  # the dataset is gone (unmounted, deleted)
            crop.unlink()
        feed.position = 5
        with pytest.raises(InputError, match=r"crops in a row could not be read .* is .* still there") as e:
            trainer.next_batch()
        assert "\n" not in str(e.value)
    finally:
        trainer.close()
    assert "Traceback" not in capfd.readouterr().err  # nor did the worker process print one


# --- a real process, killed at random moments inside its checkpoint writes --------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _train(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "facedancer", "train", *map(str, args)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _markers(run: Path) -> int:
    metrics = run / "metrics.jsonl"
    return metrics.read_text().count('"event": "resumed"') if metrics.is_file() else 0


def _staging(checkpoints: Path) -> set[tuple]:
    """The staging folders of checkpoint writes, each told apart from an earlier one of the same name."""
    found = set()
    for path in checkpoints.glob(".step-*.tmp"):
        with contextlib.suppress(FileNotFoundError):  # renamed into place meanwhile
            info = path.stat()
            found.add((path.name, info.st_ino, info.st_ctime_ns))
    return found


@pytest.mark.slow
def test_sigkill_inside_checkpoint_writes_and_signals_to_the_process_group(micro_config, lfw_crops, tmp_path):
    """Ten SIGKILLs, each as a checkpoint is being written, then Ctrl-C and SIGTERM sent to the whole process
    group (a terminal, a cluster scheduler) with a DataLoader worker running: resumed, the run ends with
    the straight run's weights."""
    steps = 14
    config = tmp_path / "micro.yaml"
    options = {"steps": steps, "checkpoint_every": 1, "keep_checkpoints": 2}
    cfg = micro_config(lfw_crops, tmp_path / "runs", **options)
    cfg["data"]["workers"] = 1
    config.write_text(yaml.safe_dump(cfg))
    straight = _train(config)
    assert straight.wait(timeout=900) == 0, straight.communicate()
    run = tmp_path / "runs" / "00001-micro"
    kills, rng = 0, np.random.default_rng(0)
    proc = _train(config, start_new_session=True)
    checkpoints = run / "checkpoints"
    while not (checkpoints / "latest").is_file():  # (a run killed before its first checkpoint starts again)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    while kills < 10:
        stale = _staging(checkpoints)  # left by the previous kill
        while not _staging(checkpoints) - stale:  # a checkpoint write has begun
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.02))
        proc.kill()
        proc.wait()
        kills += 1
        proc = _train("--resume", run, start_new_session=True)
    for resumes, sig in ((kills, signal.SIGINT), (kills + 1, signal.SIGTERM)):
        while _markers(run) < resumes:  # the latest resume is training (its DataLoader worker running)
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.3)
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 128 + sig, (out, err)
        assert "Traceback" not in err and "--resume" in out, (out, err)
        proc = _train("--resume", run, start_new_session=True)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    a = saved_weights(checkpoint.latest(tmp_path / "runs/00000-micro/checkpoints"))
    assert_identical(saved_weights(checkpoint.latest(run / "checkpoints")), a)
    rows = read_metrics(run)
    assert [r["step"] for r in rows if "G/total" in r] == list(range(1, steps + 1))
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["event"] == "finished"
