import numpy as np
import pytest

from facedancer.swap import Selection

BOXES = np.array([[300, 0, 400, 100], [0, 0, 50, 50], [100, 0, 260, 160]], np.float32)  # right, left, middle


def test_all_and_largest():
    assert Selection().assign(BOXES) == [0, 0, 0]
    assert Selection("largest").assign(BOXES) == [None, None, 0]
    assert Selection().assign(np.zeros((0, 4))) == []


def test_index_counts_from_the_left():
    assert Selection("index", index=0).assign(BOXES) == [None, 0, None]
    assert Selection("index", index=2).assign(BOXES) == [0, None, None]
    assert Selection("index", index=5).assign(BOXES) == [None, None, None]


def test_reference_picks_the_most_similar_source_above_threshold():
    refs = np.array([[1.0, 0.0], [0.0, 1.0]])
    faces = np.array([[0.9, 0.1], [0.2, 0.98], [0.3, 0.3]])
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    sel = Selection("reference", references=refs, threshold=0.8)
    assert sel.assign(BOXES, faces) == [0, 1, None]
    with pytest.raises(ValueError, match="reference"):
        Selection("reference")
