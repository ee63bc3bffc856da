"""The blocks' cheaper computations equal the official order of operations, forward and backward."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facedancer.nn import Generator, GeneratorConfig
from facedancer.nn.layers import ResUp, conv_pool2x


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
