"""The training step's economies keep its maths: one D pass over the swap serves both players, and the
cross-pair diagnostic needs no boolean indexing."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from facedancer.config import from_dict
from facedancer.presets import Preset
from facedancer.train.monitor import read_values
from facedancer.train.run import resolve_perceptual
from facedancer.train.trainer import Trainer


@pytest.fixture
def step_preset(micro_config):
    """conftest's 32 px FaceDancer with batch 4 (same and cross pairs), no validation pairs."""

    def make(root, out_dir) -> Preset:
        config = micro_config(root, out_dir, batch_size=4)
        config["name"] = "step"
        config["data"].update(val_pairs=0, same_ratio=0.5)
        config["train"] = {k: config["train"][k] for k in ("out_dir", "batch_size", "tensorboard", "deterministic")}
        return resolve_perceptual(from_dict(Preset, config))

    return make


def _gradients(*models) -> dict[str, torch.Tensor]:
    return {f"{i}.{n}": p.grad.clone() for i, m in enumerate(models) for n, p in m.named_parameters()}


def test_one_discriminator_pass_gives_the_two_pass_losses_and_gradients(lfw_crops, tmp_path, step_preset):
    new = Trainer(step_preset(lfw_crops, tmp_path), tmp_path / "new")
    captured = {}
    apply = new.gan._apply

    def capture(model, optimiser):
        captured.update({f"{id(model)}.{n}": p.grad.clone() for n, p in model.named_parameters()})
        apply(model, optimiser)

    new.gan._apply = capture
    values = read_values(new.train_step())
    grads_new = {
        k.replace(str(id(new.generator)), "0").replace(str(id(new.discriminator)), "1"): v for k, v in captured.items()
    }

    # the step as it was: D over swap.detach() for L_D, and again over swap for L_G
    old = Trainer(step_preset(lfw_crops, tmp_path), tmp_path / "old")
    b = old.next_batch()
    swap = old.gan.g_forward(b.target, b.z_source)
    d_terms = old.gan.discriminator_loss(b, swap)
    g_terms, _ = old.gan.generator_loss(b, swap)
    loss_d, loss_g = sum(d_terms.values()), old.gan.weighted(g_terms)
    old.gan.backward(loss_g, old.generator)
    old.gan.backward(loss_d, old.discriminator)
    grads_old = _gradients(old.generator, old.discriminator)

    assert values["D/total"] == pytest.approx(loss_d.item(), rel=1e-6)
    assert values["G/total"] == pytest.approx(loss_g.item(), rel=1e-6)
    assert values["G/adv"] == pytest.approx(g_terms["adv"].item(), rel=1e-6)
    assert grads_new.keys() == grads_old.keys()
    worst = max(
        ((grads_new[k] - grads_old[k]).abs().max() / grads_old[k].abs().max().clamp(min=1e-12)).item()
        for k in grads_old
    )
    print(f"largest relative gradient difference: {worst:.2e}")
    assert worst < 1e-5  # fp32 round-off
    new.close()
    old.close()


def test_cross_pair_diagnostic_without_boolean_indexing(lfw_crops, tmp_path, step_preset):
    trainer = Trainer(step_preset(lfw_crops, tmp_path), tmp_path / "run")
    b = trainer.next_batch()
    swap = trainer.gan.g_forward(b.target, b.z_source)
    b.same = torch.tensor([True, False, True, False])
    _, diagnostics = trainer.gan.generator_loss(b, swap)
    embedding, _ = trainer.gan.encode(swap)
    cross = ~b.same
    assert diagnostics["id_cross"].item() == pytest.approx(
        trainer.gan.identity(embedding[cross], b.z_source[cross]).item(), rel=1e-6
    )
    b.same = torch.ones(4, dtype=torch.bool)  # no cross pair: no value, and no reason to stop training
    _, diagnostics = trainer.gan.generator_loss(b, swap)
    assert math.isnan(diagnostics["id_cross"].item())
    logged = {"G/id": torch.tensor(0.5), "G/id_cross": diagnostics["id_cross"]}
    trainer.guard.watch(logged, 1)
    trainer.guard.check(1, tmp_path)  # does not stop
    values = read_values(logged)
    assert values == {"G/id": 0.5}
    trainer.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_step_between_checks_never_waits_for_the_gpu(lfw_crops, tmp_path, step_preset):
    """Only checked steps (logs, checkpoints) read losses on the host; the others queue work and go on."""
    preset = step_preset(lfw_crops, tmp_path)
    preset = replace(preset, train=replace(preset.train, device="cuda"))
    trainer = Trainer(preset, tmp_path / "run")
    try:
        trainer.train_step(check=True)  # the first step makes its constant masks once
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(2):
                logged = trainer.train_step(check=False)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert set(read_values(logged)) >= {"G/total", "D/total"}
        trainer.train_step(check=True)
    finally:
        trainer.close()
