"""YuNet behind :class:`YuNetDetector`: deterministic on any input size (issue 15, defect 4)."""

import numpy as np
import pytest

from facedancer.faces import YuNetDetector

SHAPES = [(1, 1), (8, 8), (20, 30), (32, 32), (24, 200), (200, 24), (40, 40)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_detection_does_not_depend_on_leftover_memory(shape):
    """OpenCV's DNN reads memory it never wrote when the padded input has a 32 px side (the stride-32 feature
    maps are then one pixel wide): the same image gave a face or none depending on the heap. Repeating the
    detection with fresh detectors and a churned heap must always give the same answer."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    outcomes = set()
    for _ in range(25):
        churn = [np.random.bytes(int(rng.integers(1, 400)) * 1000) for _ in range(5)]
        del churn
        found = YuNetDetector().detect(image)
        outcomes.add((len(found), found.boxes.round(2).tobytes(), found.scores.round(4).tobytes()))
    assert len(outcomes) == 1, outcomes


@pytest.mark.parametrize("shape", [(1, 1), (5, 9), (15, 400)])
def test_images_too_small_to_hold_a_face_have_none(shape):
    image = np.full((*shape, 3), 200, np.uint8)
    assert len(YuNetDetector().detect(image)) == 0
