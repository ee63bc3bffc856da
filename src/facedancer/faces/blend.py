"""Paste a generated 256 crop back into its frame: exact inverse warp, soft mask, optional colour and Poisson."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedancer.faces.align import footprint, transform_points, unwarp, warp
from facedancer.faces.colour import match_colour
from facedancer.faces.mask import MaskKind, face_mask


@dataclass(frozen=True)
class BlendConfig:
    """How a generated face meets its frame.

    ``mask``: "landmarks" (soft face outline from the five points, the default), or the official
    feathered rectangles "rect-image" / "rect-video" (PAPER.md §5 row 19). ``colour``: match the face's
    Lab mean/std to the target's inside the mask. ``poisson``: gradient-domain blend (``cv2.seamlessClone``)
    before the soft mask, which hides remaining lighting steps at the cost of time on large faces.
    """

    mask: MaskKind = "landmarks"
    colour: bool = True
    poisson: bool = False


def poisson_clone(face: np.ndarray, base: np.ndarray, inside: np.ndarray) -> np.ndarray | None:
    """``face`` cloned into ``base`` where ``inside`` (uint8, nonzero) in the gradient domain: the face's
    gradients with ``base``'s colour at the mask's edge (``cv2.seamlessClone``). The one Poisson blend of
    facedancer (paste-back's ``--poisson`` and the classical swapper). Same-size arrays; the mask may reach
    the image's edge. None when the mask is under 3 px across (nothing the solver can clone).
    """
    pad = 2  # seamlessClone clears the mask's outermost pixels and needs room around the face
    face, base, inside = (cv2.copyMakeBorder(a, pad, pad, pad, pad, cv2.BORDER_REPLICATE) for a in (face, base, inside))
    x, y, w, h = cv2.boundingRect(inside)
    if w < 3 or h < 3:
        return None
    # OpenCV puts the mask's bounding box at centre - size // 2: this centre keeps it where it is
    cloned = cv2.seamlessClone(face, base, inside, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    return cloned[pad:-pad, pad:-pad]


def paste_back(
    frame: np.ndarray,
    crop: np.ndarray,
    matrix: np.ndarray,
    mask: np.ndarray,
    poisson: bool = False,
    inplace: bool = False,
) -> np.ndarray:
    """``frame`` with ``crop`` (aligned with ``matrix``) blended in through ``mask``.

    Crop and mask go back through the exact inverse of the alignment warp, and only the face's bounding
    box is computed, so the cost does not grow with the frame. Where the mask is 0 the frame's pixels
    are returned unchanged, bit for bit. ``inplace`` writes into ``frame`` (no copy of a 4K frame per
    face) instead of returning a new array.
    """
    out = frame if inplace else frame.copy()
    rows, cols = footprint(matrix, crop.shape[0], *frame.shape[:2])
    if rows.stop <= rows.start or cols.stop <= cols.start:  # the face lies outside the frame
        return out
    face = unwarp(crop, matrix, (rows, cols))
    alpha = unwarp(mask.astype(np.float32), matrix, (rows, cols))
    base = out[rows, cols]
    if poisson:  # re-lit so that its border matches the frame; alpha > 0 marks the face
        cloned = poisson_clone(face, base, (alpha > 0.02).astype(np.uint8) * 255)
        face = face if cloned is None else cloned
    # one pass, rounded; weights (0, 1) return ``base`` exactly
    out[rows, cols] = cv2.blendLinear(face, base, alpha, 1.0 - alpha)
    return out


def blend_face(
    frame: np.ndarray,
    generated: np.ndarray,
    matrix: np.ndarray,
    landmarks: np.ndarray,
    config: BlendConfig | None = None,
    inplace: bool = False,
    target: np.ndarray | None = None,
) -> np.ndarray:
    """Composite one generated crop into ``frame``: the swapper's last step for each face.

    ``landmarks`` are the face's five points in frame coordinates (the ones ``matrix`` was fitted to);
    ``inplace`` as in :func:`paste_back`. ``target`` is the face's aligned crop of the original frame, which
    the colour is matched to; give it whenever ``frame`` may already hold other pasted faces (without it the
    crop is cut from ``frame`` as it is now).
    """
    config = config or BlendConfig()
    size = generated.shape[0]
    mask = face_mask(config.mask, size, transform_points(landmarks, matrix))
    if config.colour:
        generated = match_colour(generated, warp(frame, matrix, size) if target is None else target, mask)
    return paste_back(frame, generated, matrix, mask, poisson=config.poisson, inplace=inplace)
