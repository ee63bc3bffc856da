"""Fixtures for the identity encoders: the SFace module, its onnxruntime reference, aligned LFW faces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from facedancer import assets
from facedancer.faces import YuNetDetector, align
from facedancer.identity import SFace, load_encoder


@pytest.fixture(scope="session")
def sface() -> SFace:
    return load_encoder("sface")


@pytest.fixture(scope="session")
def sface_reference(sface: SFace) -> Callable[[torch.Tensor], tuple[np.ndarray, dict[str, np.ndarray]]]:
    """onnxruntime on the very file SFace loads: RGB [0, 1] batch -> (embeddings, block outputs).

    The file lists its original float weights as graph inputs that no node reads any more (they were
    replaced by quantised initializers), which onnxruntime would demand; we drop those inputs and
    expose every block's PReLU output, leaving the computation untouched.
    """
    model = onnx.load(str(assets.resolve("sface")))
    read = {i for node in model.graph.node for i in node.input}
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name in read and i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    blocks = [f"{name}_relu" for name in sface.feature_names]
    model.graph.output.extend(onnx.helper.make_tensor_value_info(b, onnx.TensorProto.FLOAT, None) for b in blocks)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # the graph has a fixed batch of 1
        outs = [session.run(None, {"data": (x[i : i + 1] * 255).numpy()}) for i in range(len(x))]
        stacked = [np.concatenate(o) for o in zip(*outs, strict=True)]
        return stacked[0], dict(zip(sface.feature_names, stacked[1:], strict=True))

    return run


def central_face(detector: YuNetDetector, image: np.ndarray) -> np.ndarray | None:
    """Landmarks of the detected face nearest the image centre (LFW photos are centred on their person)."""
    found = detector.detect(image)
    if len(found) == 0:
        return None
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
    return found.landmarks[np.argmin(np.linalg.norm(centres - np.array(image.shape[1::-1]) / 2, axis=1))]


@pytest.fixture(scope="session")
def lfw_photos(lfw: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """(RGB photo, its central face's 5 points) for 4 photos each of 12 seeded-random LFW people; labels."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 4)
    chosen = np.random.default_rng(7).choice(len(people), 12, replace=False)
    detector, photos, labels = YuNetDetector(), [], []
    for label, index in enumerate(chosen):
        for file in sorted(people[index].glob("*.jpg"))[:4]:
            image = cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB)
            landmarks = central_face(detector, image)
            if landmarks is not None:
                photos.append((image, landmarks))
                labels.append(label)
    return photos, np.array(labels)


@pytest.fixture(scope="session")
def lfw_faces(lfw_photos) -> tuple[list[np.ndarray], np.ndarray]:
    """The same faces aligned to the 112 px ArcFace template."""
    photos, labels = lfw_photos
    return [align(image, landmarks, 112)[0] for image, landmarks in photos], labels
