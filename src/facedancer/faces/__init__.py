"""The face pipeline below the swapper: detection, alignment, tracking, masks and blending.

A swap of one frame, in the order the swapper calls these::

    faces = detector.detect(frame)                      # YuNetDetector or RetinaFaceDetector: Detections
    tracked = tracker.update(faces, frame)              # video only: FaceTracker, smoothed points, stable ids
    crop, matrix = align(frame, points, 256)            # similarity to the ArcFace template
    generated = generator(crop)                         # (the swapper's job)
    frame = blend_face(frame, generated, matrix, points, BlendConfig())

``blend_face`` builds the mask (``face_mask``), corrects colour (``match_colour``) and calls
``paste_back``, which warps crop and mask back with the exact inverse transform into the face's
bounding box only. Images are RGB uint8 (H, W, 3); points are (5, 2) in ArcFace order.
"""

from facedancer.faces.align import align, alignment_matrix, invert, template, transform_points, warp
from facedancer.faces.blend import BlendConfig, blend_face, paste_back
from facedancer.faces.colour import match_colour
from facedancer.faces.detect import Detections, FaceDetector, YuNetDetector, largest_face
from facedancer.faces.detectors import DETECTORS, make_detector
from facedancer.faces.mask import MASK_KINDS, MaskKind, face_mask
from facedancer.faces.retinaface import RetinaFaceDetector
from facedancer.faces.track import FaceTracker, OneEuroConfig, OneEuroFilter, TrackedFace, TrackerConfig

__all__ = [
    "DETECTORS",
    "MASK_KINDS",
    "BlendConfig",
    "Detections",
    "FaceDetector",
    "FaceTracker",
    "MaskKind",
    "OneEuroConfig",
    "OneEuroFilter",
    "RetinaFaceDetector",
    "TrackedFace",
    "TrackerConfig",
    "YuNetDetector",
    "align",
    "alignment_matrix",
    "blend_face",
    "face_mask",
    "invert",
    "largest_face",
    "make_detector",
    "match_colour",
    "paste_back",
    "template",
    "transform_points",
    "warp",
]
