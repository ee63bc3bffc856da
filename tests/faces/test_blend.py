"""Masks, colour correction and paste-back: exactness with an identity generator on real photos and video."""

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facedancer.faces import BlendConfig, YuNetDetector, align, blend_face, face_mask, match_colour, paste_back
from facedancer.faces.align import footprint, template, transform_points, unwarp
from facedancer.faces.blend import poisson_clone
from facedancer.faces.mask import OFFICIAL_RECTANGLES, landmark_mask, rectangle_mask

TEMPLATE_256 = template(256)


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("kind", ["rect-image", "rect-video"])
def test_official_rectangles_match_scipy_gaussian_filter(kind):
    ndimage = pytest.importorskip("scipy.ndimage")
    rows, cols = OFFICIAL_RECTANGLES[kind]
    hard = np.zeros((256, 256, 1))
    hard[rows, cols] = 1
    official = ndimage.gaussian_filter(hard, sigma=7)[..., 0]  # as in the official swap code
    np.testing.assert_allclose(rectangle_mask(kind), official, atol=1e-5)
    assert rectangle_mask(kind).max() > 0.99 and abs(rectangle_mask(kind)[rows.start, 128] - 0.5) < 0.03


def test_landmark_mask_covers_the_face_and_nothing_at_the_crop_edge():
    mask = landmark_mask(TEMPLATE_256)
    for x, y in TEMPLATE_256:
        assert mask[round(y), round(x)] > 0.95  # eyes, nose, mouth corners fully replaced
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert border.max() < 0.012  # the crop's square does not show (the official rectangle: 0.022)
    assert mask[128, :25].max() < 0.01 and mask[128, -25:].max() < 0.01  # background beside the cheeks kept
    assert mask[:50].max() < 0.05  # hair above the brows kept
    turned = TEMPLATE_256 + np.array([[25, 0], [10, 0], [30, 0], [25, 0], [10, 0]])  # a face turned to one side
    assert landmark_mask(turned)[128, 40] < mask[128, 40]  # the far cheek's side shrinks
    with pytest.raises(ValueError):
        face_mask("landmarks", 256)


def test_match_colour_removes_a_tint_and_leaves_a_matching_face_alone(lfw):
    image = rgb(sorted(lfw.glob("*/*.jpg"))[3])
    points = YuNetDetector().detect(image).landmarks[0]
    crop, matrix = align(image, points, 256)
    mask = landmark_mask(transform_points(points, matrix))
    same = match_colour(crop, crop, mask)
    assert np.abs(same.astype(int) - crop).max() <= 1  # float Lab round trip
    tinted = np.clip(crop.astype(int) * [1.0, 0.85, 0.7] + [25, 0, 0], 0, 255).astype(np.uint8)
    fixed = match_colour(tinted, crop, mask)
    inside = mask > 0.5
    before = np.abs(tinted[inside].mean(0) - crop[inside].mean(0)).max()
    after = np.abs(fixed[inside].mean(0) - crop[inside].mean(0)).max()
    print(f"\ncolour: channel-mean error inside the mask {before:.1f} -> {after:.1f} levels")
    assert before > 20 and after < 2


