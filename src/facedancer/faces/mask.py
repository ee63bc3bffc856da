"""Soft masks on the aligned crop that say how much of the generated face replaces the target.

All masks are float32 (size, size) in [0, 1] and fall to zero before the crop's edge, so the crop's
border never shows in the frame.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

MaskKind = Literal["landmarks", "rect-image", "rect-video"]
MASK_KINDS: tuple[MaskKind, ...] = ("landmarks", "rect-image", "rect-video")

#: the official blend rectangles on the 256 crop as (rows, cols) slices, PAPER.md §5 row 19
OFFICIAL_RECTANGLES: dict[MaskKind, tuple[slice, slice]] = {
    "rect-image": (slice(77, 240), slice(32, 224)),  # utils/swap_func.py
    "rect-video": (slice(100, 240), slice(32, 224)),  # video_swap/multi_face_single_source.py
}
OFFICIAL_SIGMA = 7.0


def gaussian_feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with scipy.ndimage's defaults (truncate at 4 sigma, reflecting border) as in the official code."""
    radius = int(4.0 * sigma + 0.5)
    return cv2.GaussianBlur(mask, (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REFLECT)


def rectangle_mask(kind: MaskKind, size: int = 256) -> np.ndarray:
    """The official rectangle, feathered with sigma 7 px on the 256 crop (scaled with ``size``)."""
    rows, cols = OFFICIAL_RECTANGLES[kind]
    k = size / 256
    mask = np.zeros((size, size), np.float32)
    mask[round(rows.start * k) : round(rows.stop * k), round(cols.start * k) : round(cols.stop * k)] = 1
    return gaussian_feather(mask, OFFICIAL_SIGMA * k)


def face_outline(landmarks: np.ndarray) -> np.ndarray:
    """A convex polygon (12, 2) around brows, cheeks and jaw, built from the five points.

    In a frame spanned by the eye line (unit ``u``, eye distance ``de``) and its normal (``v``, eye-to-mouth
    distance ``dm``), the outline runs from above the brows (0.45 dm over the eyes) past the cheeks (about
    one eye distance out from the face's midline) to the jaw (0.4 dm under the mouth). Each side is
    measured from its own eye and mouth corner, so a turned face gets a narrower far side.
    """
    p = np.asarray(landmarks, np.float64)
    eye_l, eye_r, _, mouth_l, mouth_r = p
    eyes, mouth = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    u = eye_r - eye_l
    de = np.linalg.norm(u) + 1e-6
    u /= de
    v = np.array([-u[1], u[0]])
    dm = max(float((mouth - eyes) @ v), 0.5 * de)
    outline = []
    for side, eye, corner in ((-1, eye_l, mouth_l), (1, eye_r, mouth_r)):
        outline += [
            eye + side * 0.25 * de * u - 0.45 * dm * v,  # above the brow
            eye + side * 0.5 * de * u - 0.3 * dm * v,  # brow end
            eye + side * 0.58 * de * u + 0.15 * dm * v,  # temple / upper cheek
            corner + side * 0.5 * de * u - 0.25 * dm * v,  # cheek
            corner + side * 0.4 * de * u + 0.22 * dm * v,  # jaw
            corner + side * 0.05 * de * u + 0.45 * dm * v,  # chin
        ]
    return cv2.convexHull(np.array(outline, np.float32)).reshape(-1, 2)


def landmark_mask(landmarks: np.ndarray, size: int = 256, feather: float = 0.1) -> np.ndarray:
    """Soft mask over the face from its five points in crop coordinates.

    The outline is shrunk by one feather width before blurring so the transition lies inside the face,
    where generated and target skin meet, rather than over hair or background. ``feather`` is the blur
    sigma as a fraction of the eye distance.
    """
    p = np.asarray(landmarks, np.float64)
    sigma = max(feather * float(np.linalg.norm(p[1] - p[0])), 1.0)
    outline = face_outline(p)
    centre = outline.mean(0)
    radius = np.linalg.norm(outline - centre, axis=1, keepdims=True)
    inner = centre + (outline - centre) * np.clip(1 - sigma / radius, 0.3, 1)
    mask = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(mask, np.round(inner * 16).astype(np.int32), 1.0, cv2.LINE_AA, shift=4)
    margin = int(np.ceil(2.5 * sigma))  # about 1 % reaches the square edge (official: 2.2 %)
    mask[:margin], mask[-margin:], mask[:, :margin], mask[:, -margin:] = 0, 0, 0, 0
    return gaussian_feather(mask, sigma)


def face_mask(kind: MaskKind, size: int = 256, landmarks: np.ndarray | None = None) -> np.ndarray:
    """The mask called ``kind``; ``landmarks`` (five points in crop coordinates) are needed for "landmarks"."""
    if kind == "landmarks":
        if landmarks is None:
            raise ValueError("the landmark mask needs the five points in crop coordinates")
        return landmark_mask(landmarks, size)
    return rectangle_mask(kind, size)
