"""A training run: its numbered directory, its config, what it sets for the whole process, and ``train()``.

    runs/NNNNN-<preset>/config.yaml                 the settings the run uses (rewritten by a resume)
    runs/NNNNN-<preset>/held_out_identities.txt     validation identities, never trained on
    runs/NNNNN-<preset>/metrics.jsonl, tensorboard/ the logs (monitor.py)
    runs/NNNNN-<preset>/checkpoints/step-NNNNNNNN/  checkpoint.py

A run starts by checking every setting (a resume also checks what it changes against ``resume.py``) and
building its trainer and hooks; only then does it write files or set process-wide state: the seeds of
torch's, numpy's and Python's generators (so that anything a library draws is the seed's) and
``train.deterministic``, restored when the run ends. A configuration error leaves no run directory
behind; a write that fails (a full disk) stops the run with one line naming the intact checkpoint.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from facedancer import assets
from facedancer.atomic import atomic_path
from facedancer.config import apply_overrides, from_dict, load_yaml, to_dict
from facedancer.device import rank_device
from facedancer.errors import CheckpointError, ConfigError, OutputError
from facedancer.identity import IdentityEncoder
from facedancer.io.failures import reason
from facedancer.presets import Preset, TrainConfig
from facedancer.train import checkpoint, distributed
from facedancer.train import resume as resume_rules
from facedancer.train.trainer import Result, Trainer

CONFIG_FILE = "config.yaml"
#: the validation identities of a run, one per line: never trained on, so fair to evaluate on
HELD_OUT = "held_out_identities.txt"


def resolve_perceptual(preset: Preset) -> Preset:
    """Fix ``loss.perceptual: auto`` to what this machine has, so the run's config says what ran."""
    loss = preset.train.loss
    if loss.perceptual != "auto":
        return preset
    choice = "vgg16" if assets.status("vgg16").ok else "identity"
    return replace(preset, train=replace(preset.train, loss=replace(loss, perceptual=choice)))


def new_run_dir(out_dir: str | Path, name: str) -> Path:
    """``out_dir/NNNNN-name``, numbered after the highest existing run (stylegan3's convention)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name[:5]) for p in out.iterdir() if p.is_dir() and p.name[:5].isdigit()]
        run = out / f"{max(numbers, default=-1) + 1:05d}-{name or 'run'}"
        run.mkdir()
    except OSError as e:
        raise OutputError(f"cannot create a run directory in {out}: {reason(e)}") from None
    return run


def write_config(preset: Preset, run_dir: Path) -> None:
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(preset), sort_keys=False), encoding="utf-8")


def write_held_out(names: Sequence[str], run_dir: Path) -> None:
    """The identities never trained on, for ``facedancer eval --identities``."""
    with atomic_path(run_dir / HELD_OUT) as tmp:
        tmp.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The raw resolved config of a run (for ``--resume``, before ``--set`` overrides)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a training run: {CONFIG_FILE} is missing")
    data = load_yaml(path)
    loss = data.get("train", {}).get("loss")
    if isinstance(loss, dict) and "perceptual_mean" not in loss:
        # recorded before the perceptual mean had its own setting: reconstruction "official" also set it
        loss["perceptual_mean"] = "official" if loss.get("reconstruction") == "official" else "plain"
    return data


def load_run_preset(run_dir: str | Path, overrides: Sequence[str] = ()) -> Preset:
    """The preset a resumed run continues with: its recorded config, with ``--set`` overrides."""
    return from_dict(Preset, apply_overrides(load_run_config(run_dir), list(overrides)))


@contextlib.contextmanager
def process_settings(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """What a run sets for its whole process, from its start to its end: the seeds of every generator a
    library might draw from, ``torch.use_deterministic_algorithms`` and cuDNN autotuning (both restored after)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    benchmark_before = torch.backends.cudnn.benchmark
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        torch.backends.cudnn.benchmark = benchmark_before


def train(preset: Preset, resume: str | Path | None = None, encoder: IdentityEncoder | None = None) -> Result:
    """Run (or resume) a training run; the process group comes from torchrun's environment."""
    world = distributed.init(rank_device(preset.train.device).type)
    try:
        preset = resolve_perceptual(preset)
        changed = None
        if resume is not None:
            run_dir = Path(resume)
            recorded = resolve_perceptual(load_run_preset(run_dir))
            changed = resume_rules.changes(to_dict(recorded), to_dict(preset))
            resume_rules.check(changed, run_dir)
            if not checkpoint.candidates(run_dir / "checkpoints"):
                raise CheckpointError(f"no checkpoint in {run_dir / 'checkpoints'} (nothing to resume)")
        else:
            out_dir = Path(preset.train.out_dir)
            made_out_dir = not out_dir.exists()
            made = new_run_dir(out_dir, preset.name) if world.main else None
            run_dir = Path(str(distributed.broadcast_object(str(made) if made else None, world)))
        try:
            trainer = Trainer(preset, run_dir, world, encoder, resuming=resume is not None)
            trainer.hooks()
        except Exception as e:
            if resume is None and world.main:  # a config error leaves no empty run directory behind
                shutil.rmtree(run_dir, ignore_errors=True)
                if made_out_dir:
                    shutil.rmtree(out_dir, ignore_errors=True)
            if isinstance(e, OSError):
                raise OutputError(f"cannot start the run in {run_dir}: {reason(e)}") from None
            raise
        try:
            with process_settings(preset.train, trainer.device):
                if resume is not None:
                    trainer.resume(changed)
                    if changed and world.main:
                        warnings.warn(f"resuming with changed settings: {resume_rules.describe(changed)}", stacklevel=2)
                if world.main:  # what this run now uses, including the changes a resume made
                    write_held_out(trainer.feed.held_out, run_dir)
                    write_config(preset, run_dir)
                return trainer.fit()
        except OSError as e:  # a full disk while logging
            where = f" ({e.filename})" if e.filename else ""
            raise OutputError(f"training stopped: {reason(e)}{where}; {_resume_hint(run_dir)}") from None
        except OutputError as e:  # a full disk while checkpointing
            raise OutputError(f"{e}; {_resume_hint(run_dir)}") from None
        finally:
            trainer.close()
    finally:
        distributed.shutdown(world)


def _resume_hint(run_dir: Path) -> str:
    """Where a run that stopped on a failed write can go on from (its partial files are already gone)."""
    found = checkpoint.candidates(run_dir / "checkpoints")
    if not found:
        return "no checkpoint was written"
    return f"{found[0].name} is intact: free some space and continue with `facedancer train --resume {run_dir}`"
