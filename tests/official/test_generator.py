"""Official Keras generators read by structure: TensorFlow's outputs within 1e-5, the config read off the file,
older Keras spellings accepted, and every hyper-parameter or layer we do not implement refused in one line."""

import json

import numpy as np
import pytest
import torch

from facedancer.errors import ConversionError
from facedancer.keras import read_keras
from facedancer.official import load_keras_generator
from facedancer.official.generator import match_generator

#: fusion per fusing resolution, from the fixture README's up_types (64 px: stages fuse at 2 ... 64 px)
LAYOUTS = {
    "configC": {8: "affa", 16: "affa", 32: "affa", 64: "concat"},
    "variant": {2: "add", 4: "d_affa", 8: "affa", 16: "concat", 32: "affa", 64: "concat"},
    "doaffa": {4: "do_affa", 8: "d_affa", 16: "add", 32: "affa", 64: "concat"},
}


def run_fixture(generator, npz):
    d = np.load(npz)
    with torch.no_grad():
        y = generator(torch.from_numpy(d["x"]).permute(0, 3, 1, 2), torch.from_numpy(d["z"]))
    return np.abs(y.permute(0, 2, 3, 1).numpy() - d["y"]).max()


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_matches_tensorflow(official_keras, name):
    g = load_keras_generator(official_keras / f"tiny_g_{name}.h5")
    cfg = g.config
    assert not g.training
    assert (cfg.image_size, cfg.identity_dim, cfg.bottom_size) == (64, 16, 2)
    assert (cfg.mapping_depth, cfg.mapping_width, cfg.base_channels, cfg.max_channels) == (4, 16, 4, 8)
    assert cfg.fusion == LAYOUTS[name]
    assert run_fixture(g, official_keras / f"tiny_g_{name}.npz") < 1e-5


def rename(spec, old, new):
    for layer in spec["config"]["layers"]:
        if layer["class_name"] == old:
            layer["class_name"] = new
    if spec["class_name"] == old:
        spec["class_name"] = new


def test_older_keras_spellings_are_accepted(official_keras, tmp_path, keras_edit):
    """Keras before 2.13 wrote ``Model`` for functional models; files saved without tensorflow_addons'
    registration name the norm ``InstanceNormalization``."""

    def older(spec):
        rename(spec, "Functional", "Model")
        rename(spec, "Addons>InstanceNormalization", "InstanceNormalization")

    path = keras_edit(official_keras / "tiny_g_doaffa.h5", tmp_path / "old.h5", older)
    assert {layer.kind for layer in read_keras(path).layers} >= {"InstanceNormalization", "AdaIN"}
    assert run_fixture(load_keras_generator(path), official_keras / "tiny_g_doaffa.npz") < 1e-5


def first(spec, kind, **config):
    return next(
        x
        for x in spec["config"]["layers"]
        if x["class_name"] == kind and all(x["config"].get(k) == v for k, v in config.items())
    )


def set_config(kind, key, value, **match):
    def edit(spec):
        first(spec, kind, **match)["config"][key] = value

    return edit


def add_dangling_layer(spec):
    """A Dense on the identity input that nothing reads: not part of the generator, so it must be named."""
    vector = next(
        x
        for x in spec["config"]["layers"]
        if x["class_name"] == "InputLayer" and len(x["config"]["batch_input_shape"]) == 2
    )
    dense = json.loads(json.dumps(first(spec, "Dense")))
    dense["name"] = dense["config"]["name"] = "unused_head"
    dense["inbound_nodes"] = [[[vector["name"], 0, 0, {}]]]
    spec["config"]["layers"].append(dense)


def wrap_output(spec):
    """A tanh after the output block: the official generator's output is linear."""
    out = spec["config"]["output_layers"][0][0]
    spec["config"]["layers"].append(
        {
            "class_name": "Activation",
            "name": "tanh",
            "config": {"name": "tanh", "activation": "tanh"},
            "inbound_nodes": [[[out, 0, 0, {}]]],
        }
    )
    spec["config"]["output_layers"] = [["tanh", 0, 0]]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            set_config("Addons>InstanceNormalization", "epsilon", 1e-5),
            "epsilon=1e-05, facedancer's network needs 0.001",
        ),
        (set_config("Addons>InstanceNormalization", "center", False), "center=False"),
        (set_config("LeakyReLU", "alpha", 0.1), "alpha=0.1"),
        (set_config("UpSampling2D", "interpolation", "nearest"), "interpolation='nearest'"),
        (set_config("Conv2D", "padding", "valid", kernel_size=[3, 3]), "padding='valid'"),
        (set_config("Conv2D", "strides", [2, 2], kernel_size=[3, 3]), "strides=[2, 2]"),
        (set_config("Conv2D", "activation", "relu", kernel_size=[1, 1]), "activation='relu'"),
        (set_config("Conv2D", "use_bias", False), "use_bias=False"),
        (set_config("Dense", "activation", "relu"), "activation='relu'"),
        (add_dangling_layer, "layer 'unused_head' (Dense) has no counterpart"),
        (wrap_output, "'tanh' (Activation)"),
    ],
)
def test_anything_we_do_not_implement_is_refused_by_name(official_keras, tmp_path, keras_edit, edit, message):
    path = keras_edit(official_keras / "tiny_g_configC.h5", tmp_path / "g.h5", edit)
    with pytest.raises(ConversionError, match=r"g\.h5 is not a FaceDancer generator: ") as e:
        match_generator(read_keras(path))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_adain_sublayers_named_without_their_layer(official_keras, tmp_path, keras_edit):
    """Some Keras versions name a custom layer's sublayer weights globally (``dense_57/kernel:0``) instead of
    below the layer (``ada_in/dense/kernel:0``): the order in the file still says which is scale and bias."""
    import h5py

    counter = iter(range(100, 1000))

    def rename(root):
        for name in root:
            group = root[name]
            old = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
            if not old or not old[0].startswith(f"{name}/dense"):
                continue
            new, sub = [], {}
            for path in old:
                sublayer = path.split("/")[1]
                sub.setdefault(sublayer, f"dense_{next(counter)}")
                new.append(f"{sub[sublayer]}/{path.split('/')[-1]}")
            arrays = [group[p][()] for p in old]
            for p in {p.split("/")[0] for p in old}:
                del group[p]
            for path, array in zip(new, arrays, strict=True):
                group[path] = array
            group.attrs["weight_names"] = [p.encode() for p in new]

    path = keras_edit(official_keras / "tiny_g_configC.h5", tmp_path / "g.h5", weights=rename)
    with h5py.File(path, "r") as f:
        assert str(f["model_weights"]["ada_in"].attrs["weight_names"][0]).startswith("dense_1")
    assert run_fixture(load_keras_generator(path), official_keras / "tiny_g_configC.npz") < 1e-5
