import torch

from facedancer.nn import Discriminator, DiscriminatorConfig, parameter_count


def test_paper_discriminator_count_and_shape():
    d = Discriminator()
    assert parameter_count(d) == 23_972_353
    assert d.config.widths == (128, 256, 512, 512, 512, 512)
    assert d(torch.randn(2, 3, 256, 256)).shape == (2,)


def test_smaller_sizes():
    d = Discriminator(DiscriminatorConfig(image_size=64, base_channels=8, max_channels=32))
    assert d.config.widths == (16, 32, 32, 32)
    assert d(torch.randn(3, 3, 64, 64)).shape == (3,)
