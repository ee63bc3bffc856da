import pytest
import torch

from facedancer.nn.fusion import AFFA, FUSION_TYPES, Add, Concat, DoubleAFFA, DualMaskAFFA, NoSkip, make_fusion
from facedancer.nn.layers import keras_init_


def test_affa_mask_is_per_pixel_and_per_channel_and_gates_the_two_inputs():
    torch.manual_seed(0)
    affa = AFFA(16)
    keras_init_(affa)
    z_a, h = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    m = affa.mask(z_a, h)
    assert m.shape == z_a.shape  # one gate per sample, channel and pixel
    assert m.min() >= 0 and m.max() <= 1
    # it varies along the channel axis and along both spatial axes
    assert m.std(dim=1).mean() > 1e-3
    assert m.std(dim=2).mean() > 1e-3 and m.std(dim=3).mean() > 1e-3
    torch.testing.assert_close(affa(z_a, h), (1 - m) * z_a + m * h)


def test_affa_mask_saturation_selects_either_input():
    affa = AFFA(8)
    z_a, h = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        affa.conv2.bias.fill_(40.0)
        affa.conv2.weight.zero_()
    torch.testing.assert_close(affa(z_a, h), h)  # m -> 1: identity-conditioned decoder path
    with torch.no_grad():
        affa.conv2.bias.fill_(-40.0)
    torch.testing.assert_close(affa(z_a, h), z_a)  # m -> 0: the target's attributes


def test_affa_hidden_width_is_a_quarter():
    affa = AFFA(64)
    assert affa.conv1.in_channels == 128 and affa.conv1.out_channels == 16 and affa.conv2.out_channels == 64


def test_baseline_fusions():
    z_a, h = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    assert torch.equal(Concat(4)(z_a, h), torch.cat([z_a, h], 1))
    assert torch.equal(Add(4)(z_a, h), z_a + h)
    assert torch.equal(NoSkip(4)(z_a, h), h)


def test_official_variants():
    z_a, h = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    d = DoubleAFFA(8)
    torch.testing.assert_close(d(z_a, h), d.second(z_a, d.first(z_a, h)))
    do = DualMaskAFFA(8)
    # both branches have C hidden filters, as the official adaptive_attention_double
    assert do.conv1.out_channels == 8 and do.conv2.out_channels == 8
    assert do.spatial.conv1.out_channels == 8 and do.spatial.conv2.out_channels == 1
    m = do.mask(z_a, h)
    assert m.shape == z_a.shape
    torch.testing.assert_close(do(z_a, h), (1 - m) * z_a + m * h)


def test_registry_names():
    assert set(FUSION_TYPES) == {"affa", "concat", "add", "none", "d_affa", "do_affa"}
    with pytest.raises(ValueError, match="unknown fusion"):
        make_fusion("gate", 4)
