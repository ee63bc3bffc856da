"""The non-finite guard: a NaN or inf loss stops the run before the weights it would spoil are saved.

Reading every loss on the host each step would make the CPU wait for the GPU once per step. So each step
only compares on the device (:meth:`Guard.watch`: the first non-finite step and its values stay there),
and the host looks at a *check*: on every step the logs are written and before every checkpoint, so a
checkpoint never holds weights from a step after a non-finite loss. A check runs before that step's
optimiser update: with ``train.log_every: 1`` (or when the first bad step is a check) the run stops
without updating the weights at all, as before; otherwise the in-memory weights of the few steps since
are dropped with the run, and the message names the first bad step.

With fp16 the R1 penalty comes from gradients of *scaled* logits, which overflow while the GradScaler's
scale is still too high: that is not divergence. Its gradients are then non-finite too, so the scaler
skips the step and lowers the scale; the guard leaves R1 (and D's total) to it. The cross-pair identity
diagnostic is NaN when a micro-batch had no cross pair: nothing to log, not divergence.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from facedancer.errors import TrainingError
from facedancer.train import distributed

#: the diagnostic that is NaN (not divergence) when a micro-batch has no cross pair
CROSS_SUFFIX = "/id_cross"


class Guard:
    def __init__(self, world: distributed.World, device: torch.device, exempt: frozenset[str] = frozenset()) -> None:
        """``exempt``: logged values left to the GradScaler (``D/r1``, ``D/total`` with fp16)."""
        self.world, self.device, self.exempt = world, device, exempt
        #: per set of logged keys: (first step with a non-finite value or -1, the values at that step)
        self._first: dict[tuple[str, ...], tuple[Tensor, Tensor]] = {}
        self._masks: dict[tuple[str, ...], tuple[Tensor, Tensor]] = {}

    def watch(self, logged: dict[str, Tensor], step: int) -> None:
        """Remember, on the device, whether and where a logged value first went NaN or inf."""
        keys = tuple(logged)
        if keys not in self._masks:
            cross = torch.tensor([k.endswith(CROSS_SUFFIX) for k in keys], device=self.device)
            counted = torch.tensor([k not in self.exempt for k in keys], device=self.device)
            self._masks[keys] = (cross, counted)
            never = torch.full((), -1, dtype=torch.int64, device=self.device)
            self._first[keys] = (never, torch.zeros(len(keys), device=self.device))
        cross, counted = self._masks[keys]
        values = torch.stack([v.float() for v in logged.values()])
        bad = torch.where(cross, values.isinf(), ~values.isfinite()) & counted
        first, at_first = self._first[keys]
        new = bad.any() & (first < 0)
        self._first[keys] = (torch.where(new, step, first), torch.where(new, values, at_first))

    def check(self, step: int, checkpoints: Path) -> None:
        """Stop every rank with a :class:`TrainingError` if any rank saw a non-finite value (a host sync)."""
        found: list[tuple[int, str]] = []
        for keys, (first, values) in self._first.items():
            numbers = torch.cat([first.double().view(1), values.double()]).tolist()
            if numbers[0] >= 0:
                cross, counted = (m.tolist() for m in self._masks[keys])
                bad = [
                    f"{k}={v}"
                    for k, v, c, n in zip(keys, numbers[1:], cross, counted, strict=True)
                    if n and (v in (float("inf"), float("-inf")) or (v != v and not c))
                ]
                found.append((int(numbers[0]), ", ".join(bad)))
        if not distributed.any_rank(bool(found), self.world, self.device):
            return
        first, where = min(found) if found else (step, "on another rank")
        if first == step:
            stopped = "stopped without updating the weights"
        else:
            stopped = f"stopped at step {step} without saving the weights updated since"
        raise TrainingError(
            f"non-finite loss at step {first} ({where}); {stopped}. "
            f"The last good checkpoint is in {checkpoints}: lower train.lr or check the data"
        )
