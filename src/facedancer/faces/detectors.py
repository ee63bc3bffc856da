"""Face detectors by the name ``--detector`` takes: the swap and the evaluation build theirs here."""

from __future__ import annotations

import torch

from facedancer.errors import ConfigError
from facedancer.faces.detect import FaceDetector, YuNetDetector
from facedancer.faces.retinaface import RetinaFaceDetector

#: the names :func:`make_detector` accepts
DETECTORS = ("yunet", "retinaface")


def make_detector(name: str, device: torch.device | str = "cpu") -> FaceDetector:
    """A detector by name; RetinaFace (a torch network, unlike YuNet) runs on ``device``."""
    if name == "yunet":
        return YuNetDetector()
    if name == "retinaface":
        return RetinaFaceDetector(device=device)
    raise ConfigError(f"unknown detector {name!r}; choose {' or '.join(DETECTORS)}")
