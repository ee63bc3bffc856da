"""Reading Keras .h5 files without TensorFlow: the graph, nested models, weights, and one line per bad file."""

import json

import numpy as np
import pytest

from facedancer.errors import ConversionError
from facedancer.keras import read_keras


def test_generator_graph(official_keras):
    g = read_keras(official_keras / "tiny_g_configC.h5")
    assert [len(x.config["batch_input_shape"]) for x in g.inputs] == [4, 2]
    assert [x.kind for x in g.outputs] == ["Add"]
    kinds = {layer.kind for layer in g.layers}
    assert {"AdaIN", "AdaptiveAttention", "InstanceNormalization", "UpSampling2D"} <= kinds  # "Addons>" removed
    adain = next(layer for layer in g.layers if layer.kind == "AdaIN")
    assert [x.kind for x in adain.inputs] == ["InstanceNormalization", "Dense"]
    # the AdaIN's two Dense sublayers, in the file's order, keyed below the layer
    assert list(adain.weights) == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    conv = g.inputs[0]
    stem = next(layer for layer in g.layers if conv in layer.inputs)
    assert stem.weights["kernel"].shape == (3, 3, 3, 4)


def test_tensor_passed_as_keyword_is_an_input(official_keras):
    """``m * m_hat`` is recorded as a TF op whose second operand is a keyword argument."""
    g = read_keras(official_keras / "tiny_g_doaffa.h5")
    product = next(layer for layer in g.layers if layer.kind == "TFOpLambda")
    assert [x.config["filters"] for x in product.inputs] == [8, 1]


def test_nested_models_are_flattened(official_keras):
    g = read_keras(official_keras / "tiny_arcface.h5")
    names = [layer.name for layer in g.layers]
    assert "resnet50" not in names and "OutputLayer" not in names
    assert "conv2_block3_out" in names and g.outputs[0].kind == "BatchNormalization"
    pad = next(layer for layer in g.layers if layer.name == "conv1_pad")
    assert pad.inputs == g.inputs  # the backbone's own input is bound to the outer model's
    bn = g.outputs[0]
    assert set(bn.weights) == {"gamma", "beta", "moving_mean", "moving_variance"}


def test_weights_only_file_with_its_json_reads_like_the_full_model(official_keras, keras_split, tmp_path):
    full = read_keras(official_keras / "tiny_g_configC.h5")
    h5, js = keras_split(official_keras / "tiny_g_configC.h5", tmp_path / "gen_7.h5", tmp_path / "gen.json")
    split = read_keras(h5, js)
    assert [layer.name for layer in split.layers] == [layer.name for layer in full.layers]
    for a, b in zip(full.layers, split.layers, strict=True):
        assert a.weights.keys() == b.weights.keys()
        assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_bad_files_are_one_line_errors(official_keras, keras_split, tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not an HDF5 file")
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes((official_keras / "tiny_g_configC.h5").read_bytes()[:50_000])
    h5, _ = keras_split(official_keras / "tiny_g_configC.h5", tmp_path / "gen_1.h5")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps({"class_name": "Sequential", "config": {}}))
    cases = {
        text: "is not a readable HDF5 file",
        truncated: "truncated",
        tmp_path / "missing.h5": "does not exist",
        h5: "holds weights only",
    }
    for path, message in cases.items():
        with pytest.raises(ConversionError, match=message) as e:
            read_keras(path)
        assert "\n" not in str(e.value)
    with pytest.raises(ConversionError, match="does not describe a Keras functional model"):
        read_keras(h5, bad_json)
