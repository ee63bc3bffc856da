"""The non-finite guard compares on the device every step and stops the run at the next check."""

from pathlib import Path

import pytest
import torch

from facedancer.errors import TrainingError
from facedancer.train.distributed import World
from facedancer.train.guard import Guard

CHECKPOINTS = Path("runs/00000-x/checkpoints")


def logged(**values: float) -> dict[str, torch.Tensor]:
    return {k.replace("_", "/", 1): torch.tensor(v) for k, v in values.items()}


def test_finite_losses_and_a_missing_cross_pair_value_pass():
    guard = Guard(World(), torch.device("cpu"))
    for step in (1, 2, 3):
        guard.watch(logged(G_rec=0.5, G_total=1.0, G_id_cross=float("nan")), step)
    guard.check(3, CHECKPOINTS)


def test_a_nan_between_checks_is_named_with_its_step_at_the_next_check():
    guard = Guard(World(), torch.device("cpu"))
    guard.watch(logged(G_rec=0.5, G_total=1.0), 1)
    guard.watch(logged(G_rec=float("nan"), G_total=float("nan")), 2)
    guard.watch(logged(G_rec=float("inf"), G_total=1.0), 3)  # later values do not replace the first bad step's
    with pytest.raises(TrainingError) as e:
        guard.check(4, CHECKPOINTS)
    assert str(e.value) == (
        "non-finite loss at step 2 (G/rec=nan, G/total=nan); stopped at step 4 without saving the weights updated "
        f"since. The last good checkpoint is in {CHECKPOINTS}: lower train.lr or check the data"
    )


def test_a_nan_on_a_checked_step_stops_before_its_update():
    guard = Guard(World(), torch.device("cpu"))
    guard.watch(logged(D_adv=0.7, D_total=0.7), 5)  # alternating: D's terms alone, before D's update
    guard.watch(logged(D_adv=0.7, D_total=0.7, G_id_cross=float("inf")), 5)
    with pytest.raises(TrainingError, match=r"at step 5 \(G/id_cross=inf\); stopped without updating the weights"):
        guard.check(5, CHECKPOINTS)


def test_fp16_leaves_r1_overflow_to_the_grad_scaler():
    guard = Guard(World(), torch.device("cpu"), exempt=frozenset({"D/r1", "D/total"}))
    guard.watch(logged(D_r1=float("inf"), D_total=float("inf"), D_adv=0.5), 1)
    guard.check(1, CHECKPOINTS)
    guard.watch(logged(D_r1=float("inf"), D_total=float("inf"), D_adv=float("nan")), 2)
    with pytest.raises(TrainingError, match=r"at step 2 \(D/adv=nan\)"):
        guard.check(2, CHECKPOINTS)
