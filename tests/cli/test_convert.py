"""``facedancer convert-official`` as users run it: every fixture converted and reloaded with TensorFlow's outputs,
one line and exit 2 for every bad file, and a converted model swapping a photo and a video and being evaluated."""

import json

import h5py
import numpy as np
import pytest
import torch

from facedancer.identity import KerasResNet
from facedancer.io import read_image, read_label
from facedancer.nn import Discriminator, Generator
from support import one_line


@pytest.mark.parametrize("name", ["configC", "variant", "doaffa"])
def test_every_fixture_converts_and_reloads(run, official_keras, arcface16, tmp_path, name):
    out = tmp_path / "model"
    args = ["--arcface", arcface16, "--discriminator", official_keras / "tiny_d.h5"]
    code, stdout, err = run("convert-official", official_keras / f"tiny_g_{name}.h5", "-o", out, *args)
    assert code == 0, err
    assert "generator + identity encoder + discriminator" in stdout and "CC BY-NC-SA 4.0" in stdout
    g = np.load(official_keras / f"tiny_g_{name}.npz")
    d = np.load(official_keras / "tiny_d.npz")
    a = np.load(official_keras / "tiny_arcface.npz")
    with torch.no_grad():
        y = Generator.from_pretrained(out)(torch.from_numpy(g["x"]).permute(0, 3, 1, 2), torch.from_numpy(g["z"]))
        logits = Discriminator.from_pretrained(out / "discriminator")(torch.from_numpy(d["x"]).permute(0, 3, 1, 2))
        emb = KerasResNet.from_directory(out / "identity_encoder").double()(
            torch.from_numpy(a["a"]).permute(0, 3, 1, 2).double()
        )
    assert np.abs(y.permute(0, 2, 3, 1).numpy() - g["y"]).max() < 1e-5
    assert np.abs(logits.numpy() - d["y"][:, 0]).max() < 1e-5
    assert np.abs(emb.numpy() - a["emb64"][:, :16]).max() < 1e-9


def retinaface_like(path):
    """A Keras file shaped like the official RetinaFace-Res50.h5: its own custom layers (FPN, SSH, heads)."""

    def layer(kind, name, *inputs):
        return {
            "class_name": kind,
            "name": name,
            "config": {"name": name},
            "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else [],
        }

    layers = [layer("InputLayer", "input_image"), layer("Conv2D", "backbone", "input_image")]
    layers[0]["config"]["batch_input_shape"] = [None, 640, 640, 3]
    layers += [layer("FPN", "fpn", "backbone"), layer("SSH", "ssh", "fpn"), layer("BboxHead", "bbox", "ssh")]
    layers += [layer("LandmarkHead", "landmarks", "ssh"), layer("Concatenate", "out", "bbox", "landmarks")]
    spec = {
        "class_name": "Functional",
        "config": {
            "name": "RetinaFaceModel",
            "layers": layers,
            "input_layers": [["input_image", 0, 0]],
            "output_layers": [["out", 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(spec)
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [x["name"].encode() for x in layers]
        for x in layers:
            group.create_group(x["name"]).attrs["weight_names"] = []
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not-hdf5", "is not a readable HDF5 file"),
        ("truncated", "truncated file"),
        ("retinaface-as-generator", "RetinaFace-Res50.h5 is not a FaceDancer generator: it has 1 input(s)"),
        (
            "retinaface-as-arcface",
            "RetinaFace-Res50.h5 is not a Keras ArcFace ResNet (ArcFace-Res50.h5): it takes images of shape (640, 640",
        ),
        (
            "generator-as-arcface",
            "tiny_g_variant.h5 is not a Keras ArcFace ResNet (ArcFace-Res50.h5): it has 2 input(s) and 1 output(s)",
        ),
        ("arcface-as-generator", "it is the ArcFace identity encoder: give it as --arcface"),
        ("discriminator-as-generator", "it is a FaceDancer discriminator: give it as --discriminator"),
        ("identity-mismatch", "tiny_arcface.h5 gives 32-d identities but tiny_g_configC.h5 takes 16-d"),
        ("weights-only-without-json", "holds weights only: give the model JSON"),
    ],
)
def test_bad_files_are_one_line_exit_2_and_write_nothing(
    run, official_keras, keras_split, arcface16, tmp_path, case, message
):
    generator, arcface = official_keras / "tiny_g_configC.h5", arcface16
    if case == "not-hdf5":
        generator = tmp_path / "FaceDancer_config_c_HQ.h5"
        generator.write_text("<html>a login page saved instead of the model</html>")
    elif case == "truncated":
        generator = tmp_path / "FaceDancer_config_c_HQ.h5"
        generator.write_bytes((official_keras / "tiny_g_configC.h5").read_bytes()[:200_000])
    elif case == "retinaface-as-generator":
        generator = retinaface_like(tmp_path / "RetinaFace-Res50.h5")
    elif case == "retinaface-as-arcface":
        arcface = retinaface_like(tmp_path / "RetinaFace-Res50.h5")
    elif case == "generator-as-arcface":
        arcface = official_keras / "tiny_g_variant.h5"
    elif case == "arcface-as-generator":
        generator = official_keras / "tiny_arcface.h5"
    elif case == "discriminator-as-generator":
        generator = official_keras / "tiny_d.h5"
    elif case == "identity-mismatch":
        arcface = official_keras / "tiny_arcface.h5"
    elif case == "weights-only-without-json":
        generator, _ = keras_split(official_keras / "tiny_g_configC.h5", tmp_path / "weights.h5")
    out = tmp_path / "out"
    code, _, err = run("convert-official", generator, "--arcface", arcface, "-o", out)
    assert code == 2, err
    assert message in one_line(err)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_converted_model_swaps_a_photo_and_a_video(run, official_model, lfw, shared, tmp_path):
    """Random weights paint noise, but every stage runs at the model's 64 px and the outputs name the model."""
    source, target = lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", lfw / "Adrien_Brody" / "Adrien_Brody_0001.jpg"
    code, _, err = run("swap", "-s", source, "-t", target, "-o", tmp_path / "out.png", "--model", official_model)
    assert code == 0, err
    swapped, original = read_image(tmp_path / "out.png"), read_image(target)
    assert swapped.shape == original.shape and np.abs(swapped.astype(int) - original).max() > 50
    assert read_label(tmp_path / "out.png").model == "tiny_g_configC"

    clip = shared / "data" / "videos" / "video_retalking" / "5.mp4"
    args = ["-s", source, "-t", clip, "-o", tmp_path / "out.mp4", "--model", official_model, "--max-frames", 8]
    code, stdout, err = run("swap", *args)
    assert code == 0, err
    assert "8 faces swapped in 8 frames" in stdout + err
    assert read_label(tmp_path / "out.mp4").model == "tiny_g_configC"


def test_converted_model_is_evaluated(run, official_model, lfw, tmp_path):
    pytest.importorskip("dlib")
    out = tmp_path / "eval"
    code, _, err = run("eval", "folders", lfw, "--model", official_model, "--samples", 3, "--metrics", "id", "-o", out)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    results = {r["name"]: r for r in report["results"]}
    assert results["tiny_g_configC"]["samples"] == 3 and 0 <= results["tiny_g_configC"]["id_cosine_source"] <= 1
    model = next(c for c in report["run"]["contenders"] if c["kind"] == "model")
    assert model["name"] == "tiny_g_configC" and model["identity_encoder"] == "arcface-keras-r50"
