"""What a run does around the paper's step: logs, validation and checkpoints, one :class:`~loop.Hook` each.

A run's hooks are :func:`default_hooks`, in this order every step: the logs (the interval's mean losses,
on the steps ``train.log_every`` names), validation and image grids (``val_every``, ``image_every``), then
the checkpoint (``checkpoint_every``, the last step, and after a stop signal). A different run (say, an
EMA of G, or a metric on a fixed set) is another hook passed to ``Trainer.fit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from facedancer.train.loop import FINISHED, Hook
from facedancer.train.monitor import Meter, Monitor

if TYPE_CHECKING:
    from facedancer.train.trainer import Trainer


class LogHook(Hook):
    """``metrics.jsonl`` and TensorBoard (the main process writes): interval means of the logged values, the
    lr, unreadable crops and samples/s; a marker where a run resumed; at the end the replicas' digests
    (every process takes part in that check)."""

    def __init__(self, trainer: Trainer) -> None:
        cfg = trainer.cfg
        self.every = cfg.log_every
        self.samples_per_step = cfg.batch_size * cfg.accumulate * trainer.world.size
        self.monitor = Monitor(trainer.run_dir, cfg.tensorboard) if trainer.world.main else None
        self.meter = Meter()

    def needs_check(self, step: int) -> bool:
        return bool(self.every) and (step % self.every == 0 or step == 1)

    def before_train(self, trainer: Trainer) -> None:
        if trainer.resumed is not None:
            self.meter = Meter()  # the steps since the last log were undone by the resume
            if self.monitor is not None:
                self.monitor.resumed(trainer.step, trainer.resumed)
            trainer.resumed = None

    def after_step(self, trainer: Trainer, logged: dict[str, Tensor]) -> None:
        if self.monitor is None:
            return
        self.meter.add(logged)
        if self.needs_check(trainer.step):
            extra = {"lr": trainer.gan.sched_g.get_last_lr()[0]}
            if trainer.feed.unreadable:
                extra["data/unreadable"] = len(trainer.feed.unreadable)
            steps = self.meter.steps
            self.monitor.interval(trainer.step, self.meter.read(), steps, self.samples_per_step, extra)

    def after_train(self, trainer: Trainer, status: str) -> None:
        if status == FINISHED:
            digests = trainer.check_replicas()
            if self.monitor is not None:
                self.monitor.write(trainer.step, {"event": "finished", "replica_digests": digests})

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()


class ValidationHook(Hook):
    """On the held-out identities' fixed pairs: identity similarity and reconstruction L1 every
    ``train.val_every`` steps, an image grid every ``train.image_every`` (main process)."""

    def __init__(self, trainer: Trainer, monitor: Monitor) -> None:
        self.val_every, self.image_every, self.monitor = trainer.cfg.val_every, trainer.cfg.image_every, monitor

    def after_step(self, trainer: Trainer, logged: dict[str, Tensor]) -> None:
        if not trainer.feed.val_pairs:
            return
        if self.val_every and trainer.step % self.val_every == 0:
            self.monitor.write(trainer.step, validate(trainer))
        if self.image_every and trainer.step % self.image_every == 0:
            self.monitor.images(trainer.step, sample_images(trainer))


class CheckpointHook(Hook):
    """A checkpoint every ``train.checkpoint_every`` steps and at the last, after checking that the
    replicas agree; and one when a signal stopped the run (unless that step was just saved)."""

    def __init__(self, trainer: Trainer) -> None:
        self.every, self.steps = trainer.cfg.checkpoint_every, trainer.cfg.steps
        self.saved_at: int | None = None

    def needs_check(self, step: int) -> bool:
        return step % self.every == 0 or step == self.steps

    def before_train(self, trainer: Trainer) -> None:
        self.saved_at = None

    def after_step(self, trainer: Trainer, logged: dict[str, Tensor]) -> None:
        if self.needs_check(trainer.step):
            trainer.check_replicas()
            trainer.save()
            self.saved_at = trainer.step

    def after_train(self, trainer: Trainer, status: str) -> None:
        if status != FINISHED and self.saved_at != trainer.step:
            trainer.save()
            self.saved_at = trainer.step


def default_hooks(trainer: Trainer) -> list[Hook]:
    log = LogHook(trainer)
    validation = [ValidationHook(trainer, log.monitor)] if log.monitor is not None else []
    return [log, *validation, CheckpointHook(trainer)]


@torch.no_grad()
def validate(trainer: Trainer) -> dict[str, float]:
    """Identity similarity of swaps to their sources (and of unswapped targets, for reference), and
    reconstruction L1 of each target swapped with its own identity."""
    gan, generator = trainer.gan, trainer.generator
    sims, base, l1 = [], [], []
    for target, source in trainer.feed.validation():
        z_s, z_t = gan.embed(source), gan.embed(target)
        with gan.autocast():
            swap, recon = generator(target, z_s).float(), generator(target, z_t).float()
        sims.append(F.cosine_similarity(gan.embed(swap), z_s))
        base.append(F.cosine_similarity(z_t, z_s))
        l1.append((recon - target).abs().flatten(1).mean(1))
    if not sims:
        return {}
    return {
        "val/id_similarity": torch.cat(sims).mean().item(),
        "val/id_similarity_unswapped": torch.cat(base).mean().item(),
        "val/rec_l1": torch.cat(l1).mean().item(),
    }


@torch.no_grad()
def sample_images(trainer: Trainer, count: int = 4) -> list[Tensor]:
    """Rows for the image grid: target, source, swap, reconstruction (fixed validation pairs)."""
    gan = trainer.gan
    target, source = next(trainer.feed.validation())
    target, source = target[:count], source[:count]
    with gan.autocast():
        swap = trainer.generator(target, gan.embed(source))
        recon = trainer.generator(target, gan.embed(target))
    return [target, source, swap.float(), recon.float()]
