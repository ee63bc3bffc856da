import pickle

import numpy as np
import pytest

from facedancer import assets
from facedancer.errors import AssetError
from facedancer.eval import TDDFA
from facedancer.eval.tddfa import (
    NUM_PARAMS,
    angles_from_rotation,
    crop,
    load_param_stats,
    roi_from_box,
    roi_from_landmarks,
    rotation_from_angles,
    rotation_from_params,
)

from .conftest import TDDFA_FILES


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_param_stats_are_read_without_unpickling_code(tddfa_dir, tmp_path):
    mean, std = load_param_stats(tddfa_dir / TDDFA_FILES["3ddfa-v2-param-stats"])
    assert mean.shape == std.shape == (NUM_PARAMS,) and mean.dtype == np.float32 and (std > 0).all()

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"mean": _Exploit(marker), "std": np.zeros(62, np.float32)}))
    with pytest.raises(AssetError, match="only numpy arrays"):
        load_param_stats(evil)
    assert not marker.exists()

    objects = tmp_path / "objects.pkl"
    objects.write_bytes(pickle.dumps({"mean": np.array([1] * 62, dtype=object), "std": np.ones(62, np.float32)}))
    with pytest.raises(AssetError, match="wrong shape or type"):
        load_param_stats(objects)


def test_weights_resolve_through_the_registry(tddfa_dir, aflw):
    with pytest.raises(AssetError, match="not installed"):
        TDDFA.load()
    for name, filename in TDDFA_FILES.items():
        assets.add(name, tddfa_dir / filename)
    from facedancer.io import read_image

    sample = aflw[0]
    params = TDDFA.load().params_from_rois(read_image(sample.image), roi_from_landmarks(sample.landmarks68)[None])
    assert params.shape == (1, NUM_PARAMS) and np.isfinite(params).all()


def test_angle_decomposition_inverts_the_datasets_rotation():
    rng = np.random.default_rng(0)
    angles = rng.uniform([-89, -89, -89], [89, 89, 89], size=(200, 3))
    np.testing.assert_allclose(angles_from_rotation(rotation_from_angles(angles)), angles, atol=1e-9)
    r = rotation_from_angles(angles)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)


def test_pose_ignores_camera_scale_and_translation():
    angles = np.array([[30.0, -10.0, 5.0], [-60.0, 20.0, -15.0]])
    camera = np.concatenate([rotation_from_angles(angles) * 0.0012, np.ones((2, 3, 1)) * 50], axis=2)
    params = np.zeros((2, NUM_PARAMS))
    params[:, :12] = camera.reshape(2, 12)
    np.testing.assert_allclose(angles_from_rotation(rotation_from_params(params)), angles, atol=1e-9)


def test_crop_pads_outside_the_frame_with_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    out = crop(image, np.array([-50.0, -50.0, 50.0, 50.0]), size=100)
    assert out.shape == (100, 100, 3)
    assert (out[:45, :45] == 0).all() and (out[55:, 55:] == 200).all()
    roi = roi_from_box(np.array([10.0, 20.0, 110.0, 120.0]))
    assert roi[2] - roi[0] == roi[3] - roi[1] == 158  # 1.58 x the side, centre moved down by 0.14 x the side
    np.testing.assert_allclose((roi[:2] + roi[2:]) / 2, [60.0, 84.0])
