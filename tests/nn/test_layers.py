"""The blocks compute the official arithmetic (values by hand and in numpy); their cheaper computations equal the
official order of operations, forward and backward."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facedancer.nn import Generator, GeneratorConfig
from facedancer.nn.layers import AdaIN, ResDown, ResUp, conv_pool2x, upsample2x


def test_fused_instance_norm_and_adain_equal_the_plain_chain():
    torch.manual_seed(0)
    block = ResUp(16, 8, style_dim=32)
    with torch.no_grad():  # a trained-looking affine, not the identity it starts as
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.normal_()
    x = torch.randn(3, 16, 12, 12, requires_grad=True)
    w = torch.randn(3, 32)
    outputs, grads = [], []
    for training in (False, True):  # eval: the plain chain; train: one batch_norm call
        block.train(training)
        x.grad = None
        block.zero_grad()
        y = block(x, w)
        y.square().sum().backward()
        outputs.append(y.detach())
        grads.append([x.grad.clone(), *(p.grad.clone() for p in block.parameters())])
    scale = outputs[0].abs().max()
    assert (outputs[0] - outputs[1]).abs().max() <= 1e-5 * scale
    for plain, fused in zip(*grads, strict=True):
        assert (plain - fused).abs().max() <= 1e-4 * plain.abs().max()


def test_generator_output_is_the_same_in_train_and_eval_mode():
    # the generator has no dropout or running statistics: only the fused kernel differs between modes
    torch.manual_seed(0)
    g = Generator(
        GeneratorConfig(
            image_size=32,
            identity_dim=16,
            mapping_width=16,
            base_channels=8,
            max_channels=16,
            fusion={16: "affa", 32: "concat"},
        )
    )
    x, z = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16)
    with torch.no_grad():
        a, b = g.eval()(x, z), g.train()(x, z)
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()


@pytest.mark.parametrize("kernel, padding", [(3, 1), (1, 0), (5, 2)])
def test_conv_then_pool_computed_the_cheap_way_equals_the_official_order(kernel, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, kernel, padding=padding)
    x = torch.randn(2, 6, 16, 16, requires_grad=True)
    grads = []
    for f in (lambda: F.avg_pool2d(conv(x), 2), lambda: conv_pool2x(conv, x)):
        x.grad = None
        conv.zero_grad()
        y = f()
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads.append((y.detach(), x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()))
    for official, cheap in zip(*grads, strict=True):
        assert official.shape == cheap.shape
        assert (official - cheap).abs().max() <= 1e-5 * official.abs().max()


# --- values against the official arithmetic written out in numpy (tests/nn/conftest.py) ----------------------
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _randomise_norms(module: nn.Module) -> None:
    """A trained-looking InstanceNorm affine instead of the identity it starts as."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()


def test_upsampling_is_bilinear_with_half_pixel_centres(ref):
    x = torch.tensor([[[[0.0, 4.0], [8.0, 12.0]]]])
    # by hand: a row [p, q] becomes [p, 3p/4 + q/4, p/4 + 3q/4, q]; align_corners=True would put 4/3 beside 0
    expected = [[0, 1, 3, 4], [2, 3, 5, 6], [6, 7, 9, 10], [8, 9, 11, 12]]
    assert upsample2x(x)[0, 0].tolist() == expected
    assert ref.upsample2(x[0].numpy())[0].tolist() == expected  # the reference the blocks are checked with


def test_adain_scales_with_the_style_alone_no_plus_one():
    adain = AdaIN(2, 1)
    with torch.no_grad():
        adain.scale.weight.copy_(torch.tensor([[2.0], [0.0]]))
        adain.scale.bias.zero_()
        adain.bias.weight.zero_()
        adain.bias.bias.copy_(torch.tensor([1.0, -1.0]))
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]])
    y = adain(x, torch.tensor([[1.0]]))
    # channel 0: 2x + 1; channel 1: a zero scale erases the feature ("1 +" would have kept x - 1)
    assert y[0].tolist() == [[[3, 5], [7, 9]], [[-1, -1], [-1, -1]]]


@pytest.mark.parametrize("resample", [True, False])
def test_res_up_is_in_adain_lrelu_conv_then_upsampling(ref, resample):
    torch.manual_seed(0)
    block = ResUp(3, 2, style_dim=4, resample=resample).double()
    _randomise_norms(block)
    x, w = torch.randn(1, 3, 4, 4, dtype=torch.float64), torch.randn(1, 4, dtype=torch.float64)
    xn, wn = x[0].numpy(), w[0].numpy()
    styled = ref.adain(
        ref.instance_norm(xn, _np(block.norm.weight), _np(block.norm.bias)),
        wn,
        (_np(block.adain.scale.weight), _np(block.adain.scale.bias)),
        (_np(block.adain.bias.weight), _np(block.adain.bias.bias)),
    )
    main = ref.conv2d(ref.leaky_relu(styled), _np(block.conv.weight), _np(block.conv.bias))
    skip = ref.conv2d(xn, _np(block.skip.weight), _np(block.skip.bias))
    up = ref.upsample2 if resample else (lambda a: a)
    expected = up(main) + up(skip)
    for training in (False, True):  # eval: IN then AdaIN as two steps; training: the fused kernel
        got = block.train(training)(x, w)[0]
        np.testing.assert_allclose(_np(got), expected, rtol=0, atol=1e-10)
    if resample:  # the comparison sees the order: upsampling before the 3x3 conv is another block
        late = ref.conv2d(ref.leaky_relu(ref.upsample2(styled)), _np(block.conv.weight), _np(block.conv.bias))
        assert np.abs(late + ref.upsample2(skip) - expected).max() > 1e-2


@pytest.mark.parametrize("resample", [True, False])
def test_res_down_is_in_lrelu_conv_then_pooling(ref, resample):
    torch.manual_seed(1)
    block = ResDown(3, 2, resample=resample).double()
    _randomise_norms(block)
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    xn = x[0].numpy()
    h = ref.leaky_relu(ref.instance_norm(xn, _np(block.norm.weight), _np(block.norm.bias)))
    main = ref.conv2d(h, _np(block.conv.weight), _np(block.conv.bias))
    skip = ref.conv2d(xn, _np(block.skip.weight), _np(block.skip.bias))
    pool = ref.avg_pool2 if resample else (lambda a: a)
    expected = pool(main) + pool(skip)
    np.testing.assert_allclose(_np(block(x)[0]), expected, rtol=0, atol=1e-10)  # conv_pool2x: the cheap way
    if resample:  # pooling before the 3x3 conv is another block
        early = ref.conv2d(ref.avg_pool2(h), _np(block.conv.weight), _np(block.conv.bias))
        assert np.abs(early + pool(skip) - expected).max() > 1e-2
