import math

import pytest
import torch

from facedancer.errors import CheckpointError, ConfigError
from facedancer.identity import prepare
from facedancer.train.ifsr import IFSRLoss, Margins
from facedancer.train.losses import (
    CycleLoss,
    EncoderPass,
    HingeLoss,
    IdentityLoss,
    LogisticLoss,
    PerceptualLoss,
    R1Penalty,
    ReconstructionLoss,
    make_adversarial,
    shallow_blocks,
)
from facedancer.train.vgg import VGG16Features

MARGINS = {"block1": 0.1, "block2": 0.2}


def test_ifsr_hinge_below_at_and_above_the_margin():
    loss = IFSRLoss({"block1": 0.25 / 1.2}, scale=1.2)
    for d, expected in [(0.1, 0.0), (0.25, 0.0), (0.4, 0.15)]:
        dist = torch.full((4,), d, requires_grad=True)
        value = loss.hinge({"block1": dist})
        assert value.item() == pytest.approx(expected, abs=1e-6)
        value.backward()
        # only a distance beyond the margin is pushed back (d/dd of mean(d) is 1/B per sample)
        assert torch.allclose(dist.grad, torch.full((4,), 0.25 if d > 0.25 else 0.0))


def test_ifsr_batch_mean_versus_per_sample_hinge():
    dist = {"block1": torch.tensor([0.0, 0.4])}
    margins = {"block1": 0.25 / 1.2}
    # batch mean 0.2 is inside the margin; one sample alone is 0.15 beyond it
    assert IFSRLoss(margins).hinge(dist).item() == pytest.approx(0.0)
    assert IFSRLoss(margins, reduction="sample").hinge(dist).item() == pytest.approx(0.075)


def test_ifsr_through_the_encoder_reaches_the_swap_only(tiny_encoder):
    target = torch.rand(3, 3, 64, 64) * 2 - 1
    encode = EncoderPass(tiny_encoder, list(MARGINS))
    loss = IFSRLoss(MARGINS, scale=1.2)
    with torch.no_grad():
        _, real = encode(target)
    _, same = encode(target.clone().requires_grad_())
    distances = loss.distances(real, same)
    assert set(distances) == set(MARGINS) and all(d.abs().max() < 1e-5 for d in distances.values())
    swap = (-target).requires_grad_()
    value = loss(real, encode(swap)[1])
    assert value > 0
    value.backward()
    assert swap.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_encoder.parameters())
    with pytest.raises(ValueError, match="no blocks"):
        EncoderPass(tiny_encoder, ["conv4_block6_out"])


def test_margins_file_round_trip_and_errors(tmp_path):
    m = Margins("sface", MARGINS, {"block1": {"eer": 0.0}}, {"command": "facedancer calibrate-ifsr"})
    loaded = Margins.load(m.save(tmp_path / "m.json"))
    assert loaded == m and list(loaded.margins) == list(MARGINS)
    (tmp_path / "bad.json").write_text('{"margins": {}}')
    with pytest.raises(ConfigError, match="not a facedancer IFSR margins file"):
        Margins.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="neither a file nor a packaged"):
        Margins.load("no-such-margins")


@pytest.mark.parametrize("loss", [HingeLoss(), LogisticLoss()])
def test_adversarial_signs(loss):
    real = torch.zeros(4, requires_grad=True)
    fake = torch.zeros(4, requires_grad=True)
    g_fake = torch.autograd.grad(loss.generator(fake), fake)[0]
    assert (g_fake < 0).all()  # G gains by raising D's score of its fakes
    d_real, d_fake = torch.autograd.grad(loss.discriminator(real, fake), (real, fake))
    assert (d_real < 0).all() and (d_fake > 0).all()  # D raises real scores and lowers fake ones


