"""Validation of the instruments on real data, shared by the tests (seeded subsets) and ``benchmarks/``.

A metric can only judge swaps once it is shown to measure what it claims on data with known answers:
pose estimators against AFLW2000-3D's labels, the recogniser by retrieving real LFW identities, FID by
telling two halves of LFW apart far less than LFW from a blurred LFW.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from rich.progress import track

from facedancer.eval.datasets import AflwSample, central_face
from facedancer.eval.fid import InceptionFeatures, fid
from facedancer.eval.fsanet import FSANet, crop_box
from facedancer.eval.identity import Recogniser, cosine_similarity, nearest_identity
from facedancer.eval.pose import PoseEstimator, mae_per_angle
from facedancer.eval.tddfa import TDDFA, roi_from_landmarks
from facedancer.faces import FaceDetector, YuNetDetector
from facedancer.io import read_image

BoxSource = Literal["detector", "landmarks"]


def _progress(items: Sequence, description: str, show: bool) -> Iterable:
    return track(items, description=description) if show else items


def landmark_rois(estimator: PoseEstimator, sample: AflwSample, shape: tuple[int, ...]) -> np.ndarray:
    """Each estimator's crop from the data set's landmarks, as its authors evaluated on AFLW2000-3D."""
    if isinstance(estimator, TDDFA):
        return roi_from_landmarks(sample.landmarks68)[None]
    if isinstance(estimator, FSANet):
        pts = sample.points2d
        return crop_box(np.concatenate([pts.min(0), pts.max(0)]).astype(int), shape)[None]
    raise TypeError(f"no landmark crop known for {type(estimator).__name__}")


@dataclass
class PoseValidation:
    boxes: BoxSource
    faces: int
    #: images where the detector found no face (left out of the error)
    missed: int
    #: estimator name -> MAE of yaw, pitch, roll and their mean, in degrees
    mae: dict[str, dict[str, float]]


def validate_pose(
    estimators: dict[str, PoseEstimator],
    samples: Sequence[AflwSample],
    boxes: BoxSource = "detector",
    detector: FaceDetector | None = None,
    progress: bool = False,
) -> PoseValidation:
    """MAE per angle of each estimator against AFLW2000-3D labels.

    ``boxes="detector"`` is the pipeline the evaluation runs on swaps: the face nearest the image centre
    found by ``detector``, cropped by each estimator's own rule. ``"landmarks"`` is each estimator's
    published protocol, cropping from the data set's landmarks.
    """
    detector = detector or YuNetDetector()
    predicted: dict[str, list[np.ndarray]] = {name: [] for name in estimators}
    truth, missed = [], 0
    for sample in _progress(samples, f"pose ({boxes})", progress):
        image = read_image(sample.image)
        if boxes == "detector":
            found = detector.detect(image)
            face = central_face(found, image.shape)
            if face is None:
                missed += 1
                continue
            for name, est in estimators.items():
                predicted[name].append(est.predict(image, found.boxes[face : face + 1])[0])
        else:
            for name, est in estimators.items():
                predicted[name].append(est.predict_rois(image, landmark_rois(est, sample, image.shape))[0])
        truth.append(sample.pose)
    mae = {name: mae_per_angle(np.array(p), np.array(truth)) for name, p in predicted.items()}
    return PoseValidation(boxes, len(truth), missed, mae)


@dataclass
class RetrievalValidation:
    people: int
    gallery: int
    #: photos without a detected face (left out)
    missed: int
    top1: float
    #: mean cosine between a probe and the gallery photos of its own identity / of the other identities
    mean_cosine_same: float
    mean_cosine_other: float


def validate_retrieval(
    recogniser: Recogniser,
    people: dict[str, list[Path]],
    detector: FaceDetector | None = None,
    seed: int = 0,
    progress: bool = False,
) -> RetrievalValidation:
    """Probe = one seeded photo per person, gallery = all their other photos: top-1 nearest identity.

    Faces are ``detector``'s (YuNet by default) nearest the image centre, the labelled face in LFW.
    """
    detector = detector or YuNetDetector()
    rng = np.random.default_rng(seed)
    jobs = []  # (person index, is probe, path)
    for i, paths in enumerate(people.values()):
        probe = int(rng.integers(len(paths)))
        jobs += [(i, j == probe, p) for j, p in enumerate(paths)]
    embeddings, labels, is_probe, missed = [], [], [], 0
    for label, probe, path in _progress(jobs, "identity embeddings", progress):
        image = read_image(path)
        found = detector.detect(image)
        face = central_face(found, image.shape)
        if face is None:
            missed += 1
            continue
        embeddings.append(recogniser.embed(image, found.select([face]))[0])
        labels.append(label)
        is_probe.append(probe)
    emb, labels, is_probe = np.array(embeddings), np.array(labels), np.array(is_probe)
    probes, probe_labels = emb[is_probe], labels[is_probe]
    gallery, gallery_labels = emb[~is_probe], labels[~is_probe]
    top1 = float(np.mean(nearest_identity(probes, gallery, gallery_labels) == probe_labels))
    same = probe_labels[:, None] == gallery_labels[None, :]
    sims = cosine_similarity(probes, gallery)
    return RetrievalValidation(
        people=len(probes),
        gallery=len(gallery),
        missed=missed,
        top1=top1,
        mean_cosine_same=float(sims[same].mean()),
        mean_cosine_other=float(sims[~same].mean()),
    )


@dataclass
class FidValidation:
    images: int
    #: FID between two disjoint halves of the photos (the same distribution)
    halves: float
    #: FID between the first half and the blurred second half
    blurred: float
    blur_sigma: float


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def validate_fid(
    features: InceptionFeatures,
    paths: Sequence[Path],
    per_half: int,
    blur_sigma: float = 3.0,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = False,
) -> FidValidation:
    """FID(half A, half B) against FID(half A, blurred half B) on ``2 * per_half`` seeded photos."""
    chosen = np.random.default_rng(seed).choice(len(paths), 2 * per_half, replace=False)
    half_a, half_b = [paths[i] for i in chosen[:per_half]], [paths[i] for i in chosen[per_half:]]
    feats_a = features.features((read_image(p) for p in _progress(half_a, "FID half A", progress)), batch_size)
    images_b = [read_image(p) for p in half_b]
    feats_b = features.features(_progress(images_b, "FID half B", progress), batch_size)
    blurred = (blur(im, blur_sigma) for im in _progress(images_b, "blurred", progress))
    feats_blur = features.features(blurred, batch_size)
    return FidValidation(2 * per_half, fid(feats_a, feats_b), fid(feats_a, feats_blur), blur_sigma)
