"""Training tensors reach an encoder one way: [-1, 1] crops of any size, prepared, one pass for both outputs."""

import pytest
import torch

from facedancer.errors import ConfigError
from facedancer.identity import encode_crops, prepare


def test_crops_of_any_size_give_the_encoder_on_prepared_input(sface):
    gen = torch.Generator().manual_seed(0)
    crops = torch.rand(2, 3, 256, 256, generator=gen) * 2 - 1
    names = [sface.feature_names[2], sface.feature_names[9]]
    with torch.no_grad():
        embedding, features = encode_crops(sface, crops, names)
        x = prepare(crops, sface.input_size)
        assert torch.equal(embedding, sface(x))  # the embedding of exactly prepare()'s input
        expected = sface.features(x, names)
    assert list(features) == names and all(torch.equal(features[n], expected[n]) for n in names)
    assert encode_crops(sface, crops[:, :, :112, :112])[1] == {}  # no names: the embedding only


def test_gradients_reach_the_crops_not_the_frozen_encoder(sface):
    crops = (torch.rand(1, 3, 64, 64) * 2 - 1).requires_grad_()
    embedding, features = encode_crops(sface, crops, [sface.feature_names[0]])
    (embedding.square().sum() + features[sface.feature_names[0]].sum()).backward()
    assert crops.grad.abs().sum() > 0
    assert all(p.grad is None for p in sface.parameters())


def test_unknown_blocks_are_named(sface):
    with pytest.raises(ConfigError, match="no feature 'conv4_block6_out'"):
        encode_crops(sface, torch.zeros(1, 3, 112, 112), ["conv4_block6_out"])
