"""One-Euro smoothing of a face's five points (Casiez, Roussel & Vogel, CHI 2012)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    """One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) in face-size units.

    The cutoff frequency rises with speed: ``min_cutoff + beta * speed`` (Hz), where speed is the
    filtered velocity of the face in face widths per second. Slow faces are smoothed hard (no jitter),
    moving ones lightly (no lag). The defaults keep the smoothed points of talking heads within two
    frames of the detections while cutting frame-to-frame jitter several times.
    """

    min_cutoff: float = 1.5
    beta: float = 1.0
    d_cutoff: float = 1.0


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Smooths one face's (5, 2) points. One cutoff for all points, so the face is smoothed as a whole
    and its shape is not distorted."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self.value: np.ndarray | None = None
        self.velocity: np.ndarray | None = None

    def __call__(self, points: np.ndarray, dt: float, scale: float) -> np.ndarray:
        """Filter ``points`` observed ``dt`` seconds after the previous call; ``scale`` is the face width."""
        x = np.asarray(points, np.float64)
        if self.value is None:
            self.value, self.velocity = x.copy(), np.zeros_like(x)
            return x
        c = self.config
        raw_velocity = (x - self.value) / dt
        self.velocity += _alpha(c.d_cutoff, dt) * (raw_velocity - self.velocity)
        speed = float(np.linalg.norm(self.velocity, axis=-1).mean()) / max(scale, 1.0)
        self.value += _alpha(c.min_cutoff + c.beta * speed, dt) * (x - self.value)
        return self.value.copy()
