"""Expression error (3DDFA_V2 coefficients; NOT the paper's EfficientNet-embedding metric)."""

import cv2
import numpy as np
import pytest

from facedancer.eval import expression_coefficients, expression_error
from facedancer.eval.datasets import central_face
from facedancer.faces import YuNetDetector
from facedancer.io import read_image


def test_expression_error_is_l2_of_coefficients():
    a = np.zeros((2, 10))
    b = a.copy()
    b[0, :2] = [3.0, 4.0]
    np.testing.assert_allclose(expression_error(a, b), [5.0, 0.0])
    with pytest.raises(ValueError, match="expression coefficients"):
        expression_error(np.zeros((2, 62)), np.zeros((2, 62)))


def test_expression_survives_re_encoding_but_separates_faces(tddfa, aflw):
    """Re-encoding a photo and nudging its box must move the coefficients far less than another face does."""
    detector = YuNetDetector()
    original, perturbed = [], []
    for sample in aflw[:24]:
        image = read_image(sample.image)
        found = detector.detect(image)
        box = found.boxes[central_face(found, image.shape)]
        _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])
        shift = 0.03 * (box[2] - box[0])
        original.append(expression_coefficients(tddfa.params(image, box[None]))[0])
        nudged = box + np.array([shift, -shift, shift, -shift])
        perturbed.append(
            expression_coefficients(tddfa.params(cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED), nudged[None]))[0]
        )
    original, perturbed = np.array(original), np.array(perturbed)
    same = expression_error(original, perturbed).mean()
    other = expression_error(original, np.roll(original, 1, axis=0)).mean()
    print(f"expression error: same photo re-encoded {same:.3f}, other faces {other:.3f}")
    assert same < 0.35 * other