def _frames(shared: Path) -> list[np.ndarray]:
    """Two frames of a 720p talking head and one of a crowd scene with many small faces."""
    frames = []
    for name, wanted in (("3ddfa/obama.mp4", {0, 60}), ("ghost/dirtydancing.mp4", {150})):
        with av.open(str(shared / "data" / "videos" / name)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if i >= max(wanted):
                    break
    return frames


@pytest.fixture(scope="module")
def real_faces(shared, lfw) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, five points) for every face YuNet finds in 12 LFW photos and 3 video frames."""
    files = sorted(lfw.glob("*/*.jpg"))
    images = [rgb(files[i]) for i in np.random.default_rng(1).choice(len(files), 12, replace=False)]
    detector = YuNetDetector()
    return [(im, p) for im in [*images, *_frames(shared)] for p in detector.detect(im).landmarks]


@pytest.mark.parametrize(
    "config",
    [
        BlendConfig(),
        BlendConfig(colour=False),
        BlendConfig("rect-image", colour=False),
        BlendConfig("rect-video", colour=False),
        BlendConfig(poisson=True),
    ],
    ids=["default", "landmarks", "rect-image", "rect-video", "poisson"],
)
def test_pasting_back_the_aligned_crop_reproduces_the_frame(real_faces, config):
    """The generator returns its input: outside the mask the frame is untouched, inside it nearly is."""
    outside, inside, worst = [], [], []
    for image, points in real_faces:
        crop, matrix = align(image, points, 256)
        out = blend_face(image, crop, matrix, points, config)
        mask = face_mask(config.mask, 256, transform_points(points, matrix))
        region = footprint(matrix, 256, *image.shape[:2])
        alpha = np.zeros(image.shape[:2], np.float32)
        alpha[region] = unwarp(mask, matrix, region)
        diff = np.abs(out.astype(np.float64) - image).mean(-1)
        outside.append(diff[alpha == 0].mean())
        inside.append((diff * alpha).sum() / alpha.sum())
        worst.append(diff[alpha > 0].max())
    print(
        f"\n{config}: {len(outside)} faces; |out - in| outside the mask mean {np.mean(outside):.5f}, "
        f"inside (mask-weighted) mean {np.mean(inside):.3f} max-face {np.max(inside):.3f}, "
        f"worst pixel {np.max(worst):.0f}"
    )
    assert np.max(outside) < 1 / 255
    # two bilinear resamplings (frame -> crop -> frame) soften edges slightly; a misplaced paste would be ~10
    assert np.mean(inside) < 1.5 and np.max(inside) < 3


def test_paste_back_touches_only_the_face_box_of_a_large_frame(lfw):
    photo = cv2.resize(rgb(sorted(lfw.glob("*/*.jpg"))[7]), None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    frame = np.full((2160, 3840, 3), 90, np.uint8)  # a 4K frame with one 750 px photo in it
    frame[1000:1750, 2500:3250] = photo
    points = YuNetDetector().detect(frame).landmarks[0]
    crop, matrix = align(frame, points, 256)
    rows, cols = footprint(matrix, 256, *frame.shape[:2])
    painted = np.full_like(crop, 255)
    out = paste_back(frame, painted, matrix, face_mask("landmarks", 256, transform_points(points, matrix)))
    changed = np.argwhere(np.any(out != frame, -1))
    assert changed[:, 0].min() >= rows.start and changed[:, 0].max() < rows.stop
    assert changed[:, 1].min() >= cols.start and changed[:, 1].max() < cols.stop
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < 0.05 * frame.shape[0] * frame.shape[1]


def test_faces_at_or_beyond_the_frame_edge(lfw):
    image = rgb(sorted(lfw.glob("*/*.jpg"))[0])
    points = YuNetDetector().detect(image).landmarks[0]
    for shift in ([-100, 0], [0, 110], [-400, -400]):  # half out on the left, half out at the bottom, gone
        moved = points + np.array(shift, np.float32)
        crop, matrix = align(image, moved, 256)
        out = blend_face(image, np.full_like(crop, 7), matrix, moved)
        assert out.shape == image.shape
        if shift == [-400, -400]:
            np.testing.assert_array_equal(out, image)


def test_poisson_clone_keeps_the_face_gradients_and_takes_the_base_light_up_to_the_image_edge():
    yy, xx = np.mgrid[:64, :80].astype(np.float64)
    base = np.repeat((90 + 0.5 * xx + 0.3 * yy)[..., None], 3, axis=2)
    bump = 40 * np.exp(-((xx - 16) ** 2 + (yy - 32) ** 2) / 60)[..., None]  # the face's own detail
    face = np.clip(base + 60 + bump, 0, 255).astype(np.uint8)  # and 60 levels too bright
    base = base.astype(np.uint8)
    inside = np.zeros((64, 80), np.uint8)
    inside[8:56, :34] = 255  # reaches the image's left edge
    cloned = poisson_clone(face, base, inside)
    assert np.array_equal(cloned[inside == 0], base[inside == 0])
    region = inside > 0
    wanted = np.clip(base.astype(float) + bump, 0, 255)
    assert np.abs(cloned[region] - wanted[region]).mean() < 3  # the bump, at the base's level
    assert np.abs(cloned[region].astype(float) - face[region]).mean() > 40  # not the too-bright face
    # the face is cloned up to the edge column (a mask stopping short leaves the base there)
    shifted = np.roll(face, -14, axis=1)  # the bump at x = 2
    assert int(poisson_clone(shifted, base, inside)[32, 0, 0]) > int(base[32, 0, 0])
    tiny = np.zeros((64, 80), np.uint8)
    tiny[30:32, 40:42] = 255
    assert poisson_clone(face, base, tiny) is None
