import cv2
import numpy as np

from facedancer.faces import YuNetDetector, align, template, transform_points
from facedancer.faces.classical_swap import classical_swap, face_mask, thin_plate_spline


def test_thin_plate_spline_interpolates_the_points_and_keeps_affine_maps():
    src = template(256)
    dst = src + np.array([[3.0, -2], [-1, 4], [0, 0], [5, 1], [-2, -3]])
    f = thin_plate_spline(src, dst)
    np.testing.assert_allclose(f(src), dst, atol=1e-9)
    affine = np.array([[1.1, 0.2], [-0.1, 0.9]])
    g = thin_plate_spline(src, src @ affine.T + 7)
    far = np.array([[0.0, 0.0], [255.0, 255.0]])
    np.testing.assert_allclose(g(far), far @ affine.T + 7, atol=1e-6)


def test_mask_covers_the_inner_face_only():
    points = template(256)
    mask = face_mask(points, (256, 256))
    for x, y in points.round().astype(int):
        assert mask[y, x] == 255
    assert mask[5, 5] == 0 and mask[250, 5] == 0 and mask[5, 250] == 0 and 0.2 < (mask > 0).mean() < 0.5


def _aligned(path):
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    points = YuNetDetector().detect(image).landmarks[0]
    crop, m = align(image, points, 256)
    return crop, transform_points(points, m)


def test_swap_moves_the_source_face_into_the_target_only(lfw):
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    (target, tp), (source, sp) = (_aligned(sorted(p.glob("*.jpg"))[0]) for p in people[:2])
    out = classical_swap(target, tp, source, sp)
    assert out.shape == target.shape and out.dtype == np.uint8
    inside = cv2.erode(face_mask(tp, (256, 256)), np.ones((15, 15), np.uint8)) > 0
    outside = cv2.dilate(face_mask(tp, (256, 256)), np.ones((5, 5), np.uint8)) == 0
    assert np.abs(out.astype(int) - target)[outside].mean() < 1  # untouched beyond the mask

    def detail(im):
        return cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)[inside]

    # inside, the detail (edges) is the source's warped onto the target's landmarks, not the target's
    warped_source = classical_swap(np.zeros_like(target) + 128, tp, source, sp)
    assert np.corrcoef(detail(out), detail(warped_source))[0, 1] > 0.8
    assert np.corrcoef(detail(out), detail(target))[0, 1] < 0.5
    assert np.abs(classical_swap(target, tp, target, tp).astype(int) - target).mean() < 1  # self-swap: a no-op
