import cv2
import numpy as np
import pytest

from facedancer.faces import YuNetDetector, align, alignment_matrix, invert, template, transform_points, warp
from facedancer.faces.align import ARCFACE_112, similarity_transform


def test_similarity_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(17), 2.3, np.array([40.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = ARCFACE_112 @ rot.T + shift
    m = similarity_transform(ARCFACE_112, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)


def test_template_scaling_and_shrink():
    np.testing.assert_allclose(template(112), ARCFACE_112)
    np.testing.assert_allclose(template(256), ARCFACE_112 * 256 / 112)
    shrunk = template(112, shrink=0.5)
    np.testing.assert_allclose(shrunk, 0.5 * ARCFACE_112 + 28)


def test_inverse_maps_crop_back_onto_image():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    landmarks = template(256) * 0.6 + np.array([120.0, 70.0])
    crop, m = align(image, landmarks, 256)
    np.testing.assert_allclose(transform_points(landmarks, m), template(256), atol=1e-6)
    np.testing.assert_allclose(transform_points(transform_points(landmarks, m), invert(m)), landmarks, atol=1e-6)
    back = cv2.warpAffine(crop, invert(m), (400, 300), flags=cv2.INTER_LINEAR)
    inside = back[100:200, 150:230].astype(float)
    assert np.abs(inside - image[100:200, 150:230]).mean() < 3  # two bilinear resamplings of a smooth image


def test_yunet_on_real_photos_aligns_to_the_template(lfw):
    det = YuNetDetector()
    files = sorted(lfw.glob("*/*.jpg"))[:40]
    errors = []
    for f in files:
        image = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        found = det.detect(image)
        assert len(found) >= 1, f
        assert np.all(np.diff(found.scores) <= 0)
        m = alignment_matrix(found.landmarks[0], 256)
        errors.append(np.linalg.norm(transform_points(found.landmarks[0], m) - template(256), axis=1).mean())
        assert warp(image, m, 256).shape == (256, 256, 3)
    # a similarity cannot fit five points exactly, but a detected face sits close to the template
    assert np.median(errors) < 8


@pytest.mark.parametrize("factor", [1, 6])
def test_yunet_downscales_large_frames_and_reports_full_resolution_points(lfw, factor):
    image = cv2.cvtColor(cv2.imread(str(sorted(lfw.glob("*/*.jpg"))[0])), cv2.COLOR_BGR2RGB)
    base = YuNetDetector().detect(image).landmarks[0]
    big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    found = YuNetDetector(max_side=640).detect(big)
    # detection at another scale moves points a few pixels; unscaled points would be off by hundreds
    assert np.abs(found.landmarks[0] / factor - base).max() < 8
