"""The loop: hooks in order around each step, host checks only where a hook needs one, clean stops."""

import os
import signal
from types import SimpleNamespace

import torch

from facedancer.train import loop
from facedancer.train.distributed import World
from facedancer.train.loop import FINISHED, Hook


class FakeTrainer:
    def __init__(self, steps: int, world: World | None = None) -> None:
        self.cfg, self.world, self.device = SimpleNamespace(steps=steps), world or World(), torch.device("cpu")
        self.step, self.checked = 0, []

    def train_step(self, check: bool) -> dict:
        self.step += 1
        self.checked.append(check)
        return {"G/total": torch.tensor(float(self.step))}


class Recorder(Hook):
    def __init__(self, every: int = 0, signal_at: dict | None = None) -> None:
        self.every, self.signal_at, self.calls = every, signal_at or {}, []

    def before_train(self, trainer):
        self.calls.append(("before", trainer.step))

    def needs_check(self, step):
        return bool(self.every) and step % self.every == 0

    def after_step(self, trainer, logged):
        self.calls.append(("after", trainer.step, logged["G/total"].item()))
        if trainer.step in self.signal_at:
            os.kill(os.getpid(), self.signal_at.pop(trainer.step))

    def after_train(self, trainer, status):
        self.calls.append(("end", trainer.step, status))


def test_hooks_run_around_every_step_and_only_their_steps_are_checked():
    trainer, first, second = FakeTrainer(7), Recorder(every=3), Recorder(every=5)
    assert loop.run(trainer, [first, second]) == FINISHED
    # steps 3 and 6 (logs), 5 (a checkpoint, say) and 7 (the last) are read on the host; the others are not
    assert trainer.checked == [False, False, True, False, True, True, True]
    assert (
        first.calls
        == second.calls
        == [("before", 0), *(("after", s, float(s)) for s in range(1, 8)), ("end", 7, FINISHED)]
    )


def test_a_signal_stops_a_single_process_after_its_step_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    trainer, hook = FakeTrainer(10), Recorder(signal_at={2: signal.SIGTERM})
    assert loop.run(trainer, [hook]) == "SIGTERM"
    assert trainer.step == 2 and hook.calls[-1] == ("end", 2, "SIGTERM")
    assert signal.getsignal(signal.SIGTERM) is before


def test_several_processes_agree_on_a_stop_only_at_checked_steps(monkeypatch):
    asked = []

    def any_rank(flag, world, device):
        asked.append(flag)
        return flag

    monkeypatch.setattr(loop.distributed, "any_rank", any_rank)
    trainer, hook = FakeTrainer(10, World(rank=0, size=2)), Recorder(every=4, signal_at={2: signal.SIGINT})
    assert loop.run(trainer, [hook]) == "SIGINT"
    assert trainer.step == 4 and asked == [True]  # one agreement, at the first checked step after the signal
