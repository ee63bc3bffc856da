"""The pixels and the face of each picture a plan names: photos read once, each video decoded once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from facedancer.errors import InputError
from facedancer.eval.datasets import central_face
from facedancer.eval.protocols import Media, face_rule
from facedancer.faces import Detections, FaceDetector, largest_face
from facedancer.io import VideoReader, read_image


def read_media(items: Sequence[Media]) -> list[np.ndarray]:
    """RGB uint8 pixels of each item, in order. Frames of one video come from a single decode that
    stops at the last frame asked for, so callers should pass a video's frames together."""
    out: list[np.ndarray | None] = [None] * len(items)
    wanted: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, media in enumerate(items):
        if media.frame is None:
            out[i] = read_image(media.path)
        else:
            wanted[media.path][media.frame].append(i)
    for path, frames in wanted.items():
        with VideoReader(path, max_frames=max(frames) + 1) as reader:
            for index, frame in enumerate(reader):
                for i in frames.get(index, ()):
                    out[i] = frame
        missing = sorted(f for f, positions in frames.items() if out[positions[0]] is None)
        if missing:
            raise InputError(f"{path} has no frame {missing[0]} (it changed since the plan was made?)")
    return out  # type: ignore[return-value]


def pick_face(detector: FaceDetector, image: np.ndarray, media: Media) -> Detections | None:
    """The one face ``media`` stands for (see :func:`~facedancer.eval.protocols.face_rule`), or None."""
    found = detector.detect(image)
    if len(found) == 0:
        return None
    # photos: the face nearest the centre (the labelled subject); video frames: the largest
    index = central_face(found, image.shape) if face_rule(media) == "central" else largest_face(found.boxes)
    return found.select([index])
