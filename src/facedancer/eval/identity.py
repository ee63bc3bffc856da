"""Identity retrieval: does a swap look like its source to a recogniser that did not train the swapper?

The paper (PAPER.md §4.1) embeds each swap with a CosFace network different from the training encoder,
finds the nearest gallery embedding by cosine similarity and counts a hit when its identity is the
source's; it also helps to report the mean cosine similarity between swap and source. Our default
recogniser is dlib's 128-d ResNet (CC0 weights from ``face-recognition-models``), independent of both
the SFace and the ArcFace encoders a FaceDancer model may be trained with.

Any object with ``embed(image, faces) -> (N, D)`` fits :class:`Recogniser`. :class:`EncoderRecogniser`
wraps any ``facedancer.identity`` encoder, which is how the paper's own choice, a CosFace/ArcFace
iResNet-50 (arcface_torch layout, the user's ``backbone.pth``), is used:
``EncoderRecogniser(load_encoder("arcface-iresnet50", "glint360k_cosface_r50/backbone.pth"))``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from facedancer import assets
from facedancer.errors import AssetError
from facedancer.faces import Detections, align
from facedancer.identity import IdentityEncoder, embed_crops, load_encoder

CHIP_SIZE = 150  # dlib's aligned face chip


class Recogniser(Protocol):
    def embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        """(N, D) unit-length embeddings of the detected ``faces`` of an RGB image."""
        ...

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, D) unit-length embeddings of RGB face crops already aligned the way this recogniser aligns."""
        ...


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class DlibRecogniser:
    """dlib's ResNet face recogniser (99.38% on LFW verification): 5 dlib landmarks in the face box,
    dlib's 150x150 chip alignment, a 128-d descriptor. Only the detector's boxes are used."""

    dim = 128

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError:
            raise AssetError("the dlib recogniser needs dlib: pip install 'facedancer-pytorch[eval]'") from None
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(assets.resolve("dlib-shape-predictor-5")))
        self._net = dlib.face_recognition_model_v1(str(assets.resolve("dlib-face-recognition-resnet")))

    def _shapes(self, image: np.ndarray, boxes: np.ndarray):  # -> dlib.full_object_detections
        shapes = self._dlib.full_object_detections()
        for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
            rect = self._dlib.rectangle(round(x1), round(y1), round(x2), round(y2))
            shapes.append(self._landmarks(image, rect))
        return shapes

    def embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        if len(faces) == 0:
            return np.zeros((0, self.dim))
        image = np.ascontiguousarray(image)
        return _unit(np.array(self._net.compute_face_descriptor(image, self._shapes(image, faces.boxes))))

    def aligned(self, image: np.ndarray, faces: Detections) -> list[np.ndarray]:
        """dlib-aligned 150x150 RGB chips of the faces (what :meth:`embed_aligned` expects)."""
        image = np.ascontiguousarray(image)
        return list(self._dlib.get_face_chips(image, self._shapes(image, faces.boxes), size=CHIP_SIZE))

    def embed_aligned(self, chips: list[np.ndarray]) -> np.ndarray:
        """(N, 128) embeddings of faces already aligned as dlib's ``get_face_chip`` aligns them."""
        if not chips:
            return np.zeros((0, self.dim))
        batch = [np.ascontiguousarray(c) for c in chips]
        if any(c.shape != (CHIP_SIZE, CHIP_SIZE, 3) for c in batch):
            raise ValueError(f"dlib chips must be {CHIP_SIZE}x{CHIP_SIZE} RGB")
        return _unit(np.array(self._net.compute_face_descriptor(batch)))


class EncoderRecogniser:
    """A ``facedancer.identity`` encoder as an evaluation recogniser: ArcFace 112 px alignment from the
    detector's five points, the raw embedding normalised to unit length."""

    def __init__(self, encoder: IdentityEncoder, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        self.dim = encoder.embedding_dim

    def aligned(self, image: np.ndarray, faces: Detections) -> list[np.ndarray]:
        """ArcFace-template crops of the faces at the encoder's input size."""
        return [align(image, points, self.encoder.input_size)[0] for points in faces.landmarks]

    def embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        return self.embed_aligned(self.aligned(image, faces))

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        return _unit(embed_crops(self.encoder, crops, self.device).cpu().numpy())


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) cosine similarity between the rows of ``a`` (N, D) and ``b`` (M, D)."""
    return _unit(a) @ _unit(b).T


def nearest_identity(queries: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """(N,) label of the gallery embedding nearest (by cosine) to each query: the paper's "spread" mode."""
    return np.asarray(gallery_labels)[cosine_similarity(queries, gallery).argmax(axis=1)]


def retrieval_top1(
    queries: np.ndarray, source_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray
) -> float:
    """Fraction of queries whose nearest gallery identity is their source identity."""
    return float(np.mean(nearest_identity(queries, gallery, gallery_labels) == np.asarray(source_labels)))


def mean_cosine(swaps: np.ndarray, sources: np.ndarray) -> float:
    """Mean cosine similarity between each swap's embedding and its source's, row by row."""
    return float(np.mean(np.sum(_unit(swaps) * _unit(sources), axis=-1)))


def load_recogniser(name: str = "dlib", weights: str | None = None, device: str | torch.device = "cpu") -> Recogniser:
    """The evaluation recogniser by name: ``dlib`` (default), or a ``facedancer.identity`` encoder name
    (``arcface-iresnet50`` with the user's CosFace/ArcFace ``backbone.pth`` as ``weights``, ``sface``)."""
    if name == "dlib":
        return DlibRecogniser()
    return EncoderRecogniser(load_encoder(name, weights), device)
