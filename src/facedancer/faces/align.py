"""Five-point similarity alignment to the ArcFace template, and its exact inverse (PAPER.md §3.6)."""

from __future__ import annotations

import cv2
import numpy as np

#: insightface's 112 px ArcFace template: eyes, nose tip, mouth corners (image-left first)
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def template(size: int, shrink: float = 1.0) -> np.ndarray:
    """The template for a ``size`` px crop, contracted towards the centre by ``shrink``.

    ``t' = s * t + (1 - s) * 56`` then scaled by ``size / 112``. With s = 1 (the official default) the
    256 crop is exactly the ArcFace crop at a higher resolution, so a plain resize to 112 is a valid
    identity-encoder input; s < 1 keeps more background.
    """
    return (shrink * ARCFACE_112 + (1.0 - shrink) * 56.0) * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama's closed form, the estimator skimage's SimilarityTransform uses in the official code.
    Returns a 2x3 matrix.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / s_c.var(0).sum()
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def alignment_matrix(landmarks: np.ndarray, size: int, shrink: float = 1.0) -> np.ndarray:
    """2x3 matrix taking image coordinates to the aligned ``size`` px crop."""
    return similarity_transform(landmarks, template(size, shrink))


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Aligned crop: bilinear, black border, as ``cv2.warpAffine`` in the official crop script."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align(
    image: np.ndarray, landmarks: np.ndarray, size: int = 256, shrink: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(crop, matrix) for one face; ``invert(matrix)`` maps the crop back into the image."""
    m = alignment_matrix(landmarks, size, shrink)
    return warp(image, m, size), m


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def footprint(matrix: np.ndarray, size: int, height: int, width: int) -> tuple[slice, slice]:
    """(rows, cols) of the frame that a ``size`` px crop taken with ``matrix`` covers, clipped to the frame.

    Paste-back touches only this box, so its cost follows the face's size, not the frame's.
    """
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    pts = transform_points(corners, invert(matrix))
    x0, y0 = np.floor(pts.min(0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
    return slice(max(y0, 0), min(y1, height)), slice(max(x0, 0), min(x1, width))


def unwarp(crop: np.ndarray, matrix: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    """The crop resampled onto the frame pixels of ``region`` (bilinear, zero outside the crop).

    Uses the forward ``matrix`` with ``WARP_INVERSE_MAP``: each frame pixel reads the crop at exactly the
    point it was aligned to, with no numerically inverted matrix in between.
    """
    rows, cols = region
    shifted = matrix.astype(np.float64).copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([cols.start, rows.start], np.float64)
    dsize = (cols.stop - cols.start, rows.stop - rows.start)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(crop, shifted, dsize, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
