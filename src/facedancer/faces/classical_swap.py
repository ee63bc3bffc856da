"""A classical, parameter-free face swap: landmark warp of the source face onto the target + Poisson blend.

It is the reference swapper of the IFSR pre-study (``facedancer calibrate-ifsr``), which needs *some*
existing face swapper to measure how far a swapped face's identity-encoder features move from the
target's (PAPER.md §2.1 used SimSwap / FaceShifter outputs). Nothing here is learned:

1. a thin-plate spline through the five ArcFace points maps every target pixel to the source image,
   so the source's eyes, nose and mouth corners land exactly on the target's;
2. a face-shaped mask (an ellipse from the brows to the chin, built from the target's points) selects
   the inner face;
3. ``cv2.seamlessClone`` (Poisson blending) pastes the warped source face into the target, matching
   the target's colour and lighting at the seam.
"""

from __future__ import annotations

import cv2
import numpy as np

from facedancer.faces.blend import poisson_clone


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r^2 (0 at r = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2 > 0, r2 * np.log(r2), 0.0)


def thin_plate_spline(src: np.ndarray, dst: np.ndarray):
    """The smoothest map f with f(src_i) = dst_i: an affine part plus radial bends, vectorised."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n = len(src)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _tps_kernel(((src[:, None] - src[None]) ** 2).sum(-1))
    system[:n, n] = 1.0
    system[:n, n + 1 :] = src
    system[n, :n] = 1.0
    system[n + 1 :, :n] = src.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = dst
    coef = np.linalg.solve(system, rhs)

    def f(points: np.ndarray) -> np.ndarray:
        k = _tps_kernel(((points[:, None] - src[None]) ** 2).sum(-1))
        return k @ coef[:n] + coef[n] + points @ coef[n + 1 :]

    return f


def face_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 mask (255 inside) of an ellipse over the inner face, from the five points.

    In the face's own frame (x along the eyes, y from the eye midpoint to the mouth midpoint) the
    ellipse reaches from above the brows (-0.45 eye-mouth distances) to the chin (+1.5) and 0.95
    eye distances to each side.
    """
    p = np.asarray(points, np.float64)
    eyes, mouth = p[:2].mean(0), p[3:].mean(0)
    right = p[1] - p[0]
    down = mouth - eyes
    centre = eyes + 0.525 * down
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)[:, None]
    polygon = centre + np.cos(t) * 0.95 * right + np.sin(t) * 0.975 * down
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(polygon).astype(np.int32), 255)
    return mask


def classical_swap(
    target: np.ndarray, target_points: np.ndarray, source: np.ndarray, source_points: np.ndarray
) -> np.ndarray:
    """The source's face on the target's head: RGB uint8 images and their five points (x, y) each."""
    h, w = target.shape[:2]
    to_source = thin_plate_spline(target_points, source_points)
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2).astype(np.float64)
    maps = to_source(grid).reshape(h, w, 2).astype(np.float32)
    warped = cv2.remap(source, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return poisson_paste(warped, target, face_mask(target_points, (h, w)))


def poisson_paste(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``face`` cloned into ``target`` (same size) inside ``mask`` (uint8, 0/255) in the gradient domain.

    The classical swapper's mask stops 2 px short of the image's edge, as it always has (the face of an
    aligned crop reaches its lower edge; its outputs are pinned by tests/swap/test_golden.py).
    """
    mask = mask.copy()
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
    cloned = poisson_clone(face, target, mask)
    return target.copy() if cloned is None else cloned