def test_adversarial_values():
    zero = torch.zeros(3)
    assert LogisticLoss().discriminator(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert LogisticLoss().generator(zero).item() == pytest.approx(math.log(2))
    assert HingeLoss().discriminator(torch.ones(3), -torch.ones(3)).item() == 0.0
    assert HingeLoss().discriminator(torch.full((3,), 2.0), torch.full((3,), -2.0)).item() == 0.0  # saturates
    assert HingeLoss().generator(torch.tensor([1.0, 3.0])).item() == -2.0
    assert isinstance(make_adversarial("hinge"), HingeLoss)


def test_r1_on_a_known_function():
    # D(x) = sum(w * x^2) per image: grad = 2 w x, so R1 = gamma/2 * mean_b sum (2 w x)^2
    w = torch.tensor(0.7, requires_grad=True)
    x = torch.randn(5, 3, 4, 4).requires_grad_()
    logits = (w * x.square()).flatten(1).sum(1)
    r1 = R1Penalty(gamma=10.0)(logits, x)
    expected = 5.0 * (2 * 0.7 * x.detach()).square().flatten(1).sum(1).mean()
    assert r1.item() == pytest.approx(expected.item(), rel=1e-5)
    # differentiable in D's parameters: d/dw of 5 * mean sum 4 w^2 x^2 = 40 w mean sum x^2
    (dw,) = torch.autograd.grad(r1, w)
    assert dw.item() == pytest.approx((40 * 0.7 * x.detach().square().flatten(1).sum(1).mean()).item(), rel=1e-5)
    # the fp16 GradScaler path: scaling the logits does not change the penalty
    logits = (w * x.square()).flatten(1).sum(1)
    assert R1Penalty(10.0)(logits, x, scale=65536.0).item() == pytest.approx(expected.item(), rel=1e-5)
    # ... also given as a tensor, as the trainer passes it (no host sync for GradScaler.get_scale())
    logits = (w * x.square()).flatten(1).sum(1)
    assert R1Penalty(10.0)(logits, x, scale=torch.tensor(65536.0)).item() == pytest.approx(expected.item(), rel=1e-5)


def test_reconstruction_sees_same_pairs_only():
    target = torch.zeros(4, 3, 8, 8)
    swap = torch.zeros(4, 3, 8, 8)
    swap[0] = 0.5  # a same pair off by 0.5
    swap[1] = 9.0  # a cross pair: no ground truth, must not count
    same = torch.tensor([True, False, True, False])
    assert ReconstructionLoss()(swap, target, same).item() == pytest.approx(0.25)
    official = ReconstructionLoss("official")(swap, target, same).item()
    assert official == pytest.approx(0.5 * 0.5 / (2 + 1e-3))
    assert ReconstructionLoss()(swap, target, torch.zeros(4, dtype=torch.bool)).item() == 0.0
    huge = torch.full_like(target, 100.0)
    assert ReconstructionLoss("official")(huge, target, same).item() == 5.0  # the official clip


def test_identity_and_cycle_losses(tiny_encoder):
    encode = EncoderPass(tiny_encoder)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    z = tiny_encoder(prepare(x, 32))
    torch.testing.assert_close(encode(x)[0], z)  # the pass is the encoder on exactly prepare()'s input
    assert IdentityLoss()(encode(x)[0], z).item() == pytest.approx(0.0, abs=1e-6)
    swap = torch.rand(2, 3, 64, 64).requires_grad_()
    value = IdentityLoss()(encode(swap)[0], z)
    assert 0 < value.item() <= 2
    value.backward()
    assert swap.grad.abs().sum() > 0
    assert CycleLoss()(x + 0.5, x).item() == pytest.approx(0.5)


def test_perceptual_loss_masks_and_scales(tiny_encoder):
    blocks = shallow_blocks(tiny_encoder)
    assert blocks == ["block1"]
    encode = EncoderPass(tiny_encoder, blocks)

    def feats(x):
        return [encode(x)[1][n] for n in blocks]

    target = torch.rand(3, 3, 64, 64) * 2 - 1
    swap = target.clone()
    swap[1] = -swap[1]  # only a cross pair differs
    same = torch.tensor([True, False, True])
    assert PerceptualLoss()(feats(target), feats(swap), same).item() == 0.0
    swap[0] = -swap[0]
    full = PerceptualLoss(scale=1.0)(feats(target), feats(swap), same)
    assert full > 0
    assert PerceptualLoss(scale=0.85)(feats(target), feats(swap), same).item() == pytest.approx(0.85 * full.item())
    official = PerceptualLoss(scale=1.0, official=True)(feats(target), feats(swap), same)
    assert official.item() == pytest.approx(full.item() * 2 / (2 + 1e-3))


def test_vgg16_loads_torchvision_layout(tmp_path):
    reference = VGG16Features()
    for p in reference.parameters():
        torch.nn.init.normal_(p, std=0.05)
    state = {f"features.{k}": v for k, v in reference.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    torch.save(state, tmp_path / "vgg16.pth")
    loaded = VGG16Features.from_torchvision(tmp_path / "vgg16.pth")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    outs = loaded(x)
    assert [o.shape[1:] for o in outs] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    for a, b in zip(outs, reference(x), strict=True):
        torch.testing.assert_close(a, b)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.train().training
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="torchvision VGG16"):
        VGG16Features.from_torchvision(tmp_path / "bad.pth")
