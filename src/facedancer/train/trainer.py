"""One training process's state: the networks and their update, the data feed, the step count, and what a
checkpoint holds of them (exact resume).

    Trainer.fit()  =  loop.run(trainer, hooks)       the loop and its hooks (loop.py, hooks.py)
    Trainer.train_step()                             the data feed's micro-batches (feed.py) through the
                                                     paper's step (gan.py), guarded (guard.py)
    Trainer.save() / load() / resume()               checkpoints (checkpoint.py); what may change: resume.py

Building a Trainer sets nothing process-wide and writes no file: the run (``run.py``) creates the run
directory, seeds the process's generators and sets the deterministic switches where a run starts. The
networks are still a function of ``train.seed`` alone: they are initialised under a forked, seeded RNG.
Resume takes the newest readable checkpoint (an unreadable one is named in a warning and the previous
one used), applies the settings ``resume.py`` allows to change, and marks the resumption in the logs.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor

from facedancer.device import rank_device
from facedancer.errors import CheckpointError, ConfigError, TrainingError
from facedancer.identity import IdentityEncoder, load_encoder, load_model_encoder
from facedancer.io.failures import reason
from facedancer.nn import Discriminator, Generator, weights_digest
from facedancer.nn.pretrained import WEIGHTS_NAME, Pretrained, read_meta
from facedancer.presets import Preset
from facedancer.train import checkpoint, distributed, loop
from facedancer.train import resume as resume_rules
from facedancer.train.data import CropIndex
from facedancer.train.feed import Feed
from facedancer.train.gan import GAN, Batch
from facedancer.train.guard import Guard
from facedancer.train.hooks import default_hooks


@dataclass
class Result:
    run_dir: Path
    step: int
    #: "finished", or the name of the signal that stopped the run (after its checkpoint was written)
    status: str
    checkpoint: Path | None
    #: crops that could not be read and were replaced by the next readable one
    unreadable: int = 0


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = fp32). bf16 on CPU is ~290x slower here, so CPU runs must be fp32."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if name != "fp32" and device.type != "cuda":
        raise ConfigError(f"train.precision={name} needs a GPU; on {device.type} use fp32 (or auto)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def initialise(generator: Generator, discriminator: Discriminator, model_dir: Path, preset: Preset) -> dict[str, Any]:
    """Load ``train.init``: G from ``model_dir``, D from its ``discriminator/`` (a converted model) or the
    ``discriminator/`` beside it (a training checkpoint's ``generator/``), else D starts from scratch.

    Weights only: the networks must be the preset's, and the identity encoder the model was made for.
    Returns what the run's checkpoints record of where they started (and the weights' licence, which a
    fine-tuned model inherits).
    """
    meta = read_meta(model_dir)
    encoder = meta.get("identity_encoder")
    if encoder and encoder != preset.identity.encoder:
        raise ConfigError(f"--init {model_dir} was made for {encoder}, this preset uses {preset.identity.encoder}")
    inside, beside = model_dir / "discriminator", model_dir.parent / "discriminator"
    d_dir = inside if inside.is_dir() else beside if model_dir.name == "generator" and beside.is_dir() else None
    pairs = [(generator, model_dir, preset.generator)] + (
        [(discriminator, d_dir, preset.discriminator)] if d_dir else []
    )
    for net, directory, config in pairs:
        cls, found = Pretrained.read_config(directory)
        if cls is not type(net):
            raise ConfigError(f"--init {directory} holds a {cls.__name__}, not a {type(net).__name__}")
        differ = [
            f.name
            for f in fields(config)
            if f.name != "keras_init" and getattr(found, f.name) != getattr(config, f.name)
        ]
        if differ:
            raise ConfigError(
                f"--init {directory}: its {cls.__name__} differs from the preset's in {', '.join(differ)} "
                f"({', '.join(f'{k}={getattr(found, k)!r}' for k in differ)}); use a preset or --set that matches"
            )
        net.load_weights(cls.from_pretrained(directory).state_dict(), source=directory)
    if d_dir is None:
        warnings.warn(f"--init {model_dir} has no discriminator: D starts from random weights", stacklevel=2)
    return {"init": str(model_dir), **({"licence": meta["licence"]} if "licence" in meta else {})}


class Trainer:
    def __init__(
        self,
        preset: Preset,
        run_dir: Path,
        world: distributed.World | None = None,
        encoder: IdentityEncoder | None = None,
        resuming: bool = False,
    ) -> None:
        """``resuming``: a checkpoint will be loaded, so ``train.init``'s weights are not (``load`` restores
        what the checkpoints record of them)."""
        cfg = preset.train
        self.preset, self.cfg, self.run_dir = preset, cfg, run_dir
        self.world = world or distributed.World()
        self.device = rank_device(cfg.device, self.world.local_rank)
        amp_dtype = resolve_precision(cfg.precision, self.device)
        channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and self.device.type == "cuda")
        if preset.data.root is None:
            raise ConfigError("data.root is not set: give a folder made by `facedancer prepare` (--set data.root=DIR)")
        crops = CropIndex.open(preset.data.root, preset.data.source)  # a dataset problem shows before any work

        # the networks are the seed's, and building them (the encoders' layers draw too) leaves the process's RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.generator = Generator(preset.generator)
            self.discriminator = Discriminator(preset.discriminator)
            self.init_meta: dict[str, Any] = {}
            if cfg.init and not resuming:
                self.init_meta = initialise(self.generator, self.discriminator, Path(cfg.init), preset)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            for model in (self.generator, self.discriminator):
                model.to(self.device, memory_format=fmt)
                distributed.broadcast_parameters(model, self.world)
            if encoder is None:
                name = preset.identity.encoder
                encoder = load_model_encoder(cfg.init, name) if cfg.init else load_encoder(name)
            self.encoder = encoder.to(self.device)
            self.gan = GAN(preset, self.generator, self.discriminator, self.encoder, self.device, amp_dtype, self.world)
        self.feed = Feed(preset, crops, self.world, self.device, channels_last)
        self.guard = self._new_guard()
        self.step = 0
        #: what the next fit() marks in the logs first: the checkpoint this run resumed from, what changed
        self.resumed: dict[str, Any] | None = None
        self.last_saved: Path | None = None
        self._hooks: list[loop.Hook] | None = None

    def _new_guard(self) -> Guard:
        return Guard(self.world, self.device, frozenset({"D/r1", "D/total"} if self.gan.scaler.is_enabled() else ()))

    # --- steps ------------------------------------------------------------------------------------
    def next_batch(self) -> Batch:
        """The next micro-batch, augmented (target and source drawn separately) and embedded."""
        return self.gan.batch(*self.feed.next())

    def train_step(self, check: bool = True) -> dict[str, Tensor]:
        """One optimiser step over ``accumulate`` micro-batches; its logged values, on the device.

        ``check``: read the guard on the host before the update (the loop does so on logging and
        checkpoint steps only); a non-finite loss then stops the run with a :class:`TrainingError`.
        """
        batches = [self.next_batch() for _ in range(self.cfg.accumulate)]
        step = self.step + 1

        def guard(logged: dict[str, Tensor]) -> None:
            self.guard.watch(logged, step)
            if check:
                self.guard.check(step, self.run_dir / "checkpoints")

        logged = self.gan.step(batches, guard)
        self.step = step
        return logged

    def hooks(self) -> list[loop.Hook]:
        """The run's hooks (logs, validation, checkpoints), made once: a missing TensorBoard shows here."""
        if self._hooks is None:
            self._hooks = default_hooks(self)
        return self._hooks

    def fit(self, hooks: Sequence[loop.Hook] | None = None) -> Result:
        """Train until ``train.steps``, or until SIGTERM/SIGINT (then checkpoint and return)."""
        self.last_saved = None
        status = loop.run(self, self.hooks() if hooks is None else hooks)
        return Result(self.run_dir, self.step, status, self.last_saved, len(self.feed.unreadable))

    # --- checkpoints ------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save(self) -> Path | None:
        """Write a checkpoint of this step (main process); every rank waits for it.

        The guard is checked first: a checkpoint never holds weights updated after a non-finite loss.
        """
        self.guard.check(self.step, self.run_dir / "checkpoints")
        rngs = distributed.gather(self._rng_state(), self.world)
        path = None
        if self.world.main:
            meta = {"identity_encoder": self.preset.identity.encoder, "preset": self.preset.name, "step": self.step}
            meta |= self.init_meta
            state = {
                "step": self.step,
                "position": self.feed.position,
                "world_size": self.world.size,
                **self.gan.state_dict(),
                "rng": rngs,
                "dataset": self.feed.train_crops.fingerprint,
            }
            models = {"generator": (self.generator, meta), "discriminator": (self.discriminator, meta)}
            path = checkpoint.save(self.run_dir / "checkpoints", self.step, models, state, self.cfg.keep_checkpoints)
        distributed.barrier(self.world)
        self.last_saved = path
        return path

    def load(self, path: Path) -> None:
        """Restore models, optimisers, schedules, scaler, RNG states and the data position.

        A checkpoint that cannot be read is a :class:`CheckpointError` (:meth:`resume` then tries the
        previous one); one that does not fit this run (other processes, another dataset) a ConfigError.
        """
        state = checkpoint.load_state(path)
        if state["world_size"] != self.world.size:
            raise ConfigError(
                f"{path} was written by {state['world_size']} processes; resume with the same number "
                f"(the data position is per process), not {self.world.size}"
            )
        recorded = state.get("dataset")
        if recorded and recorded != self.feed.train_crops.fingerprint:
            raise ConfigError(
                f"{self.preset.data.root} is not the dataset {path} was trained on (its manifest.csv changed): "
                "resume needs the same prepared dataset; start a new run for other data"
            )
        for name, model in (("generator", self.generator), ("discriminator", self.discriminator)):
            weights = path / name / WEIGHTS_NAME
            try:
                tensors = load_file(str(weights), device=str(self.device))
            except Exception as e:  # safetensors reports a truncated file with its own error types
                raise CheckpointError(f"{weights} is truncated or corrupt ({reason(e)})") from None
            model.load_weights(tensors, path / name)
        self.init_meta = {k: v for k, v in read_meta(path / "generator").items() if k in ("init", "licence")}
        self.gan.load_state_dict(state)
        self.step = state["step"]
        self.feed.restart(state["position"])
        self.guard = self._new_guard()
        rng = state["rng"][self.world.rank]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def resume(self, changed: dict[str, list[Any]] | None = None) -> Path:
        """Load the newest readable checkpoint of this run and apply the settings changed since.

        An unreadable checkpoint (truncated by a disk fault, a kill before fsync existed) is named in a
        warning and the previous complete one is used; the run then re-does the steps in between.
        """
        folder = self.run_dir / "checkpoints"
        found = checkpoint.candidates(folder)
        if not found:
            raise CheckpointError(f"no checkpoint in {folder} (nothing to resume)")
        unreadable = []
        for path in found:
            try:
                self.load(path)
                break
            except CheckpointError as e:
                unreadable.append(f"{path.name}: {e}")
        else:
            raise CheckpointError(f"no readable checkpoint in {folder}: " + "; ".join(unreadable))
        if unreadable:
            warnings.warn(
                f"resuming from {path.name}, the newest readable checkpoint ({'; '.join(unreadable)})", stacklevel=2
            )
        changed = changed or {}
        if any(k in changed for k in resume_rules.OPTIMISER):
            self.gan.apply_optimiser_settings(self.step)
        self.resumed = {"from": path.name, "changed": changed, "unreadable_checkpoints": len(unreadable)}
        return path

    def check_replicas(self) -> list[str]:
        """Digest of G and D on every rank; a :class:`TrainingError` if any rank differs."""
        mine = weights_digest(self.generator) + weights_digest(self.discriminator)
        digests = distributed.gather(mine, self.world)
        if len(set(digests)) > 1:
            raise TrainingError(f"data-parallel replicas drifted apart at step {self.step}: {digests}")
        return [str(d) for d in digests]

    def close(self) -> None:
        self.feed.close()
        for hook in self._hooks or ():
            hook.close()
