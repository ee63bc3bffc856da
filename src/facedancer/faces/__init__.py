"""The face pipeline below the swapper: detection, alignment, tracking, masks and blending."""

from facedancer.faces.align import align, alignment_matrix, invert, template, transform_points, warp
from facedancer.faces.detect import Detections, FaceDetector, YuNetDetector

__all__ = [
    "Detections",
    "FaceDetector",
    "YuNetDetector",
    "align",
    "alignment_matrix",
    "invert",
    "template",
    "transform_points",
    "warp",
]
