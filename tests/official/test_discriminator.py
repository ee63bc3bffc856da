"""The official discriminator read by structure: TensorFlow's logits within 1e-5 and its config from the file."""

import numpy as np
import pytest
import torch

from facedancer.errors import ConversionError
from facedancer.official import load_keras_discriminator


def test_matches_tensorflow(official_keras):
    d = load_keras_discriminator(official_keras / "tiny_d.h5")
    cfg = d.config
    assert (cfg.image_size, cfg.base_channels, cfg.max_channels, cfg.widths) == (64, 4, 8, (8, 8, 8, 8))
    data = np.load(official_keras / "tiny_d.npz")
    with torch.no_grad():
        logits = d(torch.from_numpy(data["x"]).permute(0, 3, 1, 2)).numpy()
    assert np.abs(logits - data["y"][:, 0]).max() < 1e-5


def test_a_generator_is_not_a_discriminator(official_keras):
    with pytest.raises(ConversionError, match="is not a FaceDancer discriminator: it has 2 input"):
        load_keras_discriminator(official_keras / "tiny_g_configC.h5")


def test_the_loaders_say_which_official_model_a_wrong_file_is(official_keras):
    """Each loader, not only convert-official, names the model a wrong file is and the option that takes it."""
    from facedancer.official import load_keras_generator

    with pytest.raises(ConversionError, match="; it is a FaceDancer generator: give it as GENERATOR$"):
        load_keras_discriminator(official_keras / "tiny_g_configC.h5")
    with pytest.raises(ConversionError, match="; it is a FaceDancer discriminator: give it as --discriminator$"):
        load_keras_generator(official_keras / "tiny_d.h5")
