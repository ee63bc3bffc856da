import numpy as np
import torch

from facedancer.nn import Discriminator, DiscriminatorConfig, parameter_count
from facedancer.nn.discriminator import DiscriminatorBlock


def test_paper_discriminator_count_and_shape():
    d = Discriminator()
    assert parameter_count(d) == 23_972_353
    assert d.config.widths == (128, 256, 512, 512, 512, 512)
    assert d(torch.randn(2, 3, 256, 256)).shape == (2,)


def test_smaller_sizes():
    d = Discriminator(DiscriminatorConfig(image_size=64, base_channels=8, max_channels=32))
    assert d.config.widths == (16, 32, 32, 32)
    assert d(torch.randn(3, 3, 64, 64)).shape == (3,)


def test_block_is_the_official_arithmetic_with_instance_norm_inside(ref):
    """skip = AvgPool(Conv1x1 x); main = Conv3x3(LReLU(IN(AvgPool(Conv3x3(LReLU(IN(x)))))))."""
    torch.manual_seed(0)
    block = DiscriminatorBlock(2, 3).double()
    with torch.no_grad():  # a trained-looking affine, not the identity InstanceNorm starts as
        for norm in (block.norm1, block.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64) * 3 + 5  # far from zero mean: IN has work to do

    def p(t):
        return t.detach().numpy()

    def main(h, norm1, norm2):
        h = ref.avg_pool2(ref.conv2d(ref.leaky_relu(norm1(h)), p(block.conv1.weight), p(block.conv1.bias)))
        return ref.conv2d(ref.leaky_relu(norm2(h)), p(block.conv2.weight), p(block.conv2.bias))

    xn = x[0].numpy()
    skip = ref.avg_pool2(ref.conv2d(xn, p(block.skip.weight), p(block.skip.bias)))
    expected = skip + main(
        xn,
        lambda h: ref.instance_norm(h, p(block.norm1.weight), p(block.norm1.bias)),
        lambda h: ref.instance_norm(h, p(block.norm2.weight), p(block.norm2.bias)),
    )
    np.testing.assert_allclose(p(block(x)[0]), expected, rtol=0, atol=1e-10)
    # StarGAN-v2's block without the norms is another function: the comparison can see them
    assert np.abs(skip + main(xn, lambda h: h, lambda h: h) - expected).max() > 1e-1
