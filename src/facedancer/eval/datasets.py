"""Readers for the evaluation data sets: AFLW2000-3D (pose labels) and identity folders (LFW layout)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedancer.errors import InputError
from facedancer.faces import Detections
from facedancer.io import IMAGE_SUFFIXES


def central_face(found: Detections, shape: tuple[int, ...]) -> int | None:
    """Index of the detection nearest the image centre (the labelled face of centred data sets), or None."""
    if len(found) == 0:
        return None
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
    return int(np.argmin(((centres - np.array([shape[1], shape[0]]) / 2) ** 2).sum(axis=1)))


@dataclass(frozen=True)
class AflwSample:
    image: Path
    #: yaw, pitch, roll in degrees (``Pose_Para`` order is pitch, yaw, roll in radians)
    pose: np.ndarray
    #: the usual evaluation subset: all three angles within [-99, 99] degrees
    within_99deg: bool
    #: (68, 2) image coordinates of the fitted 3D landmarks (``pt3d_68``)
    landmarks68: np.ndarray
    #: (K, 2) AFLW's visible 2D landmarks (``pt2d`` without its negative placeholders)
    points2d: np.ndarray


def _visible(pt2d: np.ndarray) -> np.ndarray:
    """AFLW marks missing points with negative coordinates; keep the points FSA-Net's tooling keeps."""
    keep_x, keep_y = pt2d[0] > 0, pt2d[1] > 0
    keep = keep_y if keep_x.sum() > keep_y.sum() else keep_x
    return pt2d[:, keep].T


def read_aflw2000(root: str | Path) -> list[AflwSample]:
    """AFLW2000-3D as laid out in ``root``: ``pose_degrees.csv`` beside ``imageNNNNN.jpg`` / ``.mat`` pairs."""
    from scipy.io import loadmat  # MAT v5 parsing: plain arrays, no code execution

    root = Path(root)
    table = root / "pose_degrees.csv"
    if not table.is_file():
        raise InputError(f"{root} is not an AFLW2000-3D folder: {table.name} is missing")
    samples = []
    with table.open(newline="") as f:
        for row in csv.DictReader(f):
            image = root / row["image"]
            mat = loadmat(str(image.with_suffix(".mat")), variable_names=["pt2d", "pt3d_68"])
            pose = np.array([float(row[k]) for k in ("yaw_deg", "pitch_deg", "roll_deg")])
            samples.append(
                AflwSample(image, pose, row["within_99deg"] == "1", mat["pt3d_68"][:2].T.copy(), _visible(mat["pt2d"]))
            )
    return samples


def identity_folders(root: str | Path, min_images: int = 1) -> dict[str, list[Path]]:
    """``root/<identity>/<image>`` (the LFW layout) as identity -> sorted image paths."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    people = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(images) >= min_images:
            people[folder.name] = images
    return people
