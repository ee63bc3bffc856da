import numpy as np
import pytest
import torch

from facedancer.errors import ConfigError
from facedancer.identity import EMBEDDING_DIMS, from_uint8, load_encoder, prepare


def test_prepare_is_half_pixel_bilinear_without_antialias():
    crop = torch.rand(2, 3, 224, 224) * 2 - 1
    x = prepare(crop)
    # at exactly half size, half-pixel centres fall between pixel pairs: a 2x2 average
    expected = torch.nn.functional.avg_pool2d((crop + 1) / 2, 2)
    assert x.shape == (2, 3, 112, 112)
    torch.testing.assert_close(x, expected, atol=1e-6, rtol=0)
    assert torch.equal(prepare(torch.zeros(1, 3, 112, 112)), torch.full((1, 3, 112, 112), 0.5))


def test_from_uint8_makes_an_rgb_unit_range_batch():
    crop = np.zeros((112, 112, 3), np.uint8)
    crop[..., 0] = 255
    x = from_uint8(crop)
    assert x.shape == (1, 3, 112, 112) and x.dtype == torch.float32
    assert x[0, 0].min() == 1 and x[0, 1:].max() == 0
    assert from_uint8([crop, crop]).shape == (2, 3, 112, 112)


def test_unknown_encoder_names_the_known_ones():
    with pytest.raises(ConfigError, match="arcface-iresnet100"):
        load_encoder("vgg-face")


def test_sface_embedding_size_is_the_one_presets_use(sface):
    assert sface.embedding_dim == EMBEDDING_DIMS["sface"] == 128
