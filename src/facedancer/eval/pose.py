"""Head-pose error between target and swap, and the estimators that measure it.

A swap should keep the target's head pose; following FaceShifter, SimSwap and HifiFace (PAPER.md §4.1)
the error is the L2 distance between the (yaw, pitch, roll) Euler angles, in degrees, of target and swap.
Every estimator here reports angles in one convention, that of AFLW2000-3D's ``Pose_Para`` (the labels
both estimators were trained on), so their outputs are comparable with each other and with the dataset.
As seen in the image: yaw > 0 turns the face towards the image's left, pitch > 0 raises the chin, roll > 0
turns the face clockwise (read off AFLW2000-3D's labelled landmarks).
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from facedancer.errors import ConfigError

ANGLES = ("yaw", "pitch", "roll")
EstimatorName = Literal["3ddfa", "fsanet"]


class PoseEstimator(Protocol):
    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 3) yaw, pitch, roll in degrees of the faces in ``boxes`` (N, 4) x1, y1, x2, y2 of an RGB image."""
        ...


def load_estimator(name: EstimatorName = "3ddfa", device: str = "cpu") -> PoseEstimator:
    """A pose estimator by name, its weights from the asset registry."""
    if name == "3ddfa":
        from facedancer.eval.tddfa import TDDFA

        return TDDFA.load(device=device)
    if name == "fsanet":
        from facedancer.eval.fsanet import FSANet

        return FSANet()
    raise ConfigError(f"unknown pose estimator {name!r}; known: 3ddfa, fsanet")


def pose_error(target: np.ndarray, swap: np.ndarray) -> np.ndarray:
    """(N,) L2 distance in degrees between (N, 3) yaw, pitch, roll of targets and their swaps."""
    return np.linalg.norm(np.asarray(swap, np.float64) - np.asarray(target, np.float64), axis=-1)


def mae_per_angle(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean absolute error in degrees of each angle and their mean (the usual AFLW2000-3D report)."""
    err = np.abs(np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)).mean(axis=0)
    return {**{a: float(e) for a, e in zip(ANGLES, err, strict=True)}, "mean": float(err.mean())}
