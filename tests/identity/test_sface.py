import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from facedancer import assets
from facedancer.errors import CheckpointError, ConfigError
from facedancer.faces import align
from facedancer.identity import SFace, from_uint8, prepare
from facedancer.identity.onnx_weights import constant_tensors, dequantize_linear

PARITY = 1e-4


def cosine(e: torch.Tensor) -> np.ndarray:
    e = torch.nn.functional.normalize(e, dim=1)
    return (e @ e.T).numpy()


def test_embedding_and_every_block_match_onnxruntime_on_random_inputs(sface, sface_reference):
    x = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        embedding, features = sface.forward_with_features(x)
    ref_embedding, ref_features = sface_reference(x)
    assert embedding.shape == (3, 128)
    assert np.abs(embedding.numpy() - ref_embedding).max() <= PARITY
    assert list(features) == list(sface.feature_names) == list(ref_features)
    for name, ref in ref_features.items():
        # block outputs reach ~40 in magnitude; relative to that the bound is the same
        assert np.abs(features[name].numpy() - ref).max() <= PARITY * max(1.0, np.abs(ref).max()), name


def test_matches_onnxruntime_on_aligned_lfw_faces(sface, sface_reference, lfw_faces):
    crops, _ = lfw_faces
    x = from_uint8(crops[:8])
    with torch.no_grad():
        embedding = sface(x).numpy()
    assert np.abs(embedding - sface_reference(x)[0]).max() <= PARITY


def test_channel_order_matches_opencv_face_recognizer(sface, lfw_faces):
    """OpenCV's FaceRecognizerSF, the reference consumer of this file, takes the BGR crop."""
    crops, _ = lfw_faces
    recognizer = cv2.FaceRecognizerSF.create(str(assets.resolve("sface")), "")
    expected = np.stack([recognizer.feature(cv2.cvtColor(c, cv2.COLOR_RGB2BGR)).ravel() for c in crops[:4]])
    with torch.no_grad():
        ours = sface(from_uint8(crops[:4])).numpy()
        swapped = sface(from_uint8(crops[:4]).flip(1)).numpy()
    assert np.abs(ours - expected).max() <= PARITY
    assert np.abs(swapped - expected).max() > 100 * PARITY  # the test can tell the two orders apart


def test_dequantisation_is_exactly_onnxruntimes():
    model = onnx.load(str(assets.resolve("sface")))
    nodes = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert {a.name for n in nodes for a in n.attribute} == {"axis", "block_size"}  # the cases that matter
    graph = onnx.helper.make_graph(
        nodes,
        "dequantise",
        [],
        [onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, None) for n in nodes],
        list(model.graph.initializer),
    )
    session = ort.InferenceSession(
        onnx.helper.make_model(graph, opset_imports=model.opset_import).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    ours = constant_tensors(model)
    for node, ref in zip(nodes, session.run(None, {}), strict=True):
        np.testing.assert_array_equal(ours[node.output[0]], ref, err_msg=node.name)


def test_dequantize_linear_blocks_and_zero_points():
    x = np.array([[1, 2, 3, 4, 5]], np.int8)
    scale = np.array([[2.0, 10.0]], np.float32)
    zero = np.array([[1, -1]], np.int8)
    # block 0 is elements 0..2, block 1 the remainder 3..4
    out = dequantize_linear(x, scale, zero, axis=1, block_size=3)
    np.testing.assert_array_equal(out, [[0.0, 2.0, 4.0, 50.0, 60.0]])
    np.testing.assert_array_equal(dequantize_linear(x.T, np.array([0.5], np.float32), axis=0), x.T * 0.5)


def test_gradients_reach_the_input_and_weights_stay_frozen(sface):
    x = torch.rand(2, 3, 112, 112, requires_grad=True)
    embedding, features = sface.forward_with_features(x, ["conv_9"])
    (embedding.square().sum() + features["conv_9"].mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in sface.parameters())
    assert all(p.grad is None for p in sface.parameters())


def test_stays_in_eval_mode(sface):
    parent = torch.nn.Sequential(sface)
    parent.train()
    assert not sface.training
    assert not any(m.training for m in sface.modules())


def test_features_stop_at_the_deepest_block_asked_for(sface):
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        every = sface.features(x)
        some = sface.features(x, ["conv_7", "conv_3_dw"])
    assert list(some) == ["conv_7", "conv_3_dw"]
    assert torch.equal(some["conv_7"], every["conv_7"])
    assert every["conv_1"].shape == (1, 32, 112, 112) and every["conv_14"].shape == (1, 1024, 7, 7)
    assert len(sface.feature_names) == 27
    with pytest.raises(ConfigError, match="conv_99"):
        sface.features(x, ["conv_99"])


def test_rejects_inputs_that_are_not_112_rgb(sface):
    with pytest.raises(ValueError, match=r"prepare\(\)"):
        sface(torch.rand(1, 3, 256, 256))


def test_same_person_scores_clearly_higher_than_different_people(sface, lfw_faces):
    crops, labels = lfw_faces
    assert len(crops) >= 44 and len(set(labels)) == 12  # YuNet finds (nearly) every LFW face
    with torch.no_grad():
        scores = cosine(sface(from_uint8(crops)))
    upper = np.triu_indices(len(labels), 1)
    same = labels[upper[0]] == labels[upper[1]]
    positive, negative = scores[upper][same], scores[upper][~same]
    auc = (positive[:, None] > negative[None, :]).mean()
    assert auc >= 0.95
    assert positive.mean() - negative.mean() > 0.3


def test_generator_crops_through_prepare_keep_their_identity(sface, lfw_photos):
    """A 256 crop aligned with shrink 1.0 is the 112 ArcFace crop at a higher resolution."""
    photos, _ = lfw_photos
    small = from_uint8([align(image, points, 112)[0] for image, points in photos[:6]])
    large = from_uint8([align(image, points, 256)[0] for image, points in photos[:6]]) * 2 - 1
    with torch.no_grad():
        a, b = sface(small), sface(prepare(large))
    same_face = torch.nn.functional.cosine_similarity(a, b)
    assert same_face.min() > 0.9
    across = cosine(torch.cat([a, b]))[:6, 6:]
    assert across[~np.eye(6, dtype=bool)].max() < same_face.min() - 0.3  # and far from every other face


def test_truncated_or_foreign_onnx_is_a_checkpoint_error(tmp_path):
    data = assets.resolve("sface").read_bytes()
    truncated = tmp_path / "sface.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        SFace.from_onnx(truncated)
    with pytest.raises(CheckpointError, match="not an SFace graph"):
        SFace.from_onnx(assets.resolve("yunet"))
