"""The training loop: the paper's step until ``train.steps``, and hooks around it (detectron2's ``HookBase``).

Everything that is not the paper (logs, validation, checkpoints) is a :class:`Hook`; the loop itself only
runs steps, asks the hooks which steps need the losses on the host, and stops cleanly on SIGTERM/SIGINT
(a terminal's Ctrl-C, a cluster scheduler): the hooks then write the last checkpoint. Several processes
agree on a stop where they already exchange values (a checked step: every ``train.log_every`` steps and
at each checkpoint), so a stop there costs no extra all-reduce per step; a single process stops after the
step in which the signal came.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

from facedancer.train import distributed

if TYPE_CHECKING:
    from facedancer.train.trainer import Trainer

FINISHED = "finished"


class Hook:
    """A part of a run around the paper's step; every method does nothing unless a hook overrides it."""

    def before_train(self, trainer: Trainer) -> None:
        """Before the first step of a :meth:`Trainer.fit` (also of one that resumes)."""

    def needs_check(self, step: int) -> bool:
        """Whether step ``step`` (1-based) must be checked: its losses read on the host and guarded."""
        return False

    def after_step(self, trainer: Trainer, logged: dict[str, Tensor]) -> None:
        """After each step; ``logged``: its values, on the device (reading them waits for the GPU)."""

    def after_train(self, trainer: Trainer, status: str) -> None:
        """After the last step, or after a stop: ``status`` is "finished" or what stopped the run."""

    def close(self) -> None:
        """Release files and writers (when the trainer closes)."""


def run(trainer: Trainer, hooks: Sequence[Hook]) -> str:
    """Train until ``train.steps`` or a stop signal; the run's status ("finished" or the signal's name)."""
    requests: list[str] = []

    def on_signal(signum: int, frame: object) -> None:
        requests.append(signal.Signals(signum).name)

    in_main_thread = threading.current_thread() is threading.main_thread()  # signals only reach it
    previous = {s: signal.signal(s, on_signal) for s in ((signal.SIGTERM, signal.SIGINT) if in_main_thread else ())}
    world, steps = trainer.world, trainer.cfg.steps
    status = FINISHED
    try:
        for hook in hooks:
            hook.before_train(trainer)
        while trainer.step < steps:
            checked = trainer.step + 1 == steps or any(h.needs_check(trainer.step + 1) for h in hooks)
            logged = trainer.train_step(check=checked)
            for hook in hooks:
                hook.after_step(trainer, logged)
            if (checked or not world.active) and distributed.any_rank(bool(requests), world, trainer.device):
                status = requests[-1] if requests else "stopped by another rank"
                break
        for hook in hooks:
            hook.after_train(trainer, status)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return status
