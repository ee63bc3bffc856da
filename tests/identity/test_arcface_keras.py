"""The official ArcFace-Res50 as a native module: TensorFlow's embedding within 1e-9 in float64 (cosine
0.99999 in float32), Keras' block names for IFSR, its own model directory, and the asset registry."""

import numpy as np
import pytest
import torch

from facedancer import assets
from facedancer.errors import AssetError, ConversionError
from facedancer.identity import EMBEDDING_DIMS, ENCODER_DIR, KerasResNet, load_encoder, load_model_encoder
from facedancer.train.ifsr import Margins


@pytest.fixture(scope="module")
def arcface(official_keras):
    return KerasResNet.from_keras(official_keras / "tiny_arcface.h5")


@pytest.fixture(scope="module")
def expected(official_keras):
    return np.load(official_keras / "tiny_arcface.npz")


def nchw(a):
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def test_config_read_from_the_file(arcface):
    cfg = arcface.config
    assert (cfg.blocks, cfg.filters, cfg.strides, cfg.stem_channels) == ((3, 4, 6, 3), (4, 8, 8, 8), (1, 2, 2, 2), 64)
    assert cfg.backbone_eps == pytest.approx(1.001e-5) and cfg.head_eps == pytest.approx((1e-5, 1e-5))
    assert arcface.embedding_dim == 32 and arcface.name == "arcface-keras-r50"
    assert not arcface.training and not any(p.requires_grad for p in arcface.parameters())


def test_float64_matches_tensorflow_to_1e_9(arcface, expected):
    net = KerasResNet.from_state(arcface.config, arcface.state_dict(), "copy").double()  # the module's dtype rules
    x = nchw(expected["a"]).double()
    with torch.no_grad():
        emb, feats = net.forward_with_features(x, ["conv5_block3_out"])
    assert np.abs(emb.numpy() - expected["emb64"]).max() < 1e-9
    assert np.abs(feats["conv5_block3_out"].permute(0, 2, 3, 1).numpy() - expected["f64"]).max() < 1e-9


def test_float32_cosine(arcface, expected):
    with torch.no_grad():
        emb = arcface(nchw(expected["a"]))
    cos = torch.nn.functional.cosine_similarity(emb, torch.from_numpy(expected["emb"]))
    assert cos.min() >= 0.99999


def test_keras_block_names_fit_the_official_ifsr_margins(arcface):
    names = arcface.feature_names
    assert names[0] == "conv1_relu" and names[-1] == "conv5_block3_out" and len(names) == 17
    margins = Margins.load("ifsr_margins_arcface_keras")
    assert margins.encoder == "arcface-keras-r50" and len(margins.margins) == 11
    assert set(margins.margins) <= set(names)
    feats = arcface.features(torch.rand(1, 3, 112, 112), list(margins.margins))
    assert feats["conv2_block3_out"].shape[-2:] == (28, 28) and feats["conv4_block6_out"].shape[-2:] == (7, 7)


def test_directory_round_trip_is_bit_exact(arcface, tmp_path):
    arcface.save(tmp_path / "enc")
    again = load_encoder("arcface-keras-r50", tmp_path / "enc")
    assert again.config == arcface.config
    x = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(again(x), arcface(x))


def test_registered_as_a_user_supplied_file(official_keras, tmp_path):
    assert EMBEDDING_DIMS["arcface-keras-r50"] == 512
    entry = assets.REGISTRY["arcface-keras-r50"]
    assert entry.kind == "user" and "felixrosberg/ArcFace" in entry.source and "CC BY-NC-SA" in entry.licence
    with pytest.raises(AssetError, match="models add arcface-keras-r50"):
        load_encoder("arcface-keras-r50")
    assets.add("arcface-keras-r50", official_keras / "tiny_arcface.h5")
    assert load_encoder("arcface-keras-r50").embedding_dim == 32
    # a model directory that carries its converted encoder uses that copy, not the registry's
    model = tmp_path / "model"
    KerasResNet.from_keras(official_keras / "tiny_arcface.h5").save(model / ENCODER_DIR)
    assert load_model_encoder(model, "arcface-keras-r50").embedding_dim == 32


def test_other_networks_are_refused(official_keras):
    with pytest.raises(ConversionError, match="is not a Keras ArcFace ResNet"):
        KerasResNet.from_keras(official_keras / "tiny_g_configC.h5")


def test_an_fp16_encoder_folder_loads_as_an_fp32_module(arcface, tmp_path):
    """Bundles store the encoder in fp16; loading it must not turn the module itself into fp16."""
    from safetensors.torch import load_file, save_file

    folder = arcface.save(tmp_path / "encoder")
    weights = folder / "model.safetensors"
    save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(weights).items()}, str(weights))
    loaded = KerasResNet.from_directory(folder)
    assert {v.dtype for v in loaded.state_dict().values() if v.is_floating_point()} == {torch.float32}
